"""Cheap checks on every LLM-written step and short instruction, before a human sees them.

Against a real llama.cpp server, 14 of 30 written steps were verbatim copies of their input, and a
shortened instruction lost what it was about. These checks run on each output as it is generated;
their flags are stored on the step with a reason, shown on the step card, and feed the risk sort.

All functions are pure. Language ID is py3langid: a pure-Python/numpy port of langid.py whose
97-language model ships inside the wheel (no download, no pickle), classifies a sentence in about a
millisecond, and gives normalised probabilities, so a low-confidence guess can abstain.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache

from rapidfuzz.distance import Indel

from store.flags import encode_flags

EMPTY, COPIED_INPUT, COPIED_EXAMPLE = "empty", "copied_input", "copied_example"
WRONG_LANGUAGE, TRUNCATED, WRONG_TYPE, DRIFTED = "wrong_language", "truncated", "wrong_type", "drifted"
# How much each flag kind adds to a chain's risk (the Review queue sorts by the sum).
SEVERITY = {
    EMPTY: 3,
    COPIED_INPUT: 3,
    COPIED_EXAMPLE: 3,
    WRONG_LANGUAGE: 3,
    TRUNCATED: 2,
    WRONG_TYPE: 2,
    DRIFTED: 2,
}
FLAG_KINDS = tuple(SEVERITY)
COPY_SIMILARITY = 0.9  # word-level LCS similarity (ROUGE-L F1) with the input above this is a copy
MIN_LANGUAGE_CONFIDENCE = 0.9
MIN_LANGUAGE_WORDS = 3
MIN_SHORT_OVERLAP = 0.2  # share of a short instruction's content words found in the original


@dataclass(frozen=True)
class Flag:
    kind: str
    reason: str

    @property
    def severity(self) -> int:
        return SEVERITY[self.kind]

    def as_dict(self) -> dict:
        return asdict(self)


def encode(flags: list[Flag]) -> str | None:
    """Flags as stored on a step or a task (with their severity), None when there are none."""
    return encode_flags({**f.as_dict(), "severity": f.severity} for f in flags)


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.findall(r"\w+", text)


def similarity(a: str, b: str) -> float:
    """ROUGE-L F1 over words (2·LCS / (m + n)), computed as rapidfuzz's Indel similarity."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return float(wa == wb)
    return Indel.normalized_similarity(wa, wb)


def is_copy(source: str, text: str, threshold: float = COPY_SIMILARITY) -> bool:
    return bool(_words(text)) and similarity(source, text) >= threshold


LANGUAGES = {
    "english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "russian": "ru", "chinese": "zh", "japanese": "ja", "korean": "ko", "arabic": "ar",
    "hindi": "hi", "panjabi": "pa", "punjabi": "pa", "turkish": "tr", "polish": "pl", "swedish": "sv",
    "czech": "cs", "greek": "el", "hebrew": "he", "vietnamese": "vi", "indonesian": "id", "thai": "th",
    "ukrainian": "uk", "romanian": "ro", "danish": "da", "finnish": "fi", "bengali": "bn", "persian": "fa",
    "gujarati": "gu", "tamil": "ta", "telugu": "te", "marathi": "mr", "urdu": "ur", "swahili": "sw",
}  # fmt: skip
_TARGET = re.compile(r"\btranslat\w*\b.*?\b(?:into|to|in)\s+(" + "|".join(LANGUAGES) + r")\b", re.I)


def target_language(instruction: str) -> str | None:
    """The ISO code a translate instruction asks for ("Translate the text into French" -> "fr")."""
    found = _TARGET.search(instruction)
    return LANGUAGES[found.group(1).lower()] if found else None


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(ISO code, probability) of the text's language."""
    lang, prob = _identifier().classify(text)
    return lang, float(prob)


def check_language(instruction: str, output: str) -> Flag | None:
    want = target_language(instruction)
    if not want or len(_words(output)) < MIN_LANGUAGE_WORDS:
        return None
    got, prob = detect_language(output)
    if got == want or prob < MIN_LANGUAGE_CONFIDENCE:
        return None
    return Flag(WRONG_LANGUAGE, f"asked for {want}, the output reads as {got} (p={prob:.2f})")


def check_step(
    instruction: str,
    step_input: str,
    output: str,
    *,
    truncated: bool = False,
    examples: tuple[str, ...] = (),
    output_kind: str | None = None,
    next_accepts: set[str] | None = None,
) -> list[Flag]:
    """Flags for one written step. ``examples`` are the few-shot texts of the prompt that wrote it;
    ``output_kind`` and ``next_accepts`` are the step's output type and what the next step takes."""
    if not _words(output):
        # An empty answer never gets here: it fails its item, which resume retries.
        return [Flag(EMPTY, f"the output has no words: {output.strip()[:20]!r}")]
    flags = []
    if step_input.strip() and is_copy(step_input, output):
        flags.append(
            Flag(COPIED_INPUT, f"the output repeats its input ({similarity(step_input, output):.0%} alike)")
        )
    long_output = len(_words(output)) > 3  # a short label may rightly equal an example's label
    copied = next((e for e in examples if long_output and is_copy(e, output)), None)
    if copied is not None:
        flags.append(Flag(COPIED_EXAMPLE, f"the output repeats a prompt example: {copied[:60]!r}"))
    language = check_language(instruction, output)
    if language:
        flags.append(language)
    if truncated:
        flags.append(Flag(TRUNCATED, "the output stopped at the token limit"))
    if output_kind and next_accepts is not None and output_kind not in next_accepts:
        wanted = ", ".join(sorted(next_accepts))
        flags.append(Flag(WRONG_TYPE, f"the output is {output_kind}, the next step takes {wanted}"))
    return flags


_STOP_WORDS = set(
    "a an the of to in on for and or with by from as at is are be this that these those it its given "
    "following your you task each one into".split()
)


def _same_stem(a: str, b: str) -> bool:
    """Crude stemming: 'simplify' ~ 'simplified', 'summarise' ~ 'summary' (a shared 5-letter start)."""
    n = min(5, len(a), len(b))
    return a[:n] == b[:n] if min(len(a), len(b)) >= 5 else a == b


def check_short_instruction(original: str, short: str) -> list[Flag]:
    """Flags for a shortened instruction: empty, not shorter, or drifted (a verb the original never
    asks for, as "Write a ten-year-old child's English paragraph." for a simplify task; or too few
    of its content words in the original)."""
    if not short.strip():
        return [Flag(EMPTY, "the short instruction is empty")]
    short_words = [w for w in _words(short) if w not in _STOP_WORDS]
    original_words = set(_words(original))
    if len(_words(short)) >= len(_words(original)) > 0:
        return [Flag(COPIED_INPUT, "the short instruction is not shorter than the original")]
    verb = _words(short)[0]
    if not any(_same_stem(verb, w) for w in original_words):
        return [Flag(DRIFTED, f"it asks to {verb!r}, which the original instruction does not")]
    if short_words:
        kept = sum(w in original_words for w in short_words) / len(short_words)
        if kept < MIN_SHORT_OVERLAP:
            return [Flag(DRIFTED, f"only {kept:.0%} of its content words are in the original instruction")]
    return []


def risk(flags: list[dict]) -> int:
    """A chain's or step's risk score: the sum of its flags' severities."""
    return sum(SEVERITY.get(f.get("kind", ""), 1) for f in flags)
