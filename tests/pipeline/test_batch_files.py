"""Batch-file generation by step depth: a scripted batch runner answers each request file, the
answers land in llm_calls, and the chains equal an online run's; bad output files change nothing."""

from __future__ import annotations

import json

import pytest

from pipeline.batch import batch_llm_config, read_results, write_requests
from pipeline.run import BatchConfig, run_batch
from store.chains import get_chain
from store.db import open_db
from store.errors import CoiError
from store.llm_calls import count_calls
from tests.support.llm_server import ScriptedLLMServer, scripted_client
from tests.support.tasks import insert_test_tasks, pipeline_responder

BATCH = BatchConfig(n_chains=4, lengths=(2, 3), seed=5)


def run_batch_file(requests_path, out_path) -> int:
    """What ``vllm run-batch`` or a provider does: one output line per request line."""
    lines = []
    for n, line in enumerate(requests_path.read_text().splitlines()):
        req = json.loads(line)
        assert req["method"] == "POST" and req["url"] == "/v1/completions"
        text = pipeline_responder(req["body"])
        body = {
            "object": "text_completion",
            "choices": [{"index": 0, "text": text}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3},
        }
        lines.append(
            {
                "id": f"r{n}",
                "custom_id": req["custom_id"],
                "response": {"status_code": 200, "body": body},
                "error": None,
            }
        )
    out_path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return len(lines)


def _chains(db) -> list[tuple]:
    ids = [r[0] for r in db.execute("SELECT id FROM chains ORDER BY id")]
    return [(c.instructions, c.outputs) for c in map(lambda i: get_chain(db, i), ids)]


def _rounds(db, db_path, tmp_path):
    llm = batch_llm_config("scripted-model")
    rounds = []
    while True:
        out = write_requests(db, db_path, llm, BATCH, tmp_path / "batches")
        if out.report is not None:
            return rounds, out.report
        results = tmp_path / f"results-{len(rounds) + 1}.jsonl"
        rounds.append((out.path, run_batch_file(out.path, results), read_results(db, results)))
        assert len(rounds) < 10


def test_depth_by_depth_gives_the_chains_an_online_run_gives(tmp_path, db, db_path):
    insert_test_tasks(db)
    rounds, report = _rounds(db, db_path, tmp_path)
    # summaries; pair checks; step-2 outputs; extension checks; step-3 outputs.
    assert len(rounds) == 5 and [p.name for p, _, _ in rounds] == [f"requests-{i}.jsonl" for i in range(1, 6)]
    assert all(r.answered == n and not r.failed for _, n, r in rounds)
    assert report.chains_added == 4 and not report.errors and report.usage["requests"] == 0
    batch_chains = _chains(db)

    online_path = tmp_path / "online.db"
    with open_db(online_path) as online, ScriptedLLMServer(responder=pipeline_responder) as server:
        insert_test_tasks(online)
        client = scripted_client(server, online_path)
        assert run_batch(online, client, BATCH).chains_added == 4
        assert _chains(online) == batch_chains
        assert server.request_count == sum(n for _, n, _ in rounds)


def test_a_round_not_yet_answered_is_written_again_to_the_same_file(tmp_path, db, db_path):
    insert_test_tasks(db)
    llm = batch_llm_config("scripted-model")
    first = write_requests(db, db_path, llm, BATCH, tmp_path)
    again = write_requests(db, db_path, llm, BATCH, tmp_path)
    assert again.path == first.path and again.requests == first.requests > 0
    assert count_calls(db) == first.requests  # waiting rows, one per request


@pytest.fixture
def answered_round(tmp_path, db, db_path):
    insert_test_tasks(db)
    out = write_requests(db, db_path, batch_llm_config("scripted-model"), BATCH, tmp_path)
    results = tmp_path / "results.jsonl"
    run_batch_file(out.path, results)
    return results


def _answered(db) -> int:
    return db.execute(
        "SELECT count(*) FROM llm_calls WHERE error IS NULL AND response IS NOT NULL"
    ).fetchone()[0]


def test_a_malformed_line_is_named_and_nothing_is_stored(db, answered_round):
    lines = answered_round.read_text().splitlines()
    lines[2] = lines[2][:-5]
    answered_round.write_text("\n".join(lines) + "\n")
    with pytest.raises(CoiError, match=r"results.jsonl, line 3 is not JSON"):
        read_results(db, answered_round)
    assert _answered(db) == 0


def test_a_missing_custom_id_is_named_and_nothing_is_stored(db, answered_round):
    lines = [json.loads(x) for x in answered_round.read_text().splitlines()]
    del lines[-1]["custom_id"]
    answered_round.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(CoiError, match=rf"line {len(lines)} has no custom_id"):
        read_results(db, answered_round)
    assert _answered(db) == 0


def test_an_unknown_request_is_refused_after_the_others_were_not_stored(db, answered_round):
    lines = [json.loads(x) for x in answered_round.read_text().splitlines()]
    lines[-1]["custom_id"] = "0" * 64
    answered_round.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(CoiError, match="is not a request of this database"):
        read_results(db, answered_round)
    assert _answered(db) == 0


def test_a_resent_file_adds_no_rows(db, answered_round):
    first = read_results(db, answered_round)
    calls = count_calls(db)
    again = read_results(db, answered_round)
    assert (again.answered, again.already) == (0, first.answered) and count_calls(db) == calls


def test_provider_errors_are_stored_as_failures_and_asked_again(tmp_path, db, db_path, answered_round):
    lines = [json.loads(x) for x in answered_round.read_text().splitlines()]
    lines[0]["response"] = {"status_code": 500, "body": {"error": {"message": "overloaded"}}}
    answered_round.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = read_results(db, answered_round)
    assert (result.answered, result.failed) == (len(lines) - 1, 1)
    retry = write_requests(db, db_path, batch_llm_config("scripted-model"), BATCH, tmp_path / "next")
    assert retry.requests == 1 and json.loads(retry.path.read_text())["custom_id"] == lines[0]["custom_id"]


def test_the_cli_walks_the_depths_with_a_batch_runner(tmp_path, db, db_path, capsys):
    from cli import main

    insert_test_tasks(db)
    flags = [
        "generate",
        "--db",
        str(db_path),
        "-n",
        "4",
        "--lengths",
        "2",
        "3",
        "--seed",
        "5",
        "--model",
        "scripted-model",
    ]
    out_dir = tmp_path / "batches"
    assert main([*flags, "--batch-out", str(out_dir)]) == 0
    for depth in range(1, 10):
        printed = capsys.readouterr().out
        if "Every depth is answered: 4 chains stored" in printed:
            break
        assert f"requests-{depth}.jsonl" in printed
        results = tmp_path / f"results-{depth}.jsonl"
        run_batch_file(out_dir / f"requests-{depth}.jsonl", results)
        assert main([*flags, "--batch-in", str(results), "--batch-out", str(out_dir)]) == 0
    assert depth == 6 and len(_chains(db)) == 4


def test_the_cli_names_the_bad_line(tmp_path, db, db_path, answered_round, capsys):
    from cli import main

    answered_round.write_text(answered_round.read_text() + "{not json\n")
    code = main(
        ["generate", "--db", str(db_path), "--model", "scripted-model", "--batch-in", str(answered_round)]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "results.jsonl, line" in err and "is not JSON" in err and "Traceback" not in err
    assert _answered(db) == 0
