"""Bench: 200 chains against the scripted server with 100 ms latency per call.

Baseline (same run): the same batch sent one call at a time (concurrency 1) into an empty database, so
nothing is cached. Ours: concurrency 8 into another empty database. Then the identical batch once more
on our database: the number of requests it makes (target 0, everything comes from the cache).

Last line: ``RESULT speedup=<ratio> rerun_requests=<n>``.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # this file is bench/pipeline.py: keep it from shadowing the pipeline package

from pipeline.llm import LLMClient, LLMConfig  # noqa: E402
from pipeline.run import BatchConfig, run_batch  # noqa: E402
from store.chains import count_chains  # noqa: E402
from store.db import connect  # noqa: E402
from tests.support.llm_server import ScriptedLLMServer  # noqa: E402
from tests.support.tasks import insert_test_tasks, pipeline_responder  # noqa: E402

N_CHAINS = 200
LATENCY_S = 0.1
BATCH = BatchConfig(n_chains=N_CHAINS, lengths=(2, 3), seed=0, pair_factor=1.5)


def one_run(server: ScriptedLLMServer, db_path: Path, concurrency: int) -> tuple[float, int, int]:
    """Run the batch; return (seconds, requests the server received, chains in the DB)."""
    db = connect(db_path)
    if count_chains(db) == 0 and not db.execute("SELECT count(*) FROM tasks").fetchone()[0]:
        insert_test_tasks(db, 40)
    cfg = LLMConfig(base_url=server.base_url, model="scripted-model", concurrency=concurrency)
    client = LLMClient(cfg, db_path, rng=random.Random(0))
    before = server.request_count
    started = time.perf_counter()
    report = run_batch(db, client, BATCH)
    seconds = time.perf_counter() - started
    chains = count_chains(db)
    db.conn.close()
    if report.errors:
        print(f"  ({len(report.errors)} item errors, first: {report.errors[0]})")
    return seconds, server.request_count - before, chains


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        ScriptedLLMServer(pipeline_responder, latency=LATENCY_S) as server,
    ):
        base_s, base_req, base_chains = one_run(server, Path(tmp) / "baseline.db", concurrency=1)
        print(
            f"baseline (sequential, empty cache): {base_s:.1f} s, {base_req} requests, {base_chains} chains"
        )
        ours_s, ours_req, ours_chains = one_run(server, Path(tmp) / "ours.db", concurrency=8)
        print(
            f"pipeline (concurrency 8, cache):     {ours_s:.1f} s, {ours_req} requests, {ours_chains} chains"
        )
        again_s, again_req, again_chains = one_run(server, Path(tmp) / "ours.db", concurrency=8)
        print(
            f"identical re-run:                    {again_s:.2f} s, {again_req} requests, {again_chains} chains"
        )
    print(f"RESULT speedup={base_s / ours_s:.2f} rerun_requests={again_req}")


if __name__ == "__main__":
    main()
