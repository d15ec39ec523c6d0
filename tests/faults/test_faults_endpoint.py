"""Endpoint faults a new user meets, each with the status, exit code and message it must give.

`coi generate` runs against the scripted server (real openai client over HTTP) or a dead port:
a dead server, a base URL without /v1, every item failing, some items failing (then a resume that
asks only for those), an empty answer at temperature 0, a wrong model name, answers that give no
usable verdict, and a killed job that `coi stats` must not count as running.
"""

from __future__ import annotations

import socket
import subprocess
import sys

from cli import main
from jobs import runtime
from pipeline.llm import LLMConfig
from pipeline.run import BatchConfig, launch_batch
from store.jobs import create_job, get_job, list_jobs, update_job
from tests.support.llm_server import Fault, ScriptedLLMServer, prompt_text
from tests.support.probes import wait
from tests.support.tasks import insert_test_tasks, pipeline_responder


def _dead_url() -> str:
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _generate(db_path, base_url: str, *extra: str) -> int:
    argv = ["generate", "--db", str(db_path), "-n", "4", "--base-url", base_url, "--model", "scripted-model"]
    return main([*argv, "--max-retries", "0", *extra])


def _only_job(db):
    (job,) = list_jobs(db, kind="generate")
    return job


def _is_generation(body: dict) -> bool:
    return prompt_text(body).startswith("Follow the instruction")


def test_a_dead_server_fails_the_job_with_the_url(db, db_path, capsys):
    insert_test_tasks(db)
    url = _dead_url()
    code = _generate(db_path, url)
    err = capsys.readouterr().err
    job = _only_job(db)
    assert code != 0 and job.status == "failed"
    assert f"could not connect to {url}" in job.error and url in err
    assert "Is the server running" in err  # the hint


def test_a_base_url_without_v1_fails_with_a_hint_at_v1(db, db_path, capsys):
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder) as server:
        url = server.base_url.removesuffix("/v1")
        code = _generate(db_path, url)
    err = capsys.readouterr().err
    job = _only_job(db)
    assert code != 0 and job.status == "failed"
    assert "HTTP 404" in job.error and url in job.error and "serve under /v1" in err


def test_every_item_failing_fails_the_job_with_the_first_error_and_the_url(db, db_path, capsys):
    insert_test_tasks(db)

    def responder(body):  # the preflight gets an answer, every real item a 500
        return "OK" if prompt_text(body).startswith("Say OK.") else Fault(status=500)

    with ScriptedLLMServer(responder=responder) as server:
        url = server.base_url
        code = _generate(db_path, url)
    job = _only_job(db)
    assert code == 1 and job.status == "failed"
    assert job.error.startswith(f"All {job.result['total_items']} LLM items failed against {url}")
    assert "First error: HTTP 500" in job.error
    assert job.result["failed_items"] == job.result["total_items"] > 0
    assert "failed" in capsys.readouterr().err


def test_some_items_failing_succeed_with_a_count_and_resume_asks_only_for_them(
    db, db_path, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    insert_test_tasks(db)
    broken = {"on": True}
    failed_prompts: list[str] = []

    def responder(body):
        text = prompt_text(body)
        if broken["on"] and _is_generation(body) and len(failed_prompts) < 2 and text not in failed_prompts:
            failed_prompts.append(text)
            return Fault(status=500)
        if broken["on"] and text in failed_prompts:
            return Fault(status=500)
        return pipeline_responder(body)

    with ScriptedLLMServer(responder=responder) as server:
        llm = LLMConfig(base_url=server.base_url, model="scripted-model", max_retries=0, concurrency=2)
        job_id = launch_batch(db, BatchConfig(n_chains=6, seed=3, llm=llm.to_dict()), llm)
        job = wait(lambda: (j := get_job(db, job_id)) and not j.active and j, what="the first run")
        assert job.status == "succeeded", job.error
        assert job.result["failed_items"] == 2 and job.result["total_items"] > 2
        main(["jobs", "list", "--db", str(db_path)])
        assert f"generate #{job_id}\tsucceeded" in (out := capsys.readouterr().out)
        assert f"2 of {job.result['total_items']} items failed" in out
        log = runtime.log(db, job_id)
        assert log.rstrip().splitlines()[-3].startswith(f"== outcome: generate #{job_id} succeeded: 2 of")

        broken["on"] = False
        server.reset_requests()
        runtime.resume(db, job_id, "generate")
        job = wait(lambda: (j := get_job(db, job_id)) and not j.active and j, what="the resumed run")
        sent = [prompt_text(b) for b in server.requests]
    assert job.status == "succeeded" and job.result["failed_items"] == 0, job.error
    # Only the two failed items are asked again (plus the one uncached preflight request).
    assert sorted(p for p in sent if not p.startswith("Say OK.")) == sorted(failed_prompts)
    assert len(sent) == 3
    assert job.result["chains_added"] == 2


def test_an_empty_answer_at_temperature_0_is_asked_once(db, db_path):
    insert_test_tasks(db)

    def responder(body):
        return Fault(kind="empty") if _is_generation(body) else pipeline_responder(body)

    with ScriptedLLMServer(responder=responder) as server:
        _generate(db_path, server.base_url, "--max-retries", "4")
        generation = [b for b in server.requests if _is_generation(b)]
    keys = [str(sorted(b.items())) for b in generation]
    assert len(keys) == len(set(keys)) > 0  # no identical resend
    assert "temperature 0" in _only_job(db).result["errors"][0]["error"]


def test_a_wrong_model_name_warns(db, db_path, capsys):
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder) as server:
        code = main(
            ["generate", "--db", str(db_path), "-n", "2", "--base-url", server.base_url, "--model", "gpt-5"]
        )
    out = capsys.readouterr().out
    assert code == 0 and "'gpt-5' is not among the models" in out and "scripted-model" in out
    assert "not among the models" in _only_job(db).result["warnings"][0]


def test_no_usable_verdict_warns_naming_the_likely_cause(db, db_path, capsys):
    insert_test_tasks(db)

    def responder(body):  # what a base model in chat mode often gives: no yes/no at all
        return (
            "I am a language model."
            if prompt_text(body).startswith("Decide if")
            else pipeline_responder(body)
        )

    with ScriptedLLMServer(responder=responder) as server:
        code = _generate(db_path, server.base_url, "--api", "chat")
    out = capsys.readouterr().out
    job = _only_job(db)
    assert code == 0 and job.result["chains_added"] == 0
    assert "Every checker verdict was 'unknown'" in out and "'chat' mode" in out
    assert "made 0 chains" in out


def test_stats_never_reports_a_killed_job_as_running(db, db_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    job_id = create_job(db, "generate", {}, status="running")
    update_job(db, job_id, pid=gone.pid, log_path=None)
    assert main(["stats", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "generate/running" not in out and "generate/failed=1" in out
    assert get_job(db, job_id).status == "failed"


def test_a_command_given_another_kinds_id_says_so(db, db_path, capsys):
    eval_id = create_job(db, "eval", {}, status="failed")
    assert main(["train", "--db", str(db_path), "--cancel", str(eval_id)]) == 2
    err = capsys.readouterr().err
    assert f"Job #{eval_id} is an eval run (eval #{eval_id}), not a training job" in err
    assert main(["generate", "--db", str(db_path), "--resume", str(eval_id)]) == 2
    assert f"eval #{eval_id}" in capsys.readouterr().err
