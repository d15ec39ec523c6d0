"""ROUGE-L throughput: eval.rouge vs rouge-score's RougeScorer(["rougeL"]) on the same 5,000 pairs.

The pairs come from the paper's data (../shared/reference/coi_data): a record's step outputs against
another record's step outputs, and outputs against a perturbed copy (words dropped and swapped).
Each scorer is timed over all pairs, best of 3 interleaved passes; each of our passes starts cold
(a new scorer, so an empty vocabulary, and an empty stem cache). Run from the project root:
``.venv/bin/python bench/rouge.py``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval import rouge as fast  # noqa: E402
from store.coi_format import parse_record  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "reference" / "coi_data"
N_PAIRS = 5000


def perturb(text: str, rng: random.Random) -> str:
    words = text.split()
    words = [w for w in words if rng.random() > 0.2]
    for _ in range(len(words) // 10):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def make_pairs(n: int = N_PAIRS, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    records = []
    for name in ("coi_2.json", "coi_3.json", "coi2_test.json"):
        records += json.loads((DATA / name).read_text())
    steps = [parse_record(r).outputs for r in records]
    pairs = []
    while len(pairs) < n:
        a, b = rng.choice(steps), rng.choice(steps)
        if rng.random() < 0.5:
            pairs.append((rng.choice(a), rng.choice(b)))
        else:
            ref = rng.choice(a)
            pairs.append((ref, perturb(ref, rng)))
    return pairs


def one_pass(make_fn, pairs) -> tuple[float, list[float]]:
    fn = make_fn()
    start = time.perf_counter()
    scores = [fn(t, p) for t, p in pairs]
    return time.perf_counter() - start, scores


def bench(pairs, use_stemmer: bool, repeats: int = 3) -> tuple[float, float]:
    """Best of ``repeats`` interleaved passes of each scorer (the CPU is shared: the minimum is the
    least disturbed pass). Every pass of ours starts cold: a new scorer and an empty stem cache."""
    from rouge_score import rouge_scorer

    def make_ref():
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
        return lambda t, p: scorer.score(t, p)["rougeL"].fmeasure

    def make_mine():
        fast._stem.cache_clear()
        fast._valid.cache_clear()
        return fast.RougeL(use_stemmer).fmeasure

    t_ref = t_mine = float("inf")
    for _ in range(repeats):
        t, s_ref = one_pass(make_ref, pairs)
        t_ref = min(t_ref, t)
        t, s_mine = one_pass(make_mine, pairs)
        t_mine = min(t_mine, t)
    diff = max(abs(a - b) for a, b in zip(s_ref, s_mine))
    ratio = t_ref / t_mine
    label = "stemmer" if use_stemmer else "no stemmer"
    print(
        f"[{label}] rouge-score: {len(pairs) / t_ref:,.0f} pairs/s   eval.rouge: {len(pairs) / t_mine:,.0f} pairs/s"
    )
    print(f"[{label}] ratio {ratio:.1f}x, max |diff| {diff}")
    return ratio, diff


def main() -> None:
    pairs = make_pairs()
    print(
        f"{len(pairs)} pairs from the paper's data, mean {sum(len(t.split()) for t, _ in pairs) / len(pairs):.0f} words"
    )
    ratio, diff = bench(pairs, use_stemmer=False)
    ratio_stem, diff_stem = bench(pairs, use_stemmer=True)
    print(f"RESULT ratio={ratio:.1f} max_abs_diff={max(diff, diff_stem)} ratio_stemmer={ratio_stem:.1f}")


if __name__ == "__main__":
    main()
