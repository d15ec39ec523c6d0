"""Review page speed at 1,000 and 100,000 chains.

For each size it fills a fresh SQLite file (bulk executemany in one transaction, not through the page),
then reports medians of:

* queue_ms: the store functions the Review page calls to open the queue's first page
  (status_counts, filter_choices, queue_count, queue_page with the default filter);
* chain_ms: the store functions the page calls to show one chain (get_chain, composition_info,
  chain_history, chain_reviews), over random chains;
* apptest_ms: a warm rerun of the whole Review page through streamlit's AppTest (queue and chain view
  together, AppTest's polling included);
* naive_ms (the named baseline): loading every open chain with its steps, what a page without
  pagination would do.

Also filtered/sorted queue variants at each size. Target: queue_ms and chain_ms under 300 ms.
Run: .venv/bin/python bench/review.py   (last line: RESULT ...)
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chains_db import fill  # noqa: E402
from store import review as rv  # noqa: E402
from store.chains import chain_ids, get_chain, get_chains  # noqa: E402
from store.db import connect  # noqa: E402


def median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def open_queue(db, f: rv.QueueFilter = rv.QueueFilter()) -> None:
    rv.status_counts(db)
    rv.filter_choices(db)
    rv.queue_count(db, f)
    rv.queue_page(db, f, limit=20)


def open_chain(db, cid: int) -> None:
    chain = get_chain(db, cid)
    rv.composition_info(db, chain.composition_id)
    rv.chain_history(db, cid)
    rv.chain_reviews(db, cid)


def apptest_ms(reps: int) -> float:
    """Warm reruns of the whole Review page in one AppTest session (a browser rerun's work).

    The first run is left out: it pays AppTest's one-off component discovery (about a second).
    The figure includes AppTest's own polling of the script thread.
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "app_pages" / "review.py"), default_timeout=60)
    at.session_state["reviewer"] = "bench"
    at.run()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t0) * 1000)
        assert not at.exception, at.exception
        assert at.get("code"), "the chain view did not render"
    return statistics.median(times)


VARIANTS = {
    "search_rare_word": rv.QueueFilter(search="zisape"),
    "search_common_word": rv.QueueFilter(search="kaloru"),
    "stale": rv.QueueFilter(stale=True),
    "category": rv.QueueFilter(category="category3"),
    "length2": rv.QueueFilter(lengths=(2,)),
    "verdict_no": rv.QueueFilter(verdict="no"),
    "random": rv.QueueFilter(sort="random", seed=7),
    "least_confident": rv.QueueFilter(sort="least_confident"),
    "accepted": rv.QueueFilter(statuses=("accepted",)),
}


def measure(n: int, tmp: Path) -> dict[str, float]:
    path = tmp / f"bench_{n}.db"
    os.environ["COI_DB"] = str(path)
    db = connect(path)
    rng = random.Random(n)
    t0 = time.perf_counter()
    fill(db, n, rng)
    print(f"[{n:>7} chains] filled in {time.perf_counter() - t0:.1f}s", flush=True)
    out = {"queue": median_ms(lambda: open_queue(db), 15)}
    ids = [rng.randrange(1, n + 1) for _ in range(30)]
    it = iter(ids * 2)
    out["chain"] = median_ms(lambda: open_chain(db, next(it)), 30)
    for name, f in VARIANTS.items():
        out[f"queue_{name}"] = median_ms(lambda f=f: open_queue(db, f), 5)
    out["naive"] = median_ms(lambda: get_chains(db, chain_ids(db, statuses=list(rv.OPEN_STATUSES))), 3)
    db.conn.close()
    out["apptest"] = apptest_ms(7)
    for key, value in out.items():
        print(f"[{n:>7} chains] {key:<24} {value:8.1f} ms", flush=True)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="coi-bench-review-") as tmp:
        small = measure(1_000, Path(tmp))
        big = measure(100_000, Path(tmp))
    print(
        f"baseline (load all open chains, no pagination) at 100k: {big['naive']:.0f} ms; "
        f"paginated queue is {big['naive'] / big['queue']:.0f}x faster"
    )
    ok = big["queue"] < 300 and big["chain"] < 300
    print(f"target < 300 ms for queue and chain at 100k: {'met' if ok else 'NOT met'}")
    print(
        f"RESULT queue_ms_1k={small['queue']:.1f} chain_ms_1k={small['chain']:.1f} "
        f"queue_ms_100k={big['queue']:.1f} chain_ms_100k={big['chain']:.1f} "
        f"apptest_ms_1k={small['apptest']:.0f} apptest_ms_100k={big['apptest']:.0f} "
        f"naive_ms_100k={big['naive']:.0f}"
    )


if __name__ == "__main__":
    main()
