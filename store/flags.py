"""Step flags and chain risk: what the generation checks found, kept on the step, summed per chain.

A step's ``flag`` column holds a JSON list of ``{"kind", "reason", "severity"}``; a flag written
before flags were lists is read as one flag of kind ``note``. A chain's ``risk`` column (indexed
with its status) is the sum of its steps' severities, plus the checker's doubt and an eval failure,
so the Review queue can put likely-wrong chains first without scanning steps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import sqlite_utils

VERDICT_RISK = {"unknown": 1, "no": 2}  # the checker doubted, or said no and a human kept it anyway
EVAL_FAILURE_RISK = 2


def encode_flags(flags: Iterable[dict]) -> str | None:
    """The column value for a step's flags (None when there are none)."""
    rows = [
        {"kind": f["kind"], "reason": f.get("reason", ""), "severity": int(f.get("severity", 1))}
        for f in flags
    ]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":")) if rows else None


def decode_flags(value: str | None) -> list[dict]:
    if not value:
        return []
    try:
        rows = json.loads(value)
    except ValueError:
        rows = None
    if not isinstance(rows, list):
        return [{"kind": "note", "reason": str(value), "severity": 1}]
    return [r for r in rows if isinstance(r, dict) and "kind" in r]


def chain_risk(db: sqlite_utils.Database, chain_id: int) -> int:
    flags = [
        f
        for (value,) in db.execute("SELECT flag FROM steps WHERE chain_id = ?", [chain_id])
        for f in decode_flags(value)
    ]
    row = db.execute(
        "SELECT co.verdict, c.meta FROM chains c LEFT JOIN compositions co ON co.id = c.composition_id WHERE c.id = ?",
        [chain_id],
    ).fetchone()
    if row is None:
        return 0
    verdict, meta = row
    failed_eval = bool(json.loads(meta or "{}").get("eval_failure"))
    return (
        sum(int(f.get("severity", 1)) for f in flags)
        + VERDICT_RISK.get(verdict or "", 0)
        + EVAL_FAILURE_RISK * failed_eval
    )


def refresh_risk(db: sqlite_utils.Database, chain_ids: Iterable[int]) -> None:
    """Recompute the risk of these chains (call inside the transaction that changed them)."""
    db.conn.executemany(
        "UPDATE chains SET risk = ? WHERE id = ?", [(chain_risk(db, cid), cid) for cid in set(chain_ids)]
    )


def flag_kinds(db: sqlite_utils.Database) -> list[str]:
    """The flag kinds present (for the queue's filter), read through the partial index on flagged steps."""
    return [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT json_extract(j.value, '$.kind') FROM steps s, json_each(s.flag) j "
            "WHERE s.flag IS NOT NULL AND json_valid(s.flag) AND json_type(s.flag) = 'array' ORDER BY 1"
        )
        if r[0]
    ]
