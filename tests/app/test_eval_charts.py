"""The Evaluate page's figure builders, from a hand-made report."""

from __future__ import annotations

from app.eval_charts import ALL_FIGURES, by_length_figure, by_step_figure

REPORT = {
    "modes": {
        "chain": {
            "by_length": {
                "2": {"final": {"mean": 0.25, "low": 0.2, "high": 0.3}},
                "3": {"final": {"mean": 0.0, "low": 0.0, "high": 0.0}},
            },
            "by_step": {"all": {"1": 0.5, "2": 0.0}},
        }
    }
}


def test_rouge_charts_use_a_fixed_0_to_100_axis_and_scale_scores():
    runs = [("base", REPORT), ("tuned", REPORT)]
    by_length = by_length_figure(runs, "chain")
    assert [t.name for t in by_length.data] == ["base", "tuned"]
    assert list(by_length.data[0].x) == ["CoI2", "CoI3"]
    assert list(by_length.data[0].y) == [25.0, 0.0]
    assert list(by_length.data[0].error_y.array) == [5.0, 0.0]
    by_step = by_step_figure(runs, "chain")
    assert list(by_step.data[0].y) == [50.0, 0.0]
    for fig in (by_length, by_step):
        assert tuple(fig.layout.yaxis.range) == (0, 100)  # all-zero runs show as zeros, not around -1..1


def test_a_mode_missing_from_a_run_gives_empty_bars():
    fig = by_length_figure([("base", {"modes": {}})], "stepwise-own")
    assert list(fig.data[0].x) == [] and list(fig.data[0].y) == []


def test_legends_sit_below_the_plots():
    report = {"modes": {"chain": {}}}
    for make in ALL_FIGURES:
        legend = make([("a run with a long name", report)], "chain").layout.legend
        assert legend.orientation == "h" and legend.y < 0, make.__name__


def test_a_short_loss_series_has_markers():
    from app.charts import loss_figure

    one = loss_figure([{"name": "loss", "step": 1, "value": 2.0}])
    many = loss_figure([{"name": "loss", "step": s, "value": 1.0} for s in range(50)])
    assert one.data[0].mode == "lines+markers" and many.data[0].mode == "lines"
