"""Plain records that move between the store and the rest of the code."""

from __future__ import annotations

from dataclasses import dataclass, field

CHAIN_STATUSES = ("proposed", "needs_review", "accepted", "rejected")
SHORT_STATUSES = ("proposed", "accepted", "rejected")
ORIGINS = ("gold", "llm", "human")
JOB_KINDS = ("train", "eval", "generate", "regenerate")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_JOB_STATUSES = ("queued", "running")


@dataclass
class Task:
    """A single-instruction task."""

    instruction: str
    input: str = ""
    output: str = ""
    category: str = ""
    name: str = ""
    source: str = ""
    short_instruction: str | None = None
    meta: dict = field(default_factory=dict)
    id: int | None = None
    # None: the short instruction came with the data; else an LLM proposal's review state.
    short_status: str | None = None
    short_flags: str | None = None  # the checks' findings on a proposed short instruction (JSON)


@dataclass
class Step:
    """One step of a chain: its input is the previous step's output (or the chain input)."""

    position: int
    instruction: str
    input: str
    output: str
    origin: str = "gold"
    stale: bool = False
    task_id: int | None = None
    flag: str | None = None
    llm_call_id: int | None = None


@dataclass
class Chain:
    """An ordered chain of steps, as reviewed and exported."""

    steps: list[Step]
    status: str = "proposed"
    source: str = ""
    category: str = ""
    composition_id: int | None = None
    meta: dict = field(default_factory=dict)
    id: int | None = None
    version: int = 1
    reviewer: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @property
    def length(self) -> int:
        return len(self.steps)

    @property
    def input(self) -> str:
        return self.steps[0].input if self.steps else ""

    @property
    def instructions(self) -> list[str]:
        return [s.instruction for s in self.steps]

    @property
    def outputs(self) -> list[str]:
        return [s.output for s in self.steps]

    @property
    def has_stale(self) -> bool:
        return any(s.stale for s in self.steps)
