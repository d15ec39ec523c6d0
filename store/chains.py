"""Queries on compositions, chains and their steps (creation and reading).

Review-time changes (edits, decisions, optimistic locking) live in ``store.review``.
"""

from __future__ import annotations

import json

import sqlite_utils

from store.db import utcnow
from store.flags import refresh_risk
from store.hashing import content_hash
from store.models import Chain, Step


def composition_key_for_tasks(task_ids: list[int]) -> str:
    return "tasks:" + ",".join(map(str, task_ids))


def composition_key_for_instructions(instructions: list[str]) -> str:
    """Imported chains have no task ids: their composition is the ordered instruction list."""
    return "instr:" + content_hash([i.strip().lower() for i in instructions])


def upsert_composition(
    db: sqlite_utils.Database,
    key: str,
    *,
    length: int,
    task_ids: list[int] | None = None,
    source: str = "",
    verdict: str | None = None,
    reason: str | None = None,
    confidence: float | None = None,
    llm_call_id: int | None = None,
) -> int:
    """Return the id of the composition with ``key``, creating it (or filling in its verdict)."""
    row = db.execute("SELECT id FROM compositions WHERE key = ?", [key]).fetchone()
    if row is None:
        cur = db.execute(
            """INSERT INTO compositions (key, task_ids, length, verdict, reason, confidence, llm_call_id,
               source, created_at) VALUES (?,?,?,?,?,?,?,?,?)""",
            [
                key,
                json.dumps(task_ids) if task_ids else None,
                length,
                verdict,
                reason,
                confidence,
                llm_call_id,
                source,
                utcnow(),
            ],
        )
        return cur.lastrowid
    if verdict is not None:
        db.execute(
            "UPDATE compositions SET verdict=?, reason=?, confidence=?, llm_call_id=? WHERE id=?",
            [verdict, reason, confidence, llm_call_id, row[0]],
        )
    return row[0]


def get_composition(db: sqlite_utils.Database, composition_id: int) -> dict | None:
    row = db.execute("SELECT * FROM compositions WHERE id = ?", [composition_id]).fetchone()
    if row is None:
        return None
    cols = [d[0] for d in db.execute("SELECT * FROM compositions LIMIT 0").description]
    out = dict(zip(cols, row))
    out["task_ids"] = json.loads(out["task_ids"]) if out["task_ids"] else None
    return out


def chain_content_key(chain: Chain) -> str:
    """Default dedupe key of a chain: its instructions, input and outputs at creation."""
    return content_hash([chain.instructions, chain.input, chain.outputs])


def insert_chain(db: sqlite_utils.Database, chain: Chain, *, key: str | None = None) -> tuple[int, bool]:
    """Insert a chain and its steps unless one with the same key exists.

    Returns:
        (chain id, True if it was added, False if it already existed).
    """
    key = key or chain_content_key(chain)
    existing = db.execute("SELECT id FROM chains WHERE content_hash = ?", [key]).fetchone()
    if existing:
        return existing[0], False
    now = utcnow()
    with db.atomic():
        cur = db.execute(
            """INSERT INTO chains (composition_id, content_hash, length, status, version, reviewer, source,
               category, meta, created_at, updated_at) VALUES (?,?,?,?,1,?,?,?,?,?,?)""",
            [
                chain.composition_id,
                key,
                chain.length,
                chain.status,
                chain.reviewer,
                chain.source,
                chain.category,
                json.dumps(chain.meta, ensure_ascii=False),
                now,
                now,
            ],
        )
        chain.id = cur.lastrowid
        db.conn.executemany(
            """INSERT INTO steps (chain_id, position, task_id, instruction, input, output, origin, stale, flag,
               llm_call_id) VALUES (?,?,?,?,?,?,?,?,?,?)""",
            [
                (
                    chain.id,
                    s.position,
                    s.task_id,
                    s.instruction,
                    s.input,
                    s.output,
                    s.origin,
                    int(s.stale),
                    s.flag,
                    s.llm_call_id,
                )
                for s in chain.steps
            ],
        )
        if any(s.flag for s in chain.steps):  # unflagged chains keep risk 0 without the extra reads
            refresh_risk(db, [chain.id])
    chain.created_at = chain.updated_at = now
    return chain.id, True


