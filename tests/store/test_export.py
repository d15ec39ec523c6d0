"""Export: the paper's files round-trip exactly; JSONL and HF exports; status filters; edited chains."""

from __future__ import annotations

import json

import pytest

from store.chains import chain_ids, get_chains
from store.errors import CoiError
from store.export import chain_record, export_chains, iter_records
from store.importers import ImportOptions, import_file

PAPER_FILES = ["coi_2.json", "coi_3.json", "coi2_test.json", "summarized_coi_2.json"]
COI = [
    {
        "instruction": "Summarize the text. and then Translate it to German.",
        "input": "A long text about cats.",
        "output": "Task 1 output and task 2 input: Cats.\nTask 2 output: Katzen.",
    },
    {
        "instruction": "A and then B",
        "input": "x",
        "output": "Task 1 output and task 2 input: y Task2 output: z",
    },
    {
        "instruction": "one part and then two and then three",  # 3 parts, 2 steps: unclean
        "input": "x",
        "output": "Task 1 output and task 2 input: y\nTask 2 output: z",
    },
]


@pytest.mark.parametrize("name", PAPER_FILES)
def test_paper_file_round_trips_exactly(db, tmp_path, reference_data, name):
    """Import into an empty DB, export --status all: same records, same order, key for key, char for char."""
    source = reference_data / name
    original = json.loads(source.read_text("utf-8"))
    report = import_file(db, source)
    assert (report.format, report.imported, report.rejected) == ("coi", len(original), 0)
    out = export_chains(db, tmp_path / "out.json", format="coi", status="all")
    exported = json.loads((tmp_path / "out.json").read_text("utf-8"))
    assert out.count == len(original)
    mismatches = [i for i, (a, b) in enumerate(zip(original, exported)) if a != b or list(a) != list(b)]
    assert len(exported) == len(original) and mismatches == []


def test_paper_duplicates_both_survive(db, tmp_path, reference_data):
    """coi_3.json holds one record twice: both import, so the export has both."""
    records = json.loads((reference_data / "coi_3.json").read_text("utf-8"))
    distinct = {json.dumps(r, sort_keys=True) for r in records}
    assert len(distinct) < len(records)
    report = import_file(db, reference_data / "coi_3.json")
    assert report.repeats_in_file == len(records) - len(distinct)
    assert report.imported == len(records)


def test_unclean_paper_records_are_counted_with_reasons(db, reference_data):
    # summarized_coi_2.json is clean now (one summarised sentence per chain); coi_2.json has 8
    # records whose instruction holds " and then " inside a step.
    report = import_file(db, reference_data / "coi_2.json")
    assert report.unclean == 8
    assert sum(report.unclean_reasons.values()) >= report.unclean
    assert "instruction has 3 part(s) but the output has 2 step(s)" in report.unclean_reasons
    assert f"{report.unclean} unclean (" in report.summary()


def _import(db, tmp_path, records=COI, **options):
    (tmp_path / "c.json").write_text(json.dumps(records), "utf-8")
    return import_file(db, tmp_path / "c.json", ImportOptions(**options))


def test_default_export_is_accepted_only(db, tmp_path):
    _import(db, tmp_path, status="accepted")
    # The unclean third record was set to needs_review, so "accepted" leaves it out.
    report = export_chains(db, tmp_path / "acc.json")
    assert report.count == 2
    assert json.loads((tmp_path / "acc.json").read_text("utf-8")) == COI[:2]
    assert export_chains(db, tmp_path / "nr.json", status="needs_review").count == 1
    with pytest.raises(CoiError, match="Unknown chain status 'acepted'"):
        export_chains(db, tmp_path / "x.json", status="acepted")


def test_jsonl_export_with_meta(db, tmp_path):
    _import(db, tmp_path)
    export_chains(db, tmp_path / "out.jsonl", format="jsonl", status="all", with_meta=True)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [{k: r[k] for k in ("instruction", "input", "output")} for r in lines] == COI
    assert [r["length"] for r in lines] == [2, 2, 2]
    assert [r["status"] for r in lines] == ["proposed", "proposed", "needs_review"]
    assert [r["chain_id"] for r in lines] == chain_ids(db)


def test_hf_export_loads_back_and_reimports(db, tmp_path):
    import datasets

    _import(db, tmp_path)
    report = export_chains(db, tmp_path / "hf", format="hf", status="all")
    assert report.count == 3
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert loaded["train"].to_list() == COI
    assert import_file(db, tmp_path / "hf").format == "coi"


def test_edited_chain_exports_in_canonical_form(db, tmp_path):
    """Once a step changes, the raw imported text no longer applies; markers stay as imported."""
    _import(db, tmp_path)
    chain = get_chains(db, chain_ids(db))[1]
    chain.steps[1].output = "zz"
    assert chain_record(chain)["output"] == "Task 1 output and task 2 input: y Task2 output: zz"


def test_extra_fields_and_missing_input_round_trip(db, tmp_path):
    records = [{"id": "a1", "instruction": "A and then B", "output": "Task 1 output: y\nTask 2 output: z"}]
    records[0]["output"] = "Task 1 output and task 2 input: y\nTask 2 output: z"
    _import(db, tmp_path, records)
    assert list(iter_records(db, "all")) == records
    assert list(next(iter_records(db, "all"))) == ["id", "instruction", "output"]


def test_empty_export_writes_empty_array(db, tmp_path):
    assert export_chains(db, tmp_path / "e.json").count == 0
    assert json.loads((tmp_path / "e.json").read_text("utf-8")) == []
