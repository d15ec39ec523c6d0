"""Database connection, schema and forward migrations (sqlite-utils, WAL, foreign keys on).

Open a short-lived connection per unit of work with ``open_db()``; never cache one across
Streamlit sessions. Migrations are append-only: add a new ``m0NN_what`` function at the end.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from store import env
from store.errors import CoiError

DEFAULT_DB = Path("data") / "coi.db"
_BUSY_TIMEOUT_MS = 30_000  # the connection's busy timeout outside write_transaction
migrations = Migrations("coi")
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def default_db_path() -> Path:
    """The database path: ``$COI_DB`` if set, else ``data/coi.db``."""
    return Path(env.get("COI_DB") or DEFAULT_DB)


def database_file(db: sqlite_utils.Database) -> str:
    """The file path of an open database (what a child process is told to open)."""
    return db.execute("PRAGMA database_list").fetchone()[2]


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string (sortable, second precision plus micros)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def connect(path: str | Path | None = None, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open the database at ``path`` (default: ``default_db_path()``), migrated to the latest schema.

    The first connection of a process to a file also runs ``PRAGMA quick_check``, so a damaged file
    is reported at once, in plain words, instead of as a stack trace on some later query.

    Raises:
        CoiError: if the file is not a SQLite database, or is corrupt.
    """
    path = Path(path) if path else default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header and the schema
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from exc
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    db = CoiDatabase(conn)
    if migrate:
        try:
            _migrate_once(db, str(path.resolve()))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _open_error(path, exc) from exc
    return db


# -- writers wait their turn ------------------------------------------------------------------------
BUSY_WAIT_S = 300.0  # the longest a writer waits for another one before giving up with a plain error
BUSY_STEP_S = 2.0  # how long SQLite's own busy handler waits per try (then we say we are waiting)


def _say_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED ('database is locked', 'database table is locked')."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.OperationalError) and (
        name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc).lower()
    )


def operational_error(exc: sqlite3.OperationalError) -> CoiError:
    """The plain CoiError for an ``sqlite3.OperationalError`` that reached a page or the CLI."""
    if is_busy(exc):
        return CoiError(
            "The database is busy: another program kept writing to it for too long.",
            "Try again in a moment; if it keeps happening, look for a stuck coi process or job.",
        )
    return CoiError(f"The database refused the operation ({exc}).", "Check the database file and try again.")


def _begin_immediate(db: sqlite_utils.Database, wait_s: float, say, step_s: float) -> None:
    """``BEGIN IMMEDIATE``: take the write lock now, not at the first write of a transaction that has
    already read (a deferred transaction cannot wait then: SQLite answers 'database is locked')."""
    deadline = time.monotonic() + wait_s
    said = False
    db.conn.execute(f"PRAGMA busy_timeout = {int(step_s * 1000)}")
    try:
        while True:
            try:
                db.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise CoiError(
                        f"The database is busy: another writer held it for over {wait_s:.0f} s.",
                        "Try again when the other import, job or backup has finished.",
                    ) from exc
                if not said:
                    say(f"Waiting for another writer to finish (up to {wait_s:.0f} s)...")
                    said = True
    finally:
        db.conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")


@contextmanager
def write_transaction(
    db: sqlite_utils.Database,
    *,
    wait_s: float = BUSY_WAIT_S,
    say=_say_waiting,
    step_s: float = BUSY_STEP_S,
) -> Iterator[sqlite_utils.Database]:
    """One write transaction that waits its turn: ``BEGIN IMMEDIATE`` with a bounded retry on
    SQLITE_BUSY that says it is waiting (``say``), committed at the end, rolled back on any error.
    Inside an open transaction it is a savepoint.

    Raises:
        CoiError: another writer kept the database for more than ``wait_s`` seconds.
    """
    if db.conn.in_transaction:
        with sqlite_utils.Database.atomic(db):
            yield db
        return
    _begin_immediate(db, wait_s, say, step_s)
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise


class CoiDatabase(sqlite_utils.Database):
    """sqlite-utils' Database whose ``atomic()`` is a ``write_transaction`` (waits for other writers)."""

    @contextmanager
    def atomic(self) -> Iterator[sqlite_utils.Database]:
        with write_transaction(self):
            yield self


