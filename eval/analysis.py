"""Error analysis of an eval run: scores by chain length and step, first failing step, own vs
carried-over errors, error kinds in plain words, and run-vs-run deltas.

Every metric is a ``StepScorer``: ROUGE-L (the paper's headline), exact match, and the step-aware
score (each step's own metric and threshold from its type, ``eval.step_metrics``). The failure
analysis (first failing step, own vs carried over, failing chains) and run vs run use the
step-aware one; the report shows every metric by length and per step.

Everything here is a pure function of prediction rows (``store.predictions.Prediction``), so the
report, the CLI and the Evaluate page share it and tests call it directly.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from eval.metrics import exact_match
from eval.rouge import aggregate, rouge_l
from eval.step_metrics import TEXT, fails, score_step
from store.predictions import Prediction

Chains = dict[int, list[Prediction]]  # chain id -> its step rows, by position
NONE = "none"
OWN, CARRIED = "own", "carried over"
ERROR_KINDS = ("empty", "missing step markers", "truncated", "copied the input", "wrong language", "other")
COPY_THRESHOLD = 0.9


def group(preds: Iterable[Prediction]) -> dict[str, Chains]:
    """{mode: {chain id: rows sorted by position}}."""
    out: dict[str, Chains] = defaultdict(lambda: defaultdict(list))
    for p in preds:
        out[p.mode][p.chain_id].append(p)
    for chains in out.values():
        for rows in chains.values():
            rows.sort(key=lambda p: p.position)
    return {m: dict(c) for m, c in out.items()}


def _score(p: Prediction) -> float:
    return float(p.rougeL or 0.0)


def _em(p: Prediction) -> float:
    """Normalised exact match of a step (computed from the stored texts, so old runs get it too)."""
    return exact_match(p.reference or "", p.prediction or "")


def step_type(p: Prediction) -> str:
    """The step's type as recorded at prediction time (free text for runs made before types)."""
    return p.meta.get("step_type") or TEXT


def _step_aware(p: Prediction) -> float:
    return score_step(
        step_type(p), p.reference or "", p.prediction or "", p.meta.get("input") or "", rouge=p.rougeL
    )


@dataclass(frozen=True)
class StepScorer:
    """A per-step score and when a step fails under it."""

    name: str
    score: Callable[[Prediction], float]
    failed: Callable[[Prediction], bool]


def step_scorers(threshold: float) -> dict[str, StepScorer]:
    """Every metric of the report; ``threshold`` is the run's ROUGE-L fail threshold (free text)."""
    return {
        "rougeL": StepScorer("rougeL", _score, lambda p: _score(p) < threshold),
        "exact_match": StepScorer("exact_match", _em, lambda p: _em(p) < 1.0),
        "step_aware": StepScorer(
            "step_aware", _step_aware, lambda p: fails(step_type(p), _step_aware(p), {TEXT: threshold})
        ),
    }


def _rouge_scorer(threshold: float) -> StepScorer:
    return step_scorers(threshold)["rougeL"]


def length_of(rows: list[Prediction]) -> int:
    return int(rows[0].meta.get("length") or len(rows)) if rows else 0


def by_length(chains: Chains) -> dict[str, dict]:
    """Per chain length: chains, the final output's ROUGE-L (mean and bootstrap CI), the steps' mean."""
    groups: dict[int, list[list[Prediction]]] = defaultdict(list)
    for rows in chains.values():
        groups[length_of(rows)].append(rows)
    out = {}
    for n in sorted(groups):
        final = [_score(rows[-1]) for rows in groups[n]]
        steps = [_score(p) for rows in groups[n] for p in rows]
        out[str(n)] = {
            "n": len(groups[n]),
            "final": aggregate(final).as_dict(),
            "steps_mean": float(np.mean(steps)),
            "final_em": aggregate([_em(rows[-1]) for rows in groups[n]]).as_dict(),
            "steps_em": float(np.mean([_em(p) for rows in groups[n] for p in rows])),
        }
    return out


