"""The paper's three prompts, each a pure pair: build the prompt, parse the reply.

The prompts are few-shot and completion-style so a small base model (Gemma 3 270M) can follow them:
the examples end the same way the real item ends, and stop sequences cut the model off before it
invents the next example. Chat models follow them too (the prompt goes in as one user message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------------
# 1. summarize: a task's instruction -> a short imperative clause
# ---------------------------------------------------------------------------------------------------
SUMMARIZE_STOP = ("\n",)
_SUMMARIZE_EXAMPLES = [
    (
        "In this task, you are given a news article. Your task is to generate a title for the article "
        "that captures its main point. The title should be short.",
        "Generate a short title for the article.",
    ),
    (
        "You are given a sentence in English. Your job is to translate the English sentence into French, "
        "keeping names and numbers as they are.",
        "Translate the sentence into French.",
    ),
    (
        "Given a product review, classify whether its sentiment is positive or negative. Answer with "
        '"positive" or "negative".',
        "Classify the sentiment of the review as positive or negative.",
    ),
]
MAX_SHORT_WORDS = 20


def summarize_prompt(instruction: str) -> str:
    """Prompt that shortens ``instruction`` to one imperative sentence."""
    parts = ["Rewrite each task instruction as one short imperative sentence.\n"]
    for long, short in _SUMMARIZE_EXAMPLES:
        parts.append(f"Instruction: {_one_line(long)}\nShort: {short}\n")
    parts.append(f"Instruction: {_one_line(instruction)}\nShort:")
    return "\n".join(parts)


def parse_summary(text: str) -> str | None:
    """The short instruction, or None if the reply is unusable (empty, too long, another example)."""
    line = (text or "").strip().split("\n", 1)[0].strip().strip("\"'` ")
    line = re.sub(r"^(short|answer)\s*:\s*", "", line, flags=re.I)
    if not line or len(line.split()) > MAX_SHORT_WORDS or line.lower().startswith("instruction"):
        return None
    line = line[0].upper() + line[1:]
    return line if line.endswith((".", "?", "!")) else line + "."


# ---------------------------------------------------------------------------------------------------
# 2. check: can task A's output serve as task B's input?
# ---------------------------------------------------------------------------------------------------
CHECK_STOP = ("\n\n", "\nTask A:")
VERDICTS = ("yes", "no", "unknown")
_CHECK_EXAMPLES = [
    (
        "Generate a short title for the article.",
        "Translate the sentence into French.",
        "yes. A title is a short English text, and it can be translated into French.",
    ),
    (
        "Classify the sentiment of the review as positive or negative.",
        "Summarize the paragraph in one sentence.",
        "no. The output is a single label, and a label is not a paragraph to summarize.",
    ),
    (
        "Write a question about the passage.",
        "Paraphrase the sentence.",
        "yes. A question is a sentence, and it can be paraphrased.",
    ),
    (
        "Count the number of nouns in the sentence.",
        "Translate the sentence into German.",
        "no. The output is a number, not a sentence to translate.",
    ),
]


@dataclass(frozen=True)
class Verdict:
    """A parsed checker answer. ``verdict`` is never 'yes' unless the reply clearly said so."""

    verdict: str
    reason: str
    confidence: float | None


def check_prompt(instruction_a: str, instruction_b: str, example_output_a: str = "") -> str:
    """Prompt asking whether the output of task A can be the input of task B (yes/no + reason)."""
    parts = [
        "Decide if the output of task A can be used as the input of task B. "
        "Answer yes or no, then give a short reason.\n"
    ]
    for a, b, answer in _CHECK_EXAMPLES:
        parts.append(f"Task A: {a}\nTask B: {b}\nAnswer: {answer}\n")
    example = f"Example output of task A: {clip(example_output_a, 200)}\n" if example_output_a else ""
    parts.append(f"Task A: {_one_line(instruction_a)}\n{example}Task B: {_one_line(instruction_b)}\nAnswer:")
    return "\n".join(parts)


_YES = re.compile(r"^\W*(yes|yeah|true|correct|it can)\b", re.I)
_NO = re.compile(r"^\W*(no|nope|false|incorrect|it cannot|it can't|cannot)\b", re.I)


def parse_verdict(text: str) -> Verdict:
    """Parse a yes/no verdict and its reason; anything unclear is 'unknown' (never 'yes').

    A clean leading yes/no gets confidence 1.0. A reply that mentions both, or neither, is unknown.
    """
    reply = (text or "").strip()
    first = reply.split("\n", 1)[0].strip()
    yes, no = bool(_YES.match(first)), bool(_NO.match(first))
    if yes == no or _hedged(first):
        return Verdict("unknown", clip(first, 300) or "(empty reply)", None)
    verdict = "yes" if yes else "no"
    reason = re.sub(r"^\W*\w+[\s,.:;!-]*", "", first, count=1).strip()
    return Verdict(verdict, clip(reason, 300), 1.0)


def _hedged(first_line: str) -> bool:
    """'yes and no', 'no or yes', ...: both answers within the first four words."""
    words = {w.lower() for w in re.findall(r"[A-Za-z']+", first_line)[:4]}
    return "yes" in words and "no" in words


# ---------------------------------------------------------------------------------------------------
# 3. generate: apply an instruction to an input
# ---------------------------------------------------------------------------------------------------
GENERATE_STOP = ("\n\nInstruction:", "\nInstruction:", "\n\n\n")
_GENERATE_EXAMPLES = [
    ("Translate the sentence into French.", "Good morning, how are you?", "Bonjour, comment allez-vous ?"),
    (
        "Generate a short title for the article.",
        "The city council voted on Monday to build three new parks near the river, after residents "
        "asked for more green space.",
        "City Council Approves Three New Riverside Parks",
    ),
    (
        "Classify the sentiment of the review as positive or negative.",
        "The battery died after two days and support never answered.",
        "negative",
    ),
]


# The examples' inputs and outputs: an answer that repeats one copied the prompt, not the task.
GENERATE_EXAMPLE_TEXTS = tuple(text for _, inp, out in _GENERATE_EXAMPLES for text in (inp, out))


def generate_prompt(instruction: str, input_text: str) -> str:
    """Prompt that applies ``instruction`` to ``input_text`` (the model writes the output)."""
    parts = ["Follow the instruction for the given input.\n"]
    for instr, inp, out in _GENERATE_EXAMPLES:
        parts.append(f"Instruction: {instr}\nInput: {inp}\nOutput: {out}\n")
    parts.append(f"Instruction: {_one_line(instruction)}\nInput: {input_text.strip()}\nOutput:")
    return "\n".join(parts)


def parse_generation(text: str) -> str | None:
    """The generated output, or None if nothing usable came back."""
    out = (text or "").strip()
    for stop in ("\nInstruction:", "\nInput:"):
        out = out.split(stop, 1)[0].strip()
    return out or None


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def clip(text: str, n: int) -> str:
    """The text on one line, cut to ``n`` characters with an ellipsis."""
    text = _one_line(text)
    return text if len(text) <= n else text[: n - 1] + "…"
