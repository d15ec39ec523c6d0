"""Eval throughput: local HF generation against the same model behind `transformers serve`.

The same 16 chains of the paper's coi2_test.json (every 36th record, parsed by the product's
parser) are predicted in chain mode three times: in-process (eval.predict's Generator, batch 8,
the named baseline), then through the endpoint at concurrency 1 and 8 (eval.endpoint), all greedy
with the same token limit. It checks the answers are the same and prints chains per second.
Run from the project root: ``.venv/bin/python bench/eval_endpoint.py [--model gemma-3-270m]``.
Last line: RESULT local_cps=<x> endpoint_cps=<x> ratio=<endpoint/local> (endpoint at concurrency 8).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.endpoint import EndpointGenerator  # noqa: E402
from eval.predict import load_generator, predict_chain  # noqa: E402
from eval.rouge import RougeL  # noqa: E402
from store.coi_format import parse_record  # noqa: E402

DATA = ROOT.parent / "shared" / "reference" / "coi_data" / "coi2_test.json"


def records(n: int) -> list[dict]:
    raw = json.loads(DATA.read_text())[::36][:n]
    out = []
    for i, r in enumerate(raw):
        p = parse_record(r)
        out.append(
            {"chain_id": i + 1, "instructions": p.instructions, "input": p.input, "outputs": p.outputs,
             "length": p.length, "instruction": r["instruction"]}
        )  # fmt: skip
    return out


def timed(gen, recs: list[dict]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    rows = predict_chain(gen, recs, RougeL())
    seconds = time.perf_counter() - started
    return len(recs) / seconds, [p.prediction for p in rows]


def main() -> int:
    from models.registry import resolve_model
    from pipeline.embedded import EmbeddedServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    model_dir = str(resolve_model(args.model))
    recs = records(args.chains)
    local = load_generator(
        model_dir, None, batch_size=8, max_new_tokens=args.max_new_tokens, log=lambda m: None
    )
    local_cps, local_answers = timed(local, recs)
    print(f"local (in-process, batch 8): {local_cps:.3f} chains/s", flush=True)
    del local
    results = {}
    with EmbeddedServer(model_dir, device="cpu") as server:
        for concurrency in (1, 8):
            gen = EndpointGenerator(
                server.base_url, model_dir, max_new_tokens=args.max_new_tokens, concurrency=concurrency
            )
            results[concurrency] = timed(gen, recs)
            same = sum(a == b for a, b in zip(results[concurrency][1], local_answers))
            print(
                f"endpoint (transformers serve, concurrency {concurrency}): {results[concurrency][0]:.3f} chains/s; "
                f"{same} of {len(local_answers)} step answers identical to local",
                flush=True,
            )
    endpoint_cps = results[8][0]
    print(
        f"RESULT local_cps={local_cps:.3f} endpoint_cps={endpoint_cps:.3f} ratio={endpoint_cps / local_cps:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
