"""Training throughput: CoI Studio's trainer vs a plain HF Trainer + peft baseline, same data/model/LoRA.

Both make one pass over the same examples (batch 4) with the same base model (the embedded Gemma 3
270M by default) and the same LoRA config, each in its own subprocess (so peak memory is its own):

- ours: ``training.run`` pieces: length-grouped batches, loss on response tokens only, and the
  LM head evaluated only where the next token is a response token;
- base: plain ``Trainer`` with random batch order, padding to the longest of the batch, and the
  model's own loss over ALL tokens (full logits over the vocabulary).

Throughput is real tokens (prompt + response, no padding) per second of ``trainer.train()``,
measured in CPU time of the child (``time.process_time``) on ``--threads`` threads (default 1):
the machine this runs on is often shared, and wall time then measures the neighbours; CPU time
of a single-threaded run does not (it equals wall time on an idle machine). Wall-clock tok/s is
printed too.
Usage: .venv/bin/python bench/train.py [--examples 16] [--model gemma-3-270m]
Last line: RESULT ratio=<x> ours_tok_s=<n> base_tok_s=<n>

``--curve loss.png [--curve-steps 30]`` instead runs a real training job (the same path as the
Train page: queue -> ``python -m training.run``) on the sample chains in a temporary database and
saves the page's loss chart (app/charts.py) as a PNG through headless chromium (Playwright).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAPER = ROOT.parent / "shared" / "reference" / "coi_data" / "coi_2.json"


def load_records(n: int) -> tuple[str, list[dict]]:
    """The sample chains if present, else the paper's first records (never copied into the repo)."""
    from store.coi_format import parse_record
    from store.sample import SAMPLE_DIR, read_sample_chains

    if (SAMPLE_DIR / "chains.json").exists():
        source, raw = "sample chains", read_sample_chains()
    else:
        source, raw = "coi_2.json", json.loads(PAPER.read_text())[:64]
    records = []
    for r in raw[:n]:
        p = parse_record(r)
        records.append({"instructions": p.instructions, "input": p.input, "outputs": p.outputs})
    return source, records


def child(mode: str, n: int, model_name: str, max_len: int, threads: int) -> dict:
    """One measured pass (runs in its own process)."""
    import torch
    from transformers import Trainer

    from models.registry import load_causal_lm
    from training.config import TrainConfig
    from training.data import PadCollator, build_examples
    from training.run import add_lora, make_trainer_class, training_arguments

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    _, records = load_records(n)
    cfg = TrainConfig(base_model=model_name, batch_size=4, max_steps=-1, epochs=1, max_seq_len=max_len)
    cfg = cfg.replace(logging_steps=1000, save_steps=100000, eval_fraction=0.0, warmup_ratio=0.0)
    model, tok = load_causal_lm(model_name, log=lambda m: None)
    examples = build_examples(records, tok, max_len)
    args = training_arguments(cfg, Path("/tmp") / f"coi-bench-{mode}", "fp32", False)
    args.save_strategy = "no"
    if mode == "base":
        args.train_sampling_strategy = "random"
    trainer_cls = make_trainer_class() if mode == "ours" else Trainer
    trainer = trainer_cls(
        model=add_lora(model, cfg),
        args=args,
        train_dataset=examples,
        data_collator=PadCollator(tok.pad_token_id, loss_on_all_tokens=mode == "base"),
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    tokens = sum(len(e["input_ids"]) for e in examples)
    response = sum(sum(t != -100 for t in e["labels"]) for e in examples)
    return {
        "mode": mode,
        "examples": len(examples),
        "tokens": tokens,
        "response_tokens": response,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "wall_tok_s": tokens / seconds,
        "tok_s": tokens / cpu_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def measure(mode: str, args) -> dict:
    argv = [sys.executable, __file__, "--child", mode, "--examples", str(args.examples)]
    argv += ["--model", args.model, "--max-len", str(args.max_len), "--threads", str(args.threads)]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=str(ROOT), check=False)
    if out.returncode != 0:
        sys.exit(f"{mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def loss_curve(png: Path, steps: int, model: str) -> None:
    """A real short run on the sample data, its loss chart screenshotted to ``png``."""
    import os
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="coi-curve-"))
    os.environ["COI_DB"] = str(work / "coi.db")
    from app.charts import loss_figure
    from store.db import connect
    from store.jobs import get_job, get_metrics
    from store.sample import load_sample_data
    from store.versions import SplitSpec, create_version
    from training import queue
    from training.config import preset

    db = connect()
    load_sample_data(db)
    version = create_version(db, SplitSpec(test_fraction=0.2), name="sample")
    cfg = preset("quick", base_model=model, dataset_version=version, max_steps=steps, logging_steps=1)
    job_id = queue.submit(db, cfg.replace(save_steps=max(steps // 3, 1), eval_fraction=0.15))
    print(f"training job #{job_id} on the sample chains (log: {get_job(db, job_id).log_path})")
    while get_job(db, job_id).active:
        time.sleep(2)
        print(get_job(db, job_id).message, flush=True)
    job = get_job(db, job_id)
    if job.status != "succeeded":
        sys.exit(f"training {job.status}: {job.error}")
    html = work / "loss.html"
    loss_figure(
        get_metrics(db, job_id), title=f"LoRA on {len(cfg.train_lengths)} chain lengths, {model}"
    ).write_html(html, include_plotlyjs=True)
    _screenshot(html, png)
    print(f"saved {png}")


def _screenshot(html: Path, png: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 330})
        page.goto(html.as_uri())
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(png))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=16, help="Chains in the pass (batch size 4).")
    parser.add_argument("--model", default="gemma-3-270m", help="Base model (registry name, HF id or path).")
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per run (CPU time is measured)."
    )
    parser.add_argument("--child", choices=["ours", "base"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--curve", type=Path, help="Instead: a real short run's loss chart saved as this PNG."
    )
    parser.add_argument("--curve-steps", type=int, default=30)
    args = parser.parse_args()
    if args.curve:
        loss_curve(args.curve.resolve(), args.curve_steps, args.model)
        return
    if args.child:
        print(json.dumps(child(args.child, args.examples, args.model, args.max_len, args.threads)))
        return
    from models.registry import resolve_model

    resolve_model(args.model)  # convert the default model once, outside the timings
    source, records = load_records(args.examples)
    print(f"data: {len(records)} {source}; model: {args.model}; LoRA r=8 q,k,v,o; batch 4; one pass")
    results = {mode: measure(mode, args) for mode in ("base", "ours")}
    for r in results.values():
        print(
            f"{r['mode']:>4}: {r['tok_s']:8.1f} real tok/s per CPU-second ({r['wall_tok_s']:.1f} wall)  "
            f"({r['tokens']} tokens, {r['response_tokens']} response, {r['cpu_seconds']:.1f} CPU-s, "
            f"{r['seconds']:.1f} s wall, {r['threads']} threads)  peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    ratio = results["ours"]["tok_s"] / results["base"]["tok_s"]
    print(
        f"RESULT ratio={ratio:.2f} ours_tok_s={results['ours']['tok_s']:.1f} base_tok_s={results['base']['tok_s']:.1f}"
        f" ours_peak_mb={results['ours']['peak_rss_mb']:.0f} base_peak_mb={results['base']['peak_rss_mb']:.0f}"
    )


if __name__ == "__main__":
    main()
