"""CSV export: the csv module reads back what was exported; formula-like cells are escaped (OWASP)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from store.chains import insert_chain
from store.errors import CoiError
from store.export import csv_cell, export_chains
from store.models import Chain, Step
from tests.support.faults import fill_after

PAYLOADS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1,2)", "\t=1", "\r=1", '=HYPERLINK("http://x")']


def add_chain(db, outputs: list[str], input_text: str = "the input", status: str = "accepted") -> int:
    inputs = [input_text, *outputs[:-1]]
    steps = [Step(k, f"instruction {k}", inputs[k - 1], out) for k, out in enumerate(outputs, 1)]
    return insert_chain(db, Chain(steps=steps, status=status, source="test"))[0]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_formula_prefixes_get_a_leading_quote_and_plain_text_does_not():
    for payload in PAYLOADS:
        assert csv_cell(payload) == "'" + payload
    for safe in ["plain", " =not first", "'already", "", "a=b", "1-2"]:
        assert csv_cell(safe) == safe
    assert csv_cell(-3) == -3 and csv_cell(None) is None
    assert csv_cell(["=x"]) == '["=x"]'  # lists become JSON text, which starts with [ (safe)


def test_csv_export_reads_back_with_the_csv_module(db, tmp_path):
    add_chain(db, ["first, with a comma", 'second "quoted"\nand a newline'], input_text="x\r\ny")
    add_chain(db, ["one step only"])
    add_chain(db, ["not exported"], status="rejected")
    report = export_chains(db, tmp_path / "out.csv", format="csv")
    rows = read_rows(tmp_path / "out.csv")
    assert report.count == 2 and len(rows) == 2
    assert list(rows[0]) == ["instruction", "input", "output"]
    assert rows[0]["input"] == "x\r\ny"
    assert (
        "first, with a comma" in rows[0]["output"] and 'second "quoted"\nand a newline' in rows[0]["output"]
    )
    assert rows[1]["instruction"] == "instruction 1"


def test_injection_payloads_are_escaped_in_every_column(db, tmp_path):
    for payload in PAYLOADS:
        add_chain(db, [payload], input_text=payload)
    export_chains(db, tmp_path / "out.csv", format="csv", with_meta=True)
    rows = read_rows(tmp_path / "out.csv")
    assert [r["input"] for r in rows] == ["'" + p for p in PAYLOADS]
    assert all(r["output"] == "'" + p for r, p in zip(rows, PAYLOADS))  # one-step chains: output is as is
    assert {r["status"] for r in rows} == {"accepted"}
    cells = [cell for r in rows for cell in r.values()]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_cli_export_format_csv(db, db_path, tmp_path):
    add_chain(db, ["=1+1"])
    out = tmp_path / "cli.csv"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "export", str(out), "--format", "csv", "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "[csv]" in done.stdout
    assert read_rows(out)[0]["output"] == "'=1+1"


def test_full_disk_during_a_csv_export_keeps_the_old_file(db, tmp_path, monkeypatch):
    for k in range(50):
        add_chain(db, [f"output number {k} " * 5])
    path = tmp_path / "out" / "chains.csv"
    path.parent.mkdir()
    path.write_text("previous export\n")
    fill_after(monkeypatch, 1000)
    with pytest.raises(CoiError, match="disk is full"):
        export_chains(db, path, format="csv")
    assert path.read_text() == "previous export\n"
    assert [p.name for p in path.parent.iterdir()] == ["chains.csv"]  # no temp left beside it
