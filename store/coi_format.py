"""The one shared pair that renders a CoI chain as the paper's text and parses text back into steps.

The paper stores a chain as one Alpaca-style record::

    {"instruction": "<instr 1> and then <instr 2>",
     "input": "<input of step 1>",
     "output": "Task 1 output and task 2 input: <out 1>\\nTask 2 output: <out 2>"}

``parse_output`` is lossless on well-formed text: ``prefix + sep_1 + out_1 + ... + sep_n + out_n``
gives back the text character for character, which is how imported records export unchanged.
On model output it is robust: missing, merged, duplicated or out-of-order markers never raise;
they are reported in ``issues`` and the step is left empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from store.errors import CoiError

JOINT = " and then "
# The authors' template, byte for byte: PROMPT_DICT of tatsu-lab/stanford_alpaca's train.py, which
# amazon-science/chain-of-instructions trains with (model_training/stanford_alpaca/train.py). The
# response follows "### Response:" directly; there is no trailing newline.
PROMPT_DICT = {
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    ),
    "prompt_no_input": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:"
    ),
}
PROMPT_HEADER = PROMPT_DICT["prompt_input"].split("\n\n")[0]
# Leading whitespace belongs to the separator so step outputs come out stripped on the left of markers.
# At most 9 digits: int() of a longer run can blow Python's digit limit (a ValueError on any text).
MARKER_RE = re.compile(
    r"\s*Task\s*(\d{1,9})\s*output(?:\s*and\s*task\s*(\d+)\s*input)?\s*:[ \t]*",
    re.IGNORECASE,
)
# Step numbers above this never set the inferred chain length ("Task 999999999 output:" in a model's
# text must not allocate a billion steps); they are reported as unexpected step numbers instead.
MAX_STEPS = 100


@dataclass
class ParsedOutput:
    """Per-step outputs split from one text, with what is needed to rebuild it exactly."""

    outputs: list[str]
    separators: list[str]
    prefix: str = ""
    issues: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.issues


def step_marker(k: int, n: int) -> str:
    """The canonical marker in front of step ``k`` of ``n`` (no leading whitespace)."""
    if k < n:
        return f"Task {k} output and task {k + 1} input: "
    return f"Task {k} output: "


def canonical_separators(n: int) -> list[str]:
    """Separators for a new chain of length ``n``: markers, each after the first on a new line."""
    if n == 1:
        return [""]
    return [("" if k == 1 else "\n") + step_marker(k, n) for k in range(1, n + 1)]


def render_output(outputs: list[str], separators: list[str] | None = None, prefix: str = "") -> str:
    """Render step outputs as the paper's output text.

    Args:
        outputs: One output per step, in order.
        separators: The marker text in front of each output; canonical ones if None or the wrong length.
        prefix: Text before the first marker (kept only for exact round trips).
    """
    if not separators or len(separators) != len(outputs):
        separators = canonical_separators(len(outputs))
    return prefix + "".join(sep + out for sep, out in zip(separators, outputs))


def join_instructions(instructions: list[str]) -> str:
    """The chain's instruction: the steps' instructions joined with " and then ".

    Empty parts are skipped, so a chain whose later steps have no instruction of their own (a
    summarised instruction) never ends in a dangling " and then ".
    """
    return JOINT.join(i for i in instructions if i) or (instructions[0] if instructions else "")


def split_instruction(text: str) -> list[str]:
    """Split a chain instruction on its " and then " joints (exact, so joining restores it)."""
    return text.split(JOINT)


def parse_output(text: str, n_steps: int | None = None) -> ParsedOutput:
    """Split an output text into per-step outputs.

    Args:
        text: The paper's output text, or a model's generation.
        n_steps: The expected number of steps; None infers it from the markers (import).

    Returns:
        A ParsedOutput. ``issues`` is empty exactly when the markers are 1..n in order.
    """
    text = text or ""
    matches = list(MARKER_RE.finditer(text))
    numbers = [int(m.group(1)) for m in matches]
    n = n_steps if n_steps is not None else max([1, *(k for k in numbers if k <= MAX_STEPS)])
    if not matches:
        return _unmarked(text, n)
    if numbers == list(range(1, n + 1)):
        return _in_order(text, matches)
    return _salvage(text, matches, n)


def _unmarked(text: str, n: int) -> ParsedOutput:
    if n == 1:
        return ParsedOutput([text], [""])
    # Without markers the text is taken as the final answer; earlier steps are unknown.
    outputs = [""] * (n - 1) + [text.strip()]
    return ParsedOutput(outputs, [""] * n, issues=["missing step markers"])


def _in_order(text: str, matches: list[re.Match]) -> ParsedOutput:
    ends = [m.start() for m in matches[1:]] + [len(text)]
    outputs = [text[m.end() : end] for m, end in zip(matches, ends)]
    prefix = text[: matches[0].start()]
    issues = ["extra text before the first marker"] if prefix.strip() else []
    return ParsedOutput(outputs, [m.group(0) for m in matches], prefix=prefix, issues=issues)


def _salvage(text: str, matches: list[re.Match], n: int) -> ParsedOutput:
    outputs: list[str | None] = [None] * n
    separators = [""] * n
    issues: list[str] = []
    ends = [m.start() for m in matches[1:]] + [len(text)]
    numbers = [int(m.group(1)) for m in matches]
    if numbers != sorted(numbers):
        issues.append("step markers out of order")
    for m, end in zip(matches, ends):
        k = int(m.group(1))
        if not 1 <= k <= n:
            issues.append(f"unexpected step number {k}")
        elif outputs[k - 1] is not None:
            issues.append(f"duplicate marker for step {k}")
        else:
            outputs[k - 1] = text[m.end() : end].strip()
            separators[k - 1] = m.group(0)
    missing = [k + 1 for k, out in enumerate(outputs) if out is None]
    if missing:
        issues.append("missing marker for step " + ", ".join(map(str, missing)))
    prefix = text[: matches[0].start()]
    if prefix.strip():
        issues.append("extra text before the first marker")
    return ParsedOutput([o or "" for o in outputs], separators, prefix=prefix, issues=issues)


def render_prompt(instruction: str, input_text: str) -> str:
    """The authors' Alpaca prompt that training and evaluation share (the model writes the response).

    As their train.py: ``prompt_input`` unless the input is empty; ``format_map`` parses only the
    template, so braces inside the instruction or input are kept as they are.
    """
    if input_text:
        return PROMPT_DICT["prompt_input"].format_map({"instruction": instruction, "input": input_text})
    return PROMPT_DICT["prompt_no_input"].format_map({"instruction": instruction})


def chain_prompt(instructions: list[str], input_text: str, fmt: dict | None = None) -> str:
    """The prompt for a whole chain in one go (the paper's setting), with the chain's own instruction text."""
    return render_prompt(chain_instruction(instructions, fmt), input_text)


def record_prompt(record: dict) -> str:
    """The chain-mode prompt of a dataset-version record: its paper instruction exactly as frozen."""
    instruction = record.get("instruction")
    if instruction is None:
        instruction = join_instructions(record.get("instructions") or [""])
    return render_prompt(instruction, record.get("input") or "")


@dataclass
class ParsedRecord:
    """A paper record split into steps, with the format details an exact export needs."""

    instructions: list[str]
    input: str
    outputs: list[str]
    format: dict
    issues: list[str]

    @property
    def length(self) -> int:
        return len(self.outputs)


def parse_record(record: dict) -> ParsedRecord:
    """Split a paper record ``{"instruction", "input", "output"}`` into ordered steps.

    Every released shape is a chain: a record without step markers is a length-1 chain (CoI1) whose
    instruction is the whole text; a record with ``eng_output`` (the downstream sets) is a 2-step
    chain whose step 1 output is that field; a record whose instruction has fewer " and then " parts
    than steps (``summarized_coi_2.json``) keeps that instruction whole for the chain and leaves the
    later steps without one of their own. Records that cannot be split cleanly still come back
    whole: ``issues`` says why, and ``format["raw"]`` keeps the original record so an unchanged
    chain exports exactly.

    Raises:
        CoiError: if instruction, input, output or eng_output is neither a string nor missing/None.
    """
    _check_text_fields(record)
    instruction = record.get("instruction") or ""
    if isinstance(record.get("eng_output"), str):
        return _parse_downstream(record, instruction)
    parsed = parse_output(record.get("output") or "")
    n = len(parsed.outputs)
    issues = list(parsed.issues)
    fmt: dict = {"prefix": parsed.prefix, "separators": parsed.separators}
    instructions = split_instruction(instruction) if n > 1 else [instruction]
    if len(instructions) < n and not issues:
        # One summarised sentence for the whole chain: the chain keeps it as written.
        fmt["instruction"] = instruction
        instructions = [instruction] + [""] * (n - 1)
    elif len(instructions) != n:
        issues.append(f"instruction has {len(instructions)} part(s) but the output has {n} step(s)")
        instructions = _fit_instructions(instructions, n)
    if issues:
        fmt["raw"] = {k: record.get(k) for k in ("instruction", "input", "output")}
    return ParsedRecord(instructions, record.get("input") or "", parsed.outputs, fmt, issues)


def _parse_downstream(record: dict, instruction: str) -> ParsedRecord:
    """``{"instruction": "A and then B", "output": <final>, "eng_output": <step 1 output>}``."""
    outputs = [record["eng_output"], record.get("output") or ""]
    fmt: dict = {"eng_output": True}
    instructions = split_instruction(instruction)
    if len(instructions) != 2:
        fmt["instruction"] = instruction
        instructions = [instruction, ""]
    return ParsedRecord(instructions, record.get("input") or "", outputs, fmt, [])


def chain_instruction(instructions: list[str], fmt: dict | None = None) -> str:
    """The chain's instruction text: the imported one while the steps still match it, else joined."""
    kept = (fmt or {}).get("instruction")
    if kept is not None and instructions[1:] == [""] * (len(instructions) - 1) and instructions[0] == kept:
        return kept
    return join_instructions(instructions)


def target_text(outputs: list[str], fmt: dict | None = None) -> str:
    """The response a model is trained to write: the record's own marker text, canonical for eng_output."""
    fmt = fmt or {}
    raw = fmt.get("raw")
    if raw and not fmt.get("eng_output"):
        again = parse_record(raw)
        if again.outputs == outputs:
            return raw.get("output") or ""
    if fmt.get("eng_output"):
        return render_output(outputs)
    return render_output(outputs, fmt.get("separators"), fmt.get("prefix", ""))


def _check_text_fields(record: dict) -> None:
    for key in ("instruction", "input", "output", "eng_output"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise CoiError(
                f"CoI record field {key!r} must be a string, got {type(value).__name__}",
                "Each record needs instruction, input and output as text.",
            )


def _fit_instructions(parts: list[str], n: int) -> list[str]:
    if len(parts) > n:
        return parts[: n - 1] + [JOINT.join(parts[n - 1 :])]
    return parts + [""] * (n - len(parts))


def render_record(
    instructions: list[str], input_text: str, outputs: list[str], fmt: dict | None = None
) -> dict:
    """Render steps back into a paper record, reusing the imported format when it still applies."""
    fmt = fmt or {}
    raw = fmt.get("raw")
    if raw and _same_as_raw(raw, instructions, input_text, outputs):
        return dict(raw)
    record = {"instruction": chain_instruction(instructions, fmt), "input": input_text}
    if fmt.get("eng_output") and len(outputs) == 2:
        return {**record, "output": outputs[1], "eng_output": outputs[0]}
    return {**record, "output": render_output(outputs, fmt.get("separators"), fmt.get("prefix", ""))}


def _same_as_raw(raw: dict, instructions: list[str], input_text: str, outputs: list[str]) -> bool:
    again = parse_record(raw)
    return again.instructions == instructions and again.input == input_text and again.outputs == outputs
