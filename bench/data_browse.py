"""Data page queries (the ones app/app_pages/data.py makes) on 100,000 tasks and 100,000 chains: one page, a search, counts, the overview.

Baseline (same run): loading the whole tasks table, which is what a page must never do.
Run from the project root: .venv/bin/python bench/data_browse.py   (builds the DB once in a temp folder)
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.chains import insert_chain  # noqa: E402
from store.db import connect  # noqa: E402
from store.models import Chain, Step, Task  # noqa: E402
from store.review import QueueFilter, queue_count, queue_page  # noqa: E402
from store.stats import collect_stats  # noqa: E402
from store.tasks import count_search_tasks, insert_tasks, list_tasks, search_tasks  # noqa: E402

N = 100_000


def build(db) -> None:
    rnd = random.Random(0)
    words = [f"w{i}" for i in range(5000)]

    def text(k: int) -> str:
        return " ".join(rnd.choices(words, k=k))

    tasks = [
        Task(text(15), text(60), text(30), category=f"cat{i % 20}", source=f"src{i % 3}") for i in range(N)
    ]
    insert_tasks(db, tasks)
    statuses = ["proposed", "accepted", "needs_review", "rejected"]
    with db.atomic():
        for i in range(N):
            steps = [Step(1, text(8), text(40), text(20)), Step(2, text(8), "", text(20))]
            insert_chain(db, Chain(steps=steps, status=statuses[i % 4], source="bench"))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    db = connect(Path(tempfile.mkdtemp(prefix="coi-bench-")) / "big.db")
    print(f"built {N} tasks and {N} chains in {timed(lambda: build(db)):.0f}s")
    every = QueueFilter(statuses=(), sort="oldest")  # the Data page's "all statuses"
    accepted = QueueFilter(statuses=("accepted",), sort="oldest")
    found = QueueFilter(statuses=every.statuses, search="w42 w7", sort="oldest")
    cases = {
        "tasks_first_page": lambda: list_tasks(db, limit=50),
        "tasks_last_page": lambda: list_tasks(db, limit=50, offset=N - 50),
        "tasks_search_page": lambda: (search_tasks(db, "w4242", limit=50), count_search_tasks(db, "w4242")),
        "tasks_search_common": lambda: (search_tasks(db, "w42", limit=50), count_search_tasks(db, "w42")),
        "chains_page": lambda: (queue_page(db, every, limit=50, offset=N // 2), queue_count(db, every)),
        "chains_page_accepted": lambda: (
            queue_page(db, accepted, limit=50, offset=N // 8),
            queue_count(db, accepted),
        ),
        "chains_search": lambda: (queue_page(db, found, limit=50), queue_count(db, found)),
        "overview": lambda: collect_stats(db),
    }
    baseline = timed(lambda: list(db.query("SELECT * FROM tasks")))
    times = {name: min(timed(fn) for _ in range(3)) for name, fn in cases.items()}
    for name, seconds in times.items():
        print(f"{name}: {seconds * 1000:.0f} ms")
    print(f"baseline (load all {N} tasks): {baseline * 1000:.0f} ms")
    worst = max(times.values())
    parts = " ".join(f"{k}_ms={v * 1000:.0f}" for k, v in times.items())
    print(
        f"RESULT {parts} baseline_full_load_ms={baseline * 1000:.0f} worst_vs_full_load={worst / baseline:.2f}"
    )


if __name__ == "__main__":
    main()
