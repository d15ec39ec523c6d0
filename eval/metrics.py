"""The metrics registry: ROUGE-L and exact match, each declaring its direction and aggregation.

Like lm-evaluation-harness, a metric is a per-example function plus how it aggregates (the mean
over examples here) and whether higher is better. Exact match is the normalised one of SQuAD's
evaluation script, which the paper's BBH accuracy amounts to: lower-case, drop punctuation, the
articles a/an/the and extra whitespace, then compare (Unicode-aware here, and an answer that is
only an article, as BBH's "(A)", keeps it).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from eval.rouge import ROUGE_L, Aggregate, MetricInfo, rouge_l

_ARTICLES = {"a", "an", "the"}


def normalize(text: str) -> str:
    """SQuAD's answer normalisation, Unicode-aware: NFKC, case folded, punctuation removed, the
    articles a/an/the dropped, single spaces. An answer that is only an article ("(A)", a BBH option)
    keeps it: otherwise an empty prediction would match it."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    words = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P")).split()
    kept = [w for w in words if w not in _ARTICLES]
    return " ".join(kept or words)


def exact_match(reference: str, prediction: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0."""
    return float(normalize(reference) == normalize(prediction))


EXACT_MATCH = MetricInfo(name="exact_match", higher_is_better=True, aggregation="mean")


@dataclass(frozen=True)
class Metric:
    """A registered metric: what it is, and its per-example function ``fn(reference, prediction)``."""

    info: MetricInfo
    fn: Callable[[str, str], float]


METRICS: dict[str, Metric] = {
    "rougeL": Metric(ROUGE_L, rouge_l),
    "exact_match": Metric(EXACT_MATCH, exact_match),
}


def score(name: str, reference: str, prediction: str) -> float:
    """One example's score under a registered metric."""
    return METRICS[name].fn(reference, prediction)


def paired_bootstrap(
    base: Sequence[float],
    tuned: Sequence[float],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Aggregate:
    """The mean gain ``tuned - base`` over paired examples, with a percentile bootstrap interval.

    The same resampled examples are scored under both systems, so the interval is that of the gain
    (narrower than two separate intervals when the systems agree on which examples are hard).
    """
    a, b = np.asarray(list(base), dtype=float), np.asarray(list(tuned), dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.size} vs {b.size}")
    diff = b - a
    if diff.size == 0:
        return Aggregate(float("nan"), float("nan"), float("nan"), 0)
    point = float(diff.mean())
    if diff.size == 1:
        return Aggregate(point, point, point, 1)
    idx = np.random.default_rng(seed).integers(0, diff.size, size=(n_boot, diff.size))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diff[idx].mean(axis=1), [alpha, 1 - alpha])
    return Aggregate(point, float(low), float(high), int(diff.size))
