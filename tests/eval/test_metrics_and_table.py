"""Exact match (normalised) with hand-derived values, the paired bootstrap, and the paper's table shape."""

from __future__ import annotations

import pytest

from eval.metrics import METRICS, exact_match, normalize, paired_bootstrap
from eval.report import PAPER_ROWS, build_report, to_markdown
from store.jobs import create_job, finish_job
from store.predictions import Prediction, save_predictions


@pytest.mark.parametrize(
    "reference, prediction, expected",
    [
        ("(B)", "(B)", 1.0),
        ("(B)", " (b) ", 1.0),  # case, brackets and spaces go
        ("(B)", "(C)", 0.0),
        ("The cat sat.", "cat   sat", 1.0),  # the article and the full stop go
        ("An apple", "apple, please", 0.0),
        ("12/25/1937", "12251937", 1.0),  # punctuation removed, not replaced by a space
        ("", "", 1.0),
        ("Theory", "ory", 0.0),  # "the" only as a whole word
        ("(A)", "", 0.0),  # a BBH option that is an article is still an answer
        ("(A)", "a.", 1.0),
        ("Straße", "STRASSE", 1.0),  # case folded, not just lowered
        ("Ｙｅｓ", "yes", 1.0),  # full-width forms under NFKC
        ("«Oui»", "oui", 1.0),  # Unicode punctuation goes too
    ],
)
def test_exact_match_hand_derived(reference, prediction, expected):
    assert exact_match(reference, prediction) == expected


def test_normalize_and_registry():
    assert normalize("  The  Quick, brown FOX! ") == "quick brown fox"
    assert METRICS["exact_match"].info.higher_is_better and METRICS["exact_match"].info.aggregation == "mean"
    assert METRICS["rougeL"].fn("a b c", "a b c") == pytest.approx(1.0)


def test_paired_bootstrap_of_the_gain():
    base, tuned = [0.1, 0.2, 0.3, 0.4], [0.3, 0.4, 0.5, 0.6]  # every chain gains exactly 0.2
    agg = paired_bootstrap(base, tuned)
    assert (agg.mean, agg.low, agg.high, agg.n) == (
        pytest.approx(0.2),
        pytest.approx(0.2),
        pytest.approx(0.2),
        4,
    )
    mixed = paired_bootstrap([0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0])
    # A resample's gain is k/4 with k ~ Binomial(4, 1/4): P(k = 0) = 0.32 and P(k = 4) = 0.004, so the
    # 2.5% quantile is 0 and the 97.5% one is 3/4 (P(k >= 3) = 0.051).
    assert mixed.mean == pytest.approx(0.25) and mixed.low == 0.0 and mixed.high == 0.75
    with pytest.raises(ValueError):
        paired_bootstrap([0.1], [0.1, 0.2])


def _run(db, rows: list[tuple[int, int, str, str, str, float]], adapter: str | None) -> int:
    """A finished eval run whose chain-mode predictions are (chain, length, source, pred, ref, rougeL) finals."""
    cfg = {
        "fail_threshold": 0.5,
        "modes": ["chain"],
        "model": "tiny",
        "adapter_dir": adapter,
        "version": 3,
        "split": "test",
    }
    run = create_job(db, "eval", cfg, name="r", status="running")
    preds = []
    for cid, n, source, pred, ref, score in rows:
        for k in range(1, n + 1):
            last = k == n
            meta = {"length": n, "source": source, "issues": [] if pred else ["missing step markers"]}
            preds.append(
                Prediction(
                    cid,
                    k,
                    "chain",
                    pred if last else "x",
                    ref if last else "y",
                    score if last else 0.0,
                    None,
                    meta,
                )
            )
    save_predictions(db, run, preds)
    finish_job(db, run, "succeeded")
    return run


def test_report_has_the_papers_table_base_and_tuned(db):
    finals = [
        (1, 1, "bbh", "(B)", "(B)", 1.0),
        (2, 1, "bbh", "(A)", "(B)", 0.0),
        (3, 2, "coi2_test", "", "le chat", 0.0),
        (4, 3, "coi3_test", "a b", "a b c", 0.8),
    ]
    base = _run(db, finals, None)
    tuned = _run(db, [(c, n, s, r, r, 1.0) for c, n, s, _, r, _ in finals], "/runs/job-1/adapter")
    report = build_report(db, tuned, compare_to=base)
    table = report["paper_table"]
    assert [r["row"] for r in table][:5] == list(PAPER_ROWS)
    assert {r["row"] for r in table[5:]} == {"source bbh", "source coi2_test", "source coi3_test"}
    by = {r["row"]: r for r in table}
    assert by["CoI1"]["n"] == 2 and by["CoI4"]["n"] == 0 and by["CoI5"]["base"]["rougeL"]["n"] == 0
    assert (
        by["CoI1"]["base"]["exact_match"]["mean"] == 0.5 and by["CoI1"]["tuned"]["exact_match"]["mean"] == 1.0
    )
    assert by["CoI2"]["tuned"]["rougeL"]["mean"] == 1.0 and by["CoI2"]["gain"]["mean"] == 1.0
    assert by["CoI3"]["base"]["exact_match"]["mean"] == 0.0  # "a b" is not "a b c"
    for row in table:
        for role in ("base", "tuned"):
            assert set(row[role]) == {"rougeL", "exact_match"}
            assert set(row[role]["rougeL"]) == {"mean", "low", "high", "n"}
    md = to_markdown(report)
    assert (
        "| CoI1 | 2 | 50.0 [0.0, 100.0] | 100.0 [100.0, 100.0] | 50.0 [0.0, 100.0] | 100.0 [100.0, 100.0] |"
        in md
    )
    assert "| CoI4 | 0 | n/a | n/a | n/a | n/a | n/a |" in md
    assert "adapter: /runs/job-1/adapter; dataset version #3, split test" in md


def test_report_says_when_missing_markers_make_step_one_look_failed(db):
    base = _run(db, [(1, 2, "coi2_test", "", "le chat", 0.0)], None)
    md = to_markdown(build_report(db, base))
    assert "wrote no step markers" in md and "adapter: none (base model)" in md
    assert "Exact match x 100 by step" in md
