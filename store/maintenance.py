"""Database upkeep: check a file for damage, back it up while the app writes, restore a backup.

``check_db`` opens the file with plain sqlite3 (no migration, nothing created) so it can report on a
damaged file that ``store.db.connect`` refuses. ``backup_db`` uses SQLite's online backup API: the
copy is one consistent snapshot even while the app or a job keeps writing (WAL readers never block
writers). Backups and restores are written to a temp file next to the target and renamed into place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from store.atomic import staged_path, write_error
from store.db import corrupt_db_error, is_corruption
from store.errors import CoiError

COUNTED_TABLES = (
    "tasks",
    "compositions",
    "chains",
    "steps",
    "edits",
    "reviews",
    "llm_calls",
    "dataset_versions",
    "jobs",
    "metrics",
    "predictions",
)


@dataclass
class CheckReport:
    """What ``check_db`` found: integrity problems, broken foreign keys and row counts."""

    path: str
    problems: list[str] = field(default_factory=list)
    foreign_key_errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.foreign_key_errors

    def lines(self) -> list[str]:
        """A readable report, one finding per line."""
        head = f"{self.path}: {'ok' if self.ok else 'DAMAGED'}"
        out = [head, *(f"integrity: {p}" for p in self.problems)]
        out += [f"foreign key: {p}" for p in self.foreign_key_errors]
        out += [f"{t}: {n} rows" for t, n in self.counts.items()]
        return out


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CoiError(f"There is no database file at {path}", "Check --db or $COI_DB.")
    return path


@contextmanager
def _raw(path: Path, *, readonly: bool = True) -> Iterator[sqlite3.Connection]:
    # mode=ro never creates a file; the WAL is still read, so committed rows count.
    uri = f"file:{path}?mode={'ro' if readonly else 'rwc'}"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        yield conn


def check_db(path: str | Path, *, max_errors: int = 100) -> CheckReport:
    """Run ``PRAGMA integrity_check`` and ``foreign_key_check`` and count the main tables' rows.

    Raises:
        CoiError: there is no file at ``path``.
    """
    path = _existing(path)
    report = CheckReport(str(path))
    with _raw(path) as conn:
        try:
            rows = [r[0] for r in conn.execute(f"PRAGMA integrity_check({int(max_errors)})")]
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"cannot read the file: {exc}")
            return report
        report.problems = [r for r in rows if r != "ok"]
        report.foreign_key_errors = _foreign_key_errors(conn, max_errors)
        report.counts = _counts(conn, report)
    return report


def _foreign_key_errors(conn: sqlite3.Connection, limit: int) -> list[str]:
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchmany(limit)
    except sqlite3.DatabaseError as exc:
        return [f"cannot run foreign_key_check: {exc}"]
    return [
        f"{table} row {rowid} points at a missing {parent} (constraint {fk})"
        for table, rowid, parent, fk in rows
    ]


def _counts(conn: sqlite3.Connection, report: CheckReport) -> dict[str, int]:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts = {}
    for table in COUNTED_TABLES:
        if table not in names:
            continue
        try:
            counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"cannot count {table}: {exc}")
    return counts


def backup_db(src: str | Path, out: str | Path, *, force: bool = False) -> CheckReport:
    """Copy the database at ``src`` to ``out`` with SQLite's online backup API, then check the copy.

    Safe while other connections write: the copy is the state of one committed transaction.

    Returns:
        The check report of the copy.

    Raises:
        CoiError: ``src`` is missing or damaged, ``out`` exists (without ``force``) or is ``src``,
            or the disk is full.
    """
    src, out = _existing(src), Path(out)
    if out.resolve() == src.resolve():
        raise CoiError("The backup would overwrite the database itself", "Pick another output file.")
    if out.exists() and not force:
        raise CoiError(f"{out} already exists", "Pick a new file name, or pass --force to replace it.")
    with _raw(src) as source:
        _copy_into_file(source, out, src)
    return check_db(out)


def restore_db(backup: str | Path, target: str | Path, *, force: bool = False) -> CheckReport:
    """Replace the database at ``target`` with a checked copy of ``backup``.

    Stop the app and every job first: open connections would keep writing to the replaced file.

    Raises:
        CoiError: the backup is missing or damaged, or ``target`` exists and ``force`` is not set.
    """
    backup, target = _existing(backup), Path(target)
    found = check_db(backup)
    if not found.ok:
        raise CoiError(f"The backup {backup} is damaged too: {found.problems[:1]}", "Use an older backup.")
    if target.exists() and not force:
        raise CoiError(f"{target} exists", "Pass --force to replace it (stop the app and its jobs first).")
    with _raw(backup) as source:
        _copy_into_file(source, target, backup)
    for suffix in ("-wal", "-shm"):  # the old file's journal must not be replayed onto the restored one
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    return check_db(target)


def _copy_into_file(source: sqlite3.Connection, out: Path, src: Path) -> None:
    """Online-backup ``source`` into a temp file beside ``out``, fsync it, rename it into place."""
    try:
        with staged_path(out) as tmp:
            with closing(sqlite3.connect(tmp)) as dest:
                source.backup(dest)  # pages=-1: one step, one read snapshot of the source
                dest.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
    except (OSError, sqlite3.DatabaseError) as exc:
        if is_corruption(exc):
            raise corrupt_db_error(src, exc) from exc
        raise write_error(out, exc, nothing=f"{out} was left as it was") from exc
