"""Shared bench fixtures: a SQLite file filled with many review-like chains, fast (bulk executemany).

Used by bench/review.py (queue speed) and bench/load_harness.py (concurrent reviewers).
"""

from __future__ import annotations

import random

from store.db import utcnow

SYLLABLES = "ka lo mi ne ru ta vo zi pe sa do gu".split()
# A 1,728-word made-up vocabulary drawn with Zipf-like weights, so text search is as selective as on prose.
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES]
WEIGHTS = [1 / (rank + 1) for rank in range(len(WORDS))]
CATEGORIES = [f"category{i}" for i in range(13)]


def fill(db, n: int, rng: random.Random) -> None:
    """n chains of lengths 1-5 (mostly 1-3) with steps, compositions and a few stale steps."""
    now = utcnow()
    n_comp = max(1, n // 3)
    comps = [
        (
            i + 1,
            f"bench:{i}",
            1 + i % 3,
            rng.choice(["yes", "yes", "no"]),
            "because",
            rng.random(),
            "bench",
            now,
        )
        for i in range(n_comp)
    ]
    chains, steps = [], []
    for cid in range(1, n + 1):
        comp = comps[rng.randrange(n_comp)]
        length = comp[2] if rng.random() < 0.9 else rng.choice([4, 5])
        status = rng.choices(["proposed", "needs_review", "accepted", "rejected"], [70, 5, 15, 10])[0]
        chains.append((cid, comp[0], f"h{cid}", length, status, rng.choice(CATEGORIES), now, now))
        text = " ".join(rng.choices(WORDS, WEIGHTS, k=12))
        for k in range(1, length + 1):
            stale = int(k > 1 and rng.random() < 0.01)
            steps.append((cid, k, f"Do task {cid % 997} step {k}", text, f"{text} {k}", "llm", stale))
    with db.atomic():
        db.conn.executemany(
            """INSERT INTO compositions (id, key, length, verdict, reason, confidence, source, created_at)
               VALUES (?,?,?,?,?,?,?,?)""",
            comps,
        )
        db.conn.executemany(
            """INSERT INTO chains (id, composition_id, content_hash, length, status, category, source, created_at,
               updated_at) VALUES (?,?,?,?,?,?,'bench',?,?)""",
            chains,
        )
        db.conn.executemany(
            "INSERT INTO steps (chain_id, position, instruction, input, output, origin, stale) VALUES (?,?,?,?,?,?,?)",
            steps,
        )
    db.execute("ANALYZE")
