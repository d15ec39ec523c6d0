"""Regenerating stale steps: propose new outputs through an injected generator, then save the kept ones.

The store never imports the pipeline: ``generate(instruction, input)`` is passed in (the pipeline's
``generate_output``). Saving goes through ``store.review.apply_changes``, so a regeneration is one
edit group that undo reverts and optimistic locking protects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils

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
