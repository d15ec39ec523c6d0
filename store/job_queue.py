"""Queue queries for background jobs: claim the next queued job of a kind, atomically.

Several processes pump the queue (the app, the CLI, a job that just ended), so taking the next job
is one conditional UPDATE: it succeeds for exactly one of them, and only while fewer than
``max_running`` jobs of that kind run.
"""

from __future__ import annotations

import uuid

import sqlite_utils

from store.db import utcnow


def claim_next_queued(db: sqlite_utils.Database, kind: str, max_running: int = 1) -> int | None:
    """Mark the oldest queued job of ``kind`` running and return its id (None if none or too busy)."""
    token = f"starting ({uuid.uuid4().hex})"  # tells which row this call claimed
    db.execute(
        """UPDATE jobs SET status = 'running', message = ?, started_at = ?, heartbeat_at = ?, error = NULL,
           ended_at = NULL
           WHERE id = (SELECT id FROM jobs WHERE kind = ? AND status = 'queued' ORDER BY id LIMIT 1)
             AND (SELECT count(*) FROM jobs WHERE kind = ? AND status = 'running') < ?""",
        [token, utcnow(), utcnow(), kind, kind, max_running],
    )
    row = db.execute("SELECT id FROM jobs WHERE message = ?", [token]).fetchone()
    return row[0] if row else None


def requeue(db: sqlite_utils.Database, job_id: int) -> bool:
    """Put an ended (failed or cancelled) job back in the queue; False if it is active or succeeded."""
    cur = db.execute(
        """UPDATE jobs SET status = 'queued', error = NULL, ended_at = NULL, pid = NULL, message = 'queued (resume)'
           WHERE id = ? AND status IN ('failed', 'cancelled')""",
        [job_id],
    )
    return cur.rowcount == 1
