"""Eval reports: a JSON report and a Markdown summary of a run (optionally against another run)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils

from eval.analysis import CARRIED, ERROR_KINDS, NONE, OWN, analyze, compare, group, length_of
from eval.config import EvalConfig
from eval.metrics import METRICS, paired_bootstrap
from eval.rouge import aggregate
from store.errors import CoiError
from store.jobs import get_job
from store.judgements import human_agreement, verdict_counts
from store.predictions import get_predictions

MAIN_MODES = ("chain", "stepwise-own", "stepwise-gold")
PAPER_ROWS = tuple(f"CoI{n}" for n in range(1, 6))  # the paper's table: CoI1..CoI5, then each source
TABLE_METRICS = ("rougeL", "exact_match")


def run_summary(db: sqlite_utils.Database, run_id: int) -> dict:
    """The run's job facts a report starts with.

    Raises:
        CoiError: there is no eval run with that id.
    """
    job = get_job(db, run_id)
    if job is None or job.kind != "eval":
        raise CoiError(f"There is no eval run #{run_id}", "List finished runs on the Evaluate page.")
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "config": job.config,
        "created_at": job.created_at,
    }


def main_mode(modes: dict) -> str | None:
    """The mode headline numbers come from: chain (the paper's setting) if present."""
    return next((m for m in MAIN_MODES if m in modes), None)


def build_report(
    db: sqlite_utils.Database, run_id: int, *, threshold: float | None = None, compare_to: int | None = None
) -> dict:
    """The full report dict of a run (JSON-ready)."""
    run = run_summary(db, run_id)
    if threshold is None:
        threshold = EvalConfig.from_dict(run["config"]).fail_threshold
    preds = get_predictions(db, run_id)
    modes = analyze(preds, threshold)
    mode = main_mode(modes)
    report = {
        "run": run,
        "threshold": threshold,
        "main_mode": mode,
        "overall": {m: a["overall"] for m, a in modes.items()},
        "modes": modes,
        "judge": judge_summary(db, run_id, list(modes)),
    }
    if compare_to is None:
        report["paper_table"] = paper_table(None, preds, mode or "chain")
    if compare_to is not None:
        other = run_summary(db, compare_to)
        other_preds = get_predictions(db, compare_to)
        # The run compared against is the baseline: `coi eval report TUNED --compare BASE`.
        report["paper_table"] = paper_table(other_preds, preds, mode or "chain")
        report["compare"] = {
            "a": other,
            "b": run,
            "modes": {m: compare(other_preds, preds, m) for m in modes},
        }
    return report


def judge_summary(db: sqlite_utils.Database, run_id: int, modes: list[str]) -> dict:
    """The LLM judge's verdicts on this run per mode (``coi judge --run``), and how far the judge agrees
    with reviewers on the generated steps both judged, so the user can see whether to trust it."""
    verdicts = {m: counts for m in modes if (counts := verdict_counts(db, run_id, m))}
    agree = human_agreement(db)
    return {
        "verdicts": verdicts,
        "agreement": {"n": agree.n, "percent": agree.percent, "kappa": agree.kappa},
    }


def _judge_lines(judge: dict | None) -> list[str]:
    if not judge or not (judge["verdicts"] or judge["agreement"]["n"]):
        return []
    lines = ["## LLM judge", ""]
    for mode, counts in judge["verdicts"].items():
        lines.append(f"- {mode}: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    a = judge["agreement"]
    if a["n"]:
        kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.2f}"
        lines.append(
            f"- against reviewers on {a['n']} decided steps: agreement {a['percent']:.0%}, Cohen's kappa {kappa}"
        )
    return [*lines, ""]


def _final_rows(preds, mode: str) -> dict[int, object]:
    """chain id -> the chain's final-step prediction in ``mode``."""
    return {cid: rows[-1] for cid, rows in group(preds).get(mode, {}).items()}


def _table_groups(finals: dict[int, object]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {name: [] for name in PAPER_ROWS}
    for cid, p in finals.items():
        groups.setdefault(f"CoI{length_of([p]) or p.position}", []).append(cid)
        source = p.meta.get("source")
        if source:
            groups.setdefault(f"source {source}", []).append(cid)
    return groups


def paper_table(base_preds, tuned_preds, mode: str = "chain") -> list[dict]:
    """The paper's table: rows CoI1..CoI5 and one per source; base and tuned ROUGE-L and exact match.

    Scores are of the final output, x1 (0..1), each with a 95% bootstrap CI; ``gain`` is the paired
    bootstrap of tuned - base ROUGE-L over the chains both runs scored. ``base_preds`` may be None.
    """
    tuned = _final_rows(tuned_preds, mode)
    base = _final_rows(base_preds, mode) if base_preds is not None else {}
    rows = []
    for name, ids in _table_groups(tuned).items():
        row: dict = {"row": name, "n": len(ids)}
        for role, finals in (("base", base), ("tuned", tuned)):
            if role == "base" and base_preds is None:
                continue
            have = [finals[c] for c in ids if c in finals]
            row[role] = {
                m: aggregate([METRICS[m].fn(p.reference or "", p.prediction or "") for p in have]).as_dict()
                for m in TABLE_METRICS
            }
        if base_preds is not None:
            both = [c for c in ids if c in base]
            row["gain"] = paired_bootstrap(
                [float(base[c].rougeL or 0) for c in both], [float(tuned[c].rougeL or 0) for c in both]
            ).as_dict()
        rows.append(row)
    return rows


def write_report(report: dict, out_dir: str | Path) -> dict[str, str]:
    """Write ``report.json`` and ``summary.md`` to ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "summary.md"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, sort_keys=False))
    md_path.write_text(to_markdown(report))
    return {"json": str(json_path), "markdown": str(md_path)}


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}"  # NaN-safe


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _ci(agg: dict) -> str:
    if agg["n"] == 0:
        return "n/a"
    return f"{_pct(agg['mean'])} [{_pct(agg['low'])}, {_pct(agg['high'])}]"


def paper_table_lines(rows: list[dict]) -> list[str]:
    roles = [r for r in ("base", "tuned") if any(r in row for row in rows)]
    header = ["", "chains"]
    for m in TABLE_METRICS:
        header += [f"{role} {'ROUGE-L' if m == 'rougeL' else 'EM'}" for role in roles]
    if "base" in roles:
        header.append("ROUGE-L gain")
    body = []
    for row in rows:
        cells = [row["row"], row["n"]]
        for m in TABLE_METRICS:
            cells += [_ci(row[role][m]) if role in row else "n/a" for role in roles]
        if "base" in roles:
            cells.append(_ci(row["gain"]) if "gain" in row else "n/a")
        body.append(cells)
    lines = [
        "## The paper's table",
        "",
        "Final output, x 100, with 95% bootstrap CIs (the gain: paired bootstrap):",
        "",
    ]
    return lines + _table(header, body) + [""]


def _markerless_note(modes: dict) -> list[str]:
    chain = modes.get("chain") or {}
    n = chain.get("markerless_chains", 0)
    if not n:
        return []
    return [
        f"Note: in {n} chain(s) the model wrote no step markers, so its whole answer was scored as the last "
        'step and every earlier step as empty. "Fails at step 1" is then an artefact of the missing '
        "markers, not a measured first error; compare the final-output scores instead.",
        "",
    ]


def _mode_section(mode: str, a: dict) -> list[str]:
    lines = [
        f"## Mode: {mode}",
        "",
        "ROUGE-L x 100 by chain length (final output with 95% bootstrap CI; all steps):",
        "",
    ]
    lines += _table(
        ["length", "chains", "final", "95% CI", "steps mean"],
        [
            [
                f"CoI{n}",
                v["n"],
                _pct(v["final"]["mean"]),
                f"{_pct(v['final']['low'])}-{_pct(v['final']['high'])}",
                _pct(v["steps_mean"]),
            ]
            for n, v in a["by_length"].items()
        ],
    )
    steps = a["by_step"]
    max_pos = max((int(p) for row in steps.values() for p in row), default=0)
    for title, table in (("ROUGE-L", steps), ("Exact match", a.get("by_step_em") or {})):
        if not table:
            continue
        lines += ["", f"{title} x 100 by step:", ""]
        lines += _table(
            ["length"] + [f"step {k}" for k in range(1, max_pos + 1)],
            [
                [n if n == "all" else f"CoI{n}"]
                + [_pct(row[str(k)]) if str(k) in row else "" for k in range(1, max_pos + 1)]
                for n, row in table.items()
            ],
        )
    lines += _metrics_section(a, max_pos)
    hist = a["first_failing"]
    keys = [str(k) for k in range(1, max_pos + 1)] + [NONE]
    lines += ["", "First failing step (chains), each step judged by its own metric:", ""]
    lines += _table(
        ["length"] + keys,
        [[n if n == "all" else f"CoI{n}"] + [row.get(k, 0) for k in keys] for n, row in hist.items()],
    )
    lines += ["", f"Failing steps: {a['origin'][OWN]} own errors, {a['origin'][CARRIED]} carried over "]
    lines += [
        f"(first failures: {a['origin_first'][OWN]} own, {a['origin_first'][CARRIED]} carried over).",
        "",
    ]
    lines += _table(["error kind", "steps"], [[k, a["error_kinds"][k]] for k in ERROR_KINDS]) + [""]
    return lines


METRIC_TITLES = {"rougeL": "ROUGE-L", "exact_match": "exact match", "step_aware": "step-aware"}


def metric_rows(a: dict) -> list[dict]:
    """One row per metric (x 100): the final output by chain length, each step, first failing steps."""
    views = a.get("metrics") or {}
    rows = []
    for name, v in views.items():
        row: dict = {"metric": METRIC_TITLES.get(name, name)}
        for n, cell in v["by_length"].items():
            row[f"final {n if n == 'all' else 'CoI' + n}"] = round(100 * cell["final"]["mean"], 1)
        for pos, mean in v["by_step"].get("all", {}).items():
            row[f"step {pos}"] = round(100 * mean, 1)
        row["first failing step: chains"] = ", ".join(
            f"{k}: {c}" for k, c in v["first_failing"].get("all", {}).items()
        )
        rows.append(row)
    return rows


def compare_rows(cmp: dict, name_a: str, name_b: str) -> list[dict]:
    """Run-vs-run rows named by run, x 100 like the charts (a chain's mean step-aware score)."""
    return [
        {
            "chain": r["chain_id"],
            "length": r["length"],
            name_a: round(100 * r["a"], 1),
            name_b: round(100 * r["b"], 1),
            "change": round(100 * r["delta"], 1),
        }
        for r in cmp["rows"]
    ]


def first_failures(a: dict) -> dict[int, dict]:
    """chain id -> its first failing step under its own metric, with the score (for Send to Review)."""
    out = {}
    for f in a.get("failures") or []:
        if f["first"]:
            out[f["chain_id"]] = {"step": f["position"], "score": f["score"], "metric": f["step_type"]}
    return out


def _metrics_section(a: dict, max_pos: int) -> list[str]:
    """Every metric side by side: the final output by length, each step, and first failing steps."""
    rows = metric_rows(a)
    if not rows:
        return []
    types = ", ".join(f"{n} {t}" for t, n in sorted((a.get("step_types") or {}).items()))
    header = list(rows[0])
    lines = ["", f"Every metric x 100 (step types: {types}; step-aware scores each step by its type):", ""]
    return lines + _table(header, [[r.get(h, "") for h in header] for r in rows])


def _compare_section(cmp: dict) -> list[str]:
    a, b = cmp["a"], cmp["b"]
    lines = [f"## Run #{b['id']} vs run #{a['id']}", ""]
    for mode, c in cmp["modes"].items():
        lines += [
            f"### {mode}: {len(c['improved'])} improved, {len(c['regressed'])} regressed, {c['unchanged']} unchanged",
            "",
        ]
        rows = [
            [n, _pct(c["by_length"]["a"][n]["final"]["mean"]), _pct(c["by_length"]["b"][n]["final"]["mean"])]
            for n in c["by_length"]["b"]
        ]
        lines += _table(
            ["length", f"#{a['id']} final", f"#{b['id']} final"], [[f"CoI{r[0]}", r[1], r[2]] for r in rows]
        )
        top = c["improved"][:5] + c["regressed"][:5]
        if top:
            lines += ["", "Largest changes (mean step ROUGE-L x 100):", ""]
            lines += _table(
                ["chain", "length", f"#{a['id']}", f"#{b['id']}", "delta"],
                [
                    [r["chain_id"], r["length"], _pct(r["a"]), _pct(r["b"]), f"{100 * r['delta']:+.1f}"]
                    for r in top
                ],
            )
        lines.append("")
    return lines


def to_markdown(report: dict) -> str:
    """A readable summary: tables by length and by step, first failing step, own vs carried over."""
    run = report["run"]
    cfg = run.get("config") or {}
    lines = [
        f"# Eval run #{run['id']}: {run['name']}",
        "",
        f"Model: {cfg.get('model') or 'default'}; adapter: {cfg.get('adapter_dir') or 'none (base model)'}"
        + (f" (train job #{cfg['adapter_job']})" if cfg.get("adapter_job") is not None else "")
        + f"; dataset version #{cfg.get('version')}, split {cfg.get('split', 'test')}.",
        "",
        f"Status: {run['status']}. A step fails below ROUGE-L {report['threshold']}.",
        "",
    ]
    if report.get("paper_table"):
        lines += paper_table_lines(report["paper_table"])
    lines += _markerless_note(report["modes"])
    for mode, a in report["modes"].items():
        lines += _mode_section(mode, a)
    lines += _judge_lines(report.get("judge"))
    if "compare" in report:
        lines += _compare_section(report["compare"])
    return "\n".join(lines).rstrip() + "\n"
