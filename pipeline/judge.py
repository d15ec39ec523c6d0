"""An optional LLM judge per step: a rubric per step type, a verdict (correct / partly / wrong) with a
reason, stored with the rubric it used, and cached in ``llm_calls`` so a re-run costs nothing.

It judges two things: eval predictions against their reference (``judge_run``), and LLM-written
steps of generated chains before review (``judge_chain_steps``). Its agreement with human
decisions (``store.judgements.human_agreement``) tells the user whether to trust it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlite_utils

from pipeline.llm import LLMClient, LLMRequest
from pipeline.prompts import clip
from store.chains import get_chains
from store.judgements import Judgement, save_judgements
from store.predictions import get_predictions
from store.step_types import JSON, LABEL, LIST, NUMBER, ORDER, TEXT, infer_step_type

VERDICTS = ("correct", "partly", "wrong")
JUDGE_STOP = ("\n\n", "\nStep:")
RUBRICS = {
    LABEL: "The answer is a label or short answer. It is correct only if it names the same label as the "
    "reference (case and punctuation do not matter); anything else is wrong.",
    NUMBER: "The answer is a number. It is correct only if it states the same number as the reference; "
    "a different number is wrong, however close.",
    LIST: "The answer is a list. Correct if it holds the same items as the reference in any order; partly "
    "if some items are missing or extra; wrong if most are.",
    ORDER: "The answer is an ordered list. Correct only if it has the reference's items in the reference's "
    "order; partly if the items are right but the order is not.",
    JSON: "The answer must be valid JSON. Wrong if it does not parse; partly if keys or values differ from "
    "the reference; correct if they match.",
    TEXT: "The answer is free text. Correct if it does what the instruction asks for this input and says "
    "what the reference says; partly if it is on task but misses or adds content; wrong if it is off task, "
    "copies the input, or is empty.",
}
_VERDICT = re.compile(r"^\W*(correct|partly|partially|wrong|incorrect)\b\W*(.*)", re.I | re.S)


@dataclass(frozen=True)
class JudgeItem:
    step_type: str
    instruction: str
    input: str
    prediction: str
    reference: str = ""  # empty when judging a generated step: there is no gold answer


def judge_prompt(item: JudgeItem) -> str:
    """A completion-style prompt ending where the judge writes its verdict."""
    reference = f"Reference answer: {clip(item.reference, 600)}\n" if item.reference else ""
    return (
        "You grade one step of a chain of instructions. Answer with one word, correct, partly or wrong, "
        "then a short reason.\n"
        f"Rubric: {RUBRICS[item.step_type]}\n\n"
        f"Step: {clip(item.instruction, 300)}\n"
        f"Input: {clip(item.input, 800)}\n"
        f"{reference}"
        f"Answer: {clip(item.prediction, 800)}\n"
        "Verdict:"
    )


def parse_verdict(text: str) -> tuple[str, str]:
    """(verdict, reason); 'unknown' when the reply names no verdict."""
    found = _VERDICT.match(text or "")
    if not found:
        return "unknown", clip(text, 200) or "(empty reply)"
    word = found.group(1).lower()
    verdict = {"partially": "partly", "incorrect": "wrong"}.get(word, word)
    return verdict, clip(found.group(2), 300)


def judge_items(client: LLMClient, items: list[JudgeItem]) -> list[tuple[str, str, int | None]]:
    """(verdict, reason, llm_call_id) per item; a failed call is 'unknown' with the error as reason."""
    requests = [LLMRequest(judge_prompt(i), stop=JUDGE_STOP, max_tokens=64) for i in items]
    out = []
    for res in client.complete_many(requests):
        if not res.ok:
            out.append(("unknown", f"the judge call failed: {res.error}", res.llm_call_id))
            continue
        verdict, reason = parse_verdict(res.text)
        out.append((verdict, reason, res.llm_call_id))
    return out


def _judged(items: list[JudgeItem], answers, keys: list[dict], model: str) -> list[Judgement]:
    return [
        Judgement(**key, step_type=item.step_type, rubric=RUBRICS[item.step_type], verdict=verdict,
                  reason=reason, model=model, llm_call_id=call_id)
        for item, (verdict, reason, call_id), key in zip(items, answers, keys)
    ]  # fmt: skip


def judge_run(db: sqlite_utils.Database, client: LLMClient, run_id: int, *, mode: str = "chain") -> int:
    """Judge every step prediction of an eval run in one mode. Returns how many were judged."""
    preds = get_predictions(db, run_id, mode=mode)
    instructions = _instructions(db, {p.chain_id for p in preds})
    items, keys = [], []
    for p in preds:
        instruction = instructions.get((p.chain_id, p.position), "")
        step_input = str(p.meta.get("input", "")) if isinstance(p.meta, dict) else ""
        items.append(
            JudgeItem(infer_step_type(instruction), instruction, step_input, p.prediction, p.reference)
        )
        keys.append({"eval_run_id": run_id, "chain_id": p.chain_id, "position": p.position, "mode": mode})
    save_judgements(db, _judged(items, judge_items(client, items), keys, client.config.model))
    return len(items)


def judge_chain_steps(db: sqlite_utils.Database, client: LLMClient, chain_ids: list[int]) -> int:
    """Judge the LLM-written steps of these chains as they are now (before a human touches them)."""
    items, keys = [], []
    for chain in get_chains(db, chain_ids):
        for step in chain.steps:
            if step.origin != "llm":
                continue
            items.append(
                JudgeItem(infer_step_type(step.instruction), step.instruction, step.input, step.output)
            )
            keys.append(
                {"eval_run_id": 0, "chain_id": chain.id, "position": step.position, "mode": "generated"}
            )
    save_judgements(db, _judged(items, judge_items(client, items), keys, client.config.model))
    return len(items)


def _instructions(db: sqlite_utils.Database, chain_ids: set[int]) -> dict[tuple[int, int], str]:
    return {(c.id, s.position): s.instruction for c in get_chains(db, sorted(chain_ids)) for s in c.steps}
