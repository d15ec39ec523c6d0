"""The eval entry point: ``python -m eval.run --job ID``, and ``submit_eval`` that starts it.

An eval run is a background job like training (kind 'eval'): the parent validates the config and
launches the child detached; the child loads the model (base, or base + the LoRA adapter of a
train job), predicts in each mode, saves predictions, writes its report and records the summary
as the job result. Progress goes to the job row at every batch; cancel kills the process group.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import sqlite_utils

from eval.config import EvalConfig
from store.db import connect
from store.errors import CoiError
from store.jobs import get_job, heartbeat
from store.paths import confine_model_path
from store.predictions import done_chain_ids, save_predictions
from store.versions import get_version, list_versions, version_records


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def resolve_config(db: sqlite_utils.Database, cfg: EvalConfig) -> EvalConfig:
    """Fill in the adapter, base model and dataset version from the train job and the DB.

    Raises:
        CoiError: the train job, its adapter or the dataset version is missing.
    """
    if cfg.adapter_job is not None:
        job = get_job(db, cfg.adapter_job)
        if job is None or job.kind != "train":
            raise CoiError(f"There is no train job #{cfg.adapter_job}", "Pick a finished training run.")
        adapter = job.result.get("adapter_dir")
        if job.status != "succeeded" or not adapter:
            raise CoiError(
                f"Train job #{job.id} has no adapter ({job.status})", "Pick a finished training run."
            )
        cfg = replace(
            cfg,
            adapter_dir=adapter,
            model=cfg.model or job.result.get("base_model") or job.config.get("base_model"),
            version=cfg.version if cfg.version is not None else job.result.get("dataset_version"),
        )
    # User-typed paths stay inside the model/data roots (checked at submit and again in the job).
    confine_model_path(cfg.model, what="base model")
    confine_model_path(cfg.adapter_dir, what="adapter")
    if cfg.adapter_dir and not Path(cfg.adapter_dir).exists():
        raise CoiError(
            f"Adapter directory {cfg.adapter_dir} does not exist", "Train again or pick another run."
        )
    if cfg.version is None:
        versions = list_versions(db)
        if not versions:
            raise CoiError(
                "There is no dataset version yet", "Create one on the Train page or with `coi export`."
            )
        cfg = replace(cfg, version=versions[0].id)
    elif get_version(db, cfg.version) is None:
        raise CoiError(f"There is no dataset version #{cfg.version}", "Pick one of the listed versions.")
    return cfg


def load_eval_records(db: sqlite_utils.Database, cfg: EvalConfig) -> list[dict]:
    """The records an eval run scores (split, lengths, limit applied)."""
    records = version_records(db, cfg.version, cfg.split, list(cfg.lengths) or None)
    if cfg.limit:
        records = records[: cfg.limit]
    if not records:
        raise CoiError(
            f"Dataset version #{cfg.version} has no {cfg.split} chains to evaluate",
            "Pick another version, split or chain lengths.",
        )
    return records


def submit_eval(
    db: sqlite_utils.Database,
    cfg: EvalConfig,
    *,
    launch_process: bool = True,
    launcher: list[str] | None = None,
) -> int:
    """Validate the config and queue the 'eval' job; it starts when the device is free. Returns the job id.

    An eval run loads a local model, so it claims the device: it waits while a training run, another
    eval or the embedded LLM holds it. ``launch_process=False`` only queues it.
    """
    from jobs import runtime

    cfg = resolve_config(db, cfg)
    load_eval_records(db, cfg)  # fail now, in the form, rather than in the background
    name = cfg.name or _default_name(cfg)
    resource = "remote" if cfg.remote else "device"  # an endpoint eval loads no local model
    return runtime.submit(
        db, "eval", cfg.to_dict(), name=name, resource=resource, launcher=launcher, start=launch_process
    )


def _default_name(cfg: EvalConfig) -> str:
    if cfg.remote:
        return f"{cfg.endpoint_model} at {cfg.endpoint} on v{cfg.version}/{cfg.split}"
    model = cfg.model or "gemma-3-270m"
    tuned = (
        f" + adapter of train #{cfg.adapter_job}"
        if cfg.adapter_job
        else (" + adapter" if cfg.adapter_dir else "")
    )
    return f"{model}{tuned} on v{cfg.version}/{cfg.split}"


def make_generator(cfg: EvalConfig):
    """The local model (base, or base + adapter), or the endpoint that serves it."""
    from eval.endpoint import EndpointGenerator
    from eval.predict import load_generator
    from store.endpoints import job_key

    if cfg.remote:
        log(f"1/3 endpoint {cfg.endpoint}, model {cfg.endpoint_model}")
        key = job_key(cfg.endpoint)  # the operator's key only for the operator's own endpoints
        return EndpointGenerator(
            cfg.endpoint,
            cfg.endpoint_model,
            api_key=key,
            max_new_tokens=cfg.max_new_tokens,
            concurrency=cfg.concurrency,
        )
    gen = load_generator(
        cfg.model,
        cfg.adapter_dir,
        batch_size=cfg.batch_size,
        max_new_tokens=cfg.max_new_tokens,
        precision=cfg.precision,
        log=log,
    )
    log(f"1/3 model {cfg.model or 'gemma-3-270m'}{' + ' + cfg.adapter_dir if cfg.adapter_dir else ''}")
    return gen


def run_eval(job_id: int, *, after_chunk: Callable[[], None] = lambda: None) -> dict:
    """The child's main sequence: model -> predictions per mode -> report; returns the job result.

    ``after_chunk`` runs after each saved group of chains (tests inject a pause there).
    """
    from eval.predict import PREDICTORS, units
    from eval.report import build_report, write_report
    from eval.rouge import RougeL

    db = connect()
    job = get_job(db, job_id)
    cfg = resolve_config(db, EvalConfig.from_dict(job.config))
    log(f"Eval job {job_id}: {cfg.to_dict()}")
    records = load_eval_records(db, cfg)
    total = sum(units(records, m) for m in cfg.modes)
    started = time.monotonic()
    heartbeat(db, job_id, done=0, total=total, message="loading the model · elapsed 0:00")
    gen = make_generator(cfg)
    loaded = time.monotonic()
    heartbeat(
        db, job_id, done=0, total=total, message=f"model ready in {_clock(loaded - started)}; predicting"
    )
    done, reused, carried = 0, 0, 0
    pending = {m: pending_records(db, job_id, m, records) for m in cfg.modes}  # (to predict, kept) per mode
    # Units this launch must predict (a resumed run keeps its saved chains): the ETA's denominator.
    new_total = total - sum(units(saved, m) for m, (_, saved) in pending.items())
    scorer = RougeL(cfg.use_stemmer)
    for mode in cfg.modes:
        todo, saved = pending[mode]
        done, reused, carried = done + units(saved, mode), reused + len(saved), carried + units(saved, mode)
        if saved:
            log(f"resuming {mode}: {len(saved)} of {len(records)} chains already predicted, kept")

        def progress(n: int, msg: str, mode: str = mode, carried: int = carried) -> None:
            nonlocal done
            done += n
            timing = phase_timing(done - carried, new_total, time.monotonic() - loaded)
            heartbeat(db, job_id, done=done, total=total, message=f"predicting {mode}: {msg} · {timing}")

        n_rows = 0
        for chunk in chunks(todo, cfg.batch_size):
            rows = PREDICTORS[mode](gen, chunk, scorer, progress)
            save_predictions(db, job_id, rows)  # one transaction: a chain's steps land together or not at all
            n_rows += len(rows)
            after_chunk()
        log(f"2/3 {mode}: {n_rows} new step predictions over {len(todo)} chains")
    report = build_report(db, job_id, threshold=cfg.fail_threshold)
    paths = write_report(report, _report_dir(job))
    log(f"3/3 report written to {paths['json']}")
    return {
        "report_dir": str(Path(paths["json"]).parent),
        "n_chains": len(records),
        "reused_chain_predictions": reused,
        "overall": report["overall"],
    }


def _clock(seconds: float) -> str:
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def phase_timing(done: int, total: int, elapsed_s: float) -> str:
    """'elapsed 1:05 · ETA 3:10' from the units this launch predicted (the rate of this launch only)."""
    if done <= 0 or total <= 0:
        return f"elapsed {_clock(elapsed_s)}"
    return f"elapsed {_clock(elapsed_s)} · ETA {_clock(elapsed_s / done * max(total - done, 0))}"


def pending_records(
    db: sqlite_utils.Database, job_id: int, mode: str, records: list[dict]
) -> tuple[list[dict], list[dict]]:
    """(records still to predict in ``mode``, records whose predictions this run already saved)."""
    saved_ids = done_chain_ids(db, job_id, mode)
    todo = [r for r in records if r["chain_id"] not in saved_ids]
    return todo, [r for r in records if r["chain_id"] in saved_ids]


def chunks(records: list[dict], size: int) -> list[list[dict]]:
    """Consecutive groups of ``size`` chains: the unit saved at once, so a kill loses one group at most."""
    return [records[i : i + size] for i in range(0, len(records), max(size, 1))]


def resume_eval(db: sqlite_utils.Database, job_id: int) -> int:
    """Queue a failed or cancelled eval run again; it keeps the predictions it saved. Returns its id.

    Raises:
        CoiError: no such eval run, or it is not failed/cancelled.
    """
    from jobs import runtime

    return runtime.resume(db, job_id, "eval").id


def _report_dir(job) -> Path:
    """The run's own report folder: its config's ``out`` (set from the shell), else data/eval/run-ID."""
    from jobs.process import logs_dir

    out = EvalConfig.from_dict(job.config).out
    return Path(out) if out else logs_dir().parent / "eval" / f"run-{job.id}"


def main(argv: list[str] | None = None, *, after_chunk: Callable[[], None] = lambda: None) -> int:
    """``python -m eval.run --job ID``; ``after_chunk`` is the hook a test wrapper injects."""
    from jobs.process import run_as_job

    parser = argparse.ArgumentParser(prog="python -m eval.run")
    parser.add_argument("--job", type=int, required=True, help="The eval job's id.")
    args = parser.parse_args(argv)
    return run_as_job(args.job, lambda job_id: run_eval(job_id, after_chunk=after_chunk))


if __name__ == "__main__":
    sys.exit(main())
