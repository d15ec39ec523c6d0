"""Helpers of the kill-and-restart fault tests: a stand-in app process, row snapshots, page openers.

A *stand-in app* is a separate Python process that submits a job through the same function the
page calls (``launch_batch``, ``training.queue.submit``, ``submit_eval``) and then idles like a
running app. Killing it with SIGKILL is the app crashing: the job, started in its own session, must
not notice. A *snapshot* is every row of a table keyed the way its uniqueness is defined, read with a
fresh connection, so "lost" and "duplicated" are plain dict and count comparisons.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from store.db import connect
from tests.support import ROOT
from tests.support.probes import query, wait

# Each table's identity (what must never repeat) and the columns a loss or rewrite would change.
TABLES = {
    "chains": ("SELECT content_hash, id FROM chains", None),
    "steps": ("SELECT chain_id, position, id, output, origin FROM steps", 2),
    "edits": ("SELECT id, chain_id, position, field, new FROM edits", 1),
    "compositions": ("SELECT key, id FROM compositions", None),
    "llm_calls": ("SELECT key, id, response FROM llm_calls", None),
}


def snapshot(db_path: Path, sql: str, key_len: int = 1) -> dict:
    """{key: rest of the row}; raises if a key repeats (a duplicate)."""
    out: dict = {}
    for row in query(db_path, sql):
        key = row[:key_len] if key_len > 1 else row[0]
        assert key not in out, f"duplicate row for {key}: {sql}"
        out[key] = row[key_len:]
    return out


def table_snapshots(db_path: Path) -> dict[str, dict]:
    return {name: snapshot(db_path, sql, key_len or 1) for name, (sql, key_len) in TABLES.items()}


def assert_kept(before: dict, after: dict, what: str) -> None:
    """Every row of ``before`` is in ``after`` with the same values (nothing lost or rewritten)."""
    lost = [k for k in before if k not in after]
    changed = [k for k in before if k in after and after[k] != before[k]]
    assert not lost, f"{what}: {len(lost)} saved rows lost, e.g. {lost[:3]}"
    assert not changed, f"{what}: {len(changed)} saved rows rewritten, e.g. {changed[:3]}"


STAND_IN = r"""
import sys, time
sys.path.insert(0, {root!r})
from store.db import connect
db = connect()
{body}
print(f"JOB {{job_id}}", flush=True)
from store.jobs import get_job
deadline = time.monotonic() + 300
while time.monotonic() < deadline and get_job(db, job_id).active:
    time.sleep(0.2)  # an app idling while its job runs (it leaves once the job ends, if nobody kills it)
"""


def start_stand_in_app(body: str, env: dict, log: Path) -> tuple[subprocess.Popen, int]:
    """Run ``body`` (which must set ``job_id``) in a separate process; return it and the job id."""
    code = STAND_IN.format(root=str(ROOT), body=body)
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
    )
    job_line = wait(
        lambda: (
            next((ln for ln in log.read_text().splitlines() if ln.startswith("JOB ")), None)
            or (proc.poll() is not None and _died(proc, log))
        ),
        timeout=120,
        what="the stand-in app to submit its job",
    )
    return proc, int(job_line.split()[1])


def _died(proc: subprocess.Popen, log: Path):
    raise AssertionError(f"the stand-in app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")


def crash(proc: subprocess.Popen) -> None:
    """SIGKILL the process (no cleanup, no atexit: a crash) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def crash_group(pid: int) -> None:
    """SIGKILL a job's whole process group, as a machine crash or the OOM killer would."""
    from jobs.process import group_alive

    os.killpg(pid, signal.SIGKILL)
    wait(lambda: not group_alive(pid), timeout=20, what="the killed group to go")


@pytest.fixture
def no_leftover_jobs(db_path):
    """After the test, cancel any job of its database still running (a failed test leaves none behind)."""
    yield
    from jobs.process import cancel
    from store.jobs import list_jobs

    db = connect(db_path)
    try:
        for job in list_jobs(db, statuses=["running", "queued"]):
            cancel(db, job.id, grace_s=2)
    finally:
        db.conn.close()


class FillingFile(io.StringIO):
    """A text file that raises ENOSPC once ``room`` characters are written (the disk fills mid-file)."""

    def __init__(self, real, room: int) -> None:
        super().__init__()
        self.real, self.room = real, room

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.room:
            self.real.write(text[: max(0, self.room - self.tell())])  # the bytes that still fit
            self.real.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self.real.write(text)
        return super().write(text)

    def flush(self) -> None:
        self.real.flush()

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()
        super().close()


def fill_after(monkeypatch, room: int) -> None:
    """Make every staged write of store.atomic hit a full disk after ``room`` characters."""
    from store import atomic

    real_open = atomic._open_temp
    monkeypatch.setattr(atomic, "_open_temp", lambda fd: FillingFile(real_open(fd), room))
