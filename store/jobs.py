"""Queries on background jobs (train, eval, generate), the queue's atomic claim, and job metrics.

Several processes pump the queue (the app, the CLI, a job that just ended), so taking the next job
is one conditional UPDATE: it succeeds for exactly one of them, and only while fewer than
``max_running`` jobs of that kind run.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import sqlite_utils

from store.db import utcnow
from store.errors import CoiError
from store.models import JOB_KINDS, JOB_STATUSES


@dataclass
class Job:
    """A row of ``jobs``, with JSON columns decoded."""

    id: int
    kind: str
    name: str
    config: dict
    status: str
    pid: int | None
    progress: float
    done: int
    total: int
    message: str
    log_path: str | None
    heartbeat_at: str | None
    error: str | None
    result: dict = field(default_factory=dict)
    created_at: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    resource: str = "device"  # what it queues for: 'device' (local model) or 'remote' (endpoint only)
    launch: dict = field(default_factory=dict)  # {"launcher": [...], "env": {...}}, no secrets

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


RESOURCES = ("device", "remote")


def create_job(
    db: sqlite_utils.Database,
    kind: str,
    config: dict,
    *,
    name: str = "",
    status: str = "queued",
    resource: str = "device",
    launch: dict | None = None,
) -> int:
    """Add a job row. ``config`` and ``launch`` must hold no secrets: they are stored and shown as is."""
    if kind not in JOB_KINDS:
        raise CoiError(f"Unknown job kind {kind!r}", f"Use one of {', '.join(JOB_KINDS)}.")
    if resource not in RESOURCES:
        raise ValueError(f"bad job resource {resource!r}")
    cur = db.execute(
        "INSERT INTO jobs (kind, name, config, status, created_at, resource, launch) VALUES (?,?,?,?,?,?,?)",
        [
            kind,
            name,
            json.dumps(config, sort_keys=True),
            status,
            utcnow(),
            resource,
            json.dumps(launch or {}),
        ],
    )
    return cur.lastrowid


def _row_to_job(row: dict) -> Job:
    row = dict(row)
    row["config"] = json.loads(row["config"] or "{}")
    row["result"] = json.loads(row["result"] or "{}")
    row["launch"] = json.loads(row.get("launch") or "{}")
    return Job(**row)


def get_job(db: sqlite_utils.Database, job_id: int) -> Job | None:
    rows = list(db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    return _row_to_job(rows[0]) if rows else None


def list_jobs(
    db: sqlite_utils.Database, *, kind: str | None = None, statuses: list[str] | None = None, limit: int = 100
) -> list[Job]:
    """Jobs, newest first."""
    clauses, params = [], []
    if kind:
        clauses.append("kind = ?")
        params.append(kind)
    if statuses:
        clauses.append(f"status IN ({','.join('?' * len(statuses))})")
        params += statuses
    where = "WHERE " + " AND ".join(clauses) if clauses else ""
    rows = db.query(f"SELECT * FROM jobs {where} ORDER BY id DESC LIMIT ?", [*params, limit])
    return [_row_to_job(r) for r in rows]


_UPDATABLE = {
    "name",
    "status",
    "pid",
    "progress",
    "done",
    "total",
    "message",
    "log_path",
    "heartbeat_at",
    "error",
    "result",
    "config",
    "started_at",
    "ended_at",
    "resource",
    "launch",
}


def update_job(db: sqlite_utils.Database, job_id: int, **fields) -> None:
    """Set columns of a job. ``result`` and ``config`` may be dicts."""
    bad = set(fields) - _UPDATABLE
    if bad:
        raise ValueError(f"not job columns: {sorted(bad)}")
    if "status" in fields and fields["status"] not in JOB_STATUSES:
        raise ValueError(f"bad job status {fields['status']!r}")
    for key in ("result", "config", "launch"):
        if isinstance(fields.get(key), dict):
            fields[key] = json.dumps(fields[key], sort_keys=True)
    sets = ", ".join(f"{k} = ?" for k in fields)
    db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])


def finish_job(db: sqlite_utils.Database, job_id: int, status: str, *, error: str | None = None) -> bool:
    """Move a still-active job to a final status; returns False if it had already ended."""
    cur = db.execute(
        "UPDATE jobs SET status = ?, error = COALESCE(?, error), ended_at = ? "
        "WHERE id = ? AND status IN ('queued', 'running')",
        [status, error, utcnow(), job_id],
    )
    return cur.rowcount == 1


def heartbeat(
    db: sqlite_utils.Database,
    job_id: int,
    *,
    done: int | None = None,
    total: int | None = None,
    message: str | None = None,
) -> None:
    """Record that a job is alive, with its progress."""
    fields: dict = {"heartbeat_at": utcnow()}
    if done is not None:
        fields["done"] = done
    if total is not None:
        fields["total"] = total
    if message is not None:
        fields["message"] = message
    if done is not None and (total or 0) > 0:
        fields["progress"] = min(1.0, done / total)
    update_job(db, job_id, **fields)


def add_metrics(db: sqlite_utils.Database, job_id: int, step: int, values: dict[str, float]) -> None:
    """Record one row per metric for a step (loss, learning rate, tokens/s, ...).

    A value logged again for the same (job, name, step), as when a resumed run replays the steps
    after its checkpoint, replaces the old one (unique index, migration m007).
    """
    now = utcnow()
    rows = [(job_id, step, name, float(v), now) for name, v in values.items() if v is not None]
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO metrics (job_id, step, name, value, at) VALUES (?,?,?,?,?) "
            "ON CONFLICT (job_id, name, step) DO UPDATE SET value = excluded.value, at = excluded.at",
            rows,
        )


def delete_metrics_after(db: sqlite_utils.Database, job_id: int, step: int) -> int:
    """Drop a job's metrics logged after ``step`` (a resume restarts from that checkpoint); returns the count."""
    return db.execute("DELETE FROM metrics WHERE job_id = ? AND step > ?", [job_id, step]).rowcount


