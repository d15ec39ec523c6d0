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
    p.add_argument(
        "--batch-out",
        metavar="DIR",
        help="write the next step depth's uncached requests as OpenAI Batch JSONL into DIR (no calls made)",
    )
    p.add_argument(
        "--batch-in", metavar="FILE", help="store a provider's batch output file as answers (all or nothing)"
    )
    p.set_defaults(func=cmd_generate)

    p = subparsers.add_parser(
        "judge", help="an LLM judge per step: an eval run's predictions, or the LLM-written steps of chains"
    )
    p.add_argument("--db", default=None, help="SQLite file (default: $COI_DB or data/coi.db)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", type=int, metavar="EVAL_RUN", help="judge this eval run's predictions")
    target.add_argument("--chains", action="store_true", help="judge the LLM-written steps of open chains")
    p.add_argument("--mode", default="chain", help="the eval mode to judge (with --run)")
    p.add_argument("--limit", type=int, default=1000, help="at most this many chains (with --chains)")
    add_arguments(p, LLMConfig)
    p.set_defaults(func=cmd_judge)

    p = subparsers.add_parser(
        "serve-llm", help="run the embedded local LLM (transformers serve) until Ctrl-C"
    )
    p.add_argument("--model", default=None, help="model directory (default: the Gemma 3 270M cache)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_serve_llm)


def cmd_generate(args: argparse.Namespace) -> int:
    from pipeline.run import BatchConfig, launch_batch
    from store.db import connect

    db = connect(args.db)
    if args.resume:
        from pipeline.run import resume_batch

        resume_batch(db, args.resume)  # the job applies the key rule itself (store.endpoints)
        print(f"Resumed generate #{args.resume}; saved chains and answered calls are reused.")
        return 0
    llm = cli_llm_config(db, args)
    batch = BatchConfig(
        task_ids=tuple(args.tasks),
        categories=tuple(args.categories),
        n_chains=args.n_chains,
        lengths=tuple(args.lengths),
        seed=args.seed,
        llm=llm.to_dict(),
    )
    if args.batch_in or args.batch_out:
        return batch_files(db, args, batch, llm)
    print(f"LLM: {llm.describe()}")
    if args.background:
        print(f"Started generate #{launch_batch(db, batch, llm)} (follow it on the Generate page).")
        return 0
    return run_foreground(db, args.db, batch, llm)


def cli_llm_config(db, args: argparse.Namespace):
    """The LLM config of a command: its flags over Settings, env and defaults. A --base-url typed in the
    shell is the operator's own choice, so it gets the operator's key; a saved one gets it only if listed."""
    from pipeline.llm import LLMConfig
    from store import env
    from store.config import overrides_from_args

    overrides = overrides_from_args(args, LLMConfig)
    overrides["api_key"] = env.api_key() if args.base_url else None
    return LLMConfig.resolve(db, **overrides)


def batch_files(db, args: argparse.Namespace, batch, llm) -> int:
    """--batch-in stores a provider's answers; --batch-out writes the next depth's requests (or finishes)."""
    from pipeline.batch import read_results, write_requests
    from store.db import default_db_path

    if args.batch_in:
        got = read_results(db, args.batch_in)
        print(
            f"{args.batch_in}: {got.answered} answers stored, {got.failed} failed, {got.already} already stored"
        )
    if not args.batch_out:
        return 0
    out = write_requests(db, args.db or default_db_path(), llm, batch, args.batch_out)
    if out.report is None:
        print(f"{out.path}: {out.requests} requests for the next step depth.")
        print(f"Run it (e.g. vllm run-batch -i {out.path} -o results.jsonl --model {llm.model or 'MODEL'}),")
        print(f"then: coi generate --batch-in results.jsonl --batch-out {args.batch_out} (same batch flags)")
        return 0
    print(format_summary(out.report.as_dict()))
    print(f"Every depth is answered: {out.report.chains_added} chains stored for review.")
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from pipeline.embedded import llm_endpoint
    from pipeline.judge import judge_chain_steps, judge_run
    from pipeline.llm import LLMClient
    from store.db import connect, default_db_path
    from store.judgements import human_agreement, verdict_counts
    from store.queue import QueueFilter, queue_ids

    db = connect(args.db)
    with llm_endpoint(cli_llm_config(db, args)) as live:
        client = LLMClient(live, args.db or default_db_path())
        if args.run is not None:
            n = judge_run(db, client, args.run, mode=args.mode)
            print(
                f"judged {n} steps of eval #{args.run} ({args.mode}): {verdict_counts(db, args.run, args.mode)}"
            )
        else:
            ids = queue_ids(db, QueueFilter(sort="oldest"), limit=args.limit)  # proposed and needs_review
            print(f"judged {judge_chain_steps(db, client, ids)} LLM-written steps of {len(ids)} open chains")
    agree = human_agreement(db)
    if agree.n:
        print(
            f"judge vs reviewers on {agree.n} decided steps: agreement {agree.percent:.0%}, kappa {agree.kappa if agree.kappa is not None else 'n/a'}"
        )
    print(f"requests sent: {client.totals.requests} (cached verdicts cost nothing)")
    return 0


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
