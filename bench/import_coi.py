"""Time importing the paper's coi_2.json, and check every paper file's exact round trip.

Baseline (same run): reading the JSON and splitting every record with the shared parser, no database.
Run from the project root: .venv/bin/python bench/import_coi.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.coi_format import parse_record  # noqa: E402
from store.db import connect  # noqa: E402
from store.export import export_chains  # noqa: E402
from store.importers import import_file  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "reference" / "coi_data"
FILES = ["coi_2.json", "coi_3.json", "coi2_test.json", "summarized_coi_2.json"]


def parse_only(path: Path) -> float:
    start = time.perf_counter()
    for record in json.loads(path.read_text("utf-8")):
        parse_record(record)
    return time.perf_counter() - start


def round_trip(path: Path, work: Path) -> tuple[int, int, float, int]:
    """(records, exact matches, import seconds, unclean) for one file into a fresh database."""
    db = connect(work / f"{path.stem}.db")
    start = time.perf_counter()
    report = import_file(db, path)
    seconds = time.perf_counter() - start
    export_chains(db, work / f"{path.stem}.out.json", format="coi", status="all")
    db.conn.close()
    original = json.loads(path.read_text("utf-8"))
    exported = json.loads((work / f"{path.stem}.out.json").read_text("utf-8"))
    exact = sum(a == b for a, b in zip(original, exported)) if len(original) == len(exported) else 0
    return len(original), exact, seconds, report.unclean


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="coi-bench-"))
    baseline = min(parse_only(DATA / "coi_2.json") for _ in range(3))
    results = {}
    for name in FILES:
        n, exact, seconds, unclean = round_trip(DATA / name, work)
        results[name] = (n, exact, seconds)
        print(f"{name}: {exact}/{n} records round-trip exactly, {unclean} unclean, import {seconds:.2f}s")
    n, _, seconds = results["coi_2.json"]
    print(f"baseline (json + parse_record only, coi_2.json): {baseline:.3f}s")
    exact = " ".join(f"exact_{k.removesuffix('.json')}={v[1]}/{v[0]}" for k, v in results.items())
    print(
        f"RESULT import_coi_2_s={seconds:.2f} records_per_s={n / seconds:.0f} "
        f"baseline_parse_s={baseline:.3f} ratio_vs_parse={seconds / baseline:.1f} {exact}"
    )


if __name__ == "__main__":
    main()
