"""Reviewer load: 4 concurrent sessions saving step edits against 100,000 chains, then count lost edits.

Phase 1 (the figure the issue asks for): 4 reviewer sessions, each its own process, drive the Review
page through streamlit's AppTest (search #id, edit a step, Save) for ``--seconds``. Save latency is
the Save click's whole page run. Phase 2 (the named baseline, and a heavier load): 4 processes call
the same store function the page calls (store.review.save_step_output) directly, without Streamlit.
Both pick chains at random from all 100k plus a hot set of 10 that every session edits, so
optimistic-lock conflicts happen; a conflict is shown to the reviewer, who reloads and redoes the
edit (counted as a conflict and a retry, not a lost edit).

After each phase the audit (bench/load_harness.py) checks every acknowledged save: exactly one edits
row; no two acknowledged saves of one chain at one version; each step's final text is its last
acknowledged text; the next step's input follows.

Run: .venv/bin/python bench/load.py [--seconds 60] [--chains 100000]
Last line: RESULT lost_edits=<n> p50_ms=<x> p95_ms=<x> ... (p50/p95 of the page phase)
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chains_db import fill  # noqa: E402
from bench.load_harness import LoadReport, hot_set, run_load  # noqa: E402
from store.db import connect  # noqa: E402

SESSIONS = 4
HOT = 10


def build(path: Path, n: int) -> None:
    t0 = time.perf_counter()
    db = connect(path)
    fill(db, n, random.Random(n))
    db.conn.close()
    print(f"built {n:,} chains in {time.perf_counter() - t0:.1f}s", flush=True)


def show(name: str, report: LoadReport) -> None:
    lat, a = report.latency(), report.audit
    print(
        f"[{name}] {SESSIONS} sessions x {report.seconds:.0f}s: saves={report.saves} "
        f"({report.saves / report.seconds:.1f}/s) conflicts={report.total('conflicts')} "
        f"retries={report.total('retries')} gave_up={report.total('gave_up')} errors={len(report.errors())}",
        flush=True,
    )
    print(
        f"[{name}] save latency ms: p50={lat['p50']:.1f} p95={lat['p95']:.1f} max={lat['max']:.1f}",
        flush=True,
    )
    print(
        f"[{name}] audit: acks={a.acks} missing_rows={a.missing_rows} duplicate_rows={a.duplicate_rows} "
        f"same_version={a.same_version} overwritten={a.overwritten} broken_links={a.broken_links} "
        f"unacknowledged_rows={a.unacknowledged_rows} -> lost_edits={a.lost_edits}",
        flush=True,
    )
    for err in report.errors()[:5]:
        print(f"[{name}] error: {err}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="4 concurrent reviewers saving edits; lost edits counted")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--chains", type=int, default=100_000, help="chains in the database")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coi-bench-load-") as tmp:
        path = Path(tmp) / "load.db"
        build(path, args.chains)
        hot = hot_set(args.chains, HOT)
        common = dict(seconds=args.seconds, n_chains=args.chains, hot=hot, p_hot=0.2, workdir=tmp)
        page = run_load(path, ["apptest"] * SESSIONS, think_ms=50, seed=1, run="page", **common)
        show("page (AppTest)", page)
        store = run_load(path, ["store"] * SESSIONS, think_ms=5, seed=2, run="store", **common)
        show("store function (baseline)", store)
    lost = page.audit.lost_edits + store.audit.lost_edits
    p, s = page.latency(), store.latency()
    print(f"page save vs the store function alone: {p['p50'] / s['p50']:.1f}x the p50 latency")
    print(f"whole bench: {time.perf_counter() - t0:.0f}s")
    print(
        f"RESULT lost_edits={lost} p50_ms={p['p50']:.1f} p95_ms={p['p95']:.1f} max_ms={p['max']:.1f} "
        f"saves={page.saves} conflicts={page.total('conflicts')} retries={page.total('retries')} "
        f"store_saves={store.saves} store_conflicts={store.total('conflicts')} "
        f"store_p50_ms={s['p50']:.1f} store_p95_ms={s['p95']:.1f} errors={len(page.errors()) + len(store.errors())}"
    )


if __name__ == "__main__":
    main()
