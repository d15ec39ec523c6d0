"""`coi generate` headless, against the scripted server."""

from __future__ import annotations

from cli import main
from store.chains import count_chains
from store.jobs import list_jobs
from tests.support.llm_server import ScriptedLLMServer
from tests.support.tasks import insert_test_tasks, pipeline_responder


def test_coi_generate_foreground_records_a_job(db, db_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-SECRET-1")
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder) as server:
        argv = [
            "generate",
            "--db",
            str(db_path),
            "-n",
            "4",
            "--lengths",
            "2",
            "3",
            "--base-url",
            server.base_url,
        ]
        assert main([*argv, "--model", "scripted-model"]) == 0
        sent = server.request_count
        assert main([*argv, "--model", "scripted-model"]) == 0
        # The second identical run is all cache hits: only the uncached preflight request goes out.
        assert server.request_count == sent + 1
    out = capsys.readouterr().out
    assert "chains added 4" in out and "chains added 0 (already there 4)" in out
    assert count_chains(db) == 4
    jobs = list_jobs(db, kind="generate")
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]
    assert jobs[1].result["chains_added"] == 4 and "sk-cli" not in str(jobs[1].config)


def test_coi_generate_with_too_few_tasks_is_a_plain_error(db_path, capsys):
    with ScriptedLLMServer() as server:
        code = main(["generate", "--db", str(db_path), "--base-url", server.base_url, "--model", "m"])
    assert code == 2 and "at least 2 tasks" in capsys.readouterr().err


def test_coi_generate_resume_refuses_a_job_that_is_not_a_stopped_generate_job(db, db_path, capsys):
    assert main(["generate", "--db", str(db_path), "--resume", "999"]) == 2
    assert "There is no job #999" in capsys.readouterr().err
    ok = db.execute(
        "INSERT INTO jobs (kind, status, created_at) VALUES ('generate', 'succeeded', 'now')"
    ).lastrowid
    assert main(["generate", "--db", str(db_path), "--resume", str(ok)]) == 2
    assert "cannot resume: it succeeded with nothing left to redo" in capsys.readouterr().err
