"""Compose + check: propose task orders, filter them cheaply, ask the LLM, extend accepted pairs.

Cheap filters run before any LLM call: no task chains with itself (or repeats in a chain), and the
*type* of A's output must fit what B takes as input. The types come from a small explicit heuristic
on the gold data: the shape of A's gold output (text / label / number / json / code) and the shape of
B's own gold input (what B was written for), with the category as a hint for code and data tasks.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.llm import LLMClient, LLMRequest
from pipeline.prompts import CHECK_STOP, Verdict, check_prompt, parse_verdict
from store.models import Task

KINDS = ("text", "label", "number", "json", "code")
# What a task whose own input has kind K can take from the previous step.
ACCEPTS: dict[str, set[str]] = {
    "text": {"text"},
    "label": {"label", "text", "number"},  # a word or short phrase: a short text or a label fits
    "number": {"number"},
    "json": {"json"},
    "code": {"code"},
}
_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+\s*%?$")
_CODE_CATEGORY = re.compile(r"\b(code|sql|program|python|regex)", re.I)
_CODE_SHAPE = re.compile(
    r"^\s*(SELECT\s|def\s|class\s|import\s|#include|function\s|\{\s*\"?\w+\"?\s*:)", re.I
)
MAX_LABEL_WORDS = 3
# Categories whose short outputs are labels even when longer than three words ("not enough information").
_LABEL_CATEGORY = re.compile(r"classif|sentiment|detect|verif|label|yes.?no", re.I)


def text_kind(text: str, category: str = "") -> str:
    """The kind of a piece of text: json, number, code, label (<= 3 words, no sentence end) or text."""
    s = (text or "").strip()
    if not s:
        return "label"
    if s[0] in "{[":
        try:
            json.loads(s)
            return "json"
        except ValueError:
            pass
    if _NUMBER.match(s):
        return "number"
    if _CODE_SHAPE.match(s) or (_CODE_CATEGORY.search(category or "") and _looks_like_code(s)):
        return "code"
    if len(s.split()) <= MAX_LABEL_WORDS and not s.endswith((".", "?", "!")):
        return "label"
    if _LABEL_CATEGORY.search(category or "") and len(s.split()) <= 6:
        return "label"
    return "text"


def _looks_like_code(s: str) -> bool:
    return any(tok in s for tok in ("(", ")", ";", "=", " FROM ", "SELECT"))


def output_kind(task: Task) -> str:
    return text_kind(task.output, task.category)


def input_kind(task: Task) -> str | None:
    """What the task takes; None if it takes no input (it can only start a chain)."""
    if not (task.input or "").strip():
        return None
    return text_kind(task.input, task.category)


_WANTS_NUMBERS = re.compile(r"\b(numbers?|dates?|prices?|amounts?|years?|digits?|sum|total)\b", re.I)
_WANTS_LIST = re.compile(r"\b(list|items|names|words)\b", re.I)


def _is_list(text: str) -> bool:
    s = (text or "").strip()
    return s.count(",") >= 2 or s.count("\n") >= 2 or s.count(";") >= 2


def fits_content(a: Task, b: Task) -> bool:
    """B asks for numbers or a list (its instruction says so and its own input has them): A's output must too."""
    inp, out = b.input or "", a.output or ""
    if _WANTS_NUMBERS.search(b.instruction) and re.search(r"\d", inp) and not re.search(r"\d", out):
        return False
    return not (_WANTS_LIST.search(b.instruction) and _is_list(inp) and not _is_list(out))


def can_follow(a: Task, b: Task) -> bool:
    """Cheap filter: may B run on A's output? (different tasks, A's output kind and content fit B's input)."""
    if a.id == b.id or a.instruction.strip() == b.instruction.strip():
        return False
    need = input_kind(b)
    return need is not None and output_kind(a) in ACCEPTS[need] and fits_content(a, b)


