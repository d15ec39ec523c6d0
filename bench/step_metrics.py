"""Does a wrong step fail? ROUGE-L alone against the step-aware metrics, on known perturbations.

Steps come from the paper's ``coi2_test.json`` (../shared/reference/coi_data) and, for the step
types that file lacks (sorted lists, JSON), from the sample data's chains. Each step's gold output
is perturbed in the ways a model gets a step wrong, where the gold output has that shape:

- count: a reference that is a number gets another number;
- label: a binary label is flipped (yes/no, toxic/not toxic, non-threat/threat, ...), and a short
  answer from a closed set gets another answer of that set; a closed set is an instruction's answers
  (or a sample category's) seen 3+ times with at most half of them distinct, so free answers that
  happen to be short ("I moved.") are not labels;
- shuffle: a list of 3+ items in sorted order, for an instruction that asks for an order (the
  bench's own keywords, not the metric's), is reshuffled;
- json: a JSON reference loses its closing bracket;
- copy: the output is replaced by the step's own input.

The baseline is ROUGE-L alone at the eval's default fail threshold (0.3), in the same run. Each
unperturbed step also gets a harmless rewrite (case, spacing, bullets, key order) that no metric
should fail: the false alarms. Recall is the mean over the five kinds, so the many copies do not
drown the rest. Run from the project root: ``.venv/bin/python bench/step_metrics.py``.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval import step_metrics as sm  # noqa: E402
from eval.rouge import rouge_l  # noqa: E402
from store.coi_format import parse_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "reference" / "coi_data"
ROUGE_THRESHOLD = 0.3  # EvalConfig.fail_threshold's default


@dataclass
class Step:
    instruction: str
    category: str
    input: str
    reference: str


def paper_steps() -> list[Step]:
    steps = []
    for record in json.loads((DATA / "coi2_test.json").read_text()):
        parsed = parse_record(record)
        if parsed.issues:
            continue
        inputs = [parsed.input, *parsed.outputs[:-1]]
        steps += [Step(i, "", x, o) for i, x, o in zip(parsed.instructions, inputs, parsed.outputs)]
    return steps


def sample_steps() -> list[Step]:
    sample = ROOT / "store" / "sample_data"
    tasks = {t["name"]: t for t in map(json.loads, (sample / "tasks.jsonl").read_text().splitlines()) if t}
    steps = []
    for chain in json.loads((sample / "chains.json").read_text()):
        parsed = parse_record(chain)
        inputs = [parsed.input, *parsed.outputs[:-1]]
        for name, x, o in zip(chain["tasks"], inputs, parsed.outputs):
            steps.append(Step(tasks[name]["instruction"], tasks[name]["category"], x, o))
    return steps


def _is_number(text: str) -> bool:
    try:
        float(text.strip().replace(",", ""))
        return True
    except ValueError:
        return False


def _sorted_items(text: str) -> list[str] | None:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    items = lines if len(lines) > 1 else [p.strip() for p in text.split(",")]
    keys = [sm.normalize(i) for i in items]
    return items if len(items) >= 3 and len(set(keys)) == len(keys) and keys == sorted(keys) else None


def _json_ref(text: str) -> bool:
    valid, value = sm.parse_json(text)
    return valid and isinstance(value, (dict, list)) and bool(value)


_PAIRS = [
    ("yes", "no"),
    ("true", "false"),
    ("toxic", "not toxic"),
    ("threat", "non threat"),
    ("hope speech", "not hope speech"),
    ("male", "female"),
    ("spam", "not spam"),
    ("ironic", "not ironic"),
    ("positive", "negative"),
    ("correct", "incorrect"),
    ("answerable", "unanswerable"),
]
FLIPS = {a: b for pair in _PAIRS for a, b in (pair, pair[::-1])}
ASKS_FOR_ORDER = ("sort", "alphabetical", "ascending", "descending", "in order")


def _label_key(step: Step) -> str:
    return step.category or step.instruction


def perturbations(step: Step, labels: dict[str, list[str]], rng: random.Random) -> dict[str, str]:
    """The wrong outputs that fit this step's reference, by kind."""
    ref, out = step.reference, {}
    if _is_number(ref):
        out["count"] = str(int(float(ref.replace(",", ""))) + rng.randint(1, 5))
    others = [a for a in labels.get(_label_key(step), []) if sm.normalize(a) != sm.normalize(ref)]
    if sm.normalize(ref) in FLIPS:
        out["label"] = FLIPS[sm.normalize(ref)].replace("non threat", "non-threat").capitalize()
    elif len(ref.split()) <= 4 and others and not _is_number(ref):
        out["label"] = rng.choice(others)
    items = _sorted_items(ref)
    if items and any(word in step.instruction.lower() for word in ASKS_FOR_ORDER):
        shuffled = items[:]
        while shuffled == items:
            rng.shuffle(shuffled)
        out["shuffle"] = ("\n" if "\n" in ref else ", ").join(shuffled)
    if _json_ref(ref):
        out["json"] = ref.rstrip()[:-1]
    if step.input and not sm.is_copy(step.input, ref):
        out["copy"] = step.input
    return out


