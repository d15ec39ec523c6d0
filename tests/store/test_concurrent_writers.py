"""Concurrent writers wait their turn: two `coi import` processes into one DB, a backup and a reader."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from store.db import connect, operational_error, write_transaction
from store.errors import CoiError
from tests.support import ROOT

LINES = 50_000


def _tasks_file(path, tag: str, n: int = LINES):
    with path.open("w") as f:
        for i in range(n):
            f.write(
                json.dumps({"instruction": f"Task {tag} {i}", "input": f"in {i}", "output": f"out {tag} {i}"})
                + "\n"
            )
    return path


def _coi(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_imports_of_50k_lines_both_succeed_and_add_up(tmp_path, db_path):
    connect(db_path).conn.close()  # migrated once, so both processes start on the same schema
    files = [_tasks_file(tmp_path / f"{tag}.jsonl", tag) for tag in ("a", "b")]
    env = {**os.environ, "COI_DB": str(db_path)}
    procs = [_coi("import", str(f), env=env) for f in files]
    backup = _coi("db", "backup", str(tmp_path / "backup.db"), env=env)
    outs = [p.communicate(timeout=600) for p in procs]
    backup_out = backup.communicate(timeout=600)
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    assert backup.returncode == 0, backup_out[1][-2000:]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 2 * LINES


def test_a_writer_waits_for_another_and_says_so(db_path):
    connect(db_path).conn.close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    said: list[str] = []
    db = connect(db_path)
    with pytest.raises(CoiError, match="busy"):
        with write_transaction(db, wait_s=0.6, say=said.append, step_s=0.2):
            pass
    assert said and "Waiting for another writer" in said[0]
    holder.execute("COMMIT")
    with write_transaction(db, wait_s=0.6, say=said.append):
        db.execute("INSERT INTO settings (key, value) VALUES ('x', 'y')")
    assert db.execute("SELECT value FROM settings WHERE key = 'x'").fetchone() == ("y",)


def test_operational_error_becomes_a_plain_coi_error():
    exc = operational_error(sqlite3.OperationalError("database is locked"))
    assert isinstance(exc, CoiError) and "busy" in exc.message and exc.hint


def test_an_operational_error_at_the_cli_is_a_plain_message(db_path, monkeypatch, capsys):
    import store.cli
    from cli import main

    def locked(db):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store.cli, "collect_stats", locked)
    assert main(["stats", "--db", str(db_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The database is busy") and "Traceback" not in err
