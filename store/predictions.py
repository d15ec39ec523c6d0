"""Queries on evaluation predictions (one row per run, mode, chain and step) and eval-driven review."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlite_utils

from store.db import utcnow
from store.flags import refresh_risk


@dataclass
class Prediction:
    """A row of ``predictions``: one step of one chain under one mode of one eval run."""

    chain_id: int
    position: int
    mode: str
    prediction: str
    reference: str
    rougeL: float | None = None
    prompt: str | None = None
    meta: dict = field(default_factory=dict)
    eval_run_id: int | None = None


_COLS = "eval_run_id, chain_id, position, mode, prompt, prediction, reference, rougeL, meta"


def save_predictions(db: sqlite_utils.Database, run_id: int, rows: list[Prediction]) -> None:
    """Insert or replace predictions of a run in one transaction (re-running a chain overwrites it)."""
    with db.atomic():
        db.conn.executemany(
            f"INSERT OR REPLACE INTO predictions ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    run_id,
                    p.chain_id,
                    p.position,
                    p.mode,
                    p.prompt,
                    p.prediction,
                    p.reference,
                    p.rougeL,
                    json.dumps(p.meta, ensure_ascii=False),
                )
                for p in rows
            ],
        )


def _row(row: tuple) -> Prediction:
    run_id, chain_id, position, mode, prompt, prediction, reference, rouge, meta = row
    return Prediction(
        chain_id=chain_id,
        position=position,
        mode=mode,
        prediction=prediction,
        reference=reference,
        rougeL=rouge,
        prompt=prompt,
        meta=json.loads(meta or "{}"),
        eval_run_id=run_id,
    )


def get_predictions(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    mode: str | None = None,
    chain_id: int | None = None,
) -> list[Prediction]:
    """Predictions of a run ordered by mode, chain and step, optionally one mode or one chain."""
    where, params = "eval_run_id = ?", [run_id]
    if mode:
        where += " AND mode = ?"
        params.append(mode)
    if chain_id is not None:
        where += " AND chain_id = ?"
        params.append(chain_id)
    sql = f"SELECT {_COLS} FROM predictions WHERE {where} ORDER BY mode, chain_id, position"
    return [_row(r) for r in db.execute(sql, params)]


def predicted_modes(db: sqlite_utils.Database, run_id: int) -> list[str]:
    """The modes a run has predictions for."""
    sql = "SELECT DISTINCT mode FROM predictions WHERE eval_run_id = ? ORDER BY mode"
    return [r[0] for r in db.execute(sql, [run_id])]


def done_chain_ids(db: sqlite_utils.Database, run_id: int, mode: str) -> set[int]:
    """Chains of a run and mode that already have predictions (for resuming a run)."""
    sql = "SELECT DISTINCT chain_id FROM predictions WHERE eval_run_id = ? AND mode = ?"
    return {r[0] for r in db.execute(sql, [run_id, mode])}


def delete_predictions(db: sqlite_utils.Database, run_id: int) -> int:
    """Remove a run's predictions; returns how many rows went."""
    return db.execute("DELETE FROM predictions WHERE eval_run_id = ?", [run_id]).rowcount


def reopen_counts(db: sqlite_utils.Database, chain_ids: list[int]) -> dict[str, int]:
    """How many of these chains each status holds: what sending them to Review would reopen."""
    counts: dict[str, int] = {}
    ids = list(dict.fromkeys(chain_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = (
            f"SELECT status, count(*) FROM chains WHERE id IN ({','.join('?' * len(chunk))}) GROUP BY status"
        )
        for status, n in db.execute(sql, chunk):
            counts[status] = counts.get(status, 0) + n
    return counts


def mark_chains_needs_review(
    db: sqlite_utils.Database,
    chain_ids: list[int],
    *,
    author: str = "",
    reason: str = "failed in evaluation",
    failures: dict[int, dict] | None = None,
) -> int:
    """Send chains back to the Review queue as 'needs_review' (the eval -> review loop).

    Each changed chain gets its version bumped, ``updated_at`` set and an audit row in ``edits``;
    ``failures`` (chain id -> eval run, mode, failing step and its score) goes into the chain's meta
    as ``eval_failure``, which the chain view shows as the reason and the risk sort counts.
    Chains already in 'needs_review' or that no longer exist are skipped.

    Returns:
        How many chains changed.
    """
    changed = 0
    now = utcnow()
    with db.atomic():
        for cid in dict.fromkeys(chain_ids):
            row = db.execute("SELECT status, version FROM chains WHERE id = ?", [cid]).fetchone()
            if row is None or row[0] == "needs_review":
                continue
            status, version = row
            cur = db.execute(
                "UPDATE chains SET status = 'needs_review', version = version + 1, updated_at = ? "
                "WHERE id = ? AND version = ?",
                [now, cid, version],
            )
            if cur.rowcount != 1:
                continue  # edited concurrently: leave it to the reviewer who just saved it
            db.execute(
                "INSERT INTO edits (chain_id, position, field, old, new, author, reason, at, version) "
                "VALUES (?, NULL, 'status', ?, 'needs_review', ?, ?, ?, ?)",
                [cid, status, author, reason, now, version + 1],
            )
            if failures and cid in failures:
                db.execute(
                    "UPDATE chains SET meta = json_set(meta, '$.eval_failure', json(?)) WHERE id = ?",
                    [json.dumps(failures[cid], ensure_ascii=False), cid],
                )
                refresh_risk(db, [cid])
            changed += 1
    return changed
