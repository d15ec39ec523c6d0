"""`coi train`: queue a LoRA training job headless, optionally follow it until it ends."""

from __future__ import annotations

import argparse
import os
import time

from store.db import connect
from store.jobs import Job, get_job
from training import config as tc


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to the `coi` parser."""
    p = subparsers.add_parser(
        "train",
        help="Fine-tune a base model with LoRA on a dataset version (background job).",
        description="Every training config field is a flag; unset flags keep the preset's value.",
    )
    p.add_argument("--db", help="Database file (default: $COI_DB or data/coi.db).")
    p.add_argument("--preset", default="default", choices=list(tc.PRESETS), help="Start from this preset.")
    p.add_argument(
        "--version", dest="version_id", type=int, help="Dataset version id (alias of --dataset-version)."
    )
    p.add_argument("--wait", action="store_true", help="Follow the job's progress until it ends.")
    p.add_argument(
        "--resume", type=int, metavar="JOB", help="Resume a failed or cancelled job from its checkpoint."
    )
    p.add_argument("--cancel", type=int, metavar="JOB", help="Cancel a queued or running job.")
    p.add_argument("--list", action="store_true", help="List training jobs and exit.")
    tc.add_arguments(p)
    p.set_defaults(func=run_train)


def build_config(args: argparse.Namespace) -> tc.TrainConfig:
    """The preset with the flags given on the command line applied."""
    overrides = tc.overrides_from_args(args)
    if args.version_id is not None:
        overrides["dataset_version"] = args.version_id
    return tc.preset(args.preset, **overrides)


def run_train(args: argparse.Namespace) -> int:
    from jobs import runtime
    from training import queue

    if args.db:  # the job process, run dirs and logs all follow the same database
        os.environ["COI_DB"] = args.db
    db = connect(args.db)
    if args.list:
        from jobs.cli import list_line

        for job in runtime.jobs_list(db, kind="train"):
            print(list_line(db, job))
        return 0
    if args.cancel is not None:
        job = queue.cancel(db, args.cancel)
        print(f"{runtime.label(job)}: {job.status}")
        return 0
    if args.resume is not None:
        job_id = queue.resume(db, args.resume).id
    else:
        cfg = build_config(args)
        if cfg.eval_fraction > 0:
            print(
                f"note: eval_fraction {cfg.eval_fraction} holds {cfg.eval_fraction:.0%} of the training chains out "
                "for the eval loss (they are not trained on); --eval-fraction 0 trains on all, as the paper does"
            )
        job_id = queue.submit(db, cfg)
    job = get_job(db, job_id)
    state = runtime.describe_wait(db, job) or job.status
    print(f"{runtime.label(job)} {state}; log: {job.log_path or '(starts when the device frees)'}")
    return follow(db, job_id) if args.wait else 0


def follow(db, job_id: int, poll_s: float = 1.0) -> int:
    """Show a progress bar until the job ends; exit code 0 only if it succeeded."""
    from tqdm import tqdm

    from training import queue

    bar = tqdm(total=1, unit="step", desc=f"job #{job_id}")
    try:
        while True:
            queue.pump_queue(db)
            job = get_job(db, job_id)
            _update_bar(bar, job)
            if not job.active:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        bar.close()
        print(f"stopped following; train #{job_id} goes on (cancel: coi jobs cancel {job_id})")
        return 130
    bar.close()
    return _report(job)


def _update_bar(bar, job: Job) -> None:
    if job.total and bar.total != job.total:
        bar.total = job.total
    bar.n = job.done or 0
    bar.set_postfix_str(job.message or job.status, refresh=False)
    bar.refresh()


def _report(job: Job) -> int:
    """Print how the job ended; 0 only if it succeeded."""
    if job.status == "succeeded":
        r = job.result
        loss = r.get("final_loss")
        facts = (f"final loss {loss:.4g}, " if loss is not None else "") + (
            f"{r['train_s']:.0f} s" if r.get("train_s") is not None else ""
        )
        print(
            f"train #{job.id} succeeded: {'model' if r.get('method') == 'full' else 'adapter'} at {r.get('adapter_dir')}"
            + (f" ({facts})" if facts else "")
        )
        return 0
    print(f"train #{job.id} {job.status}: {job.error or ''}\nlog: {job.log_path}")
    return 1
