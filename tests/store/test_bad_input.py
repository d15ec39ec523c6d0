"""Bad input sweep: random and adversarial files into every importer, and any text into the CoI parser.

The only acceptable outcomes of an import are a clean import (the rows it reports are the rows that
appear) or a CoiError with a message, after which the database is exactly as before. The parser
never raises on any str. Hypothesis runs derandomized with a bounded number of examples, so CI is
deterministic; each crash the sweep found is pinned with an ``@example``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from store.chains import chain_ids, get_chains
from store.coi_format import parse_output, parse_record, render_output
from store.errors import CoiError
from store.importers import MAX_DEPTH, ImportOptions, import_file
from tests.support.probes import row_counts

# COI_SWEEP_EXAMPLES=2000 runs a deeper sweep by hand; CI keeps the bounded default.
BOUNDED = settings(
    max_examples=int(os.environ.get("COI_SWEEP_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INJECTION = ["=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1"]
FRAGMENTS = [
    *INJECTION,
    "\x00",
    "\ufeff",
    "\r\n",
    "\r",
    "\n",
    "\u2028",
    "\ud800",
    "\udfff",
    '"',
    ",",
    "\t",
    "\\",
    "{",
    "[",
    "}",
    "]",
    " and then ",
    "Task 1 output: ",
    "\nTask 2 output and task 3 input: ",
    "Task 2 output:",
    "Task 0 output:",
    "Task 999999999 output:",
    "Task 99999999999999999999 output:",
    "NaN",
]
# Text that mixes the fragments above with arbitrary characters (lone surrogates come from the fragments).
TEXT = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=8).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
FIELDS = ["instruction", "input", "output", "category", "response", "prompt"]
RECORDS = st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), VALUES, max_size=5)
TEXT_RECORDS = st.dictionaries(st.sampled_from(FIELDS), TEXT, min_size=1, max_size=4)
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
DEEP_ARRAY = "[" * 100_000 + "]" * 100_000


def import_outcome(db, path, **options) -> str:
    """Import; return "ok" or "error", failing on any other exception or on a partial write."""
    before = row_counts(db)
    try:
        report = import_file(db, path, ImportOptions(**options))
    except CoiError as exc:
        assert exc.message.strip()
        assert row_counts(db) == before, "a failed import wrote rows"
        return "error"
    after = row_counts(db)
    table = "chains" if report.kind == "chains" else "tasks"
    assert after[table] - before[table] == report.imported
    assert report.imported + report.duplicates + report.rejected == report.total
    if report.kind == "chains" and report.imported:  # what was written reads back
        assert len(get_chains(db, chain_ids(db, statuses=None)[-report.imported :])) == report.imported
    return "ok"


def encode(text: str, bom: bool = False) -> bytes:
    # surrogatepass: a lone surrogate in the text becomes the invalid UTF-8 a broken tool would write.
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")


def jsonl_text(records: list, ensure_ascii: bool, crlf: bool) -> str:
    end = "\r\n" if crlf else "\n"
    return "".join(json.dumps(r, ensure_ascii=ensure_ascii, allow_nan=True) + end for r in records)


# ------------------------------------------------------------------------------------------ the parser


@BOUNDED
@given(text=TEXT, n_steps=st.one_of(st.none(), st.integers(1, 12)))
@example(text="Task 1 output: a Task 99999999999 output: b", n_steps=None)  # was a MemoryError
@example(text="Task 1 output: a Task 999999999 output: b", n_steps=None)  # was a MemoryError
@example(text="Task " + "9" * 5000 + " output: b", n_steps=None)  # was int()'s digit-limit ValueError
@example(text="Task 0 output: x", n_steps=None)  # was a zero-step parse
@example(text="\x00Task 1 output:\ud800\r\nTask 2 output: \ufeff", n_steps=2)
def test_parse_output_never_raises_and_keeps_the_step_count(text, n_steps):
    parsed = parse_output(text, n_steps)
    assert all(isinstance(o, str) for o in parsed.outputs)
    assert len(parsed.separators) == len(parsed.outputs)
    if n_steps is not None:
        assert len(parsed.outputs) == n_steps
    else:
        assert 1 <= len(parsed.outputs) <= 100
    if parsed.clean:  # lossless on well-formed text
        assert render_output(parsed.outputs, parsed.separators, parsed.prefix) == text


def test_parse_output_on_a_huge_text():
    text = "Task 1 output and task 2 input: " + "x" * 5_000_000 + "\nTask 2 output: y"
    parsed = parse_output(text)
    assert parsed.clean and len(parsed.outputs[0]) == 5_000_000


@BOUNDED
@given(record=RECORDS)
@example(record={"output": 5})  # was a TypeError inside the regex
@example(record={"instruction": ["a"], "output": "Task 1 output: x"})  # was an AttributeError
@example(record={"instruction": "a", "input": None, "output": None})
def test_parse_record_returns_steps_or_a_clear_error(record):
    try:
        parsed = parse_record(record)
    except CoiError as exc:
        assert "must be a string" in exc.message
        return
    assert parsed.length >= 1 and len(parsed.instructions) == parsed.length


# --------------------------------------------------------------------------------------- the importers


@BOUNDED
@given(
    records=st.lists(RECORDS, max_size=4),
    junk=st.lists(TEXT, max_size=2),
    ensure_ascii=st.booleans(),
    crlf=st.booleans(),
    bom=st.booleans(),
    fmt=st.sampled_from(["auto", "jsonl", "coi"]),
)
@example(
    records=[], junk=[DEEP_OBJECT], ensure_ascii=True, crlf=False, bom=False, fmt="jsonl"
)  # RecursionError
@example(  # a lone surrogate escape used to reach SQLite: UnicodeEncodeError
    records=[{"instruction": "a\ud800", "output": "b"}],
    junk=[],
    ensure_ascii=True,
    crlf=False,
    bom=False,
    fmt="auto",
)
@example(
    records=[], junk=['{"output": ' + "9" * 5000 + "}"], ensure_ascii=True, crlf=True, bom=True, fmt="auto"
)
@example(  # nesting that json parses but that is past MAX_DEPTH
    records=[],
    junk=['{"instruction": "a", "output": "b", "x": ' + "[" * 500 + "]" * 500 + "}"],
    ensure_ascii=True,
    crlf=False,
    bom=False,
    fmt="jsonl",
)
def test_jsonl_import_is_clean_or_a_clear_error(db, tmp_path, records, junk, ensure_ascii, crlf, bom, fmt):
    path = tmp_path / "in.jsonl"
    path.write_bytes(encode(jsonl_text(records, ensure_ascii, crlf) + "\n".join(junk), bom))
    import_outcome(db, path, format=fmt)


@BOUNDED
@given(
    records=st.lists(st.one_of(RECORDS, VALUES), max_size=4), ensure_ascii=st.booleans(), bom=st.booleans()
)
@example(
    records=[{"instruction": "x", "output": "\ud800"}], ensure_ascii=True, bom=False
)  # UnicodeEncodeError
@example(  # a CoI record with a huge step number: was a MemoryError in the parser
    records=[{"instruction": "a", "input": "", "output": "Task 1 output: x Task 99999999999 output: y"}],
    ensure_ascii=False,
    bom=True,
)
def test_json_array_import_is_clean_or_a_clear_error(db, tmp_path, records, ensure_ascii, bom):
    path = tmp_path / "in.json"
    path.write_bytes(encode(json.dumps(records, ensure_ascii=ensure_ascii), bom))
    for fmt in ("auto", "json", "coi"):
        import_outcome(db, path, format=fmt)


@BOUNDED
@given(
    header=st.lists(st.one_of(st.sampled_from(FIELDS), TEXT), min_size=1, max_size=4),
    rows=st.lists(st.lists(TEXT, max_size=5), max_size=4),
    suffix=st.sampled_from([".csv", ".tsv"]),
    crlf=st.booleans(),
    bom=st.booleans(),
)
@example(  # a field longer than csv's default 128 KiB limit used to fail a valid file
    header=["instruction", "output"], rows=[["x" * 200_000, "y"]], suffix=".csv", crlf=False, bom=False
)
@example(
    header=["instruction", "output"], rows=[INJECTION[:2], INJECTION[2:4]], suffix=".csv", crlf=True, bom=True
)
def test_csv_import_is_clean_or_a_clear_error(db, tmp_path, header, rows, suffix, crlf, bom):
    out = io.StringIO(newline="")
    writer = csv.writer(
        out, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\r\n" if crlf else "\n"
    )
    writer.writerows([header, *rows])
    path = tmp_path / f"in{suffix}"
    path.write_bytes(encode(out.getvalue(), bom))
    import_outcome(db, path)


@BOUNDED
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt"]))
@example(raw=b'{"instruction": "\xff", "output": "b"}\n', suffix=".jsonl")
@example(raw=b'instruction,output\n"a\x00b",\xed\xa0\x80\n', suffix=".csv")
@example(raw=b'[{"instruction": "a", "output": "b"}, 1]', suffix=".json")
def test_raw_bytes_in_any_format_are_clean_or_a_clear_error(db, tmp_path, raw, suffix):
    path = tmp_path / f"in{suffix}"
    path.write_bytes(raw)
    import_outcome(db, path)


@BOUNDED
@given(records=st.lists(TEXT_RECORDS, min_size=1, max_size=4), markers=st.lists(st.sampled_from(FRAGMENTS)))
def test_paper_format_import_is_clean_or_a_clear_error(db, tmp_path, records, markers):
    for i, rec in enumerate(records):
        rec["output"] = "Task 1 output and task 2 input: " + "".join(markers[i:]) + rec.get("output", "")
    path = tmp_path / "coi.json"
    path.write_bytes(encode(json.dumps(records)))
    import_outcome(db, path, format="coi")


# ------------------------------------------------------------------------------ huge and deep, explicit


BIG = "x" * 5_000_000  # several MB on one line


@pytest.mark.parametrize(
    "name, content, fmt",
    [
        ("big.jsonl", json.dumps({"instruction": "Echo it.", "output": BIG}) + "\n", "auto"),
        ("big.json", json.dumps([{"instruction": "Echo it.", "output": BIG}]), "auto"),
        ("big.csv", "instruction,output\nEcho it.," + BIG + "\n", "auto"),
        ("big.tsv", "instruction\toutput\nEcho it.\t" + BIG + "\n", "auto"),
        (
            "big_coi.json",
            json.dumps(
                [
                    {
                        "instruction": "A and then B",
                        "input": BIG,
                        "output": "Task 1 output: a\nTask 2 output: b",
                    }
                ]
            ),
            "coi",
        ),
    ],
)
def test_a_several_megabyte_line_imports(db, tmp_path, name, content, fmt):
    path = tmp_path / name
    path.write_text(content, "utf-8")
    assert import_outcome(db, path, format=fmt) == "ok"


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("deep.jsonl", DEEP_OBJECT, "line 1 is nested too deeply"),
        ("deep.json", DEEP_ARRAY, "nested too deeply"),
        (
            "deeper.jsonl",
            json.dumps({"instruction": "a", "output": "b", "x": json.loads("[" * 200 + "]" * 200)}),
            f"line 1 is nested more than {MAX_DEPTH} levels",
        ),
        (
            "surrogate.jsonl",
            '{"instruction": "ok"}\n{"instruction": "a\\ud800b", "output": "c"}\n',
            "line 2 holds a lone surrogate",
        ),
        ("utf8.csv", b"instruction,output\nok,ok\n\xff,x\n", "byte 25 (line 3)"),
        (
            "bom_inside.jsonl",
            '{"instruction": "a", "output": "b"}\n\ufeff{"instruction": "c", "output": "d"}\n',
            "line 2",
        ),
        ("ragged.csv", "instruction,output\na,b\nc,d,e\n", "row 3 has 3 fields"),
        (
            "types.json",
            json.dumps([{"instruction": 3, "input": "", "output": "Task 1 output: x"}]),
            "must be a string",
        ),
    ],
)
def test_bad_files_name_where_they_are_bad(db, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    fmt = "coi" if name == "types.json" else "auto"
    before = row_counts(db)
    with pytest.raises(CoiError, match=re.escape(expected)):
        import_file(db, path, ImportOptions(format=fmt))
    assert row_counts(db) == before
