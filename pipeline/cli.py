"""`coi generate` and `coi serve-llm`: the Generate page, headless."""

from __future__ import annotations

import argparse
import json
import os
import sys
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
    from pipeline.llm import LLMConfig
    from store.config import add_arguments

    add_arguments(p, LLMConfig)  # every endpoint and sampling knob; unset flags keep Settings/env/default
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
    from pipeline.run import BatchConfig, launch_batch
    from store import env
    from store.config import overrides_from_args
    from store.db import connect

    db = connect(args.db)
    if args.resume:
        from pipeline.run import resume_batch

        resume_batch(db, args.resume)  # the job applies the key rule itself (store.endpoints)
        print(f"Resumed generate #{args.resume}; saved chains and answered calls are reused.")
        return 0
    overrides = overrides_from_args(args, LLMConfig)
    # A --base-url typed in the shell is the operator's own choice; a saved one is not.
    overrides["api_key"] = env.api_key() if args.base_url else None
    llm = LLMConfig.resolve(db, **overrides)
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
        print(f"Started generate #{launch_batch(db, batch, llm)} (follow it on the Generate page).")
        return 0
    return run_foreground(db, args.db, batch, llm)


def run_foreground(db, db_path, batch, llm) -> int:
    """Run a batch in this process as a job row; exit code 1 when the job fails, 0 otherwise."""
    from jobs.process import JobFailed
    from pipeline.run import run_job, tqdm_progress
    from store.db import utcnow
    from store.errors import CoiError
    from store.jobs import create_job, finish_job, update_job

    resource = "device" if llm.embedded else "remote"  # counted by the queue while it runs
    # 'foreground': this process (not `python -m pipeline.run --job ID`) runs it, so refresh checks only its pid.
    job_id = create_job(
        db, "generate", batch.to_dict(), status="running", resource=resource, launch={"foreground": True}
    )
    update_job(db, job_id, started_at=utcnow(), pid=os.getpid())
    try:
        result = run_job(job_id, db_path=db_path, progress=tqdm_progress(), api_key=llm.api_key)
    except JobFailed as exc:
        update_job(db, job_id, result=exc.result)
        finish_job(db, job_id, "failed", error=exc.message)
        print(format_summary(exc.result))
        print(f"generate #{job_id} failed: {exc.message}", file=sys.stderr)
        return 1
    except CoiError as exc:
        finish_job(db, job_id, "failed", error=f"{exc.message}\n{exc.hint}".strip())
        print(f"generate #{job_id} failed: {exc.message}", file=sys.stderr)
        raise
    except BaseException as exc:
        finish_job(db, job_id, "failed", error=repr(exc))
        raise
    update_job(db, job_id, result=result, progress=1.0)
    finish_job(db, job_id, "succeeded")
    print(format_summary(result))
    print(outcome_text(job_id, result))
    return 0


def outcome_text(job_id: int, result: dict) -> str:
    """'generate #3 succeeded' plus 'N of M items failed' and how to retry them."""
    failed, total = result.get("failed_items", 0), result.get("total_items", 0)
    if not failed:
        return f"generate #{job_id} succeeded"
    return (
        f"generate #{job_id} succeeded: {failed} of {total} items failed "
        f"(retry only those: coi generate --resume {job_id})"
    )


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
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
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