def get_metrics(db: sqlite_utils.Database, job_id: int, names: list[str] | None = None) -> list[dict]:
    """Metric rows of a job ordered by step: dicts with step, name, value, at."""
    params: list = [job_id]
    where = "job_id = ?"
    if names:
        where += f" AND name IN ({','.join('?' * len(names))})"
        params += names
    return list(
        db.query(f"SELECT step, name, value, at FROM metrics WHERE {where} ORDER BY step, id", params)
    )


def job_counts(db: sqlite_utils.Database) -> dict[str, dict[str, int]]:
    """{kind: {status: count}}."""
    out: dict[str, dict[str, int]] = {}
    for kind, status, n in db.execute("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status"):
        out.setdefault(kind, {})[status] = n
    return out


# ---- the queue ------------------------------------------------------------------------------------
def claim_next_for(db: sqlite_utils.Database, resource: str, slots: int) -> int | None:
    """Mark the oldest queued job waiting for ``resource`` running and return its id.

    None when nothing waits or ``slots`` jobs on that resource already run. One conditional UPDATE,
    so of several processes pumping at once exactly one gets each job.
    """
    token = f"starting ({uuid.uuid4().hex})"
    db.execute(
        """UPDATE jobs SET status = 'running', message = ?, started_at = ?, heartbeat_at = ?, error = NULL,
           ended_at = NULL
           WHERE id = (SELECT id FROM jobs WHERE resource = ? AND status = 'queued' ORDER BY id LIMIT 1)
             AND (SELECT count(*) FROM jobs WHERE resource = ? AND status = 'running') < ?""",
        [token, utcnow(), utcnow(), resource, resource, slots],
    )
    row = db.execute("SELECT id FROM jobs WHERE message = ?", [token]).fetchone()
    return row[0] if row else None


def queue_ahead(db: sqlite_utils.Database, job: Job) -> tuple[int, list[Job]]:
    """(queued jobs ahead of ``job`` on its resource, the jobs running on that resource now)."""
    ahead = db.execute(
        "SELECT count(*) FROM jobs WHERE status = 'queued' AND resource = ? AND id < ?",
        [job.resource, job.id],
    ).fetchone()[0]
    rows = db.query(
        "SELECT * FROM jobs WHERE status = 'running' AND resource = ? ORDER BY id", [job.resource]
    )
    return ahead, [_row_to_job(r) for r in rows]


def requeue(db: sqlite_utils.Database, job_id: int) -> bool:
    """Put an ended job back in the queue; False if it is active or fully succeeded.

    A failed or cancelled job resumes; so does a succeeded one whose result counts failed items
    (``failed_items`` > 0): its resume retries only those.
    """
    cur = db.execute(
        """UPDATE jobs SET status = 'queued', error = NULL, ended_at = NULL, pid = NULL, message = 'queued (resume)'
           WHERE id = ? AND (status IN ('failed', 'cancelled')
             OR (status = 'succeeded' AND COALESCE(json_extract(result, '$.failed_items'), 0) > 0))""",
        [job_id],
    )
    return cur.rowcount == 1
