"""Every released shape of the paper's data imports by itself and round-trips exactly; fixed test sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from store.chains import chain_ids, get_chains
from store.coi_format import JOINT, parse_record, render_record
from store.errors import CoiError
from store.export import export_chains
from store.importers import ImportOptions, import_file
from store.tasks import count_tasks
from store.versions import SplitSpec, composition_overlap, create_version, get_version, version_records

COI_BIN = Path(sys.executable).parent / "coi"
MARKED = {
    "instruction": "Reverse it. and then Upper-case it.",
    "input": "abc",
    "output": "Task 1 output and task 2 input: cba\nTask 2 output: CBA",
}
SINGLE = {"instruction": "Count the words.", "input": "one two", "output": "2"}
BBH = {
    "instruction": "Given a small set of sentences about a particular date, answer the provided question.",
    "input": "Today is Christmas Eve of 1937. What is the date tomorrow?\nOptions:\n(A) 12/11/1937\n(B) 12/25/1937",
    "output": "(B)",
}
DOWNSTREAM = {
    "instruction": "Summarize the following Spanish paragraph and then translate the Spanish summary into English",
    "input": "Un párrafo largo.",
    "output": "A short summary.",
    "eng_output": "Un resumen.",
}


def write(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    return path


def round_trip(db, tmp_path: Path, source: Path) -> tuple[list, list]:
    export_chains(db, tmp_path / "out.json", format="coi", status="all")
    return json.loads(source.read_text("utf-8")), json.loads((tmp_path / "out.json").read_text("utf-8"))


def lengths(db) -> list[int]:
    return [c.length for c in get_chains(db, chain_ids(db))]


def test_mixed_file_imports_as_chains_of_lengths_one_to_n(db, tmp_path):
    """A marked record makes the file CoI; marker-less records become length-1 chains (CoI1)."""
    path = write(
        tmp_path / "coi_12.json", [SINGLE, MARKED, {**SINGLE, "instruction": "Say hi and then wave."}]
    )
    report = import_file(db, path)
    assert (report.format, report.kind, report.imported, report.unclean) == ("coi", "chains", 3, 0)
    assert lengths(db) == [1, 2, 1]
    chains = get_chains(db, chain_ids(db))
    assert chains[2].instructions == ["Say hi and then wave."]  # a CoI1 instruction is never split
    original, exported = round_trip(db, tmp_path, path)
    assert exported == original


def test_length_one_and_bbh_files_import_as_chains(db, tmp_path):
    """A JSON array of exactly the paper's keys (the release shape of coi_1 and BBH) is CoI by itself."""
    path = write(tmp_path / "bbh.json", [BBH, {**BBH, "output": "(A)"}])
    report = import_file(db, path)
    assert (report.format, report.imported, report.unclean) == ("coi", 2, 0)
    assert lengths(db) == [1, 1] and count_tasks(db) == 0
    assert get_chains(db, chain_ids(db))[0].outputs == ["(B)"]


