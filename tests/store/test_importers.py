"""Importers: each format, field mappings, dedupe, the paper's CoI format, and bad input that imports nothing."""

from __future__ import annotations

import json

import pytest

from store.chains import chain_ids, get_chains, status_counts
from store.errors import CoiError
from store.importers import FieldMapping, ImportOptions, import_file, preview, preview_rows
from store.tasks import category_counts, count_tasks, list_tasks
from tests.support.probes import row_counts

TASKS = [
    {
        "instruction": "Translate to French.",
        "input": "Good morning",
        "output": "Bonjour",
        "category": "translate",
    },
    {"instruction": "Count the words.", "input": "one two three", "output": "3", "category": "count"},
    {"instruction": "Sort the letters.", "input": "cba", "output": "abc", "category": "sort"},
]
COI = [
    {
        "instruction": "Summarize the text. and then Translate it to German.",
        "input": "A long text about cats.",
        "output": "Task 1 output and task 2 input: Cats.\nTask 2 output: Katzen.",
    },
    {
        "instruction": "Extract the year and then Add one and then Write it in words",
        "input": "Born in 1999.",
        "output": "Task 1 output and task 2 input: 1999 Task 2 output and task 3 input: 2000\nTask 3 output: two thousand",
    },
]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return str(path)


def test_jsonl_tasks_import_and_second_import_adds_nothing(db, tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", TASKS)
    report = import_file(db, path)
    assert (report.format, report.kind, report.imported, report.duplicates) == ("jsonl", "tasks", 3, 0)
    assert category_counts(db) == {"translate": 1, "count": 1, "sort": 1}
    again = import_file(db, path)
    assert (again.imported, again.duplicates) == (0, 3)
    assert count_tasks(db) == 3
    assert {t.source for t in list_tasks(db)} == {"import:t.jsonl"}


def test_json_array_with_default_alias_columns(db, tmp_path):
    rows = [{"prompt": "Say hi.", "context": "", "response": "hi", "task_type": "chat"}]
    (tmp_path / "a.json").write_text(json.dumps(rows), "utf-8")
    report = import_file(db, tmp_path / "a.json")
    assert (report.format, report.imported) == ("json", 1)
    task = list_tasks(db)[0]
    assert (task.instruction, task.output, task.category) == ("Say hi.", "hi", "chat")


def test_csv_with_explicit_mapping_and_quoted_newlines(db, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('q,ctx,gold,kind\n"Reverse, please.","a\nb","b\na",rewrite\nSay x.,,x,echo\n', "utf-8")
    mapping = FieldMapping(instruction="q", input="ctx", output="gold", category="kind")
    report = import_file(db, path, ImportOptions(mapping=mapping))
    assert (report.format, report.imported) == ("csv", 2)
    tasks = {t.instruction: t for t in list_tasks(db)}
    assert tasks["Reverse, please."].input == "a\nb"
    assert tasks["Say x."].category == "echo"


def test_hf_dataset_dir(db, tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(TASKS[:2]), "test": datasets.Dataset.from_list(TASKS[2:])}
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    report = import_file(db, tmp_path / "ds")
    assert (report.format, report.imported) == ("hf", 3)
    assert count_tasks(db) == 3


def test_rows_with_empty_instruction_are_rejected_with_reason(db, tmp_path):
    rows = TASKS + [{"instruction": "  ", "input": "", "output": "x"}]
    report = import_file(db, write_jsonl(tmp_path / "t.jsonl", rows))
    assert (report.imported, report.rejected) == (3, 1)
    assert report.rejected_reasons == {"empty instruction": 1}
    assert "1 rejected (1x empty instruction)" in report.summary()


def test_map_pairs_from_cli():
    assert FieldMapping.from_pairs(["output=gold", "input=ctx"]) == FieldMapping(output="gold", input="ctx")
    with pytest.raises(CoiError, match="Bad field mapping 'outptu=gold'"):
        FieldMapping.from_pairs(["outptu=gold"])


def test_coi_records_become_chains_with_steps(db, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(COI), "utf-8")
    report = import_file(db, tmp_path / "c.json")
    assert (report.format, report.kind, report.imported, report.unclean) == ("coi", "chains", 2, 0)
    two, three = get_chains(db, chain_ids(db))
    assert two.instructions == ["Summarize the text.", "Translate it to German."]
    assert [s.input for s in two.steps] == ["A long text about cats.", "Cats."]
    assert two.outputs == ["Cats.", "Katzen."]
    assert three.outputs == ["1999", "2000", "two thousand"]
    assert three.steps[2].input == "2000"
    assert {two.status, three.status} == {"proposed"}
    assert all(s.origin == "gold" and s.flag is None for s in two.steps + three.steps)


def test_coi_status_parameter_and_unclean_records_flagged_for_review(db, tmp_path):
    bad = {
        "instruction": "A and then B and then C",  # more parts than steps (one sentence is a summary)
        "input": "x",
        "output": "Task 1 output and task 2 input: a\nTask 2 output: b",
    }
    (tmp_path / "c.json").write_text(json.dumps(COI + [bad]), "utf-8")
    report = import_file(db, tmp_path / "c.json", ImportOptions(status="accepted"))
    assert (report.imported, report.unclean) == (3, 1)
    reason = "instruction has 3 part(s) but the output has 2 step(s)"
    assert report.unclean_reasons == {reason: 1}
    assert f"1 unclean (1x {reason})" in report.summary()
    assert status_counts(db) == {"accepted": 2, "needs_review": 1}
    flagged = get_chains(db, chain_ids(db, statuses=["needs_review"]))[0]
    assert [s.flag for s in flagged.steps] == [reason, reason]
    assert flagged.meta["issues"] == [reason]


def test_identical_coi_records_in_one_file_both_import_but_reimport_adds_nothing(db, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps([COI[0], COI[1], COI[0]]), "utf-8")
    report = import_file(db, tmp_path / "c.json")
    assert (report.imported, report.repeats_in_file) == (3, 1)
    again = import_file(db, tmp_path / "c.json")
    assert (again.imported, again.duplicates) == (0, 3)


def test_preview_detects_columns_without_writing(db, tmp_path):
    loaded = preview(write_jsonl(tmp_path / "t.jsonl", TASKS), rows=2)
    assert loaded.format == "jsonl" and len(loaded.records) == 2
    assert loaded.columns == ["instruction", "input", "output", "category"]
    assert count_tasks(db) == 0


# ---------------------------------------------------------------- bad input: message and nothing written


def _bad(db, path, match, **options):
    import_file(db, write_jsonl(path.parent / "seed.jsonl", TASKS[:1]))  # a non-empty DB to compare
    before = row_counts(db)
    with pytest.raises(CoiError, match=match) as info:
        import_file(db, path, ImportOptions(**options))
    assert row_counts(db) == before
    return info.value


def test_malformed_jsonl_line_names_the_line(db, tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [json.dumps(r) for r in TASKS[1:]] + ['{"instruction": "x", "output": ']
    path.write_text("\n".join(lines) + "\n", "utf-8")
    err = _bad(db, path, "line 3 is not valid JSON")
    assert err.hint


def test_missing_column_in_csv_names_it(db, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("instruction,input\nSay hi.,x\n", "utf-8")
    _bad(db, path, r"No column for the task output: found columns \['instruction', 'input'\]")


def test_missing_field_in_one_jsonl_record_names_line_and_field(db, tmp_path):
    rows = [*TASKS[1:], {"instruction": "Say hi.", "input": ""}]
    write_jsonl(tmp_path / "t.jsonl", rows)
    _bad(db, tmp_path / "t.jsonl", "line 3 has no 'output' field")


def test_missing_field_in_coi_record_names_record(db, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps([COI[0], {"instruction": "a and then b", "input": ""}]), "utf-8")
    _bad(db, path, "record 2 has no 'output' field", format="coi")


def test_short_csv_row_names_the_row(db, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("instruction,input,output\nA,b,c\nD,e\n", "utf-8")
    _bad(db, path, "row 3 has 2 fields but the header has 3")


def test_non_utf8_file_names_byte_offset_and_line(db, tmp_path):
    path = tmp_path / "t.jsonl"
    content = b'{"instruction": "ok", "output": "x"}\n{"instruction": "caf\xe9", "output": "y"}\n'
    path.write_bytes(content)
    offset = content.index(0xE9)
    _bad(db, path, rf"not UTF-8 text: byte {offset} \(line 2\)")


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(db, tmp_path, content):
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    _bad(db, path, "t.jsonl is empty")


def test_empty_json_array(db, tmp_path):
    path = tmp_path / "t.json"
    path.write_text("[]", "utf-8")
    _bad(db, path, "holds no records")


def test_file_over_size_limit(db, tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, TASKS * 50)
    _bad(db, path, "MiB, over the 0.000954 MiB limit", max_bytes=1000)  # counted and named in MiB


def test_failure_while_writing_rolls_back_everything(db, tmp_path, monkeypatch):
    """A crash in the middle of writing chains leaves no partial import (one transaction)."""
    import store.importers as importers

    real = importers.insert_chain
    calls = []

    def failing(db_, chain, key=None):
        calls.append(1)
        if len(calls) == 2:
            raise CoiError("disk full", "")
        return real(db_, chain, key=key)

    monkeypatch.setattr(importers, "insert_chain", failing)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(COI), "utf-8")
    _bad(db, path, "disk full")
    assert len(calls) == 2


def test_tsv_uses_tabs(db, tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("instruction\toutput\nSay a, b.\ta, b\n", "utf-8")
    assert import_file(db, path).imported == 1
    assert list_tasks(db)[0].output == "a, b"


def test_preview_rows_are_short_strings(tmp_path):
    rows = [{"instruction": "x" * 500, "output": {"a": [1, 2]}, "n": 3}]
    (tmp_path / "a.json").write_text(json.dumps(rows), "utf-8")
    shown = preview_rows(preview(tmp_path / "a.json"), width=100)
    assert shown == [{"instruction": "x" * 100, "output": '{"a": [1, 2]}', "n": "3"}]


def test_folder_that_is_not_a_saved_dataset(db, tmp_path):
    folder = tmp_path / "notds"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello", "utf-8")
    _bad(db, folder, "notds is not a dataset saved with save_to_disk")


def test_unknown_format_and_missing_path(db, tmp_path):
    _bad(db, tmp_path / "nope.jsonl", "nope.jsonl does not exist")
    _bad(db, tmp_path / "seed.jsonl", "Unknown format 'xml'", format="xml")