def is_corruption(exc: BaseException) -> bool:
    """True for SQLite's 'file is not a database' and 'database disk image is malformed' errors."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(
        needle in text for needle in ("malformed", "not a database", "is corrupt", "quick_check")
    )


def corrupt_db_error(path: str | Path, exc: BaseException | str) -> CoiError:
    """The plain-words error for a damaged database file, with what to do about it."""
    return CoiError(
        f"The database file {path} is corrupt ({exc}).",
        f"Run `coi db check --db {path}` to see what is damaged, then stop the app and its jobs and "
        "restore the newest copy made with `coi db backup` (`coi db restore BACKUP --db "
        f"{path} --force`).",
    )


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> CoiError:
    if is_corruption(exc):
        return corrupt_db_error(path, exc)
    return CoiError(f"Cannot open database {path}: {exc}", "Point $COI_DB or --db at a SQLite file.")


@contextmanager
def open_db(path: str | Path | None = None) -> Iterator[sqlite_utils.Database]:
    """A connection for one unit of work, closed afterwards.

    Corruption found by any query inside the block surfaces as the same plain CoiError as at connect.
    """
    db = connect(path)
    try:
        yield db
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise corrupt_db_error(Path(path) if path else default_db_path(), exc) from exc
        raise
    finally:
        db.conn.close()


def _migrate_once(db: sqlite_utils.Database, key: str) -> None:
    if key in _migrated:
        return
    with _migrate_lock:
        if key in _migrated:
            return
        # Once per process and file: a full read of every page (seconds only for very large files).
        found = "\n".join(r[0] for r in db.execute("PRAGMA quick_check(5)"))
        if found != "ok":
            first = next((line for line in found.splitlines() if not line.startswith("***")), found)
            raise sqlite3.DatabaseError(f"quick_check found damage: {first}")
        migrations.apply(db)
        _migrated.add(key)


def applied_migrations(db: sqlite_utils.Database) -> list[str]:
    """Names of the applied migrations, oldest first."""
    return [m.name for m in migrations.applied(db)]


def _exec(db: sqlite_utils.Database, *statements: str) -> None:
    for sql in statements:
        db.execute(sql)


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    _exec(
        db,
        """CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            content_hash TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL DEFAULT '',
            category TEXT NOT NULL DEFAULT '',
            instruction TEXT NOT NULL,
            short_instruction TEXT,
            input TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL DEFAULT '',
            meta TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL)""",
        "CREATE INDEX idx_tasks_category ON tasks(category)",
        "CREATE INDEX idx_tasks_source ON tasks(source)",
        """CREATE TABLE compositions (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            task_ids TEXT,
            length INTEGER NOT NULL,
            verdict TEXT,
            reason TEXT,
            confidence REAL,
            llm_call_id INTEGER REFERENCES llm_calls(id),
            source TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL)""",
        "CREATE INDEX idx_compositions_verdict ON compositions(verdict)",
        """CREATE TABLE chains (
            id INTEGER PRIMARY KEY,
            composition_id INTEGER REFERENCES compositions(id),
            content_hash TEXT NOT NULL UNIQUE,
            length INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'proposed'
                CHECK (status IN ('proposed', 'needs_review', 'accepted', 'rejected')),
            version INTEGER NOT NULL DEFAULT 1,
            reviewer TEXT,
            source TEXT NOT NULL DEFAULT '',
            category TEXT NOT NULL DEFAULT '',
            meta TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        "CREATE INDEX idx_chains_status_id ON chains(status, id)",
        "CREATE INDEX idx_chains_status_length ON chains(status, length)",
        "CREATE INDEX idx_chains_composition ON chains(composition_id)",
        "CREATE INDEX idx_chains_source ON chains(source)",
        "CREATE INDEX idx_chains_category ON chains(category)",
        """CREATE TABLE steps (
            id INTEGER PRIMARY KEY,
            chain_id INTEGER NOT NULL REFERENCES chains(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            task_id INTEGER REFERENCES tasks(id),
            instruction TEXT NOT NULL DEFAULT '',
            input TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL DEFAULT '',
            origin TEXT NOT NULL DEFAULT 'gold' CHECK (origin IN ('gold', 'llm', 'human')),
            stale INTEGER NOT NULL DEFAULT 0,
            flag TEXT,
            llm_call_id INTEGER REFERENCES llm_calls(id),
            UNIQUE (chain_id, position))""",
        "CREATE INDEX idx_steps_stale ON steps(stale, chain_id)",
        """CREATE TABLE edits (
            id INTEGER PRIMARY KEY,
            chain_id INTEGER NOT NULL REFERENCES chains(id) ON DELETE CASCADE,
            position INTEGER,
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            author TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL)""",
        "CREATE INDEX idx_edits_chain ON edits(chain_id, id)",
        """CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            chain_id INTEGER NOT NULL REFERENCES chains(id) ON DELETE CASCADE,
            reviewer TEXT NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'skip')),
            reason TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL)""",
        "CREATE INDEX idx_reviews_chain ON reviews(chain_id, reviewer)",
        "CREATE INDEX idx_reviews_reviewer ON reviews(reviewer)",
        """CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            model TEXT NOT NULL,
            request TEXT NOT NULL,
            response TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            latency_ms REAL,
            attempts INTEGER NOT NULL DEFAULT 1,
            error TEXT,
            job_id INTEGER,
            created_at TEXT NOT NULL)""",
        """CREATE TABLE dataset_versions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            content_hash TEXT NOT NULL,
            filter TEXT NOT NULL DEFAULT '{}',
            split_sizes TEXT NOT NULL DEFAULT '{}',
            path TEXT,
            created_by TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL)""",
        """CREATE TABLE dataset_version_items (
            version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
            split TEXT NOT NULL,
            position INTEGER NOT NULL,
            chain_id INTEGER NOT NULL,
            composition_id INTEGER,
            length INTEGER NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (version_id, split, position))""",
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('train', 'eval', 'generate')),
            name TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            pid INTEGER,
            progress REAL NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL DEFAULT 0,
            message TEXT NOT NULL DEFAULT '',
            log_path TEXT,
            heartbeat_at TEXT,
            error TEXT,
            result TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT)""",
        "CREATE INDEX idx_jobs_kind_status ON jobs(kind, status)",
        """CREATE TABLE metrics (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            name TEXT NOT NULL,
            value REAL NOT NULL,
            at TEXT NOT NULL)""",
        "CREATE INDEX idx_metrics_job ON metrics(job_id, name, step)",
        """CREATE TABLE predictions (
            id INTEGER PRIMARY KEY,
            eval_run_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            chain_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            mode TEXT NOT NULL CHECK (mode IN ('chain', 'stepwise-gold', 'stepwise-own')),
            prompt TEXT,
            prediction TEXT NOT NULL DEFAULT '',
            reference TEXT NOT NULL DEFAULT '',
            rougeL REAL,
            meta TEXT NOT NULL DEFAULT '{}',
            UNIQUE (eval_run_id, mode, chain_id, position))""",
        "CREATE INDEX idx_predictions_chain ON predictions(eval_run_id, chain_id)",
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL)""",
    )


