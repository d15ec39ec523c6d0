"""Admin-only actions behind the pages: each checks the actor's role, then calls the domain function.

Plain functions (no Streamlit), so the role check is tested directly: a page hides or disables what a
role may not do, and calling the function anyway raises CoiError. Annotator actions (review, edit,
decide, freeze versions) need no wrapper: every login may do them.
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from store.roles import ADMIN, Actor, require

ADMIN_HELP = "Only an admin may do this."


def save_endpoint(actor: Actor, db: sqlite_utils.Database, base_url: str, model: str, api: str) -> bool:
    """Settings: save the LLM endpoint (admin)."""
    from pipeline.status import save_endpoint as save

    require(actor, ADMIN, "change Settings")
    return save(db, base_url, model, api)


def save_sampling(actor: Actor, db: sqlite_utils.Database, values: dict) -> list[str]:
    """Settings: save the LLM sampling and limits (admin). Returns the fields that changed."""
    from pipeline.status import save_sampling as save

    require(actor, ADMIN, "change Settings")
    return save(db, values)


def reset_sampling(actor: Actor, db: sqlite_utils.Database) -> None:
    """Settings: clear the saved sampling values, so the environment or defaults apply (admin)."""
    from pipeline.status import reset_sampling as reset

    require(actor, ADMIN, "change Settings")
    reset(db)


def test_connection(actor: Actor, config, db_path: str) -> str:
    """Send one request to the configured endpoint (admin: it is part of changing Settings)."""
    from pipeline.status import test_connection as probe

    require(actor, ADMIN, "test the LLM connection")
    return probe(config, db_path)


def launch_batch(actor: Actor, db: sqlite_utils.Database, batch, llm) -> int:
    """Start a generate job (admin)."""
    from pipeline.run import launch_batch as launch

    require(actor, ADMIN, "start a generate job")
    return launch(db, batch, llm)


def write_batch_requests(actor: Actor, db: sqlite_utils.Database, db_path, llm, batch, out_dir):
    """Write the next step depth's requests as an OpenAI Batch file (admin: it is generation)."""
    from pipeline.batch import write_requests

    require(actor, ADMIN, "write a batch request file")
    return write_requests(db, db_path, llm, batch, out_dir)


def read_batch_results(actor: Actor, db: sqlite_utils.Database, path):
    """Store a provider's batch output file as answers, all or nothing (admin)."""
    from pipeline.batch import read_results

    require(actor, ADMIN, "store batch results")
    return read_results(db, path)


def resume_batch(actor: Actor, db: sqlite_utils.Database, job_id: int, api_key: str = "") -> int:
    """Resume a generate job (admin)."""
    from pipeline.run import resume_batch as resume

    require(actor, ADMIN, "resume a generate job")
    return resume(db, job_id, api_key)


def cancel_job(actor: Actor, db: sqlite_utils.Database, job_id: int) -> None:
    """Cancel a queued or running generate or eval job, then start the next one (admin)."""
    from jobs import runtime

    require(actor, ADMIN, "cancel a job")
    runtime.cancel(db, job_id)


def submit_training(actor: Actor, db: sqlite_utils.Database, cfg) -> int:
    """Queue a training job (admin)."""
    from training import queue

    require(actor, ADMIN, "start a training job")
    return queue.submit(db, cfg)


def cancel_training(actor: Actor, db: sqlite_utils.Database, job_id: int) -> None:
    """Cancel a training job (admin)."""
    from training import queue

    require(actor, ADMIN, "cancel a training job")
    queue.cancel(db, job_id)


def resume_training(actor: Actor, db: sqlite_utils.Database, job_id: int):
    """Resume a training job from its last checkpoint (admin)."""
    from training import queue

    require(actor, ADMIN, "resume a training job")
    return queue.resume(db, job_id)


def submit_eval(actor: Actor, db: sqlite_utils.Database, cfg) -> int:
    """Start an eval run (admin)."""
    from eval.run import submit_eval as submit

    require(actor, ADMIN, "start an eval run")
    return submit(db, cfg)


def resume_eval(actor: Actor, db: sqlite_utils.Database, job_id: int):
    """Resume an eval run (admin)."""
    from eval.run import resume_eval as resume

    require(actor, ADMIN, "resume an eval run")
    return resume(db, job_id)


def typed_import_path(actor: Actor, typed: str) -> Path:
    """A path typed on the Data page, checked against the import folders (admin).

    Raises:
        CoiError: not an admin, or the path is not an importable file inside an import folder.
    """
    from store.paths import confine_import_path

    require(actor, ADMIN, "import from a typed path")
    return confine_import_path(typed)


def send_failures_to_review(
    actor: Actor,
    db: sqlite_utils.Database,
    chain_ids: list[int],
    *,
    reason: str,
    failures: dict[int, dict] | None = None,
) -> int:
    """Mark an eval run's failing chains needs_review, each with its run, failing step and score (admin)."""
    from store.predictions import mark_chains_needs_review

    require(actor, ADMIN, "send eval failures to Review")
    return mark_chains_needs_review(db, chain_ids, author=actor.name, reason=reason, failures=failures)
