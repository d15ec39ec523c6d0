"""Batched generation (batch 8, left padding) vs one prompt at a time, same prompts, CPU, default Gemma.

16 CoI prompts from the paper's test file (87-144 prompt tokens), 16 new tokens each, greedy. Both sides use
``eval.predict.Generator`` with the same model; only ``batch_size`` differs. Run from the project
root: ``.venv/bin/python bench/generate.py``.

With prompts this long and outputs this short, the prefill (compute-bound on a CPU, so batching
cannot speed it up) is a large share of the work; batching pays off on the decode steps, which are
memory-bound (every step of a single prompt reads all the weights). Longer outputs raise the ratio.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the target is CPU generation

from eval.predict import Generator  # noqa: E402
from store.coi_format import chain_prompt, parse_record  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "reference" / "coi_data" / "coi2_test.json"
N_PROMPTS, BATCH = 16, 8
# Short outputs: 16 new tokens is the headline; 32 shows how the ratio grows with the decode share.
NEW_TOKENS = (16, 32)


def prompts(n: int = N_PROMPTS) -> list[str]:
    records = json.loads(DATA.read_text())[:n]
    return [chain_prompt(parse_record(r).instructions, r["input"]) for r in records]


def timed(gen: Generator, items: list[str]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    texts = [g.text for g in gen.generate(items)]
    return time.perf_counter() - start, texts


def main() -> None:
    import torch

    from models.registry import load_causal_lm

    model, tokenizer = load_causal_lm()
    model.eval()
    items = prompts()
    Generator(model, tokenizer, batch_size=2, max_new_tokens=2).generate(items[:2])  # warm-up
    print(f"{len(items)} prompts, greedy, CPU, {torch.get_num_threads()} threads")
    ratios = [compare(model, tokenizer, items, n) for n in NEW_TOKENS]
    extra = " ".join(f"ratio_{n}={r:.2f}" for n, r in zip(NEW_TOKENS[1:], ratios[1:]))
    print(f"RESULT ratio={ratios[0]:.2f} {extra}")


def compare(model, tokenizer, items: list[str], new_tokens: int) -> float:
    """Time one-at-a-time vs batch-8 generation of ``new_tokens`` tokens; returns the speedup."""
    single = Generator(model, tokenizer, batch_size=1, max_new_tokens=new_tokens)
    batched = Generator(model, tokenizer, batch_size=BATCH, max_new_tokens=new_tokens)
    t_single, texts_single = timed(single, items)
    t_batched, texts_batched = timed(batched, items)
    same = sum(a == b for a, b in zip(texts_single, texts_batched))
    print(
        f"{new_tokens} new tokens: one at a time {t_single:.1f} s ({len(items) / t_single:.2f} prompts/s), "
        f"batch {BATCH} {t_batched:.1f} s ({len(items) / t_batched:.2f} prompts/s), "
        f"identical answers {same}/{len(items)}, speedup {t_single / t_batched:.2f}x"
    )
    return t_single / t_batched


if __name__ == "__main__":
    main()
