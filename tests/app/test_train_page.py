"""The Train page through AppTest: start -> progress -> cancel; a fresh app re-attaches to a running job."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from app.charts import loss_figure, metric_series
from jobs import process
from store.chains import insert_chain
from store.jobs import get_job, list_jobs
from tests.support.chains import chain_of
from tests.support.throttled import throttled
from tests.support.training import make_version, tiny_config, wait_for
from training import queue

PAGE = "../../app/app_pages/train.py"


def start() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def rerun_until(at: AppTest, pred, timeout: float = 90.0) -> AppTest:
    """Re-run the page (as the live fragment does every 2 s) until ``pred(at)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if pred(at):
            return at
        time.sleep(0.5)
    raise AssertionError("the page never showed it: " + " | ".join(t.value for t in at.text))


def progress_value(at: AppTest) -> float:
    return at.get("progress")[0].proto.value / 100 if at.get("progress") else -1


def test_start_then_progress_appears_then_cancel(db, tiny_model_dir, monkeypatch):
    make_version(db)
    at = start()
    assert at.selectbox(key="train_preset").value == "default"
    at.selectbox(key="train_preset").set_value("quick").run()
    at.text_input(key="train_quick_base_model").set_value(str(tiny_model_dir))
    at.number_input(key="train_quick_max_steps").set_value(
        150
    )  # long enough to cancel mid-run, short enough that step 2 shows
    at.number_input(key="train_quick_max_seq_len").set_value(128)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    job = list_jobs(db, kind="train")[0]
    assert job.config["base_model"] == str(tiny_model_dir) and job.config["max_steps"] == 150
    assert job.config["logging_steps"] == 2  # the preset's value, untouched

    rerun_until(
        at,
        lambda a: (
            any(t.value.startswith("step ") and "ETA" in t.value for t in a.text) and progress_value(a) > 0
        ),
    )
    assert any("running" in h.value for h in at.subheader)
    at.button(key="train_cancel").click().run()
    job = get_job(db, job.id)
    assert job.status == "cancelled" and not process.group_alive(job.pid)
    assert any("cancelled" in h.value for h in at.subheader)
    assert at.button(key="train_resume")  # a cancelled run can resume


@pytest.mark.slow
def test_a_restarted_app_reattaches_to_the_running_job(db, tiny_model_dir, monkeypatch):
    version = make_version(db)
    job_id = queue.submit(
        db, tiny_config(tiny_model_dir, version, max_steps=60, logging_steps=1), launcher=throttled(0.3)
    )
    try:
        wait_for(db, job_id, lambda j: j.done >= 2 or not j.active)
        # A brand-new app process/session knows nothing but the database.
        at = rerun_until(start(), lambda a: progress_value(a) > 0)
        assert any(f"train #{job_id}: running" == h.value for h in at.subheader)
        assert at.get("plotly_chart"), "the loss chart is shown"
        assert any("4/5 training" in c.value for c in at.code), "the log tail is shown"
    finally:
        queue.cancel(db, job_id)


def test_no_version_yet_offers_to_create_one(db):
    for i in range(4):
        insert_chain(db, chain_of(i, 1 + i % 2))
    at = start()
    # A bare expression on the page would be echoed by Streamlit's magic (it once showed "None").
    assert all("None" not in m.value for m in at.markdown)
    at.button(key="train_make_version").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_version").value.id == 1


def test_history_shows_configs_and_their_diff(db, tiny_model_dir):
    from store.jobs import create_job

    version = make_version(db)
    create_job(db, "train", tiny_config(tiny_model_dir, version).to_dict(), status="succeeded")
    create_job(db, "train", tiny_config(tiny_model_dir, version, lora_r=16).to_dict(), status="failed")
    at = start()
    diff = next(d.value for d in at.dataframe if "field" in d.value.columns)
    assert list(diff["field"]) == ["lora_r"]
    assert list(diff["#1"]) == ["4"] and list(diff["#2"]) == ["16"]


def test_loss_figure_has_train_and_eval_traces():
    rows = [{"step": 1, "name": "loss", "value": 2.0}, {"step": 2, "name": "loss", "value": 1.5}]
    rows += [
        {"step": 2, "name": "eval_loss", "value": 1.7},
        {"step": 2, "name": "learning_rate", "value": 1e-4},
    ]
    fig = loss_figure(rows)
    assert [t.name for t in fig.data] == ["train loss", "eval loss"]
    assert list(fig.data[0].y) == [2.0, 1.5] and metric_series(rows, "eval_loss") == ([2], [1.7])
