"""Faults: a corrupt database file, and `coi db check|backup|restore` (SQLite's online backup API).

A real database (the sample data) is damaged three ways: a garbled header, garbled pages in the
middle (the steps table's b-tree), and a file cut in half. Each must give one plain error from
``connect``, from `coi stats` (a real subprocess) and on the app's first page, and `coi db check`
must say DAMAGED with a non-zero exit.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cli import main as coi
from store.db import connect
from store.errors import CoiError
from store.maintenance import backup_db, check_db
from store.sample import load_sample_data
from tests.support import ROOT

PAGE = 4096


@pytest.fixture
def good_db(tmp_path) -> Path:
    """A real database file with the sample data, fully checkpointed (no -wal left)."""
    path = tmp_path / "good.db"
    db = connect(path)
    load_sample_data(db)
    db.conn.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


def _root_page(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]


def garble_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"\x00not sqlite\xff" * 8)


def garble_middle(path: Path) -> None:
    """Random bytes over the steps table's root page and a few pages after it."""
    root = _root_page(path, "steps")
    with open(path, "r+b") as f:
        for page in range(root, root + 3):
            f.seek((page - 1) * PAGE)
            f.write(os.urandom(PAGE))


def truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


DAMAGE = {"header": garble_header, "middle": garble_middle, "truncated": truncate_half}


def damaged_copy(good: Path, tmp_path: Path, how: str) -> Path:
    # A new path: the first connect of this process to it runs the full check.
    path = tmp_path / f"damaged-{how}.db"
    shutil.copy(good, path)
    DAMAGE[how](path)
    return path


