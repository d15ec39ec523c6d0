"""The built-in sample data: complete, consistent with itself, and correct where correctness is checkable.

Plain JSON reading only (no database), so these tests stay fast.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from store.coi_format import JOINT, parse_record
from tests.support import ROOT

SAMPLE_DIR = ROOT / "store" / "sample_data"
FIELDS = ("name", "category", "instruction", "short_instruction", "input", "output")


def _load_tasks() -> list[dict]:
    lines = (SAMPLE_DIR / "tasks.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _load_chains() -> list[dict]:
    return json.loads((SAMPLE_DIR / "chains.json").read_text(encoding="utf-8"))


TASKS = _load_tasks()
CHAINS = _load_chains()
BY_NAME = {t["name"]: t for t in TASKS}


def _items(text: str) -> list[str]:
    """Items of a list written one per line ("- " bullets) or separated by commas."""
    if "\n" in text:
        return [line.removeprefix("- ") for line in text.split("\n")]
    return [part.strip() for part in text.split(",")]


def _count_sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


# The deterministic operations, keyed by short instruction: the expected output of the step, from its input.
CHECKABLE = {
    "count the words in the text": lambda s: str(len(s.split())),
    "count the vowels in the text": lambda s: str(sum(c in "aeiouAEIOU" for c in s)),
    "count the items in the list": lambda s: str(len(_items(s))),
    "count the sentences in the text": lambda s: str(_count_sentences(s)),
    "sort the list alphabetically": lambda s: ", ".join(sorted(_items(s), key=str.casefold)),
    "sort the numbers in ascending order": lambda s: ", ".join(sorted(_items(s), key=float)),
    "sort the numbers in descending order": lambda s: ", ".join(sorted(_items(s), key=float, reverse=True)),
    "sort the dates in chronological order": lambda s: ", ".join(sorted(_items(s))),
}


def _chain_steps(chain: dict) -> list[tuple[str, str, str]]:
    """(short instruction, step input, step output) for each step of a chain."""
    parsed = parse_record(chain)
    inputs = [chain["input"], *parsed.outputs[:-1]]
    return list(zip(parsed.instructions, inputs, parsed.outputs))


def test_enough_tasks_and_categories():
    per_category = Counter(t["category"] for t in TASKS)
    assert len(TASKS) >= 80
    assert len(per_category) >= 10
    assert min(per_category.values()) >= 6, per_category


def test_task_fields_complete_and_names_unique():
    names = [t["name"] for t in TASKS]
    assert len(names) == len(set(names))
    for task in TASKS:
        assert set(task) == set(FIELDS), task["name"]
        for key in FIELDS:
            assert isinstance(task[key], str) and task[key].strip(), (task["name"], key)
        assert re.fullmatch(r"[a-z0-9_]+", task["name"]), task["name"]


def test_short_instructions_can_be_joined():
    for task in TASKS:
        short = task["short_instruction"]
        assert JOINT not in short and short == short.strip(), task["name"]
        assert not re.search(r"task\s*\d+\s*output", task["output"], re.IGNORECASE), task["name"]


def test_outputs_carry_no_edge_whitespace():
    # Chain markers swallow surrounding whitespace, so padded outputs would not survive a round trip.
    for task in TASKS:
        assert task["output"] == task["output"].strip(), task["name"]
        assert task["input"] == task["input"].strip(), task["name"]


@pytest.mark.parametrize(
    "task", [t for t in TASKS if t["short_instruction"] in CHECKABLE], ids=lambda t: t["name"]
)
def test_count_and_sort_golds_are_correct(task):
    assert task["output"] == CHECKABLE[task["short_instruction"]](task["input"])


def test_every_count_task_is_checked():
    counts = [t for t in TASKS if t["category"] == "count"]
    assert counts and all(t["short_instruction"] in CHECKABLE for t in counts)
    assert all(t["output"].isdigit() for t in counts)


def test_word_count_gold_is_the_number_of_words():
    word_tasks = [t for t in TASKS if "count the words" in t["instruction"].lower()]
    assert len(word_tasks) >= 2
    for task in word_tasks:
        assert int(task["output"]) == len(task["input"].split()), task["name"]


def test_format_json_outputs_are_json_objects():
    for task in (t for t in TASKS if t["category"] == "format_json"):
        assert isinstance(json.loads(task["output"]), dict), task["name"]


def test_classify_outputs_are_allowed_labels():
    for task in (t for t in TASKS if t["category"] == "classify"):
        quoted = re.findall(r'"([^"]+)"', task["instruction"])
        assert task["output"] in task["instruction"] or task["output"] in quoted, task["name"]


def test_enough_chains_of_length_two_and_three():
    lengths = Counter(len(c["tasks"]) for c in CHAINS)
    assert set(lengths) <= {2, 3}
    assert sum(lengths.values()) >= 30
    assert lengths[2] >= 20 and lengths[3] >= 12


def test_compositions_are_varied():
    sequences = Counter(tuple(c["tasks"]) for c in CHAINS)
    assert max(sequences.values()) <= 3
    assert len({t for c in CHAINS for t in c["tasks"]}) >= 40


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: "+".join(c["tasks"]))
def test_chain_is_built_from_its_tasks(chain):
    assert set(chain) == {"tasks", "instruction", "input", "output"}
    steps = [BY_NAME[name] for name in chain["tasks"]]
    assert chain["instruction"] == JOINT.join(s["short_instruction"] for s in steps)
    parsed = parse_record(chain)
    assert parsed.issues == []
    assert parsed.length == len(chain["tasks"])
    assert parsed.input == steps[0]["input"]
    assert parsed.outputs[0] == steps[0]["output"]
    assert all(out.strip() for out in parsed.outputs)


CHECKED_CHAINS = [
    c for c in CHAINS if any(BY_NAME[n]["short_instruction"] in CHECKABLE for n in c["tasks"][1:])
]


@pytest.mark.parametrize("chain", CHECKED_CHAINS, ids=lambda c: "+".join(c["tasks"]))
def test_chain_count_and_sort_steps_are_correct(chain):
    checked = 0
    for short, step_input, step_output in _chain_steps(chain)[1:]:
        if short in CHECKABLE:
            assert step_output == CHECKABLE[short](step_input), (short, step_input)
            checked += 1
    assert checked


def test_many_chains_have_checked_steps():
    assert len(CHECKED_CHAINS) >= 20


def test_chain_format_steps_keep_their_items():
    for chain in CHAINS:
        for short, step_input, step_output in _chain_steps(chain)[1:]:
            if short == "format the list as a JSON object":
                assert json.loads(step_output) == {"items": _items(step_input)}
            if short == "format the numbers as a JSON object":
                assert json.loads(step_output) == {"numbers": [json.loads(x) for x in _items(step_input)]}
