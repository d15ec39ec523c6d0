"""The Data page through streamlit's AppTest: upload -> preview -> import -> counts change; browsing."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from store.db import connect
from store.sample import load_sample_data
from store.tasks import count_tasks

TASKS = [
    {"prompt": f"Repeat the word {i}.", "context": "", "response": f"w{i} w{i}", "task_type": "repeat"}
    for i in range(5)
]
COI = [
    {
        "instruction": "Summarize the text. and then Translate it to German.",
        "input": "A long text about cats.",
        "output": "Task 1 output and task 2 input: Cats.\nTask 2 output: Katzen.",
    }
]


def start() -> AppTest:
    at = AppTest.from_file("../../app/main.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def frame(at: AppTest, column: str):
    """The first table with ``column`` (AppTest does not expose dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metric(at: AppTest, label: str) -> int:
    return int(next(m for m in at.metric if m.label == label).value)


def test_upload_preview_import_counts_change(db_path):
    at = start()
    assert metric(at, "Tasks") == 0
    body = "".join(json.dumps(r) + "\n" for r in TASKS).encode()
    at.file_uploader[0].upload("mine.jsonl", body, "application/jsonl")
    at.run()
    assert not at.exception, at.exception
    # The preview shows every mapped field, output included, named by field and column.
    preview = frame(at, "instruction ← prompt")
    assert list(preview["instruction ← prompt"]) == [r["prompt"] for r in TASKS]
    assert "output ← response" in preview.columns
    # The mapping defaults picked the aliased columns.
    assert at.selectbox(key="map_instruction").value == "prompt"
    assert at.selectbox(key="map_output").value == "response"
    at.button(key="import_button").click()
    at.run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Imported 5 tasks in")
    assert "from mine.jsonl [jsonl]" in [t.value for t in at.text]
    report = frame(at, "records")  # the import report as a small table
    assert dict(zip(report[""], report["records"]))["skipped as duplicates"] == 0
    assert dict(zip(report[""], report["records"]))["tasks imported"] == 5
    assert metric(at, "Tasks") == 5
    with connect(db_path) as db:
        assert count_tasks(db) == 5


def test_coi_path_import_with_status_and_bad_file_error(db_path, tmp_path):
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(COI), "utf-8")
    at = start()
    at.text_input[0].input(str(path))
    at.run()
    assert "coi" in at.caption[0].value
    at.selectbox[1].set_value("accepted")
    at.button(key="import_button").click()
    at.run()
    assert at.success[0].value.startswith("Imported 1 chains in")
    assert [c.proto.spec for c in at.get("plotly_chart") if "Chains by length" in c.proto.spec]
    assert metric(at, "Accepted chains") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe")
    at.text_input[0].input(str(bad))
    at.run()
    assert not at.exception
    assert "not UTF-8" in at.error[0].value


def test_upload_and_typed_path_together_say_the_upload_wins_and_import_it(db_path, tmp_path):
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(COI), "utf-8")
    at = start()
    at.text_input[0].input(str(path))
    at.file_uploader[0].upload(
        "mine.jsonl", "".join(json.dumps(r) + "\n" for r in TASKS).encode(), "application/jsonl"
    )
    at.run()
    assert not at.exception, at.exception
    assert any("the uploaded file is the one imported" in i.value for i in at.info)
    at.button(key="import_button").click()
    at.run()
    assert at.success[0].value.startswith("Imported 5 tasks in")  # the upload, not the typed chains file
    with connect(db_path) as db:
        assert count_tasks(db) == 5


def test_browse_tasks_and_chains_with_search_and_pages(db_path):
    with connect(db_path) as db:
        load_sample_data(db)
        n_tasks = count_tasks(db)
    at = start()
    assert frame(at, "source").shape[0] == min(50, n_tasks)
    assert at.number_input(key="task_page").max == -(-n_tasks // 50)
    at.text_input(key="task_search").input("French")
    at.run()
    found = frame(at, "source")
    assert 0 < len(found) < n_tasks
    chains = frame(at, "first step")
    assert len(chains) > 0
    assert at.selectbox(key="chain_pick").value == chains["id"].iloc[0]
    assert len(at.code) >= 4  # instruction and output of each step, shown literally
