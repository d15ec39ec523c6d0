"""Inter-annotator agreement for double review: percent agreement and Cohen's kappa."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sqlite_utils


def percent_agreement(pairs: list[tuple[str, str]]) -> float | None:
    """Share of pairs where both raters gave the same label (None without pairs)."""
    if not pairs:
        return None
    return sum(a == b for a, b in pairs) / len(pairs)


def cohens_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters: (p_o - p_e) / (1 - p_e).

    ``p_o`` is the observed agreement, ``p_e`` the agreement expected by chance from each rater's
    own label frequencies. Returns None without pairs, or when chance agreement is already 1
    (both raters always gave the same single label: kappa is undefined there).
    """
    if not pairs:
        return None
    n = len(pairs)
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    p_o = sum(a == b for a, b in pairs) / n
    p_e = sum(first[k] * second[k] for k in first) / (n * n)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


@dataclass
class Agreement:
    """Agreement over the chains that two reviewers decided."""

    n_pairs: int
    percent: float | None
    kappa: float | None
    pending: int  # chains with exactly one decision so far


def decision_pairs(db: sqlite_utils.Database) -> tuple[list[tuple[str, str]], int]:
    """Per chain, the latest accept/reject of its first two reviewers; and how many have only one.

    Rater A is whoever decided the chain first, rater B the second (the usual pairing when many
    annotators share the work).
    """
    per_chain: dict[int, dict[str, str]] = {}
    for chain_id, reviewer, decision in db.execute(
        "SELECT chain_id, reviewer, decision FROM reviews WHERE decision != 'skip' ORDER BY id"
    ):
        per_chain.setdefault(chain_id, {})[reviewer] = decision  # dicts keep first-decision order
    pairs, pending = [], 0
    for decided in per_chain.values():
        labels = list(decided.values())
        if len(labels) >= 2:
            pairs.append((labels[0], labels[1]))
        else:
            pending += 1
    return pairs, pending


def agreement(db: sqlite_utils.Database) -> Agreement:
    """Percent agreement and Cohen's kappa over all double-reviewed chains."""
    pairs, pending = decision_pairs(db)
    return Agreement(len(pairs), percent_agreement(pairs), cohens_kappa(pairs), pending)
