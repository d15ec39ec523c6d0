"""Faults, for real: `streamlit run app/main.py` starts a generation batch from a browser click, the
app process is killed with SIGKILL mid-batch, the batch keeps going, and a restarted app's Generate
page (a real server again, a real browser) re-attaches to it and shows it succeed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from jobs.process import is_alive
from pipeline.status import save_endpoint
from store.chains import count_chains
from store.db import connect
from store.jobs import get_job, list_jobs
from tests.e2e.browser import (
    ROOT,
    app_env,
    chromium_page,
    click_until,
    free_port,
    shot,
    stop_group,
    streamlit_cmd,
    wait_healthy,
)
from tests.support.faults import (
    no_leftover_jobs,  # noqa: F401 - a fixture (usefixtures)
)
from tests.support.llm_server import ScriptedLLMServer
from tests.support.probes import wait
from tests.support.tasks import insert_test_tasks, pipeline_responder

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("no_leftover_jobs")]


def start_app(db_path: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("a") as out:
        proc = subprocess.Popen(
            streamlit_cmd(port),
            cwd=ROOT,
            env=app_env(db_path, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, 90, log)
    return proc, url


def test_sigkill_the_streamlit_app_mid_batch_then_restart_it(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    with ScriptedLLMServer(responder=pipeline_responder, latency=0.1) as server:
        db = connect(db_path)
        insert_test_tasks(db)
        save_endpoint(db, server.base_url, "scripted-model", "completions")
        app, url = start_app(db_path, tmp_path / "app.log")
        restarted = None
        try:
            with chromium_page() as page:
                page.goto(url + "/generate")
                click_until(
                    page.get_by_role("button", name="Start batch"),
                    lambda: list_jobs(db, kind="generate"),
                    what="Start batch",
                )
                job = wait(lambda: next(iter(list_jobs(db, kind="generate")), None), what="the job row")
                wait(lambda: get_job(db, job.id).done >= 5, what="progress")

                os.kill(app.pid, signal.SIGKILL)  # the app crashes; its job runs in its own session
                app.wait(timeout=10)
                running = get_job(db, job.id)
                assert running.status == "running" and is_alive(running.pid), "the job died with the app"
                wait(lambda: get_job(db, job.id).done > running.done, what="progress after the crash")

                restarted, url = start_app(db_path, tmp_path / "app.log")
                page.goto(url + "/generate")
                page.get_by_text(f"generate #{job.id} · ").first.wait_for(timeout=30_000)
                wait(lambda: not get_job(db, job.id).active, what="the job to end")
                assert get_job(db, job.id).status == "succeeded", get_job(db, job.id).error
                page.get_by_text(f"generate #{job.id} · succeeded").first.wait_for(timeout=30_000)
                shot(page, "fault_app_restart_generate")
        finally:
            stop_group(app)
            if restarted is not None:
                stop_group(restarted)
            db.conn.close()
    db = connect(db_path)
    assert count_chains(db) == 20  # the page's default batch size
    n, distinct = db.execute("SELECT count(*), count(DISTINCT content_hash) FROM chains").fetchone()
    assert n == distinct
    db.conn.close()
