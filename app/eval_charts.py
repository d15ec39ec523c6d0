"""Pure plotly figure builders of the Evaluate page, from eval reports (``eval.report.build_report``).

Each takes ``runs``: a list of (label, report) pairs, one or two runs shown side by side.
"""

from __future__ import annotations

import plotly.graph_objects as go

from app.safe_text import plotly_text
from eval.analysis import CARRIED, ERROR_KINDS, OWN

Runs = list[tuple[str, dict]]


def _mode(report: dict, mode: str) -> dict:
    return report["modes"].get(mode, {})


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, barmode="group", legend_title_text="run")
    # Below the plot: long run names beside it would squeeze the plot to a third of its width.
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0))
    return fig


def _score_layout(fig: go.Figure, title: str, x: str) -> go.Figure:
    """ROUGE-L x 100 on a fixed 0-100 axis, so runs and pages compare at a glance (and zeros show as zeros)."""
    _layout(fig, title, x, "ROUGE-L x 100")
    fig.update_yaxes(range=[0, 100])
    return fig


def by_length_figure(runs: Runs, mode: str) -> go.Figure:
    """ROUGE-L of the final output by chain length, runs side by side, with bootstrap CIs."""
    fig = go.Figure()
    for label, report in runs:
        rows = _mode(report, mode).get("by_length", {})
        means = [100 * v["final"]["mean"] for v in rows.values()]
        fig.add_bar(
            name=plotly_text(label),
            x=[f"CoI{n}" for n in rows],
            y=means,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [100 * v["final"]["high"] - m for v, m in zip(rows.values(), means)],
                "arrayminus": [m - 100 * v["final"]["low"] for v, m in zip(rows.values(), means)],
            },
        )
    return _score_layout(fig, f"ROUGE-L by chain length ({mode}, final output)", "chain length")


def by_step_figure(runs: Runs, mode: str) -> go.Figure:
    """Mean ROUGE-L at each step position over all chains."""
    fig = go.Figure()
    for label, report in runs:
        steps = _mode(report, mode).get("by_step", {}).get("all", {})
        fig.add_bar(
            name=plotly_text(label), x=[f"step {k}" for k in steps], y=[100 * v for v in steps.values()]
        )
    return _score_layout(fig, f"ROUGE-L per step ({mode})", "step")


def first_failing_figure(runs: Runs, mode: str) -> go.Figure:
    """Histogram of the first failing step of each chain ('none': no step failed)."""
    fig = go.Figure()
    for label, report in runs:
        hist = _mode(report, mode).get("first_failing", {}).get("all", {})
        fig.add_bar(
            name=plotly_text(label),
            x=[k if k == "none" else f"step {k}" for k in hist],
            y=list(hist.values()),
        )
    return _layout(fig, f"First failing step ({mode})", "first failing step", "chains")


def origin_figure(runs: Runs, mode: str) -> go.Figure:
    """Failing steps that are the step's own error vs carried over from an earlier step."""
    fig = go.Figure()
    for label, report in runs:
        origin = _mode(report, mode).get("origin", {})
        fig.add_bar(name=plotly_text(label), x=[OWN, CARRIED], y=[origin.get(OWN, 0), origin.get(CARRIED, 0)])
    return _layout(fig, f"Own vs carried-over errors ({mode})", "error origin", "failing steps")


def error_kind_figure(runs: Runs, mode: str) -> go.Figure:
    """Failing steps by error kind, in plain words."""
    fig = go.Figure()
    for label, report in runs:
        kinds = _mode(report, mode).get("error_kinds", {})
        fig.add_bar(name=plotly_text(label), x=list(ERROR_KINDS), y=[kinds.get(k, 0) for k in ERROR_KINDS])
    return _layout(fig, f"Error kinds ({mode})", "error kind", "failing steps")


ALL_FIGURES = (by_length_figure, by_step_figure, first_failing_figure, origin_figure, error_kind_figure)