def by_step(chains: Chains, metric=_score) -> dict[str, dict[str, float]]:
    """Mean ROUGE-L (or ``metric``) per step position, for each chain length and over all lengths ("all")."""
    cells: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rows in chains.values():
        for p in rows:
            for key in (str(length_of(rows)), "all"):
                cells[key][str(p.position)].append(metric(p))
    order = sorted((k for k in cells if k != "all"), key=int) + (["all"] if cells else [])
    return {
        k: {pos: float(np.mean(v)) for pos, v in sorted(cells[k].items(), key=lambda kv: int(kv[0]))}
        for k in order
    }


def overall(chains: Chains) -> dict:
    """The run's corpus scores: final output and all steps (mean over examples, bootstrap CI)."""
    final = [_score(rows[-1]) for rows in chains.values()]
    steps = [_score(p) for rows in chains.values() for p in rows]
    return {
        "final": aggregate(final).as_dict(),
        "steps": aggregate(steps).as_dict(),
        "final_em": aggregate([_em(rows[-1]) for rows in chains.values()]).as_dict(),
        "steps_em": aggregate([_em(p) for rows in chains.values() for p in rows]).as_dict(),
        "n_chains": len(chains),
    }


def markerless_chains(chains: Chains) -> int:
    """Chains of 2+ steps whose whole answer had no step markers (it all went to the last step)."""
    return sum(
        1
        for rows in chains.values()
        if len(rows) > 1 and "missing step markers" in (rows[0].meta.get("issues") or [])
    )


def first_failing_step(
    rows: list[Prediction], threshold: float, scorer: StepScorer | None = None
) -> int | None:
    """The position of the first failing step (ROUGE-L below ``threshold`` unless a ``scorer`` is
    given), or None when none fails."""
    failed = (scorer or _rouge_scorer(threshold)).failed
    return next((p.position for p in rows if failed(p)), None)


def first_failing_counts(
    chains: Chains, threshold: float, scorer: StepScorer | None = None
) -> dict[str, dict[str, int]]:
    """Histogram of first failing steps ("1".."n" and "none"), per length and over all ("all").

    Each chain counts once, so every histogram adds up to its number of chains.
    """
    counts: dict[str, Counter] = defaultdict(Counter)
    for rows in chains.values():
        first = first_failing_step(rows, threshold, scorer)
        key = NONE if first is None else str(first)
        counts[str(length_of(rows))][key] += 1
        counts["all"][key] += 1
    order = sorted((k for k in counts if k != "all"), key=int) + (["all"] if counts else [])
    return {k: _ordered_hist(counts[k]) for k in order}


def _ordered_hist(counter: Counter) -> dict[str, int]:
    steps = sorted((k for k in counter if k != NONE), key=int)
    return {**{k: counter[k] for k in steps}, NONE: counter.get(NONE, 0)}


# ---- own vs carried-over errors and error kinds ------------------------------------------------------


def failure_origin(
    p: Prediction, gold: Chains | None, threshold: float, scorer: StepScorer | None = None
) -> str:
    """'own' when the step also fails given the gold input (or is step 1); else 'carried over'.

    In stepwise-own and chain modes a step's input is the model's own earlier output. If the same
    step passes in stepwise-gold, only the input differed, so the error was carried over.
    """
    if p.position == 1 or p.mode == "stepwise-gold" or not gold:
        return OWN
    rows = gold.get(p.chain_id) or []
    gold_step = next((g for g in rows if g.position == p.position), None)
    if gold_step is None:
        return OWN
    return OWN if (scorer or _rouge_scorer(threshold)).failed(gold_step) else CARRIED


def failures(
    chains: Chains, gold: Chains | None, threshold: float, scorer: StepScorer | None = None
) -> list[dict]:
    """Every failing step with its chain, length, origin and error kind."""
    scorer = scorer or _rouge_scorer(threshold)
    out = []
    for cid, rows in chains.items():
        first = first_failing_step(rows, threshold, scorer)
        for p in rows:
            if not scorer.failed(p):
                continue
            out.append(
                {
                    "chain_id": cid,
                    "length": length_of(rows),
                    "position": p.position,
                    "first": p.position == first,
                    "rougeL": _score(p),
                    "step_type": step_type(p),
                    "score": scorer.score(p),
                    "origin": failure_origin(p, gold, threshold, scorer),
                    "kind": error_kind(p),
                }
            )
    return out


