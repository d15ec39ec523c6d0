"""The LLM judge against the scripted server: rubric per step type, stored verdicts, the llm_calls
cache (a re-run sends nothing), and agreement with seeded human decisions."""

from __future__ import annotations

import pytest

from pipeline.judge import RUBRICS, JudgeItem, judge_chain_steps, judge_prompt, judge_run, parse_verdict
from store.judgements import human_agreement, judgements_for, verdict_counts
from store.review import decide, save_step_output
from store.step_types import STEP_TYPES
from tests.support.chains import add_chain
from tests.support.eval_runs import fake_run
from tests.support.llm_server import ScriptedLLMServer, prompt_text, scripted_client


@pytest.mark.parametrize(
    "reply, verdict, reason",
    [
        (" correct. It names the same label.", "correct", "It names the same label."),
        ("Partially - one item is missing", "partly", "one item is missing"),
        (" incorrect: wrong count", "wrong", "wrong count"),
        ("WRONG", "wrong", ""),
        ("I think so", "unknown", "I think so"),
        ("", "unknown", "(empty reply)"),
    ],
)
def test_parse_verdict(reply, verdict, reason):
    assert parse_verdict(reply) == (verdict, reason)


def test_every_step_type_has_a_rubric_and_the_prompt_ends_where_the_judge_writes():
    assert set(RUBRICS) == set(STEP_TYPES)
    prompt = judge_prompt(JudgeItem("number", "Count the words.", "a b c", "4", "3"))
    assert RUBRICS["number"] in prompt and "Reference answer: 3" in prompt and prompt.endswith("Verdict:")
    assert "Reference answer" not in judge_prompt(JudgeItem("text", "Summarize.", "x", "y"))


def _grader(body: dict) -> str:
    """Correct when the answer equals the reference, else wrong; generated steps: wrong if a copy."""
    text = prompt_text(body)
    answer = text.rsplit("Answer: ", 1)[-1].split("\n", 1)[0]
    if "Reference answer: " in text:
        reference = text.split("Reference answer: ", 1)[1].split("\n", 1)[0]
        return " correct. Same answer." if answer == reference else " wrong. Not the reference."
    step_input = text.rsplit("Input: ", 1)[-1].split("\n", 1)[0]
    return " wrong. It copies its input." if answer == step_input else " correct. On task."


@pytest.fixture
def judge(db_path):
    with ScriptedLLMServer(responder=_grader) as server:
        yield server, scripted_client(server, db_path, model="judge-model")


def test_an_eval_run_is_judged_once_and_the_rerun_is_free(db, judge):
    server, client = judge
    run_id = fake_run(db, {add_chain(db, 2, tag="a"): [0.9, 0.1], add_chain(db, 2, tag="b"): [1.0, 1.0]})
    assert judge_run(db, client, run_id) == 4
    sent = server.request_count
    assert sent == 4
    rows = judgements_for(db, run_id, "chain")
    assert {r.verdict for r in rows} == {"wrong"}  # fake_run's predictions never equal their references
    assert all(r.rubric == RUBRICS[r.step_type] and r.model == "judge-model" and r.llm_call_id for r in rows)
    assert judge_run(db, client, run_id) == 4
    assert server.request_count == sent  # every verdict came from llm_calls
    assert verdict_counts(db, run_id, "chain") == {"wrong": 4}


def test_agreement_with_seeded_human_decisions(db, judge):
    _, client = judge
    # Step 2 copies its input in chains 1 and 2 (the judge says wrong), is fresh in 3, 4 and 5.
    ids = [add_chain(db, 2, tag=t, outputs=["same", "same"]) for t in ("c1", "c2")]
    ids += [add_chain(db, 2, tag=t) for t in ("f3", "f4", "f5")]
    assert judge_chain_steps(db, client, ids) == 10
    # Humans: chain 1 rejected, chain 2 accepted after fixing step 2, 3 accepted, 4 rejected, 5 undecided.
    decide(db, ids[0], "reject", reviewer="ann", expected_version=1)
    version = save_step_output(db, ids[1], 2, "fixed", author="ann", expected_version=1)
    decide(db, ids[1], "accept", reviewer="ann", expected_version=version)
    decide(db, ids[2], "accept", reviewer="ann", expected_version=1)
    decide(db, ids[3], "reject", reviewer="ann", expected_version=1)
    result = human_agreement(db)
    # Step 1 of c1/c2 ("same" from "<tag>-input") is no copy. Per decided chain, (judge, human):
    # c1: s1 (ok, not ok), s2 (not ok, not ok); c2: s1 (ok, ok), s2 (not ok, not ok);
    # c3: s1 (ok, ok), s2 (ok, ok); c4: s1 (ok, not ok), s2 (ok, not ok). 8 pairs, 5 agree.
    assert result.n == 8 and result.percent == pytest.approx(5 / 8)
    # Judge ok 6/8, human ok 3/8: p_e = (6*3 + 2*5) / 64 = 28/64; kappa = (40/64 - 28/64) / (36/64) = 1/3.
    assert result.kappa == pytest.approx(1 / 3)


def test_coi_judge_a_run_then_again_for_free(db, db_path, capsys):
    from cli import main

    run_id = fake_run(db, {add_chain(db, 2, tag="a"): [0.9, 0.1]})
    with ScriptedLLMServer(responder=_grader) as server:
        argv = [
            "judge",
            "--db",
            str(db_path),
            "--run",
            str(run_id),
            "--base-url",
            server.base_url,
            "--model",
            "j",
        ]
        assert main(argv) == 0
        first = capsys.readouterr().out
        assert main(argv) == 0
        again = capsys.readouterr().out
    assert f"judged 2 steps of eval #{run_id} (chain): {{'wrong': 2}}" in first
    assert "requests sent: 2" in first and "requests sent: 0" in again


def test_the_eval_report_shows_the_judges_verdicts(db, judge):
    from eval.report import build_report, to_markdown

    _, client = judge
    run_id = fake_run(db, {add_chain(db, 2, tag="a"): [0.9, 0.1]})
    judge_run(db, client, run_id)
    report = build_report(db, run_id)
    assert report["judge"]["verdicts"] == {"chain": {"wrong": 2}}
    assert "## LLM judge" in to_markdown(report) and "- chain: wrong 2" in to_markdown(report)
