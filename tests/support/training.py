"""Shared helpers of the training tests: a handful of accepted chains frozen into a version."""

from __future__ import annotations

import time

from store.chains import insert_chain
from store.jobs import get_job
from store.versions import SplitSpec, create_version
from tests.support.chains import chain_of
from training.config import TrainConfig


def make_version(db, n_chains: int = 12) -> int:
    """Insert ``n_chains`` accepted chains of lengths 1-3 and freeze them into a dataset version."""
    for i in range(n_chains):
        insert_chain(db, chain_of(i, 1 + i % 3))
    return create_version(db, SplitSpec(test_fraction=0.2), name="test")


def tiny_config(model_dir, version_id: int, **changes) -> TrainConfig:
    base = dict(
        base_model=str(model_dir),
        dataset_version=version_id,
        max_steps=4,
        batch_size=2,
        logging_steps=1,
        save_steps=2,
        learning_rate=5e-3,
        lora_r=4,
        lora_alpha=8,
        max_seq_len=256,
        eval_fraction=0.2,
        warmup_ratio=0.0,
    )
    return TrainConfig(**base).replace(**changes)


def wait_for(db, job_id: int, pred, timeout: float = 240.0):
    """Poll the job until ``pred(job)`` holds; returns the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(db, job_id)
        if pred(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached the condition; last: {get_job(db, job_id)}")
