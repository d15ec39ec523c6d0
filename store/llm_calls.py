"""Queries on ``llm_calls``: the log of every LLM request, which is also the response cache."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlite_utils

from store.db import utcnow


@dataclass
class CachedCall:
    """A stored successful call."""

    id: int
    response: str
    prompt_tokens: int | None
    completion_tokens: int | None


def _rows_by_key(db: sqlite_utils.Database, columns: str, keys: list[str], where: str = "") -> list[tuple]:
    """``SELECT key, columns`` for these keys, 500 at a time (SQLite's bound-parameter limit)."""
    rows: list[tuple] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows += db.execute(
            f"SELECT key, {columns} FROM llm_calls WHERE key IN ({marks}){where}", chunk
        ).fetchall()
    return rows


def get_cached(db: sqlite_utils.Database, keys: list[str]) -> dict[str, CachedCall]:
    """Successful calls by cache key (calls that ended in an error are not answers)."""
    rows = _rows_by_key(
        db,
        "id, response, prompt_tokens, completion_tokens",
        keys,
        " AND error IS NULL AND response IS NOT NULL",
    )
    return {key: CachedCall(cid, response, pt, ct) for key, cid, response, pt, ct in rows}


def call_states(db: sqlite_utils.Database, keys: list[str]) -> dict[str, tuple[bool, dict]]:
    """key -> (answered already, the request as stored) for every stored call among ``keys``."""
    rows = _rows_by_key(db, "error IS NULL AND response IS NOT NULL, request", keys)
    return {key: (bool(answered), json.loads(request)) for key, answered, request in rows}


def record_call(
    db: sqlite_utils.Database,
    *,
    key: str,
    model: str,
    request: dict,
    response: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    latency_ms: float,
    attempts: int,
    error: str | None,
    job_id: int | None = None,
) -> int:
    """Store one call (a later try of a failed key replaces the failed row). Returns its id.

    ``request`` must hold no secrets: it is stored as is.
    """
    db.execute(
        """INSERT INTO llm_calls (key, model, request, response, prompt_tokens, completion_tokens, latency_ms,
               attempts, error, job_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(key) DO UPDATE SET response=excluded.response, prompt_tokens=excluded.prompt_tokens,
               completion_tokens=excluded.completion_tokens, latency_ms=excluded.latency_ms,
               attempts=llm_calls.attempts + excluded.attempts, error=excluded.error, job_id=excluded.job_id,
               created_at=excluded.created_at""",
        [
            key,
            model,
            json.dumps(request, ensure_ascii=False, sort_keys=True),
            response,
            prompt_tokens,
            completion_tokens,
            latency_ms,
            attempts,
            error,
            job_id,
            utcnow(),
        ],
    )
    return db.execute("SELECT id FROM llm_calls WHERE key = ?", [key]).fetchone()[0]


def get_call(db: sqlite_utils.Database, call_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM llm_calls WHERE id = ?", [call_id]))
    if not rows:
        return None
    row = rows[0]
    row["request"] = json.loads(row["request"])
    return row


def job_call_totals(db: sqlite_utils.Database, job_id: int) -> dict:
    """Calls, errors, tokens and latency of the calls a job made (cache hits are not calls)."""
    row = db.execute(
        """SELECT count(*), sum(error IS NOT NULL), coalesce(sum(prompt_tokens), 0),
                  coalesce(sum(completion_tokens), 0), coalesce(sum(latency_ms), 0), coalesce(sum(attempts), 0)
           FROM llm_calls WHERE job_id = ?""",
        [job_id],
    ).fetchone()
    keys = ("calls", "errors", "prompt_tokens", "completion_tokens", "latency_ms", "attempts")
    return {k: (v or 0) for k, v in zip(keys, row)}


def count_calls(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
