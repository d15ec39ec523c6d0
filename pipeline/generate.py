"""Generate: step 1's output is the gold output; step k+1's output is the LLM applying instruction k+1
to step k's output. Chains land in the Review queue as 'proposed', keyed so re-runs never duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from pipeline.checks import check_step, encode
from pipeline.compose import ACCEPTS, Proposal, input_kind, step_instruction, text_kind
from pipeline.llm import LLMClient, LLMRequest
from pipeline.prompts import GENERATE_EXAMPLE_TEXTS, GENERATE_STOP, generate_prompt, parse_generation
from store.chains import composition_key_for_tasks, insert_chain, upsert_composition
from store.flags import refresh_risk
from store.hashing import content_hash
from store.models import Chain, Step

SOURCE = "pipeline"


@dataclass
class GenerationResult:
    """One generated output (``error`` set and ``output`` empty when it failed)."""

    output: str
    llm_call_id: int | None
    error: str | None
    truncated: bool = False  # the answer used every token it was allowed


def generate_output(client: LLMClient, instruction: str, input_text: str) -> GenerationResult:
    """Apply ``instruction`` to ``input_text`` with the LLM (cached, retried; never raises for LLM errors)."""
    return generate_outputs(client, [(instruction, input_text)])[0]


def generate_outputs(
    client: LLMClient, items: list[tuple[str, str]], *, on_result: Callable[[int, object], None] | None = None
) -> list[GenerationResult]:
    """Batched :func:`generate_output` (bounded concurrency)."""
    reqs = [LLMRequest(generate_prompt(i, x), stop=GENERATE_STOP) for i, x in items]
    out = []
    for res in client.complete_many(reqs, on_result=on_result):
        text = parse_generation(res.text) if res.ok else None
        error = res.error or (None if text else "the LLM returned no usable output")
        truncated = bool(res.completion_tokens) and res.completion_tokens >= client.config.max_tokens
        out.append(GenerationResult(text or "", res.llm_call_id, error, truncated))
    return out


def step_flags(
    proposal: Proposal, pos: int, instruction: str, step_input: str, res: GenerationResult
) -> str | None:
    """The generation checks on step ``pos`` (1-based), encoded for the step's ``flag`` column."""
    tasks = proposal.tasks
    takes = input_kind(tasks[pos]) if pos < len(tasks) else None
    flags = check_step(
        instruction,
        step_input,
        res.output,
        truncated=res.truncated,
        examples=GENERATE_EXAMPLE_TEXTS,
        output_kind=text_kind(res.output, tasks[pos - 1].category) if takes else None,
        next_accepts=ACCEPTS.get(takes) if takes else None,
    )
    return encode(flags)


def chain_key(proposal: Proposal) -> str:
    """Dedupe key of a generated chain: its composition and its input (so re-runs never duplicate)."""
    first = proposal.tasks[0]
    return "gen:" + content_hash([composition_key_for_tasks(proposal.task_ids), first.input])


@dataclass
class ChainDraft:
    """A chain being generated, step by step."""

    proposal: Proposal
    steps: list[Step] = field(default_factory=list)
    error: str | None = None


def start_draft(proposal: Proposal) -> ChainDraft:
    first = proposal.tasks[0]
    step = Step(1, step_instruction(first), first.input, first.output, origin="gold", task_id=first.id)
    return ChainDraft(proposal, [step])


def generate_chains(
    client: LLMClient,
    proposals: list[Proposal],
    *,
    on_result: Callable[[int, object], None] | None = None,
) -> list[ChainDraft]:
    """Fill every step of every proposal, one position at a time (each position is one batch)."""
    drafts = [start_draft(p) for p in proposals]
    max_len = max((len(p.tasks) for p in proposals), default=0)
    for pos in range(2, max_len + 1):
        live = [d for d in drafts if d.error is None and len(d.proposal.tasks) >= pos]
        items = [(step_instruction(d.proposal.tasks[pos - 1]), d.steps[-1].output) for d in live]
        for draft, res in zip(live, generate_outputs(client, items, on_result=on_result)):
            task = draft.proposal.tasks[pos - 1]
            if res.error:
                draft.error = f"step {pos}: {res.error}"
                continue
            prev = draft.steps[-1].output
            instruction = step_instruction(task)
            draft.steps.append(
                Step(
                    pos,
                    instruction,
                    prev,
                    res.output,
                    "llm",
                    task_id=task.id,
                    flag=step_flags(draft.proposal, pos, instruction, prev, res),
                    llm_call_id=res.llm_call_id,
                )
            )
    return drafts


def store_composition(db: sqlite_utils.Database, proposal: Proposal) -> int:
    """Upsert the composition row with the checker's verdict, reason and confidence."""
    return upsert_composition(
        db,
        composition_key_for_tasks(proposal.task_ids),
        length=len(proposal.tasks),
        task_ids=proposal.task_ids,
        source=SOURCE,
        verdict=proposal.verdict,
        reason=proposal.reason,
        confidence=proposal.confidence,
        llm_call_id=proposal.llm_call_id,
    )


def save_draft(db: sqlite_utils.Database, draft: ChainDraft, *, meta: dict | None = None) -> tuple[int, bool]:
    """Insert a finished draft as a 'proposed' chain. Returns (chain id, added?)."""
    proposal = draft.proposal
    chain = Chain(
        steps=draft.steps,
        status="proposed",
        source=SOURCE,
        category="+".join(t.category for t in proposal.tasks),
        composition_id=store_composition(db, proposal),
        meta={"checker_reason": proposal.reason, **(meta or {})},
    )
    chain_id, added = insert_chain(db, chain, key=chain_key(proposal))
    if added and proposal.verdict != "yes":
        refresh_risk(db, [chain_id])  # the checker's doubt counts even without step flags
    return chain_id, added
