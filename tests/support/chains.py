"""Chains for the tests: built in memory (``chain_of``) or inserted with their composition (``add_chain``)."""

from __future__ import annotations

from collections.abc import Sequence

from store.chains import insert_chain, upsert_composition
from store.models import Chain, Step

TEXTS = ["the cat sat on the mat", "a dog ran far away", "birds sing at dawn", "rain falls on the town"]


def chain_of(i: int, length: int, *, status: str = "accepted", source: str = "test") -> Chain:
    """A chain whose step k upper-cases or repeats the previous output (easy, checkable references)."""
    text = TEXTS[i % len(TEXTS)] + f" {i}"
    steps = []
    for k in range(1, length + 1):
        out = text.upper() if k % 2 else f"{text.lower()} again"
        steps.append(Step(position=k, instruction=f"Rewrite the text in way {k}", input=text, output=out))
        text = out
    return Chain(steps=steps, status=status, source=source)


def add_chain(
    db,
    n: int = 3,
    *,
    tag: str = "a",
    outputs: Sequence[str] | None = None,
    first_input: str | None = None,
    comp: str | None = None,
    category: str = "cat",
    source: str = "src",
    verdict: str | None = None,
    confidence: float | None = None,
    reason: str = "fits",
) -> int:
    """Insert a proposed chain of LLM steps with its composition; returns the chain id.

    Step k's output is ``outputs[k-1]`` (default ``{tag}-out{k}``); its input is the previous output,
    or ``first_input`` (default ``{tag}-input``) for step 1.
    """
    outputs = list(outputs) if outputs else [f"{tag}-out{k}" for k in range(1, n + 1)]
    inputs = [first_input or f"{tag}-input", *outputs[:-1]]
    steps = [
        Step(k, f"{tag} instr {k}", inputs[k - 1], out, origin="llm") for k, out in enumerate(outputs, 1)
    ]
    comp_id = upsert_composition(
        db, comp or f"comp-{tag}", length=len(steps), verdict=verdict, confidence=confidence, reason=reason
    )
    chain = Chain(steps=steps, composition_id=comp_id, category=category, source=source)
    return insert_chain(db, chain)[0]
