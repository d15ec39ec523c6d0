"""Small leaks: upload temp files, `coi stats --json | head`, the size limit's unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from store.models import Task
from store.tasks import count_tasks, insert_tasks
from tests.support import APP, ROOT

ROWS = "".join(json.dumps({"instruction": f"Say {i}.", "input": "a", "output": "b"}) + "\n" for i in range(3))


def test_an_uploaded_file_is_deleted_after_the_import(db):
    at = AppTest.from_file(str(APP / "app_pages" / "data.py"), default_timeout=60)
    at.run()
    at.file_uploader[0].set_value(("tasks.jsonl", ROWS.encode(), "application/octet-stream")).run()
    [temp] = at.session_state["data_uploads"].values()
    assert Path(temp).is_file()
    at.button(key="import_button").click().run()
    assert not at.exception, at.exception
    assert count_tasks(db) == 3
    assert not Path(temp).exists() and not Path(temp).parent.exists()


def test_an_upload_that_cannot_be_imported_is_deleted(db, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # tempfile reads it once; set the module's cache too
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    at = AppTest.from_file(str(APP / "app_pages" / "data.py"), default_timeout=60)
    at.run()
    at.file_uploader[0].set_value(("bad.jsonl", b'{"instruction": "x"\n', "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert at.error
    assert not list(tmp_path.glob("coi-upload-*"))


def test_coi_stats_json_into_head_exits_quietly(db, db_path):
    # Enough categories that the JSON is larger than a pipe buffer, so the write meets the closed pipe.
    insert_tasks(
        db, [Task(instruction=f"T {i}", input="", output="o", category=f"c{i:05d}") for i in range(6000)]
    )
    shell = f"{sys.executable} {ROOT / 'cli.py'} stats --json | head -n 1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        env={**os.environ, "COI_DB": str(db_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "{"
    assert done.stderr == "", done.stderr[-2000:]
    assert done.returncode == 0
