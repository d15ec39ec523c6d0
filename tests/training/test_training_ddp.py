"""A real 2-process ``accelerate launch`` of the training job on the CPU (gloo), as the product launches it.

``num_processes=2`` makes :func:`training.queue.submit` store the accelerate prefix, and the job
runtime starts ``python -m accelerate.commands.launch ... -m training.run --job ID`` detached, like
any job. Here the entry goes through ``tests.support.throttled`` (every step sleeps a little) so the
cancel lands mid-run; the tiny model and a short max length keep each launch to seconds of training.
"""

from __future__ import annotations

import os
import re

import pytest

from jobs import process
from store.jobs import get_metrics
from tests.support.training import make_version, tiny_config, wait_for
from training import queue

pytestmark = pytest.mark.slow
STEPS = 8  # 0.5 s each: the cancel after checkpoint-2 lands seconds before the end

RANK_LINE = re.compile(
    r"rank (\d) of (\d): trained to step (\d+); response-only loss through (.*); "
    r"trained weights checksum (\S+)"
)


@pytest.fixture
def version(db):
    return make_version(db)


@pytest.fixture
def metric_writes(db):
    """Every insert or update of a metric row, counted by SQLite triggers (an upsert hides a second writer)."""
    db.execute("CREATE TABLE metric_writes (job_id INTEGER, step INTEGER, name TEXT)")
    for event in ("INSERT", "UPDATE"):
        db.execute(
            f"CREATE TRIGGER count_metric_{event.lower()} AFTER {event} ON metrics BEGIN "
            "INSERT INTO metric_writes VALUES (NEW.job_id, NEW.step, NEW.name); END"
        )

    def twice_written() -> list[tuple]:
        rows = db.execute(
            "SELECT name, step, count(*) FROM metric_writes GROUP BY name, step HAVING count(*) > 1"
        ).fetchall()
        db.execute("DELETE FROM metric_writes")
        return rows

    return twice_written


def rank_lines(log_text: str) -> dict[int, tuple]:
    """rank -> (world size, step, loss forwards, weights checksum), from each rank's closing line."""
    return {int(m[1]): (int(m[2]), int(m[3]), m[4], float(m[5])) for m in RANK_LINE.finditer(log_text)}


def job_processes(job_id: int, db_path) -> list[int]:
    """The job's processes below this one (the test started the launcher): the launcher and its ranks.

    Matched by command line and database (every test's first job is #1, and an earlier test's may still exit).
    """
    own_db = f"COI_DB={db_path}".encode()
    return [
        p for p in process.descendants(os.getpid()) if process.runs_job(p, job_id) and own_db in _environ(p)
    ]


def _environ(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def test_two_processes_train_checkpoint_cancel_every_rank_and_resume(
    db, db_path, version, tiny_model_dir, metric_writes
):
    cfg = tiny_config(
        tiny_model_dir, version, num_processes=2, max_seq_len=128, max_steps=STEPS, save_steps=2
    )
    launcher, _ = queue.launch_spec(cfg)  # the product's own prefix for 2 CPU processes
    assert launcher[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in launcher
    job_id = queue.submit(db, cfg, launcher=[*launcher, "-m", "tests.support.throttled", "0.5"])

    job = wait_for(db, job_id, lambda j: (queue.checkpoint_step(j) or 0) >= 2 or not j.active, timeout=150)
    assert job.status == "running", job.error
    assert job.done >= 2 and job.message.startswith(f"step {job.done}/{STEPS}")  # rank 0's heartbeat
    tree = job_processes(job_id, db_path)
    assert len(tree) == 3 and job.pid == tree[0]  # the launcher, then torchrun's 2 workers
    assert len({os.getpgid(p) for p in tree}) == 3  # each worker in a session of its own
    job = queue.cancel(db, job_id)
    assert job.status == "cancelled"
    assert [p for p in tree if process.is_alive(p)] == []  # every rank stopped
    ckpt_step = queue.checkpoint_step(job)
    assert 2 <= ckpt_step < STEPS
    assert metric_writes() == []  # each metric of each step written once: by rank 0 alone

    queue.resume(db, job_id)  # the stored launcher runs the same 2 processes again
    job = wait_for(db, job_id, lambda j: not j.active, timeout=150)
    assert job.status == "succeeded", job.error
    assert job.result["start_step"] == ckpt_step and job.result["global_step"] == STEPS
    assert queue.trainer_state(job)["global_step"] == STEPS and (job.done, job.total) == (STEPS, STEPS)
    with open(job.log_path, encoding="utf-8", errors="replace") as f:  # both launches, whole
        _, resumed = f.read().split(f"== outcome: train #{job_id} cancelled")
    assert resumed.count(f"(resuming from {queue.output_dir(job) / f'checkpoint-{ckpt_step}'})") == 2
    # DDP really ran: world size 2, rank 1 trained too, and the loss went through DDP's forward, on
    # the response-only path. All-reduced gradients leave both ranks with the same weights.
    assert job.result["world_size"] == 2
    assert job.result["loss_forwards"] == {"DistributedDataParallel": STEPS - ckpt_step}
    ranks = rank_lines(resumed)
    assert sorted(ranks) == [0, 1], ranks
    assert resumed.count(f"step {STEPS}/{STEPS} loss=") == 1  # rank 0 logs, alone
    for world, step, forwards, checksum in ranks.values():
        assert (world, step, forwards) == (2, STEPS, f"DistributedDataParallel x{STEPS - ckpt_step}")
        assert checksum == pytest.approx(job.result["weights_checksum"], rel=1e-11)
    assert ranks[0][3] == ranks[1][3]  # the same weights on both ranks, to the 13 digits logged
    assert [m["step"] for m in get_metrics(db, job_id, ["loss"])] == list(range(1, STEPS + 1))
    assert metric_writes() == []
