"""Background jobs as detached processes: launch, watch, cancel, re-attach.

Kind-agnostic: training, evaluation and generation batches all run as
``python -m <module> --job ID`` in their own process group, log to a file, and write their
status, heartbeat and metrics to the database. A page reload or an app restart re-attaches by
reading the job row and checking its pid; a process that died without saying so is marked failed
with the end of its log and a plain-words reason.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from store import env as env_vars
from store.access import LOGIN_SECRETS
from store.db import connect, database_file, default_db_path, utcnow
from store.errors import CoiError
from store.jobs import Job, finish_job, get_job, update_job

# Popen objects of children started by this process, so they are reaped (no zombies) when they end.
_children: dict[int, subprocess.Popen] = {}
LOG_TAIL_LINES = 40
# How long a job claimed from the queue may go without a pid before refresh takes its launcher for dead.
LAUNCH_GRACE_S = 30.0


def logs_dir() -> Path:
    """Where job logs go: ``$COI_LOG_DIR`` or ``logs/`` beside the database."""
    configured = env_vars.get(env_vars.LOG_DIR)
    return Path(configured) if configured else default_db_path().resolve().parent / "logs"


def launch(
    db: sqlite_utils.Database,
    job_id: int,
    module: str,
    *,
    extra_args: list[str] | None = None,
    launcher: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``python -m module --job ID`` detached (new session), log to a file, record the pid.

    Args:
        db: The database the job row lives in (its path is passed to the child as $COI_DB).
        job_id: The job's id.
        module: The entry module, e.g. "training.run".
        extra_args: More arguments for the module.
        launcher: A prefix replacing ``python``, e.g. ``["accelerate", "launch", "--num_processes", "2"]``.
        env: Extra environment variables for the child.

    Returns:
        The child's pid.
    """
    log_path = logs_dir() / f"job-{job_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [*(launcher or [sys.executable]), "-m", module, "--job", str(job_id), *(extra_args or [])]
    inherited = {k: v for k, v in os.environ.items() if k not in LOGIN_SECRETS}
    child_env = {**inherited, **(env or {}), "COI_DB": database_file(db), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=child_env,
            cwd=str(_project_root()),
        )
    _children[proc.pid] = proc
    update_job(
        db,
        job_id,
        status="running",
        pid=proc.pid,
        log_path=str(log_path),
        started_at=utcnow(),
        heartbeat_at=utcnow(),
        error=None,
        ended_at=None,
    )
    return proc.pid


def _project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def is_alive(pid: int | None) -> bool:
    """True while the process runs (a finished child of ours is reaped, a zombie counts as dead)."""
    if not pid:
        return False
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _launching(job: Job) -> bool:
    """Claimed from the queue (status 'running') while the claimer is still starting its process (no pid yet)."""
    if job.pid or not job.started_at:
        return False
    claimed = dt.datetime.fromisoformat(job.started_at)
    return (dt.datetime.now(dt.timezone.utc) - claimed).total_seconds() < LAUNCH_GRACE_S


def _not_dead(job: Job | None) -> bool:
    """Nothing for refresh to mark: no job, an ended or queued one, one being launched, or its process runs."""
    return (
        job is None
        or job.status != "running"
        or _launching(job)
        or (is_alive(job.pid) and (job.launch.get("foreground") or runs_job(job.pid, job.id)))
    )


def refresh(db: sqlite_utils.Database, job_id: int) -> Job | None:
    """Re-attach to a job: a 'running' job whose process is gone becomes 'failed' with its log tail."""
    job = get_job(db, job_id)
    if _not_dead(job):
        return job
    time.sleep(0.2)  # the child may be writing its own final status, or its launcher its pid, right now
    job = get_job(db, job_id)
    if _not_dead(job):
        return job
    tail = log_tail(job.log_path)
    if finish_job(db, job_id, "failed", error=f"{explain_failure(tail)}\n\n{tail}".strip()):
        _append_log(job.log_path, f"== outcome: {job.kind} #{job_id} failed: {explain_failure(tail)}")
    return get_job(db, job_id)


def _append_log(path: str | None, line: str) -> None:
    """Close the log of a job that died without writing its own outcome line."""
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass  # a missing or read-only log must not stop the job from being marked


def refresh_all(db: sqlite_utils.Database) -> list[Job]:
    """Re-attach to every running job of any kind (what the app does once per session on load).

    A job whose process died while the app was down (kill -9, a crash, a reboot) becomes 'failed'
    with a plain reason, so its page offers a resume instead of showing it running forever.
    """
    from store.jobs import list_jobs

    return [refresh(db, j.id) for j in list_jobs(db, statuses=["running"], limit=10_000)]


