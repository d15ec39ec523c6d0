"""Streaming import: the same records as reading the whole file, bounded reads, late bad records that
import nothing, the size limit from the environment, and the progress callback."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

import store.reading as reading
from store.chains import chain_ids, get_chains
from store.errors import CoiError
from store.importers import ImportOptions, import_file, preview
from store.reading import iter_json_array, iter_jsonl
from store.tasks import count_tasks
from tests.support.probes import row_counts

# Text that a chunk boundary can cut badly: multi-byte UTF-8, escapes, U+2028, numbers, nesting.
TRICKY = [
    {"instruction": "Übersetze ins Deutsche. 🐈", "input": "naïve café", "output": "Task 1 output: ok"},
    {
        "instruction": 'quote " and \\ backslash \u2028 sep',
        "output": "Task 1 output and task 2 input: a\nTask 2 output: b",
    },
    {
        "instruction": "numbers",
        "output": "x",
        "n": 123456789,
        "f": -1.5e-7,
        "list": [1, [2, [3]], {"k": None}],
    },
    {"instruction": "日本語のテキスト" * 20, "input": "", "output": "τέλος", "flag": True},
]
PLAIN = [{"instruction": f"Say {i}.", "input": "", "output": f"{i} " * 5} for i in range(40)]


def chain_record(i: int, **extra) -> dict:
    return {
        "instruction": f"Step one {i} and then Step two {i}",
        "input": f"input {i}",
        "output": f"Task 1 output and task 2 input: a{i}\nTask 2 output: b{i}",
        **extra,
    }


def write_jsonl(path: Path, rows: list[dict], end: str = "\n") -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + end for r in rows), "utf-8")
    return path


def write_json(path: Path, rows: list[dict], indent: int | None = 2) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=indent), "utf-8")
    return path


def db_content(db) -> list[tuple]:
    return [
        (c.status, c.instructions, c.input, c.outputs, c.meta) for c in get_chains(db, chain_ids(db))
    ] + list(db.execute("SELECT instruction, input, output, category FROM tasks ORDER BY id"))


# ---------------------------------------------------------------- same records as a whole-file read


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, None])
def test_json_array_streams_the_same_records_as_json_loads_at_any_chunk_size(tmp_path, chunk):
    path = write_json(tmp_path / "a.json", TRICKY * 3)
    expected = [(f"record {i}", r) for i, r in enumerate(json.loads(path.read_text("utf-8")), 1)]
    assert list(iter_json_array(path, chunk_size=chunk)) == expected
    compact = write_json(tmp_path / "b.json", TRICKY, indent=None)
    assert [r for _, r in iter_json_array(compact, chunk_size=chunk)] == TRICKY


@pytest.mark.parametrize("chunk", [1, 5, 64, None])
def test_jsonl_streams_the_same_records_as_reading_each_line(tmp_path, chunk):
    path = tmp_path / "t.jsonl"
    text = "\ufeff" + "\r\n\n".join(json.dumps(r, ensure_ascii=False) for r in TRICKY)  # BOM, CRLF, blanks
    path.write_text(text, "utf-8")
    expected = [(f"line {2 * i + 1}", r) for i, r in enumerate(TRICKY)]
    assert list(iter_jsonl(path, chunk_size=chunk)) == expected


def test_small_chunks_import_exactly_what_one_big_read_imports(tmp_path, monkeypatch):
    """The whole pipeline (check pass, write pass) at a 7-byte window equals the default window."""
    from store.db import connect

    files = [
        write_json(tmp_path / "chains.json", [chain_record(i) for i in range(30)] + TRICKY[:2]),
        write_jsonl(tmp_path / "tasks.jsonl", [{**r, "output": f"plain {i}"} for i, r in enumerate(TRICKY)]),
    ]
    results = {}
    for chunk in (7, reading.CHUNK_SIZE):
        monkeypatch.setattr(reading, "CHUNK_SIZE", chunk)
        db = connect(tmp_path / f"{chunk}.db")
        reports = [import_file(db, f) for f in files]
        results[chunk] = ([(r.format, r.kind, r.imported) for r in reports], db_content(db))
        db.conn.close()
    assert results[7] == results[reading.CHUNK_SIZE]
    assert results[7][0] == [("coi", "chains", 32), ("jsonl", "tasks", 4)]


@pytest.mark.parametrize("chunk", [3, 50, None])
def test_json_syntax_error_is_named_where_json_loads_names_it(tmp_path, chunk):
    rows = [chain_record(i) for i in range(40)]
    text = json.dumps(rows, indent=1)
    at = text.index('"input 30"')
    broken = text[:at] + "1 " + text[at:]  # a stray value, far in: "input": 1 "input 30"
    (tmp_path / "bad.json").write_text(broken, "utf-8")
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(broken)
    where = f"line {reference.value.lineno}, column {reference.value.colno}"
    with pytest.raises(CoiError, match=where):
        list(iter_json_array(tmp_path / "bad.json", chunk_size=chunk))


def test_non_utf8_byte_late_in_a_json_array_names_the_file_byte_and_line(tmp_path):
    body = json.dumps([chain_record(i) for i in range(200)], indent=1).encode()
    at = len(body) - 300
    path = tmp_path / "bad.json"
    path.write_bytes(b"\xef\xbb\xbf" + body[:at] + b"\xff" + body[at:])
    line = body.count(b"\n", 0, at) + 1
    with pytest.raises(CoiError, match=rf"byte {at + 3} \(line {line}\) is b'\\xff'"):
        list(iter_json_array(path, chunk_size=64))


# ---------------------------------------------------------------- bounded memory


def test_the_importer_reads_in_chunks_and_never_the_whole_file(db, tmp_path, monkeypatch):
    files = [
        write_jsonl(tmp_path / "big.jsonl", [chain_record(i) for i in range(3000)]),
        write_json(tmp_path / "big.json", [chain_record(i) for i in range(3000, 6000)]),
    ]
    assert all(f.stat().st_size > 100 * 4096 for f in files)
    reads: list[int] = []
    real_open = Path.open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def whole(*args, **kwargs):
        raise AssertionError("read the whole file")

    monkeypatch.setattr(reading, "CHUNK_SIZE", 4096)
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Spy(real_open(self, *a, **k)))
    monkeypatch.setattr(Path, "read_bytes", whole)
    monkeypatch.setattr(Path, "read_text", whole)
    reports = [import_file(db, f) for f in files]
    assert [(r.kind, r.imported) for r in reports] == [("chains", 3000), ("chains", 3000)]
    assert reads and all(0 < n <= 4096 for n in reads), max(reads)


@pytest.mark.parametrize("reader, name", [(iter_jsonl, "m.jsonl"), (iter_json_array, "m.json")])
def test_streaming_memory_stays_near_one_chunk_not_the_file(tmp_path, reader, name):
    rows = [chain_record(i, pad="p" * 200) for i in range(12_000)]
    path = (write_jsonl if name.endswith("jsonl") else write_json)(tmp_path / name, rows)
    size = path.stat().st_size
    assert size > 4_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in reader(path, chunk_size=64 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == len(rows)
    assert peak < size / 8, f"peak {peak} bytes for a {size}-byte file"


# ---------------------------------------------------------------- a late bad record imports nothing


def test_bad_json_line_5000_of_6000_names_the_line_and_imports_nothing(db, tmp_path):
    import_file(db, write_jsonl(tmp_path / "seed.jsonl", TRICKY[2:]))
    lines = [json.dumps(chain_record(i)) for i in range(6000)]
    lines[4999] = lines[4999][:-5]  # cut short
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    before = row_counts(db)
    with pytest.raises(CoiError, match="late.jsonl: line 5000 is not valid JSON"):
        import_file(db, path)
    assert row_counts(db) == before


def test_record_5000_failing_after_two_written_batches_rolls_everything_back(db, tmp_path):
    """A record that parses but is no CoI record fails in the write pass, after 4,000 chains went in."""
    import_file(db, write_jsonl(tmp_path / "seed.jsonl", TRICKY[2:]))
    rows = [chain_record(i) for i in range(6000)]
    rows[4999] = {**rows[4999], "instruction": ["not", "text"]}
    path = write_json(tmp_path / "late.json", rows, indent=None)
    before = row_counts(db)
    with pytest.raises(CoiError, match="record 5000: field 'instruction' must be a string"):
        import_file(db, path)
    assert row_counts(db) == before
    assert db.execute("SELECT count(*) FROM sqlite_temp_master WHERE name = 'import_repeats'").fetchone() == (
        0,
    )


# ---------------------------------------------------------------- the format is decided by every record


def test_a_step_marker_only_in_the_last_record_makes_the_file_coi(db, tmp_path):
    rows = [{"instruction": f"Say {i}.", "input": "", "output": f"{i}", "note": "x"} for i in range(5000)]
    rows.append(chain_record(5000))
    report = import_file(db, write_jsonl(tmp_path / "late_marker.jsonl", rows))
    assert (report.format, report.kind, report.imported) == ("coi", "chains", 5001)
    assert preview(tmp_path / "late_marker.jsonl").format == "coi"


def test_repeats_far_apart_in_a_file_both_import_and_a_second_import_adds_nothing(db, tmp_path):
    rows = [chain_record(i) for i in range(4500)] + [chain_record(7), chain_record(7)]
    path = write_jsonl(tmp_path / "rep.jsonl", rows)
    report = import_file(db, path)
    assert (report.imported, report.repeats_in_file) == (4502, 2)
    again = import_file(db, path)
    assert (again.imported, again.duplicates) == (0, 4502)


# ---------------------------------------------------------------- the size limit and the progress callback


def test_size_limit_comes_from_the_environment_with_a_4_gib_default(db, tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "t.jsonl", PLAIN)
    monkeypatch.delenv("COI_IMPORT_MAX_MB", raising=False)
    assert ImportOptions().max_bytes == 4 * 1024**3
    monkeypatch.setenv("COI_IMPORT_MAX_MB", "0.002")
    assert ImportOptions().max_bytes == int(0.002 * 1024 * 1024)
    before = row_counts(db)
    with pytest.raises(CoiError, match=r"over the 0.002 MiB limit") as info:
        import_file(db, path)
    assert "COI_IMPORT_MAX_MB" in info.value.hint
    with pytest.raises(CoiError, match="over the 0.002 MiB limit"):
        preview(path)
    assert row_counts(db) == before
    assert import_file(db, path, ImportOptions(max_bytes=10**6)).imported == len(PLAIN)  # the option wins


def test_cli_max_mb_flag_and_env_limit(tmp_path, monkeypatch, capsys):
    from cli import main

    path = write_jsonl(tmp_path / "t.jsonl", PLAIN)
    db = str(tmp_path / "cli.db")
    monkeypatch.setenv("COI_IMPORT_MAX_MB", "0.002")
    assert main(["import", str(path), "--db", db]) != 0
    assert "over the 0.002 MiB limit" in capsys.readouterr().err
    assert main(["import", str(path), "--db", db, "--max-mb", "1"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("tasks: 40 imported") and out.err == ""  # no progress bar off a terminal


@pytest.mark.parametrize("name", ["p.jsonl", "p.json"])
def test_progress_rises_to_the_total(db, tmp_path, name):
    rows = [chain_record(i) for i in range(3000)]
    path = (write_jsonl if name.endswith("jsonl") else write_json)(tmp_path / name, rows)
    calls: list[tuple[int, int]] = []
    import_file(db, path, on_progress=lambda done, total: calls.append((done, total)))
    total = 2 * path.stat().st_size  # read twice: the check pass and the write pass
    assert len(calls) > 10 and {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[-1] == total
    assert any(d < total / 2 for d in done) and any(d > total / 2 for d in done[:-1])


def test_progress_for_an_in_memory_csv_ends_at_its_size(db, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("instruction,output\n" + "".join(f"Say {i}.,{i}\n" for i in range(50)), "utf-8")
    calls: list[tuple[int, int]] = []
    import_file(db, path, on_progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (path.stat().st_size, path.stat().st_size)
    assert count_tasks(db) == 50