_CHAIN_COLS = (
    "id, composition_id, length, status, version, reviewer, source, category, meta, created_at, updated_at"
)


def _row_to_chain(row: tuple, steps: list[Step]) -> Chain:
    (cid, comp, _length, status, version, reviewer, source, category, meta, created, updated) = row
    return Chain(
        id=cid,
        composition_id=comp,
        status=status,
        version=version,
        reviewer=reviewer,
        source=source,
        category=category,
        meta=json.loads(meta or "{}"),
        created_at=created,
        updated_at=updated,
        steps=steps,
    )


def _row_to_step(row: tuple) -> Step:
    position, task_id, instruction, input_, output, origin, stale, flag, llm_call_id = row
    return Step(
        position=position,
        task_id=task_id,
        instruction=instruction,
        input=input_,
        output=output,
        origin=origin,
        stale=bool(stale),
        flag=flag,
        llm_call_id=llm_call_id,
    )


_STEP_COLS = "position, task_id, instruction, input, output, origin, stale, flag, llm_call_id"


def get_chain(db: sqlite_utils.Database, chain_id: int) -> Chain | None:
    """One chain with its steps in order, or None."""
    row = db.execute(f"SELECT {_CHAIN_COLS} FROM chains WHERE id = ?", [chain_id]).fetchone()
    if row is None:
        return None
    steps = db.execute(
        f"SELECT {_STEP_COLS} FROM steps WHERE chain_id = ? ORDER BY position", [chain_id]
    ).fetchall()
    return _row_to_chain(row, [_row_to_step(s) for s in steps])


# Ids per query: SQLite caps the variables of one statement (250,000 in this build, 32,766 in others).
ID_CHUNK = 10_000


def get_chains(db: sqlite_utils.Database, chain_ids: list[int]) -> list[Chain]:
    """Chains with their steps, in the order of ``chain_ids`` (two queries per ``ID_CHUNK`` ids)."""
    by_id: dict[int, Chain] = {}
    for start in range(0, len(chain_ids), ID_CHUNK):
        by_id.update(_chains_by_id(db, chain_ids[start : start + ID_CHUNK]))
    return [by_id[i] for i in chain_ids if i in by_id]


def _chains_by_id(db: sqlite_utils.Database, ids: list[int]) -> dict[int, Chain]:
    marks = ",".join("?" * len(ids))
    rows = db.execute(f"SELECT {_CHAIN_COLS} FROM chains WHERE id IN ({marks})", ids).fetchall()
    steps: dict[int, list[Step]] = {}
    for r in db.execute(
        f"SELECT chain_id, {_STEP_COLS} FROM steps WHERE chain_id IN ({marks}) ORDER BY chain_id, position",
        ids,
    ):
        steps.setdefault(r[0], []).append(_row_to_step(r[1:]))
    return {r[0]: _row_to_chain(r, steps.get(r[0], [])) for r in rows}


def chain_ids(
    db: sqlite_utils.Database,
    *,
    statuses: list[str] | None = None,
    lengths: list[int] | None = None,
    source: str | None = None,
    limit: int | None = None,
) -> list[int]:
    """Chain ids in insertion order, optionally filtered (used by export and dataset versions)."""
    clauses, params = [], []
    if statuses:
        clauses.append(f"status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if lengths:
        clauses.append(f"length IN ({','.join('?' * len(lengths))})")
        params += lengths
    if source:
        clauses.append("source = ?")
        params.append(source)
    where = "WHERE " + " AND ".join(clauses) if clauses else ""
    tail = f" LIMIT {int(limit)}" if limit else ""
    return [r[0] for r in db.execute(f"SELECT id FROM chains {where} ORDER BY id{tail}", params)]


def status_counts(db: sqlite_utils.Database) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM chains GROUP BY status").fetchall())


def length_counts(db: sqlite_utils.Database) -> dict[int, int]:
    return dict(db.execute("SELECT length, count(*) FROM chains GROUP BY length ORDER BY length").fetchall())


def count_chains(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT count(*) FROM chains").fetchone()[0]
