"""Helpers of the eval tests: accepted chains frozen into a version, and eval runs made directly in the DB."""

from __future__ import annotations

from store.chains import insert_chain
from store.jobs import create_job, finish_job
from store.predictions import Prediction, save_predictions
from store.versions import SplitSpec, create_version
from tests.support.chains import chain_of
from tests.support.training import wait_for  # noqa: F401 - re-exported for the eval tests


def make_version(db, n_chains: int = 15, max_len: int = 3, test_fraction: float = 0.4) -> int:
    """Insert accepted chains of lengths 1..max_len and freeze them into a version (train and test)."""
    for i in range(n_chains):
        insert_chain(db, chain_of(i, 1 + i % max_len))
    lengths = tuple(range(1, max_len + 1))
    spec = SplitSpec(train_lengths=lengths, test_lengths=lengths, test_fraction=test_fraction)
    return create_version(db, spec, name="eval-test")


def fake_run(db, scores: dict[int, list[float]], *, name: str = "run", mode: str = "chain", gold=None) -> int:
    """A finished eval job with predictions whose ROUGE-L per chain and step are ``scores``."""
    run_id = create_job(db, "eval", {"fail_threshold": 0.5, "modes": [mode]}, name=name, status="running")
    rows = []
    for cid, steps in scores.items():
        for k, s in enumerate(steps, 1):
            pred = "" if s == 0 else f"prediction {cid}.{k} <b>bold</b> *stars*"
            meta = {"length": len(steps), "input": f"input {cid}.{k}"}
            rows.append(Prediction(cid, k, mode, pred, f"reference {cid}.{k} words", s, f"prompt {k}", meta))
    for cid, steps in (gold or {}).items():
        for k, s in enumerate(steps, 1):
            meta = {"length": len(steps), "input": "gold input"}
            rows.append(
                Prediction(cid, k, "stepwise-gold", f"gold pred {k}", f"reference {cid}.{k}", s, None, meta)
            )
    save_predictions(db, run_id, rows)
    finish_job(db, run_id, "succeeded")
    return run_id
