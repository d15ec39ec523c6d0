"""ROUGE-L F-measure with exactly the numbers of ``rouge_score.RougeScorer(["rougeL"])``, much faster.

rouge_score tokenises with a regex, optionally Porter-stems words longer than 3 characters, then fills
an O(n*m) LCS table in pure Python. Here the tokenisation is the same (same regexes, same order of
operations, the same NLTK stemmer behind an ``lru_cache``), tokens are mapped to ints, and the LCS
length comes from ``rapidfuzz.distance.LCSseq`` (compiled, bit-parallel). Precision, recall and F
are then computed with the same float operations in the same order, so scores match to the last bit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz.distance import LCSseq

# The same patterns as rouge_score.tokenize: after lowercasing, everything but [a-z0-9] is a space.
_WORD_RE = re.compile(r"[a-z0-9]+")
_VALID_TOKEN_RE = re.compile(r"^[a-z0-9]+$")
# For ASCII text one C-level pass does both the lowercasing and the non-[a-z0-9] -> space step
# (on ASCII, str.lower only maps A-Z); the vocabulary is keyed by these bytes tokens.
_ASCII_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)


@dataclass(frozen=True)
class Score:
    """One pair's ROUGE-L precision, recall and F-measure."""

    precision: float
    recall: float
    fmeasure: float


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is and how it aggregates (like lm-evaluation-harness's metric registry)."""

    name: str
    higher_is_better: bool
    aggregation: str


ROUGE_L = MetricInfo(name="rougeL", higher_is_better=True, aggregation="mean")


@lru_cache(maxsize=1)
def _porter():
    from nltk.stem import porter

    return porter.PorterStemmer()


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    return _porter().stem(token)


@lru_cache(maxsize=200_000)
def _valid(token: str) -> bool:
    return bool(_VALID_TOKEN_RE.match(token))


def tokenize(text: str, use_stemmer: bool = False) -> list[str]:
    """rouge_score's tokenisation: lowercase, split on non-[a-z0-9], stem words longer than 3 chars.

    ``findall`` of ``[a-z0-9]+`` yields exactly the non-empty pieces of rouge_score's
    ``sub`` + ``split``; without stemming every piece already passes its final validity filter.
    """
    tokens = _WORD_RE.findall(text.lower())
    if not use_stemmer:
        return tokens
    stemmed = [_stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in stemmed if _valid(t)]


def _raw_tokens(text: str) -> list[bytes]:
    """The unstemmed tokens of ``tokenize`` as ASCII bytes (a fast path for ASCII text)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_TABLE).split()
    return [t.encode("ascii") for t in _WORD_RE.findall(text.lower())]


class RougeL:
    """A reusable ROUGE-L scorer (its token-to-int vocabulary grows across calls)."""

    info = ROUGE_L

    def __init__(self, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer
        # Raw token -> int id of its (stemmed) token, or -1 when rouge_score would drop it. Distinct
        # ids per distinct final token make the LCS exact: no hash collisions are possible.
        self._id_of: dict[bytes, int] = {}
        self._final: dict[str, int] = {}

    def _ids(self, text: str) -> list[int]:
        tokens = _raw_tokens(text)
        try:
            ids = list(map(self._id_of.__getitem__, tokens))  # the hot path: one C-level pass
        except KeyError:
            for t in tokens:
                if t not in self._id_of:
                    self._id_of[t] = self._new_id(t)
            ids = list(map(self._id_of.__getitem__, tokens))
        if self.use_stemmer and -1 in ids:
            ids = [i for i in ids if i >= 0]
        return ids

    def _new_id(self, raw: bytes) -> int:
        final = token = raw.decode("ascii")
        if self.use_stemmer:
            final = _stem(token) if len(token) > 3 else token
            if not _valid(final):
                return -1
        return self._final.setdefault(final, len(self._final))

    def score(self, target: str, prediction: str) -> Score:
        """Score one prediction against its reference, like ``RougeScorer.score(target, prediction)``."""
        target_ids = self._ids(target)
        prediction_ids = self._ids(prediction)
        if not target_ids or not prediction_ids:
            return Score(0, 0, 0)
        lcs = LCSseq.similarity(target_ids, prediction_ids)
        precision = lcs / len(prediction_ids)
        recall = lcs / len(target_ids)
        return Score(precision, recall, _fmeasure(precision, recall))

    def fmeasure(self, target: str, prediction: str) -> float:
        """The F-measure alone (the hot path: no Score object is built)."""
        target_ids = self._ids(target)
        prediction_ids = self._ids(prediction)
        if not target_ids or not prediction_ids:
            return 0
        lcs = LCSseq.similarity(target_ids, prediction_ids)
        return _fmeasure(lcs / len(prediction_ids), lcs / len(target_ids))

    def score_many(self, targets: Sequence[str], predictions: Sequence[str]) -> list[float]:
        """F-measures of aligned (target, prediction) pairs."""
        if len(targets) != len(predictions):
            raise ValueError("targets and predictions differ in length")
        return [self.score(t, p).fmeasure for t, p in zip(targets, predictions)]


def _fmeasure(precision: float, recall: float) -> float:
    # rouge_score.scoring.fmeasure, operation for operation.
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l(target: str, prediction: str, use_stemmer: bool = False) -> float:
    """ROUGE-L F-measure of one pair."""
    return _scorer(use_stemmer).fmeasure(target, prediction)


@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool) -> RougeL:
    return RougeL(use_stemmer)


@dataclass(frozen=True)
class Aggregate:
    """A corpus-level score: the mean over examples and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def aggregate(
    scores: Sequence[float],
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Callable[[np.ndarray], float] | None = None,
) -> Aggregate:
    """Mean F over examples (the paper's corpus score) with a percentile bootstrap interval.

    Args:
        scores: Per-example scores.
        n_boot: Bootstrap resamples.
        confidence: Width of the interval, e.g. 0.95.
        seed: Seed of the numpy generator, so reports are reproducible.
        statistic: Statistic over the per-example array (default: the mean).
    """
    values = np.asarray(list(scores), dtype=float)
    if values.size == 0:
        return Aggregate(float("nan"), float("nan"), float("nan"), 0)
    stat = statistic or np.mean
    point = float(stat(values))
    if values.size == 1 or n_boot <= 0:
        return Aggregate(point, point, point, int(values.size))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    boot = values[idx].mean(axis=1) if statistic is None else np.array([stat(values[i]) for i in idx])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return Aggregate(point, float(low), float(high), int(values.size))