def harmless(step: Step, step_type: str) -> str:
    """The reference rewritten without changing what it says, in the way its type allows."""
    ref = step.reference
    if step_type == sm.JSON and _json_ref(ref):
        value = sm.parse_json(ref)[1]
        if isinstance(value, dict):
            value = dict(reversed(list(value.items())))
        return json.dumps(value, indent=2, ensure_ascii=False)
    if step_type in (sm.LIST, sm.ORDER):
        return "\n".join(f"- {item}" for item in sm.list_items(ref))
    if step_type in (sm.LABEL, sm.NUMBER):
        return f"  {ref.strip().upper()}. "
    return " ".join(ref.split())


def label_pool(steps: list[Step]) -> dict[str, list[str]]:
    """The closed answer sets: per instruction (or sample category), short answers seen 3+ times
    with 2 or more, but at most half as many, distinct values."""
    seen: dict[str, list[str]] = defaultdict(list)
    for s in steps:
        if len(s.reference.split()) <= 4 and not _is_number(s.reference):
            seen[_label_key(s)].append(s.reference.strip())
    pool = {}
    for key, answers in seen.items():
        distinct = {sm.normalize(a): a for a in answers}
        if len(answers) >= 3 and 2 <= len(distinct) <= len(answers) / 2:
            pool[key] = sorted(distinct.values())
    return pool


def measure(steps: list[Step], seed: int = 0) -> dict:
    rng = random.Random(seed)
    labels = label_pool(steps)
    caught: dict[str, Counter] = defaultdict(Counter)
    alarms = Counter()
    for step in steps:
        step_type = sm.infer_step_type(step.instruction, step.category)
        for kind, wrong in perturbations(step, labels, rng).items():
            caught[kind]["n"] += 1
            caught[kind]["rouge"] += rouge_l(step.reference, wrong) < ROUGE_THRESHOLD
            score = sm.score_step(step_type, step.reference, wrong, step.input)
            caught[kind]["aware"] += sm.fails(step_type, score)
        ok = harmless(step, step_type)
        alarms["n"] += 1
        alarms["aware"] += sm.fails(step_type, sm.score_step(step_type, step.reference, ok, step.input))
        alarms["rouge"] += rouge_l(step.reference, ok) < ROUGE_THRESHOLD
    return {"caught": caught, "alarms": alarms}


def main() -> int:
    steps = paper_steps() + sample_steps()
    types = Counter(sm.infer_step_type(s.instruction, s.category) for s in steps)
    print(f"{len(steps)} steps: coi2_test.json and the sample chains; inferred types {dict(types)}")
    result = measure(steps)
    caught, alarms = result["caught"], result["alarms"]
    print(f"{'perturbation':<14}{'steps':>7}{'ROUGE-L alone':>15}{'step-aware':>12}")
    for kind in ("count", "label", "shuffle", "json", "copy"):
        c = caught[kind]
        print(f"{kind:<14}{c['n']:>7}{c['rouge'] / c['n']:>15.3f}{c['aware'] / c['n']:>12.3f}")
    # Each perturbation kind counts once: copies are 90% of the perturbed steps and would drown the rest.
    kinds = [c for c in caught.values() if c["n"]]
    rouge_recall = sum(c["rouge"] / c["n"] for c in kinds) / len(kinds)
    aware_recall = sum(c["aware"] / c["n"] for c in kinds) / len(kinds)
    false_alarm = alarms["aware"] / alarms["n"]
    print(
        f"harmless rewrites failed: step-aware {false_alarm:.3f}, ROUGE-L alone {alarms['rouge'] / alarms['n']:.3f}"
    )
    print(
        f"RESULT rouge_only_recall={rouge_recall:.3f} step_aware_recall={aware_recall:.3f} "
        f"false_alarm_rate={false_alarm:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
