"""eval.analysis and eval.report on hand-made predictions (no model)."""

import json

import pytest

from eval.analysis import (
    analyze,
    by_step,
    compare,
    error_kind,
    failures,
    first_failing_counts,
    group,
    guess_language,
)
from eval.report import build_report, to_markdown, write_report
from store.chains import get_chain, insert_chain
from store.predictions import Prediction, get_predictions, mark_chains_needs_review
from tests.support.chains import chain_of
from tests.support.eval_runs import fake_run

SCORES = {1: [0.9], 2: [0.8, 0.1], 3: [0.2, 0.9, 0.9], 4: [0.9, 0.9, 0.6], 5: [0.7, 0.6, 0.1]}


def _chains(db, scores=SCORES, **kw):
    run = fake_run(db, scores, **kw)
    return run, group(get_predictions(db, run))


def test_first_failing_step_counts_add_up_to_the_chains(db):
    _, modes = _chains(db)
    hist = first_failing_counts(modes["chain"], 0.5)
    assert hist["all"] == {"1": 1, "2": 1, "3": 1, "none": 2}
    assert sum(hist["all"].values()) == len(SCORES)
    assert hist["3"] == {"1": 1, "3": 1, "none": 1}
    assert sum(sum(v.values()) for k, v in hist.items() if k != "all") == len(SCORES)


def test_scores_by_length_and_step(db):
    run, modes = _chains(db)
    steps = by_step(modes["chain"])
    assert steps["3"]["1"] == (0.2 + 0.9 + 0.7) / 3
    assert steps["all"]["1"] == (0.9 + 0.8 + 0.2 + 0.9 + 0.7) / 5
    report = build_report(db, run)
    by_len = report["modes"]["chain"]["by_length"]
    assert by_len["2"]["final"]["mean"] == 0.1 and by_len["2"]["n"] == 1
    assert abs(by_len["3"]["final"]["mean"] - (0.9 + 0.6 + 0.1) / 3) < 1e-12
    assert report["threshold"] == 0.5


def test_own_vs_carried_over_compares_with_stepwise_gold(db):
    # Chain 2 fails step 2 in stepwise-own but passes it given the gold input: carried over.
    # Chain 5 fails step 3 both ways: its own error.
    own = {2: [0.8, 0.1], 5: [0.7, 0.6, 0.1]}
    gold = {2: [0.8, 0.9], 5: [0.7, 0.6, 0.2]}
    _, modes = _chains(db, own, mode="stepwise-own", gold=gold)
    fails = {
        (f["chain_id"], f["position"]): f["origin"]
        for f in failures(modes["stepwise-own"], modes["stepwise-gold"], 0.5)
    }
    assert fails == {(2, 2): "carried over", (5, 3): "own"}


def test_error_kinds_in_plain_words():
    def p(pred, ref="the reference answer is here", **meta):
        return Prediction(1, 2, "chain", pred, ref, 0.0, meta=meta)

    assert error_kind(p("")) == "empty"
    assert error_kind(p("", issues=["missing step markers"])) == "missing step markers"
    assert error_kind(p("a long answer that was cut", hit_limit=True)) == "truncated"
    assert (
        error_kind(p("Copy this input text please", input="copy this input text, please"))
        == "copied the input"
    )
    copied_and_cut = p(
        "the long chain input again", input="", chain_input="The long chain input, again", hit_limit=True
    )
    assert error_kind(copied_and_cut) == "copied the input"
    ref = "the cat is on the mat and it is happy with the sun"
    assert error_kind(p("le chat est sur la table et il est dans la maison", ref)) == "wrong language"
    assert error_kind(p("completely unrelated words", ref)) == "other"


def test_guess_language():
    assert guess_language("The cat is on the mat and it is happy") == "en"
    assert guess_language("Der Hund ist nicht in dem Haus und die Katze auch") == "de"
    assert guess_language("El perro está en la casa y no es de los vecinos") == "es"
    assert guess_language("Le chat est dans la maison et il ne dort pas") == "fr"
    assert guess_language("42") is None