def test_plain_task_files_stay_tasks(db, tmp_path):
    """JSONL rows, or an array with other columns, are still single-instruction tasks."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(SINGLE) + "\n", "utf-8")
    assert import_file(db, path).kind == "tasks"
    other = write(tmp_path / "t.json", [{**SINGLE, "category": "count"}])
    assert import_file(db, other).kind == "tasks"
    assert import_file(db, write(tmp_path / "b.json", [BBH]), ImportOptions(format="json")).kind == "tasks"


def test_eng_output_records_import_as_two_step_chains(db, tmp_path):
    path = write(tmp_path / "spa2eng.json", [DOWNSTREAM])
    report = import_file(db, path)
    assert (report.format, report.imported, report.unclean) == ("coi", 1, 0)
    chain = get_chains(db, chain_ids(db))[0]
    assert chain.outputs == ["Un resumen.", "A short summary."]
    assert chain.instructions == [
        "Summarize the following Spanish paragraph",
        "translate the Spanish summary into English",
    ]
    assert chain.steps[1].input == "Un resumen."  # step 2 works on step 1's output
    original, exported = round_trip(db, tmp_path, path)
    assert exported == original and list(exported[0]) == list(original[0])


def test_summarised_instruction_has_no_dangling_joint():
    record = {**MARKED, "instruction": "Reverse and upper-case the text."}
    parsed = parse_record(record)
    assert parsed.issues == [] and parsed.length == 2
    again = render_record(parsed.instructions, parsed.input, parsed.outputs, parsed.format)
    assert again == record and not again["instruction"].endswith(JOINT)


@pytest.mark.parametrize(
    "name",
    [
        "coi_2.json",
        "coi_3.json",
        "coi2_test.json",
        "summarized_coi_2.json",
        "spa2eng_summarize_then_translate200.json",
        "bbh_test_date_understanding.json",
    ],
)
def test_every_reference_file_imports_by_itself_and_round_trips(db, tmp_path, reference_data, name):
    """Auto-detected as CoI, every record a chain, no dangling joints, exported key for key."""
    source = reference_data / name
    report = import_file(db, source)
    original, exported = round_trip(db, tmp_path, source)
    assert (report.format, report.imported) == ("coi", len(original))
    assert exported == original and [list(r) for r in exported] == [list(r) for r in original]
    records = version_records(
        db, create_version(db, SplitSpec(statuses=("proposed", "needs_review"), test_fraction=0)), "train"
    )
    assert not [
        r for r in records if r["instruction"].endswith(JOINT.rstrip()) or JOINT + JOINT in r["instruction"]
    ]
    if name.startswith("spa2eng"):
        assert report.unclean == 0 and set(lengths(db)) == {2}
    if name.startswith("summarized"):
        assert report.unclean == 0 and all(
            r["instruction"] in [o["instruction"] for o in original] for r in records[:50]
        )


def test_import_source_names_the_source(db, tmp_path):
    import_file(db, write(tmp_path / "a.json", [MARKED]), ImportOptions(source="coi2_test"))
    assert [c.source for c in get_chains(db, chain_ids(db))] == ["coi2_test"]


# ---------------------------------------------------------------- fixed test sets


def _marked(i: int, a: str = "Reverse it.", b: str = "Upper-case it.") -> dict:
    return {
        "instruction": f"{a} and then {b}",
        "input": f"x{i}",
        "output": f"Task 1 output and task 2 input: {i}\nTask 2 output: {i}",
    }


@pytest.fixture
def two_sources(db, tmp_path):
    train = [_marked(i, a=f"A{i % 5}.") for i in range(20)]  # 5 compositions, one of them shared with test
    test = [_marked(100 + i, a=f"A{i}." if i == 0 else f"T{i}.") for i in range(4)]
    import_file(db, write(tmp_path / "train.json", train), ImportOptions(source="train", status="accepted"))
    import_file(db, write(tmp_path / "test.json", test), ImportOptions(source="test", status="accepted"))
    return train, test


def test_test_source_is_exactly_that_file_and_train_drops_shared_compositions(db, two_sources):
    train, test = two_sources
    vid = create_version(db, SplitSpec(test_source="test", train_sources=("train",)))
    got_test = version_records(db, vid, "test")
    assert [r["input"] for r in got_test] == [r["input"] for r in test]  # exactly, in file order
    got_train = version_records(db, vid, "train")
    assert len(got_train) == 16  # the 4 chains of composition A0 also appear in test
    assert not {r["instructions"][0] for r in got_train} & {"A0."}
    assert composition_overlap(db, vid) == 0
    assert get_version(db, vid).split_sizes == {"train": 16, "test": 4}


def test_test_source_must_exist(db, two_sources):
    with pytest.raises(CoiError, match="source 'nope'"):
        create_version(db, SplitSpec(test_source="nope"))


def test_test_fraction_one_is_refused(db, two_sources):
    with pytest.raises(CoiError, match="leaves no training chains"):
        create_version(db, SplitSpec(test_fraction=1.0))


def test_tasks_join_a_version_as_length_one_chains(db, tmp_path, two_sources):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(SINGLE) + "\n", "utf-8")
    import_file(db, path, ImportOptions(source="tasks"))
    vid = create_version(db, SplitSpec(test_source="test", train_sources=("train",), task_source="tasks"))
    ones = [r for r in version_records(db, vid, "train") if r["length"] == 1]
    assert [(r["instruction"], r["input"], r["output"]) for r in ones] == [
        ("Count the words.", "one two", "2")
    ]


@pytest.mark.slow
def test_cli_version_create_test_source_and_list_json(tmp_path, two_sources, db_path):
    def run(*a):
        return subprocess.run(
            [str(COI_BIN), *a, "--db", str(db_path)], capture_output=True, text=True, timeout=300
        )

    made = run("version", "create", "--test-source", "test", "--train-source", "train")
    assert made.returncode == 0, made.stderr
    listed = run("version", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["splits"]) for r in rows] == [(1, {"train": 16, "test": 4})]
    bad = run("version", "create", "--test-fraction", "1.0")
    assert bad.returncode != 0 and "leaves no training chains" in bad.stderr + bad.stdout
