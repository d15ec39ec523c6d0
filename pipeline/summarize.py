"""Summarize: shorten each task's instruction to a short imperative clause.

The LLM's clause is a proposal (``tasks.short_status = 'proposed'``), checked and shown in Review; it
never overwrites a short instruction that is there, and a rejected one is not proposed again. Chain
steps use a proposal the checks flagged only once a reviewer accepted it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils

from pipeline.checks import check_short_instruction, encode
from pipeline.llm import LLMClient, LLMRequest
from pipeline.prompts import SUMMARIZE_STOP, parse_summary, summarize_prompt
from store.models import Task
from store.tasks import propose_short_instruction


@dataclass
class SummaryOutcome:
    task_id: int
    short: str | None
    error: str | None = None


def summarize_tasks(
    db: sqlite_utils.Database,
    client: LLMClient,
    tasks: list[Task],
    *,
    on_result: Callable[[int, object], None] | None = None,
) -> list[SummaryOutcome]:
    """Summarize the tasks that have no short instruction yet; store the good ones.

    A task whose summary failed (LLM error or unusable reply) keeps ``short_instruction`` empty, so
    a later run tries again; the chain steps then fall back to the full instruction.
    """
    todo = [t for t in tasks if not (t.short_instruction or "").strip() and t.short_status != "rejected"]
    requests = [LLMRequest(summarize_prompt(t.instruction), stop=SUMMARIZE_STOP, max_tokens=40) for t in todo]
    results = client.complete_many(requests, on_result=on_result)
    outcomes = []
    for task, res in zip(todo, results):
        short = parse_summary(res.text) if res.ok else None
        if short:
            flags = encode(check_short_instruction(task.instruction, short))
            if propose_short_instruction(db, task.id, short, flags):
                task.short_instruction, task.short_status, task.short_flags = short, "proposed", flags
        error = res.error or (None if short else f"unusable summary: {res.text[:80]!r}")
        outcomes.append(SummaryOutcome(task.id, short, error))
    return outcomes