def origin_counts(fails: list[dict], *, first_only: bool = False) -> dict[str, int]:
    """How many failures are the step's own error vs carried over."""
    c = Counter(f["origin"] for f in fails if f["first"] or not first_only)
    return {OWN: c.get(OWN, 0), CARRIED: c.get(CARRIED, 0)}


def kind_counts(fails: list[dict]) -> dict[str, int]:
    c = Counter(f["kind"] for f in fails)
    return {k: c.get(k, 0) for k in ERROR_KINDS}


def error_kind(p: Prediction) -> str:
    """The error kind of a failing step, in plain words (first rule that applies).

    Root causes come before symptoms: an answer that copies its input usually also runs into
    ``max_new_tokens``, and is reported as a copy rather than as truncated.
    """
    text = p.prediction or ""
    if not text.strip():
        return "missing step markers" if _missing_marker(p) else "empty"
    if _copied(p, text):
        return "copied the input"
    ref_lang, pred_lang = guess_language(p.reference), guess_language(text)
    if ref_lang and pred_lang and ref_lang != pred_lang:
        return "wrong language"
    if p.meta.get("hit_limit"):
        return "truncated"
    return "other"


def _copied(p: Prediction, text: str) -> bool:
    """The answer repeats the step's input (or, in chain mode, the chain's input), not the reference."""
    if rouge_l(p.reference, text) >= COPY_THRESHOLD:
        return False
    sources = [p.meta.get("input") or "", p.meta.get("chain_input") or ""]
    return any(s.strip() and rouge_l(s, text) >= COPY_THRESHOLD for s in sources)


def _missing_marker(p: Prediction) -> bool:
    issues = p.meta.get("issues") or []
    return any(i == "missing step markers" or i.startswith("missing marker") for i in issues)


_STOPWORDS = {
    "en": set("the and of to a in is that it for was on are with as be this by not or have from an".split()),
    "fr": set("le la les et des est un une du en que qui pour dans ne pas au sur avec ce il elle".split()),
    "es": set("el la los las y de que es en un una por con para del se no al lo su como más".split()),
    "de": set("der die das und ist nicht ein eine zu den mit von auf für sich im dem des auch es".split()),
}
_WORD = re.compile(r"\w+", re.UNICODE)


def guess_language(text: str, *, min_hits: int = 2, min_ratio: float = 0.1) -> str | None:
    """A light guess among en/fr/es/de from stopword ratios; None when the text is too short or unclear."""
    words = _WORD.findall((text or "").lower())
    if not words:
        return None
    hits = {lang: sum(w in stops for w in words) for lang, stops in _STOPWORDS.items()}
    lang, best = max(hits.items(), key=lambda kv: kv[1])
    if best < min_hits or best / len(words) < min_ratio or list(hits.values()).count(best) > 1:
        return None
    return lang


# ---- whole-run analysis and run vs run ---------------------------------------------------------------


def analyze(preds: Iterable[Prediction], threshold: float) -> dict:
    """Everything the report shows for one run, per mode. The failure analysis uses each step's own
    metric (step-aware); ``metrics`` holds every metric by length and step, with its own analysis."""
    modes = group(preds)
    gold = modes.get("stepwise-gold")
    scorers = step_scorers(threshold)
    aware = scorers["step_aware"]
    out = {}
    for mode, chains in modes.items():
        fails = failures(chains, gold, threshold, aware)
        out[mode] = {
            "overall": overall(chains),
            "by_length": by_length(chains),
            "by_step": by_step(chains),
            "by_step_em": by_step(chains, _em),
            "markerless_chains": markerless_chains(chains),
            "first_failing": first_failing_counts(chains, threshold, aware),
            "origin": origin_counts(fails),
            "origin_first": origin_counts(fails, first_only=True),
            "error_kinds": kind_counts(fails),
            "failing_chains": sorted({f["chain_id"] for f in fails}),
            "failures": [f for f in fails if f["first"]],
            "step_types": dict(Counter(step_type(p) for rows in chains.values() for p in rows)),
            "metrics": {name: metric_view(chains, gold, threshold, sc) for name, sc in scorers.items()},
        }
    return out


