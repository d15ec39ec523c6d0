"""The three steps and the batch runner, against the scripted server through the real openai client."""

from __future__ import annotations

import random

import pytest

from pipeline.compose import can_follow, candidate_pairs, text_kind
from pipeline.generate import generate_output
from pipeline.llm import LLMClient
from pipeline.prompts import (
    check_prompt,
    generate_prompt,
    parse_generation,
    parse_summary,
    parse_verdict,
    summarize_prompt,
)
from pipeline.run import BatchConfig, run_batch
from store.chains import count_chains, get_chain
from store.errors import CoiError
from store.models import Task
from store.pipeline_queries import select_tasks, verdict_counts
from tests.support.llm_server import Fault, ScriptedLLMServer, scripted_client
from tests.support.tasks import insert_test_tasks, pipeline_responder


@pytest.fixture
def server():
    with ScriptedLLMServer(responder=pipeline_responder) as s:
        yield s


def client_for(server, db_path, **kw) -> LLMClient:
    return scripted_client(server, db_path, **kw)


# -- prompts: pure build/parse pairs --------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (" yes. A title can be translated.", "yes"),
        ("Yes, because it is text", "yes"),
        (" no - the output is a label", "no"),
        ("No.", "no"),
        ("maybe, it depends", "unknown"),
        ("", "unknown"),
        ("yes and no", "unknown"),  # both words up front: not a clear yes
        ("The answer is yes", "unknown"),  # no leading verdict: never guessed as yes
        ("noisy text", "unknown"),  # 'no' must be a whole word
        ("yesterday it rained", "unknown"),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply).verdict == verdict


def test_parse_verdict_reason_and_confidence():
    v = parse_verdict(" yes. A title is text.\nTask A: something else")
    assert (v.verdict, v.reason, v.confidence) == ("yes", "A title is text.", 1.0)
    assert parse_verdict("perhaps").confidence is None


def test_prompts_end_where_the_model_writes():
    assert summarize_prompt("Do a long thing.").endswith("Instruction: Do a long thing.\nShort:")
    assert check_prompt("A.", "B.", "out").endswith(
        "Task A: A.\nExample output of task A: out\nTask B: B.\nAnswer:"
    )
    assert generate_prompt("Translate.", " hi ").endswith("Instruction: Translate.\nInput: hi\nOutput:")


def test_parse_summary_and_generation():
    assert (
        parse_summary(" translate the text into French\nInstruction: x") == "Translate the text into French."
    )
    assert parse_summary("") is None and parse_summary("word " * 30) is None
    assert parse_generation(" Bonjour\nInstruction: next") == "Bonjour"
    assert parse_generation("  \n") is None


# -- cheap filters ----------------------------------------------------------------------------------
def test_text_kinds():
    assert text_kind('{"a": 1}') == "json"
    assert text_kind("42") == "number" and text_kind("3.5%") == "number"
    assert text_kind("positive") == "label"
    assert text_kind("SELECT city FROM Addresses", "sql") == "code"
    assert text_kind("A full sentence about the weather today.") == "text"
    assert text_kind("not enough information to tell", "sentiment classification") == "label"
    assert text_kind("not enough information to tell", "rewrite") == "text"


def test_can_follow_rules():
    para = Task(
        id=1,
        instruction="Summarize the paragraph.",
        input="A long text about things. " * 3,
        output="A summary.",
    )
    label = Task(id=2, instruction="Classify sentiment.", input="I like it a lot.", output="positive")
    number = Task(id=3, instruction="Count words.", input="one two three four five.", output="5")
    noinput = Task(id=4, instruction="Write a poem.", input="", output="Roses are red.")
    assert can_follow(para, label) and not can_follow(para, para)
    assert not can_follow(label, para)  # a label can't feed a summarize task
    assert not can_follow(number, para)
    assert not can_follow(para, noinput)  # a task without input can only start a chain


def test_content_filter_numbers_and_lists():
    headline = Task(
        id=1, instruction="Write a headline.", input="Some news text here.", output="Hikers Found Safe Today"
    )
    dates = Task(
        id=2,
        instruction="Sort the dates in order.",
        input="3 May 2020, 1 Jan 2019, 5 June 2021",
        output="1 Jan 2019, 3 May 2020, 5 June 2021",
    )
    names = Task(
        id=3,
        instruction="Sort the list alphabetically.",
        input="Zoe, Adam, Mia, Liam",
        output="Adam, Liam, Mia, Zoe",
    )
    assert not can_follow(headline, dates) and not can_follow(headline, names)
    assert can_follow(names, dates) is False  # a list of names has no numbers
    assert can_follow(dates, names)  # a list of dates is a list


def test_extension_candidates_never_repeat_a_task():
    from pipeline.compose import PairVerdict, extension_candidates
    from pipeline.prompts import Verdict

    ts = [Task(id=i, instruction=f"t{i}", input="x y z w.", output="a b c d.") for i in range(4)]
    path = [
        PairVerdict(ts[0], ts[1], Verdict("yes", "", 1.0)),
        PairVerdict(ts[1], ts[2], Verdict("yes", "", 1.0)),
    ]
    cands = extension_candidates([path], ts, 10, random.Random(0))
    assert [c.id for _, c in cands] == [3]
    # Round robin: with a budget of two, two different paths get one candidate each.
    p1, p2 = (
        [PairVerdict(ts[0], ts[1], Verdict("yes", "", 1.0))],
        [PairVerdict(ts[2], ts[3], Verdict("yes", "", 1.0))],
    )
    cands = extension_candidates([p1, p2], ts, 2, random.Random(0))
    assert [p is p1 for p, _ in cands] == [True, False]