def test_run_vs_run_lists_improved_and_regressed_first(db):
    a, _ = _chains(db, name="base")
    better = {**SCORES, 2: [0.9, 0.9], 4: [0.1, 0.9, 0.6]}
    b, _ = _chains(db, better, name="tuned")
    cmp = compare(get_predictions(db, a), get_predictions(db, b), "chain")
    assert [r["chain_id"] for r in cmp["improved"]] == [2]
    assert [r["chain_id"] for r in cmp["regressed"]] == [4]
    assert [r["chain_id"] for r in cmp["rows"][:2]] == [2, 4]
    assert cmp["unchanged"] == 3 and cmp["n_chains"] == 5
    report = build_report(db, b, compare_to=a)
    assert f"Run #{b} vs run #{a}" in to_markdown(report)


def test_report_files(db, tmp_path):
    run, _ = _chains(db)
    paths = write_report(build_report(db, run), tmp_path / "out")
    data = json.loads(open(paths["json"]).read())
    assert data["overall"]["chain"]["n_chains"] == 5
    md = open(paths["markdown"]).read()
    assert "| CoI3 | 3 |" in md and "First failing step" in md and "carried over" in md


def test_failing_chains_go_back_to_review(db):
    ids = [insert_chain(db, chain_of(i, 2))[0] for i in range(3)]
    before = get_chain(db, ids[0])
    assert mark_chains_needs_review(db, [ids[0], ids[1], ids[0], 999], author="eval", reason="run #1") == 2
    after = get_chain(db, ids[0])
    assert after.status == "needs_review" and after.version == before.version + 1
    assert after.updated_at > before.updated_at
    assert get_chain(db, ids[2]).status == "accepted"
    edits = list(db.query("SELECT field, old, new, author FROM edits WHERE chain_id = ?", [ids[0]]))
    assert edits == [{"field": "status", "old": "accepted", "new": "needs_review", "author": "eval"}]
    assert mark_chains_needs_review(db, [ids[0]]) == 0


def test_analyze_lists_failing_chains(db):
    run, _ = _chains(db)
    assert analyze(get_predictions(db, run), 0.5)["chain"]["failing_chains"] == [2, 3, 5]


def test_word_diff_is_plain_text():
    from eval.analysis import word_diff

    assert (
        word_diff("the cat sat on the mat", "the dog sat on mat") == "the [-cat-] {+dog+} sat on [-the-] mat"
    )
    assert word_diff("", "new words") == "{+new words+}"
    assert word_diff("<b>x</b>", "<b>x</b>") == "<b>x</b>"


def _label_chain(cid: int, first: str, second: str, mode: str = "chain"):
    """A 2-step chain: a free-text step, then a label step ("Classify ... as ironic or not ironic")."""
    meta = {"length": 2, "input": "story"}
    return [
        Prediction(cid, 1, mode, first, "the story ends", 1.0 if first == "the story ends" else 0.2, None,
                   {**meta, "step_type": "text"}),
        Prediction(cid, 2, mode, second, "ironic", None, None, {**meta, "step_type": "label"}),
    ]  # fmt: skip


def test_failure_analysis_uses_each_steps_own_metric():
    from eval.rouge import rouge_l

    rows = _label_chain(1, "the story ends", "not ironic") + _label_chain(2, "the story ends", "ironic")
    for p in rows:
        if p.rougeL is None:
            p.rougeL = rouge_l(p.reference, p.prediction)
    assert rows[1].rougeL == pytest.approx(2 / 3)  # ROUGE-L passes "not ironic" for "ironic" at 0.5
    out = analyze(rows, threshold=0.5)["chain"]
    assert out["metrics"]["rougeL"]["first_failing"]["all"] == {"none": 2}
    assert out["metrics"]["step_aware"]["first_failing"]["all"] == {"2": 1, "none": 1}
    assert out["metrics"]["exact_match"]["first_failing"]["all"] == {"2": 1, "none": 1}
    assert out["first_failing"]["all"] == {"2": 1, "none": 1} and out["failing_chains"] == [1]
    assert out["metrics"]["step_aware"]["by_step"]["2"] == {"1": 1.0, "2": 0.5}
    assert out["step_types"] == {"text": 2, "label": 2}
