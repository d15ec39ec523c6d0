"""The type of a step (label, number, list, order, json, text), which decides how it is scored
and judged: from its task's category where one is known, else from its instruction's wording (the
paper's imported chains have no categories), and overridable per task or category.
"""

from __future__ import annotations

import re

LABEL, NUMBER, LIST, ORDER, JSON, TEXT = "label", "number", "list", "order", "json", "text"
STEP_TYPES = (LABEL, NUMBER, LIST, ORDER, JSON, TEXT)


# The sample data's categories (store/sample_data/tasks.jsonl); unknown ones fall back to the text.
CATEGORY_TYPES = {
    "count": NUMBER,
    "classify": LABEL,
    "extract": LIST,
    "bullet_list": TEXT,  # a reformatting of prose: its items are reworded, so item match is too strict
    "sort": ORDER,
    "format_json": JSON,
    "translate": TEXT,
    "summarize": TEXT,
    "rewrite": TEXT,
    "simplify": TEXT,
    "answer_question": TEXT,
    "correct_grammar": TEXT,
    "title": TEXT,
}

# Instruction patterns, most specific first; matched against the lower-cased instruction.
_INSTRUCTION_TYPES: list[tuple[str, re.Pattern]] = [
    (JSON, re.compile(r"\bjson\b")),
    (ORDER, re.compile(r"\b(sort|order|rank|arrange)\b.*\b(alphabetical|ascending|descending|order)")),
    (ORDER, re.compile(r"^\s*sort\b")),
    (NUMBER, re.compile(r"\b(count|how many|number of|calculate|compute)\b")),
    (
        LABEL,
        re.compile(
            r"\b(classify|categori[sz]e|label|(determine|decide|identify|check) (if|whether)|is it|"
            r"answer (with )?(yes|no|true|false)|output (1|0|yes|no|true|false)|choose|select the|"
            r"which of|true or false|yes or no|answer with \"[^\"]{1,20}\" or)\b"
        ),
    ),
    (LIST, re.compile(r"\b(extract|list (all|the|every)|find all|identify all)\b")),
]


def infer_step_type(instruction: str, category: str = "") -> str:
    """The step type from the task's category if known, else from the instruction's wording."""
    if category in CATEGORY_TYPES:
        return CATEGORY_TYPES[category]
    text = instruction.lower()
    for step_type, pattern in _INSTRUCTION_TYPES:
        if pattern.search(text):
            return step_type
    return TEXT


def resolve_step_type(
    instruction: str, category: str = "", overrides: dict[str, str] | None = None, task_name: str = ""
) -> str:
    """An override by task name, then by category, wins over inference."""
    overrides = overrides or {}
    chosen = overrides.get(task_name) or overrides.get(category) or infer_step_type(instruction, category)
    if chosen not in STEP_TYPES:
        raise ValueError(f"unknown step type {chosen!r}; use one of {', '.join(STEP_TYPES)}")
    return chosen
