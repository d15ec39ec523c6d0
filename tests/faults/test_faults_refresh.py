"""Faults: after a machine crash and reboot, a job row may name a pid that now belongs to another
program. Re-attaching must not take that program for the job (it stays 'running' forever), and
cancelling must never kill that program's process group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jobs.process import cancel, group_alive, refresh, runs_job
from store.jobs import create_job, get_job, update_job
from tests.support.probes import wait


def _started(proc: subprocess.Popen) -> subprocess.Popen:
    """Wait until the new program's arguments show in /proc (right after exec they are still empty)."""
    wait(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes(), timeout=10, step=0.01, what="exec")
    return proc


def _stranger() -> subprocess.Popen:
    """An unrelated long-running process in its own group (the program that got the pid)."""
    return _started(
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    )


def test_a_reused_pid_is_not_taken_for_the_job(db):
    proc = _stranger()
    try:
        job_id = create_job(db, "eval", {}, status="running")
        update_job(db, job_id, pid=proc.pid)
        assert not runs_job(proc.pid, job_id)
        job = refresh(db, job_id)
        assert job.status == "failed" and job.error.startswith("The process ended")
        assert proc.poll() is None  # untouched
    finally:
        proc.kill()
        proc.wait()


def test_cancel_never_kills_a_reused_pid(db):
    proc = _stranger()
    try:
        job_id = create_job(db, "generate", {}, status="running")
        update_job(db, job_id, pid=proc.pid)
        assert cancel(db, job_id, grace_s=0.5).status == "cancelled"
        assert proc.poll() is None and group_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_the_real_job_process_is_recognised(db):
    job_id = create_job(db, "eval", {}, status="running")
    argv = [sys.executable, "-c", "import time; time.sleep(30)", "--job", str(job_id)]
    proc = _started(subprocess.Popen(argv, start_new_session=True))
    try:
        update_job(db, job_id, pid=proc.pid)
        assert runs_job(proc.pid, job_id) and not runs_job(proc.pid, job_id + 1)
        assert refresh(db, job_id).status == "running"
        assert get_job(db, job_id).status == "running"
    finally:
        proc.kill()
        proc.wait()


def test_the_app_marks_jobs_that_died_while_it_was_down_once_per_session(db):
    from streamlit.testing.v1 import AppTest

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now: the job process is gone
    ids = []
    for kind in ("generate", "eval", "generate"):  # an older generate job too, not only the latest
        job_id = create_job(db, kind, {}, status="running")
        update_job(db, job_id, pid=dead.pid)
        ids.append(job_id)
    at = AppTest.from_file("../../app/main.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    for job_id in ids:
        job = get_job(db, job_id)
        assert job.status == "failed" and job.error.startswith("The process ended"), job
    late = create_job(db, "eval", {}, status="running")
    update_job(db, late, pid=dead.pid)
    at.run()  # the same session: no second sweep on every rerun
    assert get_job(db, late).status == "running"


def test_a_job_claimed_from_the_queue_is_not_dead_while_its_process_starts(db):
    """The queue marks a job running before its launcher has a pid; a refresh in that gap must wait."""
    from store.jobs import claim_next_for

    job_id = create_job(db, "train", {}, status="queued")
    assert claim_next_for(db, "device", 1) == job_id
    job = refresh(db, job_id)
    assert job.status == "running" and job.pid is None


def test_a_claimed_job_whose_launcher_died_is_marked_failed_after_the_grace(db):
    import datetime as dt

    from jobs.process import LAUNCH_GRACE_S

    job_id = create_job(db, "train", {}, status="running")
    claimed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=LAUNCH_GRACE_S + 1)
    update_job(db, job_id, started_at=claimed.isoformat())
    job = refresh(db, job_id)
    assert job.status == "failed" and job.error.startswith("The process ended")