def _fts5_synced(table: str, columns: list[str]) -> list[str]:
    """An external-content FTS5 index ``<table>_fts`` on ``columns``, kept in sync by triggers."""
    fts, cols = f"{table}_fts", ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    delete = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    insert = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new});"
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', content_rowid='id')",
        f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN {insert} END",
        f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN {delete} END",
        f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {cols} ON {table} BEGIN {delete} {insert} END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


@migrations()
def m002_tasks_search(db: sqlite_utils.Database) -> None:
    """Full-text search on tasks, so the Data page's search stays fast at 100,000 rows and more."""
    _exec(
        db,
        *_fts5_synced("tasks", ["instruction", "input", "output"]),
    )


@migrations()
def m006_review(db: sqlite_utils.Database) -> None:
    """Review: edit groups (version) and undo links on edits, queue indexes, full-text search on steps."""
    _exec(
        db,
        # The chain version an edit produced: all rows of one save share it, so undo reverts them together.
        "ALTER TABLE edits ADD COLUMN version INTEGER",
        # The version an undo reverted (NULL for ordinary edits).
        "ALTER TABLE edits ADD COLUMN undoes INTEGER",
        "CREATE INDEX idx_chains_status_category_id ON chains(status, category, id)",
        "CREATE INDEX idx_chains_status_source_id ON chains(status, source, id)",
        "CREATE INDEX idx_chains_status_reviewer_id ON chains(status, reviewer, id)",
        "CREATE INDEX idx_reviews_reviewer_chain ON reviews(reviewer, chain_id)",
        # Sorting the queue by checker confidence walks this index and stops after one page.
        "CREATE INDEX idx_compositions_confidence ON compositions(confidence)",
        *_fts5_synced("steps", ["instruction", "input", "output"]),
    )


@migrations()
def m007_metrics_unique(db: sqlite_utils.Database) -> None:
    """One metric value per (job, name, step): a resumed training run replaces, never duplicates.

    Rows logged after the last checkpoint of a killed run are replayed when it resumes; the newest
    value of each key is kept before the unique index goes on.
    """
    _exec(
        db,
        "DELETE FROM metrics WHERE id NOT IN (SELECT max(id) FROM metrics GROUP BY job_id, name, step)",
        "DROP INDEX IF EXISTS idx_metrics_job",
        "CREATE UNIQUE INDEX idx_metrics_job_name_step ON metrics(job_id, name, step)",
    )


