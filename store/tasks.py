"""Queries on single-instruction tasks."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlite_utils

from store.db import utcnow
from store.errors import CoiError
from store.hashing import content_hash
from store.models import Task


@dataclass
class InsertCounts:
    """How an insert went: rows added and rows skipped as duplicates."""

    added: int = 0
    duplicates: int = 0


def task_hash(task: Task) -> str:
    """Dedupe key: the task's content, not where it came from."""
    return content_hash([task.instruction, task.input, task.output])


def insert_tasks(db: sqlite_utils.Database, tasks: list[Task]) -> InsertCounts:
    """Insert tasks in one transaction, skipping ones whose content is already stored."""
    counts = InsertCounts()
    now = utcnow()
    with db.atomic():
        for task in tasks:
            cur = db.execute(
                """INSERT OR IGNORE INTO tasks
                   (content_hash, source, name, category, instruction, short_instruction, input, output,
                    meta, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                [
                    task_hash(task),
                    task.source,
                    task.name,
                    task.category,
                    task.instruction,
                    task.short_instruction,
                    task.input,
                    task.output,
                    json.dumps(task.meta),
                    now,
                ],
            )
            if cur.rowcount:
                counts.added += 1
                task.id = cur.lastrowid
            else:
                counts.duplicates += 1
    return counts


def _row_to_task(row: dict) -> Task:
    return Task(
        id=row["id"],
        instruction=row["instruction"],
        input=row["input"],
        output=row["output"],
        category=row["category"],
        name=row["name"],
        source=row["source"],
        short_instruction=row["short_instruction"],
        meta=json.loads(row["meta"] or "{}"),
        short_status=row.get("short_status"),
        short_flags=row.get("short_flags"),
    )


def get_tasks(db: sqlite_utils.Database, ids: list[int]) -> list[Task]:
    """Tasks by id, in the order asked."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = {r["id"]: r for r in db.query(f"SELECT * FROM tasks WHERE id IN ({marks})", ids)}
    return [_row_to_task(rows[i]) for i in ids if i in rows]


def list_tasks(
    db: sqlite_utils.Database,
    *,
    categories: list[str] | None = None,
    search: str = "",
    limit: int = 50,
    offset: int = 0,
) -> list[Task]:
    """A page of tasks, newest first, optionally filtered by category and text."""
    where, params = _task_filter(categories, search)
    sql = f"SELECT * FROM tasks {where} ORDER BY id DESC LIMIT ? OFFSET ?"
    return [_row_to_task(r) for r in db.query(sql, [*params, limit, offset])]


def count_tasks(db: sqlite_utils.Database, *, categories: list[str] | None = None, search: str = "") -> int:
    where, params = _task_filter(categories, search)
    return db.execute(f"SELECT count(*) FROM tasks {where}", params).fetchone()[0]


def _task_filter(categories: list[str] | None, search: str) -> tuple[str, list]:
    clauses, params = [], []
    if categories:
        clauses.append(f"category IN ({','.join('?' * len(categories))})")
        params.extend(categories)
    if search:
        clauses.append("(instruction LIKE ? OR input LIKE ? OR output LIKE ?)")
        params.extend([f"%{search}%"] * 3)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def set_short_instruction(db: sqlite_utils.Database, task_id: int, short: str) -> None:
    db.execute("UPDATE tasks SET short_instruction = ? WHERE id = ?", [short, task_id])


def propose_short_instruction(db: sqlite_utils.Database, task_id: int, short: str, flags: str | None) -> bool:
    """Store an LLM's short instruction as a proposal beside the original, for review.

    It never replaces a short instruction that is there already (from the data, or reviewed), nor
    one a reviewer rejected. Returns True if it was stored.
    """
    cur = db.execute(
        "UPDATE tasks SET short_instruction = ?, short_status = 'proposed', short_flags = ? "
        "WHERE id = ? AND coalesce(short_instruction, '') = '' AND coalesce(short_status, '') != 'rejected'",
        [short, flags, task_id],
    )
    return bool(cur.rowcount)


def short_proposals(db: sqlite_utils.Database, *, limit: int = 50) -> list[Task]:
    """Short instructions awaiting review, flagged ones first."""
    rows = db.execute(
        "SELECT id FROM tasks WHERE short_status = 'proposed' ORDER BY short_flags IS NULL, id LIMIT ?",
        [limit],
    ).fetchall()
    return get_tasks(db, [r[0] for r in rows])


def review_short_instruction(
    db: sqlite_utils.Database, task_id: int, decision: str, *, text: str | None = None
) -> None:
    """A reviewer accepts (optionally edited) or rejects a proposed short instruction. A rejected one
    is cleared, so chain steps use the full instruction, and is never proposed again."""
    if decision == "accept":
        short = (text or "").strip() or None
        sql = "UPDATE tasks SET short_status = 'accepted', short_flags = NULL, short_instruction = coalesce(?, short_instruction) WHERE id = ?"
        db.execute(sql, [short, task_id])
    elif decision == "reject":
        db.execute(
            "UPDATE tasks SET short_status = 'rejected', short_instruction = NULL WHERE id = ?", [task_id]
        )
    else:
        raise CoiError(f"Unknown decision {decision!r}", "Use accept or reject.")


def category_counts(db: sqlite_utils.Database) -> dict[str, int]:
    rows = db.execute("SELECT category, count(*) FROM tasks GROUP BY category ORDER BY 2 DESC").fetchall()
    return dict(rows)


def source_counts(db: sqlite_utils.Database) -> dict[str, int]:
    rows = db.execute("SELECT source, count(*) FROM tasks GROUP BY source ORDER BY 2 DESC").fetchall()
    return dict(rows)


def task_ids_by_hash(db: sqlite_utils.Database, hashes: list[str]) -> dict[str, int]:
    """{content hash: task id} for the stored tasks among ``hashes`` (finds tasks skipped as duplicates)."""
    out: dict[str, int] = {}
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        marks = ",".join("?" * len(chunk))
        out.update(db.execute(f"SELECT content_hash, id FROM tasks WHERE content_hash IN ({marks})", chunk))
    return out


def fts_query(text: str) -> str:
    """The user's words as FTS5 phrases (quotes doubled), so no query syntax leaks in; "" if no words."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in text.split())


def search_tasks(db: sqlite_utils.Database, search: str, *, limit: int = 50, offset: int = 0) -> list[Task]:
    """A page of tasks containing every word of ``search`` (full-text index), newest first."""
    query = fts_query(search)
    if not query:
        return list_tasks(db, limit=limit, offset=offset)
    sql = """SELECT * FROM tasks WHERE id IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?)
             ORDER BY id DESC LIMIT ? OFFSET ?"""
    return [_row_to_task(r) for r in db.query(sql, [query, limit, offset])]


def count_search_tasks(db: sqlite_utils.Database, search: str, *, cap: int = 100_000) -> tuple[int, bool]:
    """How many tasks ``search_tasks`` finds, counting at most ``cap``; (count, True if capped)."""
    query = fts_query(search)
    if not query:
        n = db.execute("SELECT count(*) FROM (SELECT 1 FROM tasks LIMIT ?)", [cap + 1]).fetchone()[0]
    else:
        n = db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM tasks_fts WHERE tasks_fts MATCH ? LIMIT ?)", [query, cap + 1]
        ).fetchone()[0]
    return min(n, cap), n > cap