def metric_view(chains: Chains, gold: Chains | None, threshold: float, scorer: StepScorer) -> dict:
    """One metric over a mode: final and step means by length (with CIs), per step, first failing
    step and own vs carried over, each under that metric's own failure rule."""
    fails = failures(chains, gold, threshold, scorer)
    groups: dict[str, list[list[Prediction]]] = defaultdict(list)
    for rows in chains.values():
        groups[str(length_of(rows))].append(rows)
        groups["all"].append(rows)
    return {
        "by_length": {
            n: {
                "n": len(g),
                "final": aggregate([scorer.score(rows[-1]) for rows in g]).as_dict(),
                "steps_mean": float(np.mean([scorer.score(p) for rows in g for p in rows])),
            }
            for n, g in groups.items()
        },
        "by_step": by_step(chains, scorer.score),
        "first_failing": first_failing_counts(chains, threshold, scorer),
        "origin": origin_counts(fails),
        "origin_first": origin_counts(fails, first_only=True),
    }


def chain_scores(chains: Chains, score: Callable[[Prediction], float] = _step_aware) -> dict[int, float]:
    """A chain's score for run-vs-run: the mean of its steps' own (step-aware) scores."""
    return {cid: float(np.mean([score(p) for p in rows])) for cid, rows in chains.items()}


def compare(
    preds_a: Iterable[Prediction], preds_b: Iterable[Prediction], mode: str, *, eps: float = 1e-9
) -> dict:
    """The same test set under two runs: per-chain deltas (b - a), improved and regressed first.

    Only chains both runs scored in ``mode`` are compared.
    """
    a, b = group(preds_a).get(mode, {}), group(preds_b).get(mode, {})
    sa, sb = chain_scores(a), chain_scores(b)
    rows = [
        {"chain_id": c, "length": length_of(a[c]), "a": sa[c], "b": sb[c], "delta": sb[c] - sa[c]}
        for c in sorted(set(sa) & set(sb))
    ]
    improved = sorted((r for r in rows if r["delta"] > eps), key=lambda r: -r["delta"])
    regressed = sorted((r for r in rows if r["delta"] < -eps), key=lambda r: r["delta"])
    unchanged = [r for r in rows if abs(r["delta"]) <= eps]
    return {
        "mode": mode,
        "n_chains": len(rows),
        "improved": improved,
        "regressed": regressed,
        "unchanged": len(unchanged),
        "rows": improved + regressed + unchanged,
        "by_length": {
            "a": by_length({c: a[c] for c in sa if c in sb}),
            "b": by_length({c: b[c] for c in sb if c in sa}),
        },
    }


def word_diff(reference: str, prediction: str) -> str:
    """A word diff as plain text: ``[-removed-]`` (in the reference only), ``{+added+}`` (prediction only)."""
    import difflib

    ref, pred = (reference or "").split(), (prediction or "").split()
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ref, b=pred, autojunk=False).get_opcodes():
        if op == "equal":
            parts += ref[i1:i2]
            continue
        if op in ("delete", "replace"):
            parts.append("[-" + " ".join(ref[i1:i2]) + "-]")
        if op in ("insert", "replace"):
            parts.append("{+" + " ".join(pred[j1:j2]) + "+}")
    return " ".join(parts)


def drill_down(preds: Iterable[Prediction], chain_id: int, mode: str) -> list[dict]:
    """Each step of one chain under one mode: reference, prediction, score, word diff, error kind."""
    rows = group(p for p in preds if p.chain_id == chain_id).get(mode, {}).get(chain_id, [])
    return [
        {
            "position": p.position,
            "input": p.meta.get("input", ""),
            "reference": p.reference,
            "prediction": p.prediction,
            "rougeL": _score(p),
            "diff": word_diff(p.reference, p.prediction),
            "issues": p.meta.get("issues") or [],
        }
        for p in rows
    ]
