"""Regenerating stale steps: propose new outputs through an injected generator, then save the kept ones.

The store never imports the pipeline: ``generate(instruction, input)`` is passed in (the pipeline's
``generate_output``). Saving goes through ``store.review.apply_changes``, so a regeneration is one
edit group that undo reverts and optimistic locking protects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import sqlite_utils

from store.jobs import Job, get_job, list_jobs, update_job
from store.models import Chain
from store.review import Change, apply_changes, step_rows


@dataclass
class Proposal:
    """A regenerated output for one stale step, shown to the reviewer as a diff."""

    position: int
    instruction: str
    input: str
    old_output: str
    new_output: str
    llm_call_id: int | None = None
    error: str | None = None

    @property
    def why_not_keep(self) -> str | None:
        """Why "keep" should not be ticked for the reviewer, or None when the new output looks usable."""
        new = _folded(self.new_output)
        if self.error:
            return "the LLM call failed"
        if not new:
            return "the new output is empty"
        if new == _folded(self.input):
            return "the new output repeats its input"
        if new == _folded(self.old_output):
            return "the new output is the old one"
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Proposal:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def _folded(text: str) -> str:
    return " ".join((text or "").casefold().split())


def propose_regeneration(chain: Chain, generate: Callable[[str, str], object]) -> list[Proposal]:
    """Re-run ``generate(instruction, input)`` for the chain's stale steps, in order.

    Each new output feeds the next step's input. ``generate`` returns an object with ``output``,
    ``llm_call_id`` and ``error`` (the pipeline's GenerationResult); it is injected so the store
    never imports the pipeline. Nothing is saved here.
    """
    stale = [s.position for s in chain.steps if s.stale]
    if not stale:
        return []
    proposals: list[Proposal] = []
    carried: str | None = None
    for step in chain.steps:
        if step.position < stale[0]:
            continue
        input_text = step.input if carried is None else carried
        if not step.stale:
            carried = step.output  # a fresh step in the middle keeps its output
            continue
        result = generate(step.instruction, input_text)
        error = getattr(result, "error", None)
        new = getattr(result, "output", "") or ""
        proposals.append(
            Proposal(
                step.position,
                step.instruction,
                input_text,
                step.output,
                new,
                getattr(result, "llm_call_id", None),
                error,
            )
        )
        carried = step.output if error else new
    return proposals


def apply_regeneration(
    db: sqlite_utils.Database,
    chain_id: int,
    proposals: list[Proposal],
    keep: dict[int, bool],
    *,
    author: str,
    expected_version: int,
) -> int:
    """Save the kept proposals (origin ``llm``, not stale); discarded steps keep their old output.

    A kept step whose proposal was generated from an input that is no longer its input (because an
    earlier proposal was discarded) stays stale: its output was not made from what now feeds it.
    """
    steps = {s[0]: s for s in step_rows(db, chain_id)}
    changes: list[Change] = []
    carried: str | None = None
    for pos in sorted(steps):
        prop = next((p for p in proposals if p.position == pos), None)
        input_text = steps[pos][1] if carried is None else carried
        input_changed = input_text != steps[pos][1]
        if input_changed:
            changes.append(Change("input", input_text, pos))
        if prop is None or not keep.get(pos) or prop.error:
            if input_changed:  # its old output was not made from this new input
                changes.append(Change("stale", "1", pos))
            carried = None  # the output is unchanged, so the next step's input already matches it
            continue
        changes += [Change("output", prop.new_output, pos), Change("origin", "llm", pos)]
        changes.append(
            Change("llm_call_id", None if prop.llm_call_id is None else str(prop.llm_call_id), pos)
        )
        changes.append(Change("stale", "0" if prop.input == input_text else "1", pos))
        carried = prop.new_output
    return apply_changes(
        db, chain_id, changes, author=author, expected_version=expected_version, reason="regenerated"
    )


# -- regeneration jobs: the proposals live in the job's result until the reviewer applies or discards them
def latest_regeneration(db: sqlite_utils.Database, chain_id: int) -> Job | None:
    """The newest regenerate job of a chain that the reviewer has not closed yet (None if none)."""
    rows = db.execute(
        "SELECT id FROM jobs WHERE kind = 'regenerate' AND json_extract(config, '$.chain_id') = ? "
        "AND json_extract(result, '$.closed') IS NULL ORDER BY id DESC LIMIT 1",
        [chain_id],
    ).fetchall()
    return get_job(db, rows[0][0]) if rows else None


def job_proposals(job: Job) -> list[Proposal]:
    """The proposals a finished regenerate job left (empty while it runs or when it failed)."""
    return [Proposal.from_dict(p) for p in job.result.get("proposals", [])]


def close_regeneration(db: sqlite_utils.Database, job_id: int, outcome: str) -> None:
    """Mark a regenerate job's proposals as dealt with ('applied' or 'discarded'), so they stop showing."""
    job = get_job(db, job_id)
    if job is not None:
        update_job(db, job_id, result={**job.result, "closed": outcome})


def regenerating_chains(db: sqlite_utils.Database, chain_ids: list[int]) -> dict[int, str]:
    """Chain id -> 'running' or 'ready' for the chains with an open regenerate job (queue markers)."""
    jobs = list_jobs(db, kind="regenerate", limit=200)
    out: dict[int, str] = {}
    for job in reversed(jobs):  # oldest first, so the newest job of a chain wins
        cid = job.config.get("chain_id")
        if cid in chain_ids and "closed" not in job.result:
            out[cid] = "running" if job.active else ("ready" if job.status == "succeeded" else job.status)
    return out
