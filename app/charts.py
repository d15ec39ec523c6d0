"""Pure plotly figure builders: data in, ``go.Figure`` out (no Streamlit), so they are tested directly.

Training charts first; other areas add their builders below.
"""

from __future__ import annotations

import plotly.graph_objects as go


def metric_series(rows: list[dict], name: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric from ``store.jobs.get_metrics`` rows (the last value per step)."""
    by_step = {r["step"]: r["value"] for r in rows if r["name"] == name}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


SHORT_SERIES = 20  # up to this many points a line alone looks empty (one point draws nothing)


def line_mode(n_points: int) -> str:
    return "lines+markers" if n_points <= SHORT_SERIES else "lines"


def loss_figure(rows: list[dict], *, title: str = "Loss") -> go.Figure:
    """Train loss (line) and eval loss (markers) against the optimizer step."""
    fig = go.Figure()
    for name, label in (("loss", "train loss"), ("eval_loss", "eval loss")):
        steps, values = metric_series(rows, name)
        if steps:
            mode = "lines+markers" if name == "eval_loss" else line_mode(len(steps))
            fig.add_trace(go.Scatter(x=steps, y=values, name=label, mode=mode))
    fig.update_layout(
        title=title, xaxis_title="step", yaxis_title="loss", height=320, margin=dict(l=40, r=10, t=40, b=40)
    )
    return fig


def throughput_figure(rows: list[dict]) -> go.Figure:
    """Real (non-pad) tokens per second against the step."""
    steps, values = metric_series(rows, "tokens_per_s")
    fig = go.Figure(go.Scatter(x=steps, y=values, name="tokens/s", mode=line_mode(len(steps))))
    fig.update_layout(
        title="Throughput (real tokens/s)",
        xaxis_title="step",
        height=260,
        margin=dict(l=40, r=10, t=40, b=40),
    )
    return fig
