"""`coi eval`: start an eval run (a background job), wait for it, and write its report."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from eval.config import EvalConfig, help_of
from store.config import add_arguments, overrides_from_args
from store.jobs import get_job


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `coi eval` to the `coi` parser."""
    p = subparsers.add_parser("eval", help="Evaluate a base model or a trained adapter on a test split.")
    p.add_argument("--db", help="Database file (default: $COI_DB or data/coi.db).")
    # Every EvalConfig field is a flag (the same dataclass gives the Evaluate form and the saved job config);
    # the threshold and the stemmer keep their short names because --report uses them too.
    add_arguments(p, EvalConfig, skip=("fail_threshold", "use_stemmer"))
    p.add_argument("--threshold", type=float, default=None, help=help_of("fail_threshold"))
    p.add_argument("--stemmer", action="store_true", help=help_of("use_stemmer"))
    p.add_argument("--wait", action="store_true", help="Wait for the run, then write the report.")
    p.add_argument("--report", type=int, metavar="RUN_ID", help="Only write the report of an existing run.")
    p.add_argument(
        "--resume",
        type=int,
        metavar="RUN_ID",
        help="Start a failed or cancelled run again; it keeps the predictions it already saved.",
    )
    p.add_argument(
        "--compare", type=int, metavar="RUN_ID", help="Compare with this earlier run in the report."
    )
    p.set_defaults(func=cmd_eval)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig that the flags describe (unset flags keep the defaults)."""
    values = {**EvalConfig().to_dict(), **overrides_from_args(args, EvalConfig)}
    if args.threshold is not None:
        values["fail_threshold"] = args.threshold
    values["use_stemmer"] = bool(args.stemmer)
    return EvalConfig.from_dict(values)


def cmd_eval(args: argparse.Namespace) -> int:
    from eval.run import submit_eval
    from store.db import open_db

    if args.db:  # the job process and the report folder follow the same database
        os.environ["COI_DB"] = args.db
    with open_db() as db:
        if args.report is not None:
            return write_run_report(db, args.report, args.out, args.compare, args.threshold)
        if args.resume is not None:
            from eval.run import resume_eval

            resume_eval(db, args.resume)
            job_id = args.resume
            print(f"Resumed eval #{job_id}.")
        else:
            cfg = config_from_args(args)
            check_adapter_version(db, cfg)
            job_id = submit_eval(db, cfg)
            print(f"Queued eval #{job_id}.")
        if not args.wait:
            print(f"Follow it on the Evaluate page; then `coi eval --report {job_id}` writes the report.")
            return 0
        status = wait_for(db, job_id)
        if status != "succeeded":
            return 1
        if args.compare is None and args.threshold is None:
            return print_run_report(db, job_id)  # the job wrote it, where --out said: no second copy
        # A comparison or another threshold changes the report: rewrite it in the run's own folder.
        return write_run_report(
            db, job_id, get_job(db, job_id).result["report_dir"], args.compare, args.threshold
        )


def check_adapter_version(db, cfg: EvalConfig) -> None:
    """``--adapter-job`` without ``--version`` uses the version it trained on; say what to pass when
    that version's split is empty (a train-only version), rather than start a run with nothing to score.

    Raises:
        CoiError: naming the versions that do have chains in that split.
    """
    from store.errors import CoiError
    from store.jobs import get_job
    from store.versions import list_versions

    if cfg.adapter_job is None or cfg.version is not None:
        return
    job = get_job(db, cfg.adapter_job)
    trained_on = (job.result or {}).get("dataset_version") if job else None
    versions = {v.id: v for v in list_versions(db)}
    if trained_on not in versions or versions[trained_on].split_sizes.get(cfg.split, 0):
        return
    others = [
        f"#{v.id} ({v.split_sizes.get(cfg.split)} {cfg.split})"
        for v in versions.values()
        if v.split_sizes.get(cfg.split)
    ]
    raise CoiError(
        f"Train job #{cfg.adapter_job} trained on version #{trained_on}, whose {cfg.split} split is empty",
        "Pass --version ID" + (f"; versions with {cfg.split} chains: {', '.join(others)}" if others else "."),
    )


def wait_for(db, job_id: int, *, poll_s: float = 2.0) -> str:
    """Poll the job until it ends, printing its progress; returns its final status."""
    from jobs import runtime
    from jobs.process import log_tail
    from store.jobs import get_job

    last = None
    while True:
        runtime.pump(db)  # re-attach, and start it when the device frees
        job = get_job(db, job_id)
        line = f"{runtime.describe_wait(db, job) or job.status} {100 * job.progress:.0f}% {job.message}"
        if line != last:
            print(line, flush=True)
            last = line
        if not job.active:
            break
        time.sleep(poll_s)
    if job.status != "succeeded":
        print(f"eval #{job_id} {job.status}: {job.error or ''}", file=sys.stderr)
        print(log_tail(job.log_path), file=sys.stderr)
    return job.status


def print_run_report(db, run_id: int) -> int:
    """Print the summary the eval job wrote, and where it is."""
    folder = Path(get_job(db, run_id).result["report_dir"])
    print((folder / "summary.md").read_text())
    print(f"Report: {folder / 'report.json'} and {folder / 'summary.md'}")
    return 0


def write_run_report(
    db, run_id: int, out: str | None, compare_to: int | None, threshold: float | None
) -> int:
    """Write report.json and summary.md of a run; print where, then the summary."""
    from eval.report import build_report, write_report
    from jobs.process import logs_dir

    report = build_report(db, run_id, threshold=threshold, compare_to=compare_to)
    out_dir = Path(out) if out else logs_dir().parent / "eval" / f"run-{run_id}"
    paths = write_report(report, out_dir)
    print(Path(paths["markdown"]).read_text())
    print(f"Wrote {paths['json']} and {paths['markdown']}")
    return 0
