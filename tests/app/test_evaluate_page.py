"""The Evaluate page through AppTest: two runs, charts, run vs run, drill-down, back to Review."""

from __future__ import annotations

import pytest

from store.chains import get_chain, insert_chain
from tests.support.chains import chain_of
from tests.support.eval_runs import fake_run
from tests.support.pages import open_page


def _runs(db) -> tuple[list[int], int, int]:
    ids = [insert_chain(db, chain_of(i, n))[0] for i, n in enumerate([1, 2, 3, 3])]
    base = {ids[0]: [0.9], ids[1]: [0.8, 0.1], ids[2]: [0.2, 0.9, 0.9], ids[3]: [0.9, 0.9, 0.9]}
    tuned = {**base, ids[1]: [0.9, 0.9], ids[3]: [0.9, 0.1, 0.9]}
    gold = {cid: [0.95] * len(s) for cid, s in base.items()}
    a = fake_run(db, base, name="base", mode="stepwise-own", gold=gold)
    b = fake_run(db, tuned, name="tuned", mode="stepwise-own", gold=gold)
    return ids, a, b


def test_empty_page_says_how_to_start(db):
    at = open_page("evaluate")
    assert "No finished eval run" in at.info[0].value


def test_two_runs_charts_and_drill_down(db):
    ids, a, b = _runs(db)
    at = open_page("evaluate")
    at.selectbox(key="run_a").set_value(b)
    at.selectbox(key="run_b").set_value(a)
    at.selectbox(key="mode").set_value("stepwise-own")
    at.run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 5
    titles = " ".join(c.proto.spec for c in charts)
    assert "ROUGE-L by chain length" in titles and "First failing step" in titles and "carried over" in titles
    assert any("1 improved, 1 regressed, 2 unchanged" in t.value for t in at.text)
    # The compare table names its columns by run and uses the charts' x 100 scale.
    table = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert {f"eval #{a} base", f"eval #{b} tuned"} <= set(table.columns) and "a" not in table.columns
    assert table["change"].abs().max() > 1  # x 100, not 0..1
    # Drill-down: failing chains come first (ids[2] fails step 1); text is shown literally, diff as text.
    codes = [c.value for c in at.code]
    assert f"prediction {ids[2]}.2 <b>bold</b> *stars*" in codes
    assert f"reference {ids[2]}.2 words" in codes
    assert f"[-reference-] {{+prediction+}} {ids[2]}.1 [-words-] {{+<b>bold</b> *stars*+}}" in codes
    at.selectbox(key="chain").set_value(ids[3])
    at.run()
    assert f"prediction {ids[3]}.2 <b>bold</b> *stars*" in [c.value for c in at.code]


def test_a_cancelled_runs_partial_results_can_be_viewed(db):
    from store.jobs import update_job

    ids, a, _ = _runs(db)
    update_job(db, a, status="cancelled", error="cancelled by the user")
    at = open_page("evaluate")
    assert f"eval #{a} base (cancelled: partial)" in at.selectbox(key="run_a").options


def test_failing_chains_go_back_to_review(db):
    ids, a, b = _runs(db)
    at = open_page("evaluate")
    at.selectbox(key="run_a").set_value(a)
    at.run()
    assert any("2 of them accepted before" in c.value for c in at.caption)
    assert at.button(key="to_review").disabled  # reopening accepted chains needs a yes first
    at.checkbox(key="to_review_sure").check().run()
    at.button(key="to_review").click()
    at.run()
    assert not at.exception, at.exception
    assert "now in the Review queue" in at.success[0].value
    failure = get_chain(db, ids[1]).meta["eval_failure"]
    assert (
        failure["eval_run"] == a
        and failure["mode"] == at.selectbox(key="mode").value
        and failure["step"] >= 1
    )
    statuses = {cid: get_chain(db, cid).status for cid in ids}
    assert statuses == {
        ids[0]: "accepted",
        ids[1]: "needs_review",
        ids[2]: "needs_review",
        ids[3]: "accepted",
    }


def test_new_run_form_reports_errors_plainly(db):
    at = open_page("evaluate")
    at.button(key="FormSubmitter:new_eval-Start").click()
    at.run()
    assert not at.exception, at.exception
    assert "no dataset version" in at.error[0].value


@pytest.mark.slow
def test_progress_and_cancel_of_a_running_eval(db, tiny_model_dir):
    from eval.config import EvalConfig
    from eval.run import submit_eval
    from store.jobs import get_job
    from tests.support.eval_runs import make_version, wait_for

    vid = make_version(db)
    run = submit_eval(
        db, EvalConfig(model=str(tiny_model_dir), version=vid, batch_size=1, max_new_tokens=400)
    )
    at = open_page("evaluate")
    assert any(f"#{run}" in p.proto.text for p in at.get("progress"))
    at.button(key=f"cancel_{run}").click()
    at.run()
    wait_for(db, run, lambda j: not j.active, timeout=30)
    assert get_job(db, run).status == "cancelled"