def run_coi(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_file_gives_one_plain_error_everywhere(good_db, tmp_path, how):
    path = damaged_copy(good_db, tmp_path, how)

    with pytest.raises(CoiError) as err:
        connect(path)
    assert f"The database file {path} is corrupt" in err.value.message
    assert "coi db check" in err.value.hint and "coi db backup" in err.value.hint

    stats = run_coi("stats", "--db", str(path))
    assert stats.returncode == 2
    assert f"error: The database file {path} is corrupt" in stats.stderr
    assert "Traceback" not in stats.stderr

    check = run_coi("db", "check", "--db", str(path))
    assert check.returncode == 1, check.stdout
    assert "DAMAGED" in check.stdout


def test_check_passes_a_healthy_file_with_its_counts(good_db, capsys):
    assert coi(["db", "check", "--db", str(good_db)]) == 0
    out = capsys.readouterr().out
    assert f"{good_db}: ok" in out and "chains: 49 rows" in out and "tasks: 97 rows" in out


def test_check_reports_broken_foreign_keys(good_db, capsys):
    with sqlite3.connect(good_db) as conn:  # foreign keys are off on a plain connection
        conn.execute("DELETE FROM chains WHERE id = (SELECT min(chain_id) FROM steps)")
    assert coi(["db", "check", "--db", str(good_db)]) == 1
    assert "foreign key: steps row" in capsys.readouterr().out


def test_check_of_a_missing_file_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "nope.db"
    assert coi(["db", "check", "--db", str(missing)]) == 2
    assert "There is no database file" in capsys.readouterr().err and not missing.exists()


def test_the_first_page_shows_the_corruption_error(good_db, tmp_path, monkeypatch):
    path = damaged_copy(good_db, tmp_path, "header")
    monkeypatch.setenv("COI_DB", str(path))
    at = AppTest.from_file("../../app/main.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    messages = [e.value for e in at.error]
    assert any(f"The database file {path} is corrupt" in m and "coi db backup" in m for m in messages), (
        messages
    )


def _writer(path: Path, stop: threading.Event, committed: list[int]) -> None:
    """Insert one task per transaction until told to stop; record each committed id."""
    db = connect(path)
    i = 0
    while not stop.is_set():
        i += 1
        cur = db.execute(
            "INSERT INTO tasks (content_hash, instruction, created_at) VALUES (?, ?, '2026')",
            [f"bk-{i}", f"task written during the backup {i}"],
        )
        db.conn.commit()
        committed.append(cur.lastrowid)
    db.conn.close()


def test_backup_while_another_thread_writes_is_consistent(good_db, tmp_path):
    stop, committed = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(good_db, stop, committed))
    writer.start()
    try:
        while len(committed) < 50:  # the writer is well under way
            threading.Event().wait(0.01)
        before = len(committed)
        report = backup_db(good_db, tmp_path / "copy.db")
        after = len(committed)
    finally:
        stop.set()
        writer.join()
    assert report.ok and report.problems == [] and report.foreign_key_errors == []
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM tasks WHERE content_hash LIKE 'bk-%' ORDER BY id")]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # One committed snapshot: a prefix of the writer's commits, every row before the backup included.
    assert before <= len(ids) <= after and ids == committed[: len(ids)]
    assert report.counts["chains"] == 49


def test_backup_refuses_to_overwrite_without_force(good_db, tmp_path, capsys):
    out = tmp_path / "b.db"
    assert coi(["db", "backup", str(out), "--db", str(good_db)]) == 0
    first = out.stat().st_mtime_ns
    assert coi(["db", "backup", str(out), "--db", str(good_db)]) == 2
    assert "already exists" in capsys.readouterr().err and out.stat().st_mtime_ns == first
    assert coi(["db", "backup", str(out), "--db", str(good_db), "--force"]) == 0
    assert coi(["db", "backup", str(good_db), "--db", str(good_db), "--force"]) == 2


def test_restore_brings_back_a_damaged_database(good_db, tmp_path, capsys):
    backup = tmp_path / "backup.db"
    assert coi(["db", "backup", str(backup), "--db", str(good_db)]) == 0
    live = damaged_copy(good_db, tmp_path, "middle")
    assert coi(["db", "restore", str(backup), "--db", str(live)]) == 2  # exists: needs --force
    assert coi(["db", "restore", str(backup), "--db", str(live), "--force"]) == 0
    assert check_db(live).ok
    db = connect(live)
    assert db.execute("SELECT count(*) FROM chains").fetchone()[0] == 49
    assert db.execute("SELECT count(*) FROM steps").fetchone()[0] == 115
    db.conn.close()
    assert "restored" in capsys.readouterr().out


def test_a_damaged_backup_is_not_restored(good_db, tmp_path):
    backup = damaged_copy(good_db, tmp_path, "middle")
    target = tmp_path / "target.db"
    shutil.copy(good_db, target)
    with pytest.raises(CoiError, match="damaged too"):
        from store.maintenance import restore_db

        restore_db(backup, target, force=True)
    assert check_db(target).ok


def test_backup_of_a_damaged_file_says_so(good_db, tmp_path, capsys):
    header = damaged_copy(good_db, tmp_path, "header")
    out = tmp_path / "from-header.db"
    assert coi(["db", "backup", str(out), "--db", str(header)]) == 2
    assert f"The database file {header} is corrupt" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".from-header.db.*"))  # no temp left behind
    middle = damaged_copy(good_db, tmp_path, "middle")
    # Page by page the copy works (it may help a salvage), but it is reported damaged, exit 1.
    assert coi(["db", "backup", str(tmp_path / "from-middle.db"), "--db", str(middle)]) == 1
    assert "DAMAGED" in capsys.readouterr().out


def test_m007_keeps_the_newest_of_duplicate_metrics_then_forbids_duplicates(tmp_path):
    """A database from before m007 (duplicates allowed) migrates to one row per (job, name, step)."""
    from store import db as store_db
    from store.jobs import add_metrics, create_job, get_metrics

    path = tmp_path / "old.db"
    db = connect(path)
    job = create_job(db, "train", {})
    db.execute("DROP INDEX idx_metrics_job_name_step")
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_metrics_unique'")
    for value in (1.0, 2.0, 3.0):  # the same step logged three times, as a replay could before
        db.execute(
            "INSERT INTO metrics (job_id, step, name, value, at) VALUES (?, 5, 'loss', ?, 'x')", [job, value]
        )
    db.conn.commit()
    db.conn.close()
    store_db._migrated.discard(str(path.resolve()))

    db = connect(path)  # m007 runs again
    assert [(m["step"], m["value"]) for m in get_metrics(db, job)] == [(5, 3.0)]
    add_metrics(db, job, 5, {"loss": 4.0})  # an upsert, not a second row
    assert [(m["step"], m["value"]) for m in get_metrics(db, job)] == [(5, 4.0)]
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO metrics (job_id, step, name, value, at) VALUES (?, 5, 'loss', 9, 'x')", [job])
    db.conn.close()
