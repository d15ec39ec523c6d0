"""`coi generate` and `coi serve-llm`: the Generate page, headless."""

from __future__ import annotations

import argparse
import json
import os
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to the `coi` parser."""
    p = subparsers.add_parser(
        "generate", help="propose chains with an LLM (summarize, compose + check, generate)"
    )
    p.add_argument("--db", default=None, help="SQLite file (default: $COI_DB or data/coi.db)")
    p.add_argument("--tasks", type=int, nargs="*", default=[], help="task ids (default: all tasks)")
    p.add_argument("--categories", nargs="*", default=[], help="task categories (default: all)")
    p.add_argument("-n", "--n-chains", type=int, default=20, help="how many chains to propose")
    p.add_argument("--lengths", type=int, nargs="+", default=[2], help="chain lengths (2-5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint (default: Settings, then env)"
    )
    p.add_argument("--model", default=None, help="model name (default: Settings, then $COI_LLM_MODEL)")
    p.add_argument("--api", choices=["completions", "chat"], default=None)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--background", action="store_true", help="start a background job and print its id")
    p.add_argument(
        "--resume",
        type=int,
        metavar="JOB",
        help="start a failed or cancelled generate job again, in the background",
    )
    p.set_defaults(func=cmd_generate)

    p = subparsers.add_parser(
        "serve-llm", help="run the embedded local LLM (transformers serve) until Ctrl-C"
    )
    p.add_argument("--model", default=None, help="model directory (default: the Gemma 3 270M cache)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_serve_llm)


def cmd_generate(args: argparse.Namespace) -> int:
    from pipeline.llm import LLMConfig
    from pipeline.run import BatchConfig, launch_batch, run_job, tqdm_progress
    from store.db import connect, utcnow
    from store.jobs import create_job, finish_job, update_job

    db = connect(args.db)
    if args.resume:
        from pipeline.run import resume_batch

        pid = resume_batch(db, args.resume)  # the job applies the key rule itself (store.endpoints)
        print(f"Resumed job {args.resume} (pid {pid}); saved chains and answered calls are reused.")
        return 0
    llm = LLMConfig.resolve(
        db,
        base_url=args.base_url,
        model=args.model,
        api=args.api,
        concurrency=args.concurrency,
        # A --base-url typed in the shell is the operator's own choice; a saved one is not.
        api_key=os.environ.get("OPENAI_API_KEY", "") if args.base_url else None,
    )
    batch = BatchConfig(
        task_ids=tuple(args.tasks),
        categories=tuple(args.categories),
        n_chains=args.n_chains,
        lengths=tuple(args.lengths),
        seed=args.seed,
        llm=llm.to_dict(),
    )
    print(f"LLM: {llm.describe()}")
    if args.background:
        print(f"Started job {launch_batch(db, batch, llm)} (follow it on the Generate page).")
        return 0
    job_id = create_job(db, "generate", {**batch.to_dict(), "llm": llm.to_dict()}, status="running")
    update_job(db, job_id, started_at=utcnow())
    try:
        result = run_job(job_id, db_path=args.db, progress=tqdm_progress(), api_key=llm.api_key)
    except BaseException as exc:
        finish_job(db, job_id, "failed", error=repr(exc))
        raise
    update_job(db, job_id, result=result, progress=1.0)
    finish_job(db, job_id, "succeeded")
    print(format_summary(result))
    return 0


def format_summary(result: dict) -> str:
    """A few plain lines about a finished batch."""
    usage = result.get("usage", {})
    lines = [
        f"tasks {result.get('tasks', 0)}, summarized {result.get('summarized', 0)}, "
        f"pairs checked {result.get('pairs_checked', 0)}, verdicts {json.dumps(result.get('verdicts', {}))}",
        f"chains added {result.get('chains_added', 0)} (already there {result.get('chains_existing', 0)})",
        f"requests {usage.get('requests', 0)}, cache hits {usage.get('cache_hits', 0)}, "
        f"tokens {usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)}, "
        f"LLM time {usage.get('latency_ms', 0) / 1000:.1f} s",
    ]
    lines += [f"error: {e['item']}: {e['error']}" for e in result.get("errors", [])[:20]]
    return "\n".join(lines)


def cmd_serve_llm(args: argparse.Namespace) -> int:
    from pipeline.embedded import EmbeddedServer

    model = args.model
    if model is None:
        from models.registry import resolve_model

        model = resolve_model(None)
    server = EmbeddedServer(model, port=args.port or None, device=args.device)
    server.start()
    print(f"Serving {model} at {server.base_url} (model name: {model}). Ctrl-C stops it.", flush=True)
    try:
        while server.proc and server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