def candidate_pairs(tasks: list[Task], limit: int, rng: random.Random) -> list[tuple[Task, Task]]:
    """Up to ``limit`` ordered pairs that pass the cheap filter, in a seeded random order."""
    n = len(tasks)
    if n * (n - 1) <= 200_000:
        pairs = [(a, b) for a in tasks for b in tasks if can_follow(a, b)]
        rng.shuffle(pairs)
        return pairs[:limit]
    out, seen = [], set()
    for _ in range(limit * 50):  # many tasks: sample instead of enumerating every pair
        a, b = rng.choice(tasks), rng.choice(tasks)
        if (a.id, b.id) not in seen and can_follow(a, b):
            seen.add((a.id, b.id))
            out.append((a, b))
            if len(out) >= limit:
                break
    return out


def step_instruction(task: Task) -> str:
    """The instruction a chain step uses: the short one if there is one, unless it is a proposal
    the checks flagged that no reviewer has accepted yet."""
    doubtful = task.short_status == "proposed" and task.short_flags
    return (task.instruction if doubtful else task.short_instruction or task.instruction).strip()


@dataclass
class PairVerdict:
    """The checker's answer for one ordered pair."""

    a: Task
    b: Task
    verdict: Verdict
    llm_call_id: int | None = None
    error: str | None = None


def check_pairs(
    client: LLMClient,
    pairs: list[tuple[Task, Task]],
    *,
    on_result: Callable[[int, object], None] | None = None,
) -> list[PairVerdict]:
    """Ask the LLM about each pair (batched). A failed call gives verdict 'unknown' with the error."""
    requests = [
        LLMRequest(
            check_prompt(step_instruction(a), step_instruction(b), a.output), stop=CHECK_STOP, max_tokens=48
        )
        for a, b in pairs
    ]
    results = client.complete_many(requests, on_result=on_result)
    out = []
    for (a, b), res in zip(pairs, results):
        if res.error:
            out.append(
                PairVerdict(
                    a, b, Verdict("unknown", f"LLM error: {res.error}", None), res.llm_call_id, res.error
                )
            )
        else:
            out.append(PairVerdict(a, b, parse_verdict(res.text), res.llm_call_id))
    return out


@dataclass
class Proposal:
    """An ordered list of tasks to chain, with the verdict that admitted it."""

    tasks: list[Task]
    verdict: str = "yes"
    reason: str = ""
    confidence: float | None = None
    llm_call_id: int | None = None
    pair_call_ids: list[int] = field(default_factory=list)

    @property
    def task_ids(self) -> list[int]:
        return [t.id for t in self.tasks]


Path = list[PairVerdict]  # accepted adjacent pairs, each one's b is the next one's a


def extension_candidates(
    paths: list[Path], tasks: list[Task], limit: int, rng: random.Random, per_path: int = 2
) -> list[tuple[Path, Task]]:
    """Up to ``limit`` (path, next task) candidates that pass the cheap filter (no task repeats).

    Round robin over the paths (every path's first option before any second one), so the longer
    chains spread over many accepted pairs instead of growing a few prefixes.
    """
    options: list[list[Task]] = []
    for path in paths:
        used = {path[0].a.id, *(p.b.id for p in path)}
        opts = [c for c in tasks if c.id not in used and can_follow(path[-1].b, c)]
        rng.shuffle(opts)
        options.append(opts[:per_path])
    out = [(path, opts[k]) for k in range(per_path) for path, opts in zip(paths, options) if k < len(opts)]
    return out[:limit]


def path_proposal(path: Path) -> Proposal:
    """A chain of 3+ tasks: admitted because every adjacent pair got a 'yes'."""
    tasks = [path[0].a] + [p.b for p in path]
    conf = [p.verdict.confidence for p in path if p.verdict.confidence is not None]
    return Proposal(
        tasks,
        "yes",
        "every adjacent pair was accepted by the checker",
        min(conf) if conf else None,
        None,
        [p.llm_call_id for p in path if p.llm_call_id],
    )


def pair_proposal(pv: PairVerdict) -> Proposal:
    v = pv.verdict
    return Proposal([pv.a, pv.b], v.verdict, v.reason, v.confidence, pv.llm_call_id)
