"""`coi jobs list|show|cancel|resume|log ID`: every kind of job through the one runtime."""

from __future__ import annotations

import argparse
import json
import os
import sys

from store.models import JOB_KINDS, JOB_STATUSES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `coi jobs` to the `coi` parser."""
    p = subparsers.add_parser("jobs", help="list, show, cancel, resume or read the log of any job")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="Database file (default: $COI_DB or data/coi.db).")
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="jobs of every kind, newest first", parents=[common])
    ls.add_argument("--kind", choices=list(JOB_KINDS))
    ls.add_argument("--status", nargs="*", choices=list(JOB_STATUSES))
    ls.add_argument("--limit", type=int, default=50)
    for action, text in (
        ("show", "a job's status, queue position, outcome and config"),
        ("cancel", "cancel a queued or running job"),
        ("resume", "queue a failed, cancelled or partly failed job again"),
        ("log", "print a job's log"),
    ):
        sp = sub.add_parser(action, help=text, parents=[common])
        sp.add_argument("id", type=int, metavar="ID")
        if action == "log":
            sp.add_argument("--tail", type=int, default=0, help="only the last N lines")
    p.set_defaults(func=cmd_jobs)


def cmd_jobs(args: argparse.Namespace) -> int:
    from jobs import runtime
    from store.db import connect

    if args.db:  # a job started from here follows the same database
        os.environ["COI_DB"] = args.db
    db = connect(args.db)
    if args.action == "list":
        for job in runtime.jobs_list(db, kind=args.kind, statuses=args.status, limit=args.limit):
            print(list_line(db, job))
        return 0
    if args.action == "show":
        print(show_text(db, runtime.get(db, args.id)))
        return 0
    if args.action == "cancel":
        job = runtime.cancel(db, args.id)
        print(f"{runtime.label(job)}: {job.status}")
        return 0
    if args.action == "resume":
        job = runtime.resume(db, args.id, secret_env=_key_env())
        print(f"{runtime.label(job)}: {runtime.describe_wait(db, job) or job.status}")
        return 0
    sys.stdout.write(runtime.log(db, args.id, lines=args.tail or None))
    return 0


def _key_env() -> dict[str, str] | None:
    from store import env

    key = env.api_key()
    return {"OPENAI_API_KEY": key} if key else None


def list_line(db, job) -> str:
    """One tab-separated line: label, status (or queue place), progress, name, outcome."""
    from jobs import runtime

    state = runtime.describe_wait(db, job) or job.status
    failed = job.result.get("failed_items", 0)
    note = f"{failed} of {job.result.get('total_items', 0)} items failed" if failed else (job.message or "")
    return f"{runtime.label(job)}\t{state}\t{job.progress:.0%}\t{job.name}\t{note}"


def show_text(db, job) -> str:
    """A job in plain lines (error first line, outcome, config as JSON)."""
    from jobs import runtime

    lines = [
        f"{runtime.label(job)}: {job.name}",
        f"status: {runtime.describe_wait(db, job) or job.status}",
        f"resource: {job.resource}",
        f"progress: {job.done}/{job.total} ({job.progress:.0%}) {job.message or ''}".rstrip(),
        f"outcome: {runtime.outcome_line(job)}",
        f"log: {job.log_path or '(not started)'}",
    ]
    if job.error:
        lines.append("error: " + job.error.strip())
    lines.append("config: " + json.dumps(job.config, sort_keys=True))
    return "\n".join(lines)
