"""Read queries the generation pipeline needs (task selection, existing generated chains, verdicts)."""

from __future__ import annotations

import sqlite_utils

from store.models import Task
from store.tasks import get_tasks


def select_task_ids(
    db: sqlite_utils.Database, *, task_ids: list[int] | None = None, categories: list[str] | None = None
) -> list[int]:
    """Ids of the tasks a batch works on, oldest first (all tasks when neither filter is given)."""
    clauses, params = [], []
    if task_ids:
        clauses.append(f"id IN ({','.join('?' * len(task_ids))})")
        params += list(task_ids)
    if categories:
        clauses.append(f"category IN ({','.join('?' * len(categories))})")
        params += list(categories)
    where = "WHERE " + " AND ".join(clauses) if clauses else ""
    return [r[0] for r in db.execute(f"SELECT id FROM tasks {where} ORDER BY id", params)]


def select_tasks(
    db: sqlite_utils.Database, *, task_ids: list[int] | None = None, categories: list[str] | None = None
) -> list[Task]:
    return get_tasks(db, select_task_ids(db, task_ids=task_ids, categories=categories))


def existing_chain_keys(db: sqlite_utils.Database, keys: list[str]) -> set[str]:
    """The subset of ``keys`` already used by a chain."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = db.execute(
            f"SELECT content_hash FROM chains WHERE content_hash IN ({','.join('?' * len(chunk))})", chunk
        )
        found.update(r[0] for r in rows)
    return found


def verdict_counts(db: sqlite_utils.Database, *, source: str = "pipeline") -> dict[str, int]:
    """Compositions by checker verdict (yes / no / unknown) for one source."""
    rows = db.execute(
        "SELECT coalesce(verdict, 'unchecked'), count(*) FROM compositions WHERE source = ? GROUP BY 1",
        [source],
    ).fetchall()
    return dict(rows)


def task_categories(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT category FROM tasks WHERE category != '' ORDER BY 1")]
