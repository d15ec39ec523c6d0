"""Regenerating a chain's stale steps as a background job, so the reviewer keeps working meanwhile.

The Review page submits ``python -m pipeline.regenerate --job ID`` through the job runtime; the job
asks the LLM for each stale step in order (each new output feeds the next step), reports progress
per step, and leaves the proposals in its result. Nothing is saved to the chain: the reviewer
applies or discards them (``store.regenerate``), under the chain version the proposals were made
from, so an edit made meanwhile shows as a conflict instead of being overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlite_utils

from pipeline.embedded import llm_endpoint
from pipeline.generate import generate_output
from pipeline.llm import LLMClient, LLMConfig
from store.chains import get_chain
from store.db import connect, database_file
from store.endpoints import job_env, job_key
from store.errors import CoiError
from store.jobs import get_job, heartbeat
from store.regenerate import propose_regeneration


def submit_regeneration(db: sqlite_utils.Database, chain_id: int, llm: LLMConfig, *, reviewer: str) -> int:
    """Queue the regeneration of a chain's stale steps; returns the job id.

    Against a configured endpoint it needs only a remote slot; the embedded LLM claims the device.
    The key (already checked by store.endpoints) reaches the child's environment only.
    """
    from jobs import runtime

    chain = get_chain(db, chain_id)
    if chain is None or not chain.has_stale:
        raise CoiError(f"Chain #{chain_id} has no stale steps to regenerate", "Edit a step first.")
    return runtime.submit(
        db,
        "regenerate",
        {"chain_id": chain_id, "reviewer": reviewer, "llm": llm.to_dict()},
        name=f"regenerate chain #{chain_id}",
        resource="device" if llm.embedded else "remote",
        secret_env=job_env(llm.api_key) or None,
    )


def run_job(job_id: int, *, db_path: str | Path | None = None) -> dict:
    """The job body: propose new outputs for the chain's stale steps, one LLM call per step.

    Returns:
        The result: the chain version the proposals were made from, and the proposals.

    Raises:
        JobFailed: every step's call failed (the reason names the endpoint).
    """
    from jobs.process import JobFailed

    db = connect(db_path)
    job = get_job(db, job_id)
    if job is None:
        raise CoiError(f"No job {job_id}", "Check the job id.")
    chain = get_chain(db, job.config["chain_id"])
    if chain is None:
        raise CoiError(f"Chain #{job.config['chain_id']} no longer exists", "Nothing to regenerate.")
    llm = LLMConfig.from_dict(job.config["llm"], api_key=job_key(job.config["llm"].get("base_url", "")))
    stale = [s.position for s in chain.steps if s.stale]
    with llm_endpoint(llm) as live:
        client = LLMClient(live, db_path or database_file(db), job_id=job_id)
        done = 0

        def generate(instruction: str, input_text: str):
            nonlocal done
            heartbeat(
                db, job_id, done=done, total=len(stale), message=f"step {stale[done]} via {live.base_url}"
            )
            result = generate_output(client, instruction, input_text)
            done += 1
            heartbeat(db, job_id, done=done, total=len(stale), message=f"{done} of {len(stale)} steps")
            return result

        proposals = propose_regeneration(chain, generate)
    result = {"version": chain.version, "proposals": [p.to_dict() for p in proposals]}
    failed = [p for p in proposals if p.error]
    if proposals and len(failed) == len(proposals):
        raise JobFailed(f"Every LLM call to {live.base_url} failed: {failed[0].error}", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate a chain's stale steps (started by the Review page)."
    )
    parser.add_argument("--job", type=int, required=True)
    args = parser.parse_args(argv)
    from jobs.process import run_as_job

    return run_as_job(args.job, run_job)


if __name__ == "__main__":
    sys.exit(main())
