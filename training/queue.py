"""Training's shortcuts over the one job runtime (``jobs.runtime``): submit, cancel, resume, checkpoints.

A training job claims the device like every job that loads a local model: it waits as 'queued'
while another such job (training, eval, the embedded LLM) runs, and starts when the device frees.
The queue itself, process handling and re-attaching live in ``jobs``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import sqlite_utils

from jobs import process, runtime
from store import env
from store.errors import CoiError
from store.jobs import Job, list_jobs, update_job
from store.paths import confine_data_path, confine_model_path
from store.versions import list_versions
from training.config import TrainConfig, resolve_output_dir

KIND = "train"
MODULE = "training.run"


def pin_version(db: sqlite_utils.Database, cfg: TrainConfig) -> TrainConfig:
    """Fix an unset dataset version to the newest one, so the saved config says what was trained on."""
    if cfg.dataset_version is not None:
        return cfg
    versions = list_versions(db)
    if not versions:
        raise CoiError("There is no dataset version yet", "Create one from the accepted chains first.")
    return cfg.replace(dataset_version=versions[0].id)


def submit(
    db: sqlite_utils.Database, cfg: TrainConfig, *, name: str = "", launcher: list[str] | None = None
) -> int:
    """Queue a training job and start it now if the device is free. Returns the job id.

    ``launcher`` replaces the python (or accelerate) prefix of the job's command (tests wrap it).
    """
    cfg = pin_version(db, cfg.validated())
    confine_paths(cfg)  # fail in the form; the job checks again before it loads anything
    name = name or f"{Path(cfg.base_model).name} on v{cfg.dataset_version}"
    default_launcher, env = launch_spec(cfg)
    return runtime.submit(db, KIND, cfg.to_dict(), name=name, launcher=launcher or default_launcher, env=env)


def confine_paths(cfg: TrainConfig, job_id: int = 0) -> Path:
    """Check the user-typed base model and output directory against the path policy.

    Returns:
        The run's resolved output directory.

    Raises:
        CoiError: either path resolves outside the allowed roots (``store.paths``).
    """
    confine_model_path(cfg.base_model, what="base model")
    return confine_data_path(resolve_output_dir(cfg, job_id), what="output directory")


def accelerate_launcher(num_processes: int, *, cpu_threads: int | None = None) -> list[str] | None:
    """The ``accelerate launch`` prefix of a multi-process (DDP) run; None: plain python.

    ``--multi_gpu`` is accelerate's data-parallel launcher (torchrun) on CPUs too: without it a CPU
    run gets one process whatever ``--num_processes`` says. Port 0 picks a free rendezvous port, so
    two runs (or a test beside a run) never collide on 29500. ``cpu_threads`` splits a CPU's cores.
    """
    if num_processes <= 1:
        return None
    prefix = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    prefix += ["--num_machines", "1", "--multi_gpu", "--main_process_port", "0"]
    # Trainer sets its own precision and no compile; saying so silences accelerate's guesses.
    prefix += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    if cpu_threads:
        prefix += ["--num_cpu_threads_per_process", str(cpu_threads)]
    return prefix


def launch_spec(cfg: TrainConfig) -> tuple[list[str] | None, dict[str, str]]:
    """The launcher prefix and the GPU environment a run's process needs (stored with the job)."""
    gpu_env = {}
    if cfg.num_gpus == 0:
        gpu_env["CUDA_VISIBLE_DEVICES"] = ""
    elif "CUDA_VISIBLE_DEVICES" not in env.environ():  # else the Trainer would DataParallel over every GPU
        gpu_env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(cfg.num_gpus)))
    threads = max(1, (os.cpu_count() or 1) // cfg.processes) if cfg.num_gpus == 0 else None
    return accelerate_launcher(cfg.processes, cpu_threads=threads), gpu_env


def refresh_running(db: sqlite_utils.Database) -> list[Job]:
    """Re-attach to every running training job (dead processes become 'failed')."""
    return [process.refresh(db, j.id) for j in list_jobs(db, kind=KIND, statuses=["running"])]


def pump_queue(db: sqlite_utils.Database) -> list[int]:
    """Start queued jobs (of every kind) while the device and the remote slots have room."""
    return runtime.pump(db)


def cancel(db: sqlite_utils.Database, job_id: int) -> Job:
    """Cancel a queued or running training job, then start the next one.

    Raises:
        CoiError: no such job, or it is not a training job.
    """
    return runtime.cancel(db, job_id, KIND)


def resume(db: sqlite_utils.Database, job_id: int) -> Job:
    """Queue a failed or cancelled training job again; it continues from its newest checkpoint."""
    return runtime.resume(db, job_id, KIND)


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
