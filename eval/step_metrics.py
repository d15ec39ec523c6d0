"""A metric per step type: exact match for labels, numeric match for counts, list and order match
for extract and sort steps, JSON match for format-as-JSON steps, ROUGE-L for free text.

ROUGE-L alone is wrong for most non-prose steps: "10 sentences" against "3" shares tokens and
scores above zero, and a shuffled sorted list keeps most of its longest common subsequence. Each
step's type comes from its task's category where one is known, else from its instruction text
(the paper's imported chains have no categories), and can be overridden.

Every function here is pure: the eval report and the bench call them. The step types themselves
live in ``store.step_types``, since generation (the judge's rubrics) needs them too.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

from eval.rouge import rouge_l, tokenize
from store.step_types import (
    JSON,
    LABEL,
    LIST,
    NUMBER,
    ORDER,
    STEP_TYPES,
    TEXT,
    infer_step_type,
    resolve_step_type,
)

__all__ = ["STEP_TYPES", "infer_step_type", "resolve_step_type"]  # re-exported beside the metrics


@dataclass(frozen=True)
class StepMetric:
    """How a step type is scored: every score is in [0, 1], higher is better, averaged over steps."""

    step_type: str
    name: str
    threshold: float  # a step below this fails (first failing step, own vs carried over)
    higher_is_better: bool = True
    aggregate: str = "mean"


METRICS = {
    LABEL: StepMetric(LABEL, "exact_match", 1.0),
    NUMBER: StepMetric(NUMBER, "numeric_match", 1.0),
    LIST: StepMetric(LIST, "list_f1", 1.0),
    ORDER: StepMetric(ORDER, "order_match", 1.0),
    JSON: StepMetric(JSON, "json_match", 1.0),
    TEXT: StepMetric(TEXT, "rougeL", 0.3),
}


def normalize(text: str) -> str:
    """Case, whitespace and punctuation folded away (NFKC first, so full-width forms match)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def exact_match(reference: str, prediction: str) -> float:
    return float(normalize(reference) == normalize(prediction))


_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")


def first_number(text: str) -> float | None:
    """The first number written in digits (``1,000``, ``3.5``) or as a word up to twenty."""
    text = unicodedata.normalize("NFKC", text)
    found = _NUMBER.search(text)
    words = re.search(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", text.lower())
    if found and (not words or found.start() <= words.start()):
        try:
            return float(found.group().replace(",", ""))
        except ValueError:
            return None
    return float(_NUMBER_WORDS[words.group(1)]) if words else None


def numeric_match(reference: str, prediction: str) -> float:
    """1 when both name the same number; exact match when the reference holds none."""
    ref = first_number(reference)
    if ref is None:
        return exact_match(reference, prediction)
    pred = first_number(prediction)
    return float(pred is not None and abs(pred - ref) <= 1e-9 * max(1.0, abs(ref)))


_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s*")


def list_items(text: str) -> list[str]:
    """Items of a list written one per line (bullets and numbering dropped) or separated by , or ;."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    parts = lines if len(lines) > 1 else re.split(r"[;,]", text)
    items = [normalize(_BULLET.sub("", p)) for p in parts]
    return [i for i in items if i]


def list_f1(reference: str, prediction: str) -> float:
    """F1 of the item multisets: order does not matter (extract steps)."""
    ref, pred = list_items(reference), list_items(prediction)
    if not ref and not pred:
        return 1.0
    remaining = list(ref)
    hits = 0
    for item in pred:
        if item in remaining:
            remaining.remove(item)
            hits += 1
    if not hits:
        return 0.0
    precision, recall = hits / len(pred), hits / len(ref)
    return 2 * precision * recall / (precision + recall)


def order_match(reference: str, prediction: str) -> float:
    """Item F1 times the share of items in the reference's order (longest common subsequence)."""
    ref, pred = list_items(reference), list_items(prediction)
    if ref == pred:
        return 1.0
    if not ref or not pred:
        return 0.0
    lcs = _lcs_length(ref, pred)
    return list_f1(reference, prediction) * lcs / max(len(ref), len(pred))


def _lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_json(text: str) -> tuple[bool, object]:
    """(valid, value); a ```json fence around the object is allowed."""
    fenced = _FENCE.match(text)
    try:
        return True, json.loads(fenced.group(1) if fenced else text)
    except (json.JSONDecodeError, ValueError, RecursionError):
        return False, None


def _leaves(value: object, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}/{k}")]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, normalize(str(value)))]


def json_match(reference: str, prediction: str) -> float:
    """0 for invalid JSON; else the F1 of (key path, value) leaves against the reference's."""
    valid, pred = parse_json(prediction)
    if not valid:
        return 0.0
    ref_valid, ref = parse_json(reference)
    if not ref_valid:
        return 1.0  # only validity can be judged against a reference that is not JSON itself
    ref_leaves, pred_leaves = set(_leaves(ref)), set(_leaves(pred))
    if ref_leaves == pred_leaves:
        return 1.0
    hits = len(ref_leaves & pred_leaves)
    if not hits:
        return 0.0
    precision, recall = hits / len(pred_leaves), hits / len(ref_leaves)
    return 2 * precision * recall / (precision + recall)


def text_rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L, bit-identical to rouge-score, except where its ASCII tokenizer sees no words in the
    reference (Panjabi, Chinese, ...): there an identical translation would score 0, so the LCS
    runs over Unicode words instead."""
    if tokenize(reference) or not reference.strip():
        return rouge_l(reference, prediction)
    ref, pred = normalize(reference).split(), normalize(prediction).split()
    lcs = _lcs_length(ref, pred) if ref and pred else 0
    if not lcs:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


_SCORERS = {
    LABEL: exact_match,
    NUMBER: numeric_match,
    LIST: list_f1,
    ORDER: order_match,
    JSON: json_match,
    TEXT: text_rouge_l,
}


def is_copy(source: str, text: str) -> bool:
    """The text repeats its source: equal after normalisation."""
    return bool(normalize(text)) and normalize(text) == normalize(source)


def score_step(step_type: str, reference: str, prediction: str, step_input: str = "") -> float:
    """The step's own metric; a verbatim copy of the step's input scores 0 unless the reference is one."""
    if step_input and is_copy(step_input, prediction) and not is_copy(step_input, reference):
        return 0.0
    return float(_SCORERS[step_type](reference, prediction))


def fails(step_type: str, score: float, thresholds: dict[str, float] | None = None) -> bool:
    threshold = (thresholds or {}).get(step_type, METRICS[step_type].threshold)
    return score < threshold
