"""The training queue: submit, start the next, cancel, resume, re-attach.

One training job runs at a time by default (``$COI_MAX_TRAIN_JOBS`` raises it). ``submit`` adds a
job and starts it at once if the queue is free; otherwise it waits as 'queued'. ``pump_queue``
starts the next queued jobs; the page, the CLI and every finishing training process call it, so
the next job starts when one ends. The generic process handling lives in ``jobs.process``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import sqlite_utils

from jobs import process
from store.errors import CoiError
from store.jobs import Job, claim_next_queued, create_job, finish_job, get_job, list_jobs, requeue, update_job
from store.paths import confine_data_path, confine_model_path
from store.versions import list_versions
from training.config import TrainConfig, resolve_output_dir

KIND = "train"
MODULE = "training.run"


def max_running() -> int:
    return max(1, int(os.environ.get("COI_MAX_TRAIN_JOBS", "1")))


def pin_version(db: sqlite_utils.Database, cfg: TrainConfig) -> TrainConfig:
    """Fix an unset dataset version to the newest one, so the saved config says what was trained on."""
    if cfg.dataset_version is not None:
        return cfg
    versions = list_versions(db)
    if not versions:
        raise CoiError("There is no dataset version yet", "Create one from the accepted chains first.")
    return cfg.replace(dataset_version=versions[0].id)


def submit(db: sqlite_utils.Database, cfg: TrainConfig, *, name: str = "") -> int:
    """Queue a training job and start it now if nothing else is training. Returns the job id."""
    cfg = pin_version(db, cfg.validated())
    confine_paths(cfg)  # fail in the form; the job checks again before it loads anything
    name = name or f"{Path(cfg.base_model).name} on v{cfg.dataset_version}"
    job_id = create_job(db, KIND, cfg.to_dict(), name=name, status="queued")
    pump_queue(db)
    return job_id


def confine_paths(cfg: TrainConfig, job_id: int = 0) -> Path:
    """Check the user-typed base model and output directory against the path policy.

    Returns:
        The run's resolved output directory.

    Raises:
        CoiError: either path resolves outside the allowed roots (``store.paths``).
    """
    confine_model_path(cfg.base_model, what="base model")
    return confine_data_path(resolve_output_dir(cfg, job_id), what="output directory")


def accelerate_launcher(num_gpus: int) -> list[str] | None:
    """The ``accelerate launch`` prefix for multi-GPU runs (None: plain python)."""
    if num_gpus <= 1:
        return None
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(num_gpus),
        "--num_machines",
        "1",
    ]


def start(db: sqlite_utils.Database, job_id: int) -> int:
    """Launch a claimed job's process; returns its pid."""
    cfg = TrainConfig.from_dict(get_job(db, job_id).config)
    env = {}
    if cfg.num_gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif "CUDA_VISIBLE_DEVICES" not in os.environ:  # else the Trainer would DataParallel over every GPU
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(cfg.num_gpus)))
    return process.launch(db, job_id, MODULE, launcher=accelerate_launcher(cfg.num_gpus), env=env)


def refresh_running(db: sqlite_utils.Database) -> list[Job]:
    """Re-attach to every running training job (dead processes become 'failed')."""
    return [process.refresh(db, j.id) for j in list_jobs(db, kind=KIND, statuses=["running"])]


def pump_queue(db: sqlite_utils.Database) -> list[int]:
    """Start queued training jobs while there is room; returns the ids started."""
    refresh_running(db)
    started = []
    while (job_id := claim_next_queued(db, KIND, max_running())) is not None:
        try:
            start(db, job_id)
        except Exception as exc:  # noqa: BLE001 - a job that cannot start must not block the queue
            finish_job(db, job_id, "failed", error=f"Could not start the training process: {exc!r}")
        started.append(job_id)
    return started


def cancel(db: sqlite_utils.Database, job_id: int) -> Job | None:
    """Cancel a queued or running job (its process group is killed), then start the next one."""
    job = process.cancel(db, job_id)
    pump_queue(db)
    return job


def resume(db: sqlite_utils.Database, job_id: int) -> Job:
    """Launch a failed or cancelled job again; it continues from its newest checkpoint."""
    job = get_job(db, job_id)
    if job is None or job.kind != KIND:
        raise CoiError(f"No training job #{job_id}", "Pick a job from the run history.")
    if not requeue(db, job_id):
        raise CoiError(f"Job #{job_id} is {job.status}; only failed or cancelled jobs resume", "")
    pump_queue(db)
    return get_job(db, job_id)


def last_checkpoint(out_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` directory of a run (None if none).

    The Trainer writes ``trainer_state.json`` last, so a checkpoint cut short by a kill has none
    (or a broken one) and is skipped: resuming falls back to the checkpoint before it.
    """
    found = [
        p for p in Path(out_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and _complete(p)
    ]
    return str(max(found, key=lambda p: int(p.name.split("-")[-1]))) if found else None


def _complete(ckpt: Path) -> bool:
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def checkpoint_step(job: Job) -> int | None:
    """The step of the job's newest checkpoint (None if it has none)."""
    ckpt = last_checkpoint(output_dir(job))
    return int(Path(ckpt).name.split("-")[-1]) if ckpt else None


def output_dir(job: Job) -> Path:
    return resolve_output_dir(TrainConfig.from_dict(job.config), job.id)


def trainer_state(job: Job) -> dict:
    """The Trainer's state of the newest checkpoint ({} if none)."""
    ckpt = last_checkpoint(output_dir(job))
    path = Path(ckpt or "") / "trainer_state.json"
    return json.loads(path.read_text()) if ckpt and path.exists() else {}


def current_job(db: sqlite_utils.Database) -> Job | None:
    """The job to watch: a running one, else a queued one, else the newest (after re-attaching)."""
    refresh_running(db)
    for statuses in (["running"], ["queued"], None):
        found = list_jobs(db, kind=KIND, statuses=statuses, limit=1)
        if found:
            return found[0]
    return None


def rename(db: sqlite_utils.Database, job_id: int, name: str) -> None:
    update_job(db, job_id, name=name)
