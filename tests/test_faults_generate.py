"""Faults: kill the app, or the generation job itself, in the middle of a batch; restart; resume.

The LLM is the scripted server on 127.0.0.1 with latency, so kills land mid-batch: each test waits
until the database shows progress (steps done, chains saved) before it kills anything.
"""

from __future__ import annotations

import os

import pytest

from pipeline.llm import LLMConfig
from pipeline.run import BatchConfig, launch_batch
from store.chains import count_chains, get_chain
from store.jobs import get_job
from store.review import save_step_output
from tests.fake_llm_server import ScriptedLLMServer
from tests.fault_helpers import (
    assert_kept,
    crash,
    crash_group,
    open_page,
    page_text,
    start_stand_in_app,
    table_snapshots,
    wait,
)
from tests.pipeline_fixtures import insert_test_tasks, pipeline_responder
from training.jobs import group_alive, is_alive, resume

pytestmark = pytest.mark.slow
N_CHAINS = 16


def _batch(server) -> tuple[BatchConfig, LLMConfig]:
    llm = LLMConfig(base_url=server.base_url, model="scripted-model", concurrency=2)
    return BatchConfig(n_chains=N_CHAINS, lengths=(2, 3), seed=5, llm=llm.to_dict()), llm


def _no_duplicates(db) -> None:
    for table, key in (("chains", "content_hash"), ("llm_calls", "key"), ("compositions", "key")):
        n, distinct = db.execute(f"SELECT count(*), count(DISTINCT {key}) FROM {table}").fetchone()
        assert n == distinct, f"{table}: {n - distinct} duplicate rows"
    n, distinct = db.execute(
        "SELECT count(*), count(DISTINCT chain_id || '/' || position) FROM steps"
    ).fetchone()
    assert n == distinct


def test_the_app_crashes_mid_batch_the_job_goes_on_and_a_restarted_page_re_attaches(
    db, db_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder, latency=0.15) as server:
        body = (
            "from pipeline.llm import LLMConfig\n"
            "from pipeline.run import BatchConfig, launch_batch\n"
            f"llm = LLMConfig(base_url={server.base_url!r}, model='scripted-model', concurrency=2)\n"
            f"batch = BatchConfig(n_chains={N_CHAINS}, lengths=(2, 3), seed=5, llm=llm.to_dict())\n"
            "job_id = launch_batch(db, batch, llm)\n"
        )
        app, job_id = start_stand_in_app(body, dict(os.environ), tmp_path / "app.log")
        wait(lambda: get_job(db, job_id).done >= 5, what="progress")
        crash(app)
        job = get_job(db, job_id)
        assert job.status == "running" and is_alive(job.pid), "the job died with the app"
        done_at_crash = job.done
        wait(lambda: get_job(db, job_id).done > done_at_crash, what="progress after the crash")

        restarted = open_page("generate", via_main=True)  # what the restarted app shows on load
        shown = page_text(restarted)
        assert f"Job {job_id} · running" in shown or f"Job {job_id} · succeeded" in shown, shown
        wait(lambda: not get_job(db, job_id).active, what="the job to end")

    job = get_job(db, job_id)
    assert job.status == "succeeded", job.error
    assert f"Job {job_id} · succeeded" in page_text(open_page("generate", via_main=True))
    assert count_chains(db) == N_CHAINS
    _no_duplicates(db)


def test_the_job_is_killed_mid_batch_then_marked_failed_and_resumed_without_loss(
    db, db_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder, latency=0.2) as server:
        batch, llm = _batch(server)
        job_id = launch_batch(db, batch, llm)
        wait(lambda: count_chains(db) >= 3, what="the first chains")
        # A reviewer corrects a saved chain while the batch runs: that edit must survive it all.
        chain = get_chain(db, db.execute("SELECT min(id) FROM chains").fetchone()[0])
        save_step_output(
            db, chain.id, 1, "corrected by a human", author="rev", expected_version=chain.version
        )
        crash_group(get_job(db, job_id).pid)
        assert get_job(db, job_id).status == "running"  # nobody has looked yet
        saved = count_chains(db)
        assert 3 <= saved < N_CHAINS, "the kill must land mid-batch"
        before = table_snapshots(db_path)

        at = open_page("generate", via_main=True)  # the restarted app's page load re-attaches
        job = get_job(db, job_id)
        assert job.status == "failed" and not group_alive(job.pid)
        assert job.error.startswith("The process ended unexpectedly (killed, or crashed)"), job.error
        assert f"Job {job_id} · failed" in page_text(at)
        assert "The process ended unexpectedly" in page_text(at)

        calls_before_resume = server.request_count
        resume(db, job_id, "pipeline.run")
        wait(lambda: not get_job(db, job_id).active, what="the resumed job to end")
        job = get_job(db, job_id)
        assert job.status == "succeeded", job.error

    after = table_snapshots(db_path)
    for table in before:
        assert_kept(before[table], after[table], table)
    assert count_chains(db) == N_CHAINS and job.result["chains_existing"] >= saved
    assert len(after["edits"]) == len(before["edits"]) > 0
    assert get_chain(db, chain.id).steps[0].output == "corrected by a human"
    # Cached LLM answers were reused: the resumed run sent fewer requests than the run so far.
    assert server.request_count - calls_before_resume < calls_before_resume
    _no_duplicates(db)
    print(
        f"generate kill: chains {saved} at the kill -> {count_chains(db)}; rows kept "
        + ", ".join(f"{t} {len(before[t])}->{len(after[t])}" for t in before)
    )
