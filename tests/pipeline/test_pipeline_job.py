"""The batch as a real background process: kill -9 halfway, run again, no duplicates, no repeated calls."""

from __future__ import annotations

import json
import os
import signal
import time

from jobs.process import is_alive, launch, refresh
from pipeline.llm import LLMConfig
from pipeline.run import BatchConfig, launch_batch
from store.chains import count_chains
from store.db import connect
from store.jobs import get_job
from store.pipeline_queries import existing_chain_keys
from tests.support.llm_server import ScriptedLLMServer
from tests.support.probes import wait
from tests.support.tasks import insert_test_tasks, pipeline_responder

SECRET = "sk-job-SECRET-abcdef987654"


def job_row(db_path, job_id):
    db = connect(db_path)
    try:
        return get_job(db, job_id)
    finally:
        db.conn.close()


def test_kill_and_resume_subprocess(db_path, db, tmp_path, monkeypatch):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder, latency=0.05) as server:
        llm = LLMConfig(base_url=server.base_url, model="scripted-model", api_key=SECRET, concurrency=2)
        batch = BatchConfig(n_chains=12, lengths=(2, 3), seed=5, llm=llm.to_dict())
        job_id = launch_batch(db, batch, llm)
        pid = get_job(db, job_id).pid
        # Let it get well into the batch, then kill the whole group without warning.
        wait(lambda: job_row(db_path, job_id).done >= 30)
        os.killpg(pid, signal.SIGKILL)
        wait(lambda: not is_alive(pid))
        assert refresh(db, job_id).status == "failed"
        first_requests = server.request_count
        assert 0 < first_requests

        launch(db, job_id, "pipeline.run", env={"OPENAI_API_KEY": SECRET})
        job = wait(lambda: (j := job_row(db_path, job_id)).status != "running" and j)
        assert job.status == "succeeded", job.error

    # Each run's preflight ("Say OK.") is uncached on purpose; leave those out.
    bodies = [json.dumps(b, sort_keys=True) for b in server.requests if not b["prompt"].startswith("Say OK.")]
    # Only calls in flight at the kill (at most `concurrency`) can have been sent twice.
    assert len(bodies) - len(set(bodies)) <= 2
    assert count_chains(db) == 12 and job.result["chains_added"] + job.result["chains_existing"] == 12
    assert job.result["usage"]["cache_hits"] > 0
    # The chains are the ones the keys name, each once.
    rows = db.execute("SELECT content_hash, count(*) FROM chains GROUP BY 1 HAVING count(*) > 1").fetchall()
    assert (
        rows == []
        and len(existing_chain_keys(db, [r[0] for r in db.execute("SELECT content_hash FROM chains")])) == 12
    )
    # The key reached the child through its environment only.
    assert "api_key" not in job.config["llm"] and SECRET not in json.dumps(job.config)
    db.conn.commit()
    for path in db_path.parent.glob("coi.db*"):
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in (tmp_path / "logs" / f"job-{job_id}.log").read_text()


def test_cancel_stops_the_job_promptly(db_path, db, tmp_path, monkeypatch):
    from jobs.process import cancel

    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder, latency=0.2) as server:
        llm = LLMConfig(base_url=server.base_url, model="scripted-model", concurrency=2)
        job_id = launch_batch(db, BatchConfig(n_chains=40, llm=llm.to_dict()), llm)
        wait(lambda: job_row(db_path, job_id).done >= 4)
        job = cancel(db, job_id, grace_s=5.0)
        sent = server.request_count
        time.sleep(0.5)
        assert job.status == "cancelled" and not is_alive(job.pid)
        assert server.request_count <= sent + 2  # queued calls were dropped, not sent
        assert sent < 100  # far from the whole batch
