"""A million chains: import a 1,000,000-record JSONL of the paper's CoI chains through the product's
importer (rate and peak RSS of the importing process), then time the Review queue, the chain view,
the Data browse and the version freeze on it, against the same calls at 100,000 chains (same run).

Targets: queue and chain under 300 ms, import peak RSS under 1 GB, queue_growth <= 3.
Run from the project root: .venv/bin/python bench/scale.py   [--n 1000000 --base 100000]
The files and databases live in a temp folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chains_db import CATEGORIES, WEIGHTS, WORDS  # noqa: E402
from bench.data_browse import timed  # noqa: E402
from store import review as rv  # noqa: E402
from store.chains import get_chain  # noqa: E402
from store.db import connect  # noqa: E402
from store.review import QueueFilter  # noqa: E402
from store.versions import SplitSpec, create_version  # noqa: E402

REVIEW_PAGE = 20  # app/app_pages/review.py PAGE_SIZE
DATA_PAGE = 50  # app/app_pages/data.py PAGE_SIZE
ACCEPTED_EVERY = 5  # a fifth of the chains accepted by reviewers, for the version freeze
CUM_WEIGHTS = list(itertools.accumulate(WEIGHTS))  # so each draw is a bisect, not a pass over the weights


def write_jsonl(path: Path, n: int, seed: int = 0) -> None:
    """n paper records (chains of 1-3 steps, a few 4-5), one per line: {instruction, input, output}."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            length = rng.choice([1, 2, 2, 3, 3]) if rng.random() < 0.95 else rng.choice([4, 5])
            # A few thousand distinct task instructions, so compositions repeat as in a real set.
            tasks = [f"Do task {rng.randrange(3000)} ({rng.choice(CATEGORIES)})" for _ in range(length)]
            outputs = [
                " ".join(rng.choices(WORDS, cum_weights=CUM_WEIGHTS, k=10)) + f" {i}" for _ in range(length)
            ]
            if length == 1:
                output = outputs[0]
            else:
                output = "".join(
                    ("" if k == 1 else "\n")
                    + (f"Task {k} output and task {k + 1} input: " if k < length else f"Task {k} output: ")
                    + out
                    for k, out in enumerate(outputs, 1)
                )
            record = {
                "instruction": " and then ".join(tasks),
                "input": " ".join(rng.choices(WORDS, cum_weights=CUM_WEIGHTS, k=16)),
                "output": output,
            }
            f.write(json.dumps(record) + "\n")


def child_import(db_path: str, path: str) -> None:
    """Runs in its own process: import, then print the report and this process's peak RSS as JSON."""
    import resource

    from store.importers import import_file

    db = connect(db_path)
    start = time.perf_counter()
    report = import_file(db, path)
    seconds = time.perf_counter() - start
    db.conn.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"imported": report.imported, "seconds": seconds, "peak_mb": peak_kb / 1024}))


def import_in_child(db_path: Path, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child-import", str(db_path), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def accept_some(db) -> None:
    """As if reviewers had accepted a fifth of the chains (what a freeze selects)."""
    with db.atomic():
        db.execute(f"UPDATE chains SET status = 'accepted' WHERE id % {ACCEPTED_EVERY} = 0")
    db.execute("ANALYZE")


def best_ms(fn, repeat: int = 3) -> float:
    return min(timed(fn) for _ in range(repeat)) * 1000


def measure(db, n: int) -> dict[str, float]:
    """Milliseconds of the store calls the Review and Data pages make, and the freeze in seconds."""
    queue = QueueFilter()  # the Review page's default: open statuses, newest first

    def review_queue(f: QueueFilter = queue, offset: int = 0) -> None:
        rv.queue_count(db, f)
        rv.queue_page(db, f, offset=offset, limit=REVIEW_PAGE)

    def chain_view(chain_id: int) -> None:  # what show_chain loads
        chain = get_chain(db, chain_id)
        rv.composition_info(db, chain.composition_id)
        rv.chain_history(db, chain_id)
        rv.chain_reviews(db, chain_id)

    every = QueueFilter(statuses=(), sort="oldest")  # the Data page's chain browser, all statuses

    def data_browse() -> None:
        rv.queue_count(db, every)
        rv.queue_page(db, every, offset=n // 2, limit=DATA_PAGE)

    times = {
        "queue": best_ms(review_queue),
        "queue_deep": best_ms(lambda: review_queue(offset=n // 4)),
        "queue_risk": best_ms(lambda: review_queue(QueueFilter(sort="risk"))),
        "queue_random": best_ms(lambda: review_queue(QueueFilter(sort="random", seed=3))),
        "queue_least_confident": best_ms(lambda: review_queue(QueueFilter(sort="least_confident"))),
        "queue_length_3": best_ms(lambda: review_queue(QueueFilter(lengths=(3,)))),
        "queue_search": best_ms(lambda: review_queue(QueueFilter(search="kakaka lololo"))),
        "chain": max(best_ms(lambda cid=cid: chain_view(cid)) for cid in (1, n // 2, n)),
        "data_browse": best_ms(data_browse),
    }
    times["freeze_s"] = timed(lambda: create_version(db, SplitSpec(), name=f"bench {n}"))
    return times


def build(work: Path, n: int) -> tuple[object, dict]:
    path = work / f"chains_{n}.jsonl"
    took = timed(lambda: write_jsonl(path, n))
    print(f"wrote {n} records ({path.stat().st_size / 2**20:.0f} MiB) in {took:.0f}s", flush=True)
    db_path = work / f"chains_{n}.db"
    stats = import_in_child(db_path, path)
    path.unlink()
    assert stats["imported"] == n, stats
    print(
        f"imported {n} chains in {stats['seconds']:.0f}s ({n / stats['seconds']:.0f}/s), "
        f"peak RSS {stats['peak_mb']:.0f} MB",
        flush=True,
    )
    db = connect(db_path)
    accept_some(db)
    return db, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=100_000)
    parser.add_argument("--child-import", nargs=2, metavar=("DB", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(*args.child_import)
        return
    work = Path(tempfile.mkdtemp(prefix="coi-scale-"))
    try:
        results = {}
        for n in (args.base, args.n):
            db, stats = build(work, n)
            times = measure(db, n)
            db.conn.close()
            results[n] = (stats, times)
            print(f"at {n}: " + " ".join(f"{k}={v:.1f}" for k, v in times.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (_, base), (big_stats, big) = results[args.base], results[args.n]
    for name in base:
        unit = "s" if name.endswith("_s") else "ms"
        print(f"{name}: {base[name]:.1f} {unit} at {args.base}, {big[name]:.1f} {unit} at {args.n}")
    print(
        f"RESULT import_rps={args.n / big_stats['seconds']:.0f} import_peak_mb={big_stats['peak_mb']:.0f} "
        f"queue_ms_1m={big['queue']:.1f} chain_ms_1m={big['chain']:.1f} freeze_s_1m={big['freeze_s']:.1f} "
        f"queue_growth={big['queue'] / base['queue']:.2f}"
    )


if __name__ == "__main__":
    main()