def test_candidate_pairs_are_seeded_and_filtered(db):
    tasks = insert_test_tasks(db)
    tasks = select_tasks(db)
    a = candidate_pairs(tasks, 10, random.Random(1))
    b = candidate_pairs(tasks, 10, random.Random(1))
    assert [(x.id, y.id) for x, y in a] == [(x.id, y.id) for x, y in b] and len(a) == 10
    assert all(x.id != y.id and y.input for x, y in a)


# -- generate ---------------------------------------------------------------------------------------
def test_generate_output_for_review(server, db_path):
    res = generate_output(client_for(server, db_path), "Rewrite the text.", "Some input text.")
    assert res.output == "Rewritten: Some input text." and res.error is None and res.llm_call_id


def test_generate_output_reports_failure(server, db_path):
    server.enqueue(*[Fault(status=500)] * 2)
    res = generate_output(client_for(server, db_path, max_retries=1), "Rewrite.", "x")
    assert res.output == "" and "HTTP 500" in res.error and res.llm_call_id


# -- the batch --------------------------------------------------------------------------------------
def test_batch_makes_proposed_chains_with_gold_then_llm_steps(server, db_path, db):
    insert_test_tasks(db)
    report = run_batch(db, client_for(server, db_path), BatchConfig(n_chains=6, lengths=(2, 3), seed=3))
    assert report.chains_added == 6 and not report.errors
    assert report.verdicts == {"yes": report.pairs_checked} and verdict_counts(db)["yes"] >= 6
    chain = get_chain(db, 1)
    assert chain.status == "proposed" and chain.source == "pipeline"
    assert [s.origin for s in chain.steps] == ["gold"] + ["llm"] * (chain.length - 1)
    for prev, step in zip(chain.steps, chain.steps[1:]):
        assert step.input == prev.output and step.output.startswith("Rewritten:") and step.llm_call_id
    lengths = sorted(get_chain(db, i).length for i in range(1, 7))
    assert lengths == [2, 2, 2, 3, 3, 3]
    assert report.pairs_checked == 6 * 3 + 3 * 3  # pairs first (pair_factor 3), then one checked link each


def test_longer_chains_check_each_new_link(server, db_path, db):
    insert_test_tasks(db)
    report = run_batch(
        db, client_for(server, db_path), BatchConfig(n_chains=4, lengths=(4, 5), pair_factor=1.0)
    )
    assert report.chains_added == 4 and report.pairs_checked == 4 + 4 + 4 + 2
    chains = [get_chain(db, i) for i in range(1, 5)]
    assert sorted(c.length for c in chains) == [4, 4, 5, 5]
    for c in chains:
        assert len({s.task_id for s in c.steps}) == c.length
    assert all(
        t.short_instruction.startswith("Rewrite the paragraph in style ") for t in select_tasks(db)[:8]
    )
    assert report.usage["requests"] == server.request_count and report.usage["prompt_tokens"] > 0


def test_rerun_makes_zero_requests_and_no_duplicates(server, db_path, db):
    insert_test_tasks(db)
    batch = BatchConfig(n_chains=5, lengths=(2, 3, 4), seed=7)
    run_batch(db, client_for(server, db_path), batch)
    sent, chains = server.request_count, count_chains(db)
    again = run_batch(db, client_for(server, db_path), batch)
    assert server.request_count == sent and count_chains(db) == chains
    assert again.chains_added == 0 and again.chains_existing == 5 and again.usage["requests"] == 0


def test_per_item_errors_are_recorded_and_batch_goes_on(server, db_path, db):
    insert_test_tasks(db, 4)

    def flaky(body):
        if (
            "Follow the instruction" in str(body.get("prompt"))
            and "day 2" in body["prompt"].rsplit("Input:", 1)[-1]
        ):
            return ""  # an empty completion, every time, for one chain
        return pipeline_responder(body)

    server.responder = flaky
    report = run_batch(db, client_for(server, db_path, max_retries=1), BatchConfig(n_chains=6, lengths=(2,)))
    failed = [e for e in report.errors if e["item"].startswith("chain")]
    assert failed and all("empty completion" in e["error"] for e in failed)
    assert report.chains_added == 6 - len(failed) and count_chains(db) == report.chains_added
    # The failed items are retried on the next run (errors are not cached), and finish then.
    server.responder = pipeline_responder
    again = run_batch(db, client_for(server, db_path), BatchConfig(n_chains=6, lengths=(2,)))
    assert again.chains_added == len(failed) and count_chains(db) == 6


def test_unusable_verdicts_never_become_chains(server, db_path, db):
    insert_test_tasks(db, 4)

    def unsure(body):
        return " maybe, hard to say" if "Decide if" in str(body.get("prompt")) else pipeline_responder(body)

    server.responder = unsure
    report = run_batch(db, client_for(server, db_path), BatchConfig(n_chains=3))
    assert report.verdicts == {"unknown": report.pairs_checked} and report.chains_added == 0
    assert verdict_counts(db) == {"unknown": report.pairs_checked}


def test_batch_config_validation_and_roundtrip():
    with pytest.raises(CoiError):
        BatchConfig(lengths=(1,))
    cfg = BatchConfig(task_ids=(1, 2), lengths=(2, 5), llm={"model": "m"})
    assert BatchConfig.from_dict(cfg.to_dict()) == cfg