@migrations()
def m015_step_flags(db: sqlite_utils.Database) -> None:
    """Generation-check flags on steps and a risk score per chain, so the queue can sort by risk."""
    _exec(
        db,
        "ALTER TABLE chains ADD COLUMN risk INTEGER NOT NULL DEFAULT 0",
        # Risk-first review walks this index and stops after one page.
        "CREATE INDEX idx_chains_status_risk ON chains(status, risk, id)",
        # Only flagged steps are in it: the flag-kind filter and its choices read just those.
        "CREATE INDEX idx_steps_flagged ON steps(chain_id) WHERE flag IS NOT NULL",
    )


@migrations()
def m016_judgements(db: sqlite_utils.Database) -> None:
    """The LLM judge's verdict per step, with the rubric it used (one row per run, mode, chain, step)."""
    _exec(
        db,
        """CREATE TABLE judgements (
            id INTEGER PRIMARY KEY,
            eval_run_id INTEGER NOT NULL DEFAULT 0,
            chain_id INTEGER NOT NULL REFERENCES chains(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            mode TEXT NOT NULL,
            step_type TEXT NOT NULL,
            rubric TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('correct', 'partly', 'wrong', 'unknown')),
            reason TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            llm_call_id INTEGER REFERENCES llm_calls(id),
            created_at TEXT NOT NULL,
            UNIQUE (eval_run_id, mode, chain_id, position))""",
        "CREATE INDEX idx_judgements_chain ON judgements(chain_id, position)",
    )


@migrations()
def m017_short_proposals(db: sqlite_utils.Database) -> None:
    """An LLM's short instruction is a proposal with a review state and the checks' flags."""
    _exec(
        db,
        "ALTER TABLE tasks ADD COLUMN short_status TEXT",
        "ALTER TABLE tasks ADD COLUMN short_flags TEXT",
        "CREATE INDEX idx_tasks_short_status ON tasks(short_status) WHERE short_status IS NOT NULL",
    )


@migrations()
def m018_job_queue(db: sqlite_utils.Database) -> None:
    """Every kind queues: each job says which resource it waits for and how its process starts.

    ``resource`` is 'device' (loads a local model: one at a time) or 'remote' (only calls an
    endpoint: several beside it); ``launch`` is JSON with the launcher prefix and non-secret env.
    Generate jobs against a configured endpoint become 'remote'.
    """
    _exec(
        db,
        "ALTER TABLE jobs ADD COLUMN resource TEXT NOT NULL DEFAULT 'device'",
        "ALTER TABLE jobs ADD COLUMN launch TEXT NOT NULL DEFAULT '{}'",
        "UPDATE jobs SET resource = 'remote' WHERE kind = 'generate' "
        "AND COALESCE(json_extract(config, '$.llm.base_url'), '') != ''",
        "CREATE INDEX idx_jobs_status_resource ON jobs(status, resource, id)",
    )


@migrations()
def m019_login_throttle(db: sqlite_utils.Database) -> None:
    """Wrong logins per (normalised) user name, so guessing is slowed across all sessions and processes."""
    _exec(
        db,
        "CREATE TABLE login_failures (name TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_at REAL NOT NULL)",
    )


@migrations()
def m020_regenerate_jobs(db: sqlite_utils.Database) -> None:
    """Regeneration runs as a job of its own kind: widen the jobs table's CHECK on ``kind``.

    SQLite cannot alter a CHECK, and rebuilding ``jobs`` would cascade-delete its metrics and
    predictions (foreign keys are on). A wider CHECK leaves every stored row valid, which is the case
    SQLite's ALTER TABLE documentation allows editing in the schema table directly.
    """
    old = "CHECK (kind IN ('train', 'eval', 'generate'))"
    new = "CHECK (kind IN ('train', 'eval', 'generate', 'regenerate'))"
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
    if old not in sql:
        raise RuntimeError("m020: the jobs table's kind CHECK is not the one m001 wrote")
    (schema_version,) = db.execute("PRAGMA schema_version").fetchone()
    db.execute("PRAGMA writable_schema = ON")
    db.execute(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'jobs'", [sql.replace(old, new)]
    )
    db.execute(f"PRAGMA schema_version = {schema_version + 1}")
    db.execute("PRAGMA writable_schema = OFF")
