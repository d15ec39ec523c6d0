"""Why a chain needs review, in plain words, from what the store knows about it: the import's
problems, the eval run that sent it back (with its failing step and score), the checker's doubt,
and the generation checks' flags on its steps."""

from __future__ import annotations

from store.flags import decode_flags
from store.models import Chain


def review_reasons(chain: Chain, composition: dict | None = None) -> list[str]:
    """The reasons, most specific first; empty when nothing is known against the chain."""
    reasons = [f"import: {issue}" for issue in chain.meta.get("issues") or []]
    failure = chain.meta.get("eval_failure")
    if isinstance(failure, dict):
        score = failure.get("score")
        scored = f" scored {score:.2f}" if isinstance(score, (int, float)) else " failed"
        reasons.append(
            f"eval run #{failure.get('eval_run')} ({failure.get('mode', 'chain')}): "
            f"step {failure.get('step')}{scored} on {failure.get('metric', 'ROUGE-L')}"
        )
    for step in chain.steps:
        reasons += [f"step {step.position}: {f['reason']}" for f in decode_flags(step.flag)]
    verdict = (composition or {}).get("verdict")
    if verdict and verdict != "yes":
        why = (composition or {}).get("reason") or "no reason given"
        reasons.append(f"checker said {verdict}: {why}")
    return reasons
