"""The one job API for every kind: submit, cancel, resume, list, log, and the device-aware queue.

Each kind is data (:data:`KINDS`): its entry module, run as ``python -m <module> --job ID``, and the
resource it queues for. How the queue decides:

- A job that loads a local model (training, eval, generate with the embedded LLM) waits for
  'device'. ``$COI_DEVICE_SLOTS`` of them (default 1: one GPU) run at once, oldest first, whatever
  their kind, so two evals and a training run never load three models side by side.
- A job that only calls a remote endpoint waits for 'remote'; up to ``$COI_MAX_REMOTE_JOBS``
  (default 4) run beside the device jobs.
- A device job that has ended still holds its model until its process exits: no device job starts
  before that (the ending job leaves a waiter, ``python -m jobs.pump``, that pumps once it is gone).
- Each job is claimed by one conditional UPDATE (``store.jobs.claim_next_for``), so the app, the
  CLI and a job that just ended can all pump at once. The queue is the jobs table: it survives an
  app restart, and whichever process pumps next starts the next job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import sqlite_utils

from jobs import process
from store import env as env_vars
from store.errors import CoiError
from store.jobs import (
    RESOURCES,
    Job,
    claim_next_for,
    create_job,
    finish_job,
    get_job,
    list_jobs,
    queue_ahead,
    requeue,
)


@dataclass(frozen=True)
class Kind:
    """A kind of job, as data: what to run and what it needs."""

    name: str
    module: str  # the entry module, run as ``python -m <module> --job ID``
    resource: str  # the default resource it queues for ('device' or 'remote')
    noun: str  # how a sentence names one ("training job")


KINDS: dict[str, Kind] = {
    "train": Kind("train", "training.run", "device", "training job"),
    "eval": Kind("eval", "eval.run", "device", "eval run"),
    "generate": Kind("generate", "pipeline.run", "remote", "generate job"),
    "regenerate": Kind("regenerate", "pipeline.regenerate", "remote", "regeneration"),
}
CLI_OF = {
    "train": "coi train",
    "eval": "coi eval",
    "generate": "coi generate",
    "regenerate": "the Review page",
}
# Secrets for a job this process submitted (an API key): they reach its process's environment
# only, never the DB. A job started later by another process inherits that process's environment.
_secret_env: dict[int, dict[str, str]] = {}


def slots(resource: str) -> int:
    """How many jobs may run at once on ``resource``."""
    return env_vars.device_slots() if resource == "device" else env_vars.remote_slots()


def label(job: Job) -> str:
    """How every page and command names a job: kind plus id, e.g. 'eval #5'."""
    return f"{job.kind} #{job.id}"


def submit(
    db: sqlite_utils.Database,
    kind: str,
    config: dict,
    *,
    name: str = "",
    resource: str | None = None,
    launcher: list[str] | None = None,
    env: dict[str, str] | None = None,
    secret_env: dict[str, str] | None = None,
    start: bool = True,
) -> int:
    """Queue a job of ``kind`` and start it now if its resource is free. Returns the job id.

    Args:
        db: The database.
        kind: One of :data:`KINDS`.
        config: The job's config (stored and shown: no secrets).
        name: A label for lists.
        resource: 'device' or 'remote' (default: the kind's).
        launcher: A prefix replacing ``python`` (e.g. accelerate launch); stored with the job.
        env: Non-secret environment for the job's process; stored with the job.
        secret_env: Secret environment (an API key): kept in memory for this process's launch only.
        start: False only queues it (nothing starts until the next pump).
    """
    spec = kind_of(kind)
    resource = resource or spec.resource
    if resource not in RESOURCES:
        raise CoiError(f"Unknown job resource {resource!r}", f"Use one of {', '.join(RESOURCES)}.")
    launch = {k: v for k, v in (("launcher", launcher), ("env", env)) if v}
    job_id = create_job(db, kind, config, name=name, resource=resource, launch=launch)
    if secret_env:
        _secret_env[job_id] = dict(secret_env)
    if start:
        pump(db)
    return job_id


def kind_of(kind: str) -> Kind:
    if kind not in KINDS:
        raise CoiError(f"Unknown job kind {kind!r}", f"Use one of {', '.join(KINDS)}.")
    return KINDS[kind]


def get(db: sqlite_utils.Database, job_id: int, kind: str | None = None) -> Job:
    """The job (re-attached), checked to be of ``kind`` when given.

    Raises:
        CoiError: no such job, or it is another kind's (the message says which, and what to use).
    """
    job = process.refresh(db, job_id)
    if job is None:
        raise CoiError(f"There is no job #{job_id}", "List them with `coi jobs list`.")
    if kind and job.kind != kind:
        raise CoiError(
            f"Job #{job_id} is {_a(KINDS[job.kind].noun)} ({label(job)}), not {_a(KINDS[kind].noun)}",
            f"Use `{CLI_OF[job.kind]}` or `coi jobs ... {job_id}` for it.",
        )
    return job


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def pump(db: sqlite_utils.Database) -> list[int]:
    """Re-attach to running jobs, then start queued ones while their resource has room.

    Returns:
        The ids started.
    """
    process.refresh_all(db)
    started = []
    for resource in RESOURCES:
        if resource == "device" and process.device_held_by_ended(db):
            continue  # an ended job's process still holds its model; its waiter (jobs.pump) pumps after it
        while (job_id := claim_next_for(db, resource, slots(resource))) is not None:
            _start(db, job_id)
            started.append(job_id)
    return started


def _start(db: sqlite_utils.Database, job_id: int) -> None:
    job = get_job(db, job_id)
    env = {**job.launch.get("env", {}), **_secret_env.pop(job_id, {})}
    try:
        process.launch(db, job_id, kind_of(job.kind).module, launcher=job.launch.get("launcher"), env=env)
    except Exception as exc:  # noqa: BLE001 - a job that cannot start must not block the queue
        finish_job(
            db, job_id, "failed", error=f"Could not start the {KINDS[job.kind].noun}'s process: {exc!r}"
        )


def cancel(db: sqlite_utils.Database, job_id: int, kind: str | None = None) -> Job:
    """Cancel a queued or running job (its process group is killed), then start the next one."""
    get(db, job_id, kind)
    job = process.cancel(db, job_id)
    pump(db)
    return job


def resume(
    db: sqlite_utils.Database,
    job_id: int,
    kind: str | None = None,
    *,
    secret_env: dict[str, str] | None = None,
) -> Job:
    """Queue an ended job again; its module picks up where the saved rows end.

    Failed and cancelled jobs resume; so does a succeeded generate job with failed items (only those
    are asked again). Training continues from its newest checkpoint, eval keeps saved predictions.

    Raises:
        CoiError: no such job, the wrong kind, or it cannot resume (still active, or fully succeeded).
    """
    job = get(db, job_id, kind)
    if not requeue(db, job_id):
        what = "it is still " + job.status if job.active else "it succeeded with nothing left to redo"
        raise CoiError(
            f"{label(job)} cannot resume: {what}",
            "Only failed or cancelled jobs, or jobs with failed items, resume. "
            + ("Wait for it to end, or cancel it first." if job.active else "Start a new one instead."),
        )
    if secret_env:
        _secret_env[job_id] = dict(secret_env)
    pump(db)
    return get_job(db, job_id)


def jobs_list(
    db: sqlite_utils.Database, *, kind: str | None = None, statuses: list[str] | None = None, limit: int = 100
) -> list[Job]:
    """Jobs newest first, after re-attaching (a killed job never shows as running)."""
    process.refresh_all(db)
    return list_jobs(db, kind=kind, statuses=statuses, limit=limit)


def log(db: sqlite_utils.Database, job_id: int, *, lines: int | None = None) -> str:
    """A job's log text ('' if it has none yet); the last ``lines`` lines when given."""
    job = get(db, job_id)
    if lines:
        return process.log_tail(job.log_path, lines)
    if not job.log_path or not os.path.exists(job.log_path):
        return ""
    with open(job.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


@dataclass(frozen=True)
class QueueSpot:
    """Where a queued job stands: 1 = next to start."""

    position: int
    waits_for: str


def queue_spot(db: sqlite_utils.Database, job: Job) -> QueueSpot | None:
    """Position and what a queued job waits for (None if it is not queued)."""
    if job.status != "queued":
        return None
    ahead, running = queue_ahead(db, job)
    what = "the device (one local model at a time)" if job.resource == "device" else "a free remote slot"
    busy = ", ".join(label(j) for j in running)
    return QueueSpot(ahead + 1, what + (f": {busy} running" if busy else ""))


def describe_wait(db: sqlite_utils.Database, job: Job) -> str:
    """'queued, 2nd in line for the device: train #3 running' (or '' if not queued)."""
    spot = queue_spot(db, job)
    if spot is None:
        return ""
    return f"queued, number {spot.position} in line for {spot.waits_for}"


def state_line(db: sqlite_utils.Database, job: Job) -> str:
    """What a page shows under a job: its place in the queue, its live message while it runs, and
    once it ended how it ended and how far it got (never the last ETA of a stopped run)."""
    if job.status == "queued":
        return describe_wait(db, job)
    if job.active:
        return job.message or ""
    reached = f" at {job.done} of {job.total} ({job.progress:.0%})" if job.total else ""
    return outcome_line(job) + (reached if job.status != "succeeded" else "")


def outcome_line(job: Job) -> str:
    """One plain line on how a job ended, with its failed-items count when there is one."""
    failed, total = job.result.get("failed_items", 0), job.result.get("total_items", 0)
    line = f"{label(job)} {job.status}"
    if failed:
        line += f": {failed} of {total} items failed"
    if job.status in ("failed", "cancelled") and job.error:
        line += f": {job.error.splitlines()[0]}"
    return line