def runs_job(pid: int, job_id: int) -> bool:
    """False when ``pid`` now belongs to another program (pids are reused, e.g. after a reboot).

    Every job process runs ``... -m <module> --job ID`` (an accelerate launcher passes it on too).
    Without /proc (not Linux) the pid is trusted.
    """
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    if not any(args):  # mid-exec (the new image's arguments are not set up yet): trust it
        return True
    if b"--job" not in args:
        return False
    i = args.index(b"--job")
    return i + 1 < len(args) and args[i + 1] == str(job_id).encode()


def cancel(db: sqlite_utils.Database, job_id: int, *, grace_s: float = 5.0) -> Job | None:
    """Kill the job's process groups (SIGTERM, then SIGKILL) and mark it cancelled.

    That is the group of the job's process and the group of every process below it: ``accelerate
    launch`` (torchrun) starts each rank in a session of its own, so one group is not every rank.
    """
    job = get_job(db, job_id)
    if job is None or not job.active:
        return job
    if job.pid and is_alive(job.pid) and runs_job(job.pid, job_id):  # never kill a reused pid's group
        _kill_group(job.pid, grace_s)
    finish_job(db, job_id, "cancelled", error="Cancelled by the user.")
    return get_job(db, job_id)


def _kill_group(pid: int, grace_s: float) -> None:
    groups = _groups_of([pid, *descendants(pid)])  # listed before the signal: a dead parent loses its tree
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (is_alive(pid) or any(map(group_alive, groups))):
        time.sleep(0.1)
    _signal_groups(groups, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (is_alive(pid) or any(map(group_alive, groups))):
        time.sleep(0.05)


def _groups_of(pids: list[int]) -> list[int]:
    groups = []
    for pid in pids:
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if pgid not in groups and pgid != os.getpgrp():  # never the caller's own group
            groups.append(pgid)
    return groups


def _signal_groups(groups: list[int], sig: signal.Signals) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process ({} without /proc)."""
    found = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit() and (ppid := _ppid(int(entry.name))) is not None:
            found[int(entry.name)] = ppid
    return found


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, nearest first (children, then grandchildren, ...): a launcher's ranks."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)  # breadth first: a launcher before its workers
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def ancestors() -> list[int]:
    """This process's parent, its parent, and so on (without /proc: only the parent)."""
    found, pid = [], os.getppid()
    while pid > 1 and pid not in found:
        found.append(pid)
        pid = _ppid(pid) or 0
    return found


def group_alive(pgid: int) -> bool:
    """True if a live (non-zombie) process of process group ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(_live_in_group(entry, pgid) for entry in Path("/proc").iterdir() if entry.name.isdigit())


def _live_in_group(proc_dir: Path, pgid: int) -> bool:
    try:
        fields = (proc_dir / "stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    # After the command name: state, ppid, pgrp, ...
    return int(fields[2]) == pgid and fields[0] != "Z"


def log_tail(path: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    if not path or not Path(path).exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64_000))
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


_REASONS = [
    (
        ("CUDA out of memory", "OutOfMemoryError", "MemoryError", "Killed"),
        "Out of memory: lower the batch size or the max sequence length, or enable gradient checkpointing.",
    ),
    (
        (
            "Torch not compiled with CUDA",
            "no CUDA GPUs are available",
            "CUDA driver",
            "NVIDIA driver",
            "CUDA is missing",
        ),
        "CUDA is missing: this machine has no usable GPU; set the number of GPUs to 0 to train on the CPU.",
    ),
    (
        # Exception names only: a bare "config" would match every training log (it prints its config first).
        ("CoiError", "ValueError", "KeyError", "TypeError", "Bad training config"),
        "Bad configuration: see the log tail for the field at fault.",
    ),
]


def explain_failure(log_text: str) -> str:
    """A plain-words reason for a failed job, from its log."""
    for needles, reason in _REASONS:
        if any(n in log_text for n in needles):
            return reason
    if not log_text.strip():
        return "The process ended without writing a log (killed from outside?)."
    return "The process ended unexpectedly (killed, or crashed); see the log tail."


def force_weights_only() -> None:
    """Make every ``torch.load`` in this process weights-only (torch reads the variable per call)."""
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)  # both set is an error in torch
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"


def run_as_job(job_id: int, body: Callable[[int], dict | None]) -> int:
    """The child side: run ``body(job_id)`` and record how it ended. Returns an exit code.

    ``body`` returns the job's result dict. SIGTERM (cancel) ends it as 'cancelled'; ``JobFailed``
    (the work failed, e.g. every item) ends it as 'failed' with its plain reason and result; any
    other exception as 'failed' with the traceback, which also goes to the log. The log ends with
    a summary of the outcome, and the queue is pumped so the next job starts.
    """
    signal.signal(signal.SIGTERM, _raise_cancelled)
    force_weights_only()  # a job never unpickles arbitrary objects, whatever a library asks torch.load
    db = connect()
    pid = job_pid(get_job(db, job_id))
    update_job(db, job_id, status="running", pid=pid, heartbeat_at=utcnow())
    code = _run_body(db, job_id, body)
    _log_outcome(db, job_id)
    _pump_next(db, job_id, pid)
    return code


def job_pid(job: Job | None) -> int:
    """The process that stands for the job: the launcher that started this one, if any (``accelerate
    launch`` runs rank 0 under it; it lives until every rank ends), else this process."""
    if job is not None and job.pid and job.pid in ancestors():
        return job.pid
    return os.getpid()


def _run_body(db: sqlite_utils.Database, job_id: int, body: Callable[[int], dict | None]) -> int:
    try:
        result = body(job_id) or {}
    except JobCancelled:
        finish_job(db, job_id, "cancelled", error="Cancelled by the user.")
        return 130
    except JobFailed as exc:
        update_job(db, job_id, result=exc.result)
        finish_job(db, job_id, "failed", error=exc.message)
        return 1
    except CoiError as exc:  # a reason a user can act on: shown as it is, not as a crash
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr, flush=True)
        finish_job(db, job_id, "failed", error=f"{exc.message}\n{exc.hint}".strip())
        return 1
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the job row
        trace = traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        finish_job(db, job_id, "failed", error=f"{explain_failure(trace)}\n\n{exc!r}")
        return 1
    update_job(db, job_id, result=result, progress=1.0)
    finish_job(db, job_id, "succeeded")
    return 0


def _log_outcome(db: sqlite_utils.Database, job_id: int) -> None:
    """The last lines of every job log: how it ended, and its errors."""
    from jobs.runtime import outcome_line

    job = get_job(db, job_id)
    print(f"== outcome: {outcome_line(job)}", flush=True)
    for item in (job.result.get("errors") or [])[:5]:
        print(f"== error: {item.get('item')}: {item.get('error')}", flush=True)
    if job.status != "succeeded" and job.error:
        print(f"== reason: {job.error.strip()}", flush=True)


def _pump_next(db: sqlite_utils.Database, job_id: int, pid: int) -> None:
    """Leave a detached waiter that pumps the queue once the job's process ``pid`` has exited (and
    freed its model; under a launcher, once every rank has).

    This job's own launch env (e.g. CUDA_VISIBLE_DEVICES) is not passed on to the next job.
    """
    job = get_job(db, job_id)
    drop = set(job.launch.get("env") or {}) if job else set()
    env = {k: v for k, v in os.environ.items() if k not in drop and k not in LOGIN_SECRETS}
    try:
        subprocess.Popen(
            [sys.executable, "-m", "jobs.pump", "--after", str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=str(_project_root()),
        )
    except OSError as exc:  # the job itself is done; the next pump (app, CLI) starts the queue
        print(f"could not start the queue waiter: {exc!r}", file=sys.stderr, flush=True)


def device_held_by_ended(db: sqlite_utils.Database) -> list[Job]:
    """Device jobs already ended in the DB whose process is still exiting (their model not yet freed)."""
    rows = db.query(
        "SELECT id FROM jobs WHERE resource = 'device' AND status IN ('succeeded', 'failed', 'cancelled') "
        "AND pid IS NOT NULL ORDER BY ended_at DESC LIMIT 20"
    )
    jobs = [get_job(db, r["id"]) for r in rows]
    return [j for j in jobs if is_alive(j.pid) and runs_job(j.pid, j.id)]


class JobFailed(Exception):
    """Raised by a job body whose work failed (not a crash): a plain reason, and the result so far."""

    def __init__(self, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result or {}


class JobCancelled(Exception):
    """Raised inside a job process when it receives SIGTERM."""


def _raise_cancelled(signum, frame) -> None:
    # The first SIGTERM cancels; a second (accelerate's torchrun forwards the same cancel to every
    # rank) must not interrupt the job writing its outcome. The SIGKILL after the grace still ends it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise JobCancelled()
