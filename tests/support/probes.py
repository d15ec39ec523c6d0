"""Reading the app's state from outside, as the fault and browser tests do.

``query`` opens a fresh connection per call, so it sees only what the app (another process) has
committed; ``wait`` polls a condition instead of sleeping a fixed time.
"""

from __future__ import annotations

import time
from pathlib import Path

from store.db import connect


def query(db_path: Path, sql: str, params: list | tuple = ()) -> list[tuple]:
    """Rows of a read-only query on the app's database (a fresh connection each time)."""
    db = connect(db_path)
    try:
        return db.execute(sql, list(params)).fetchall()
    finally:
        db.conn.close()


# The tables an import may write (a failed import must leave every one of them as it was).
IMPORT_TABLES = ("tasks", "chains", "steps", "compositions", "edits")


def row_counts(db, tables: tuple[str, ...] = IMPORT_TABLES) -> dict[str, int]:
    """{table: row count} of an open database: equal before and after means nothing was written."""
    return {t: db[t].count for t in tables}


def scalar(db_path: Path, sql: str, params: list | tuple = ()):
    """The first column of the first row of a query."""
    return query(db_path, sql, params)[0][0]


def wait(predicate, timeout: float = 180.0, step: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")
