"""Faults: kill the app, or the generation job itself, in the middle of a batch; restart; resume.

The LLM is the scripted server on 127.0.0.1. Kills land mid-batch by state, never by a sleep: the
app-crash test waits until the job row shows progress; the job-kill test parks the job on gated LLM
answers (some already cached, two in flight) and kills it there.
"""

from __future__ import annotations

import os
import threading

import pytest

from jobs.process import group_alive, is_alive
from pipeline.llm import LLMConfig
from pipeline.run import BatchConfig, launch_batch
from store.chains import count_chains, get_chain
from store.jobs import get_job
from store.review import save_step_output
from tests.support.faults import (
    assert_kept,
    crash,
    crash_group,
    no_leftover_jobs,  # noqa: F401 - a fixture (usefixtures)
    start_stand_in_app,
    table_snapshots,
)
from tests.support.llm_server import ScriptedLLMServer, prompt_text
from tests.support.pages import open_page, page_text
from tests.support.probes import wait
from tests.support.tasks import insert_test_tasks, pipeline_responder

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_leftover_jobs")]
N_CHAINS = 16


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

        restarted = open_page(
            "generate", via_main=True, reviewer="fault-tester"
        )  # what the restarted app shows on load
        shown = page_text(restarted)
        assert f"generate #{job_id} · running" in shown or f"generate #{job_id} · succeeded" in shown, shown
        wait(lambda: not get_job(db, job_id).active, what="the job to end")

    job = get_job(db, job_id)
    assert job.status == "succeeded", job.error
    assert f"generate #{job_id} · succeeded" in page_text(
        open_page("generate", via_main=True, reviewer="fault-tester")
    )
    assert count_chains(db) == N_CHAINS
    _no_duplicates(db)


class GatedResponder:
    """The pipeline responder; once armed, generation prompts after the first ``let_through`` wait for ``release``.

    That parks the job mid-generation (calls in flight, some answers cached) for as long as the test
    needs: the kill lands there every time, not by timing.
    """

    def __init__(self, let_through: int) -> None:
        self.armed, self.let_through, self.passed, self.waiting = False, let_through, 0, 0
        self.release, self.lock = threading.Event(), threading.Lock()

    def __call__(self, body: dict) -> str:
        if self.armed and prompt_text(body).startswith("Follow the instruction"):
            with self.lock:
                self.passed += 1
                hold = self.passed > self.let_through
                self.waiting += hold
            if hold:
                self.release.wait(60)
        return pipeline_responder(body)


def _edit_first_step(db, chain_id: int, text: str) -> None:
    chain = get_chain(db, chain_id)
    save_step_output(db, chain_id, 1, text, author="rev", expected_version=chain.version)


def test_the_job_is_killed_mid_batch_then_marked_failed_and_resumed_without_loss(
    db, db_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    insert_test_tasks(db)
    gate = GatedResponder(let_through=4)
    with ScriptedLLMServer(responder=gate, latency=0.05) as server:
        llm = LLMConfig(base_url=server.base_url, model="scripted-model", concurrency=2)
        first = launch_batch(db, BatchConfig(n_chains=6, seed=1, llm=llm.to_dict()), llm)
        wait(lambda: not get_job(db, first).active, what="the first batch")
        old_chains = [r[0] for r in db.execute("SELECT id FROM chains ORDER BY id")]
        _edit_first_step(db, old_chains[0], "corrected by a human before the batch")

        gate.armed = True
        job_id = launch_batch(
            db, BatchConfig(n_chains=N_CHAINS, lengths=(2, 3), seed=5, llm=llm.to_dict()), llm
        )
        wait(lambda: get_job(db, job_id).done >= 3, what="progress")
        _edit_first_step(db, old_chains[1], "corrected by a human while the batch runs")
        wait(lambda: gate.waiting >= 2, what="the job to be parked mid-generation")
        crash_group(get_job(db, job_id).pid)
        assert get_job(db, job_id).status == "running"  # nobody has looked yet
        before = table_snapshots(db_path)
        sent_before_kill = server.request_count

        at = open_page(
            "generate", via_main=True, reviewer="fault-tester"
        )  # the restarted app's page load re-attaches
        job = get_job(db, job_id)
        assert job.status == "failed" and not group_alive(job.pid)
        assert job.error.startswith("The process ended unexpectedly (killed, or crashed)"), job.error
        assert f"generate #{job_id} · failed" in page_text(at)
        assert "The process ended unexpectedly" in page_text(at)

        gate.release.set()
        at.button(key="gen_resume").click().run()  # the page's Resume button
        assert not at.exception, at.exception
        wait(lambda: not get_job(db, job_id).active, what="the resumed job to end")
        job = get_job(db, job_id)
        assert job.status == "succeeded", job.error
        resumed_requests = server.request_count - sent_before_kill

    after = table_snapshots(db_path)
    for table in before:
        assert_kept(before[table], after[table], table)
    assert job.result["chains_added"] + job.result["chains_existing"] == N_CHAINS
    assert len(after["edits"]) == len(before["edits"]) > 0
    assert get_chain(db, old_chains[0]).steps[0].output == "corrected by a human before the batch"
    assert get_chain(db, old_chains[1]).steps[0].output == "corrected by a human while the batch runs"
    # The answers saved before the kill were reused (cache hits), not asked for again.
    assert job.result["usage"]["cache_hits"] >= gate.let_through
    _no_duplicates(db)
    print(
        f"generate kill: {resumed_requests} requests after the resume, {sent_before_kill} before; rows kept "
        + ", ".join(f"{t} {len(before[t])}->{len(after[t])}" for t in before)
    )
