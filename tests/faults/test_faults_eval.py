"""Faults: kill the app, or the eval job itself, in the middle of a run; restart; resume.

Eval runs save their predictions one group of chains at a time (``batch_size`` chains per
transaction), so a resumed run skips the (chain, mode) pairs already saved and its report uses them.
The ``tests.support.throttled`` launcher slows the tiny model down so each kill lands after some groups are saved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli import main as coi
from eval.config import EvalConfig
from eval.predict import units
from eval.run import chunks, pending_records, resume_eval, submit_eval
from jobs.process import group_alive, is_alive
from store.errors import CoiError
from store.jobs import get_job
from store.predictions import Prediction, save_predictions
from store.versions import version_records
from tests.support.eval_runs import make_version
from tests.support.faults import (
    crash,
    crash_group,
    no_leftover_jobs,  # noqa: F401 - a fixture (usefixtures)
    snapshot,
    start_stand_in_app,
)
from tests.support.pages import open_page, page_text
from tests.support.probes import scalar, wait
from tests.support.throttled import throttled

pytestmark = pytest.mark.usefixtures("no_leftover_jobs")
MODES = ("chain", "stepwise-own")
PREDICTIONS = (
    "SELECT mode, chain_id, position, id, prediction, rougeL FROM predictions WHERE eval_run_id = {}"
)


def _config(model_dir, vid) -> EvalConfig:
    return EvalConfig(
        model=str(model_dir), version=vid, modes=MODES, batch_size=2, max_new_tokens=6, name="fault"
    )


def _count(db, run_id: int) -> int:
    return db.execute("SELECT count(*) FROM predictions WHERE eval_run_id = ?", [run_id]).fetchone()[0]


def _expected_rows(records) -> int:
    return sum(r["length"] for r in records) * len(MODES)


def _no_duplicates(db, run_id: int) -> None:
    n, distinct = db.execute(
        "SELECT count(*), count(DISTINCT mode || '/' || chain_id || '/' || position) FROM predictions "
        "WHERE eval_run_id = ?",
        [run_id],
    ).fetchone()
    assert n == distinct


def test_pending_records_skip_saved_chains_per_mode(db):
    vid = make_version(db, n_chains=20)
    records = version_records(db, vid, "test")
    run = db.execute("INSERT INTO jobs (kind, created_at) VALUES ('eval', 'now')").lastrowid
    first = records[0]
    save_predictions(
        db,
        run,
        [Prediction(first["chain_id"], k + 1, "chain", "p", "r", 0.5) for k in range(first["length"])],
    )
    todo, saved = pending_records(db, run, "chain", records)
    assert saved == [first] and todo == records[1:]
    assert pending_records(db, run, "stepwise-own", records) == (records, [])
    assert [len(c) for c in chunks(records[:5], 2)] == [2, 2, 1]


def test_resume_refuses_an_unknown_or_running_run(db):
    with pytest.raises(CoiError, match="There is no job #999"):
        resume_eval(db, 999)
    run = db.execute(
        "INSERT INTO jobs (kind, status, created_at) VALUES ('eval', 'succeeded', 'now')"
    ).lastrowid
    with pytest.raises(CoiError, match="cannot resume: it succeeded"):
        resume_eval(db, run)


@pytest.mark.slow
def test_the_app_crashes_mid_eval_the_run_goes_on_and_a_restarted_page_re_attaches(
    db, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    vid = make_version(db, n_chains=20)
    records = version_records(db, vid, "test")
    body = (
        "from eval.config import EvalConfig\n"
        "from eval.run import submit_eval\n"
        f"cfg = EvalConfig(model={str(tiny_model_dir)!r}, version={vid}, modes={MODES!r}, batch_size=2, "
        "max_new_tokens=6, name='fault')\n"
        "from tests.support.throttled import throttled\n"
        "job_id = submit_eval(db, cfg, launcher=throttled(0.4))\n"
    )
    env = dict(os.environ)
    app, job_id = start_stand_in_app(body, env, tmp_path / "app.log")
    wait(lambda: _count(db, job_id) > 0, what="the first saved predictions")
    crash(app)
    job = get_job(db, job_id)
    assert job.status == "running" and is_alive(job.pid), "the run died with the app"
    at_crash = _count(db, job_id)
    wait(lambda: _count(db, job_id) > at_crash, what="predictions saved after the crash")

    shown = page_text(open_page("evaluate", reviewer="fault-tester"))  # the restarted app's Evaluate page
    assert f"#{job_id} fault" in shown or not get_job(db, job_id).active, shown
    job = wait(lambda: (j := get_job(db, job_id)) and not j.active and j, what="the run to end")
    assert job.status == "succeeded", job.error
    assert _count(db, job_id) == _expected_rows(records)
    _no_duplicates(db, job_id)
    at = open_page("evaluate", reviewer="fault-tester")
    assert "fault" in str(at.selectbox(key="run_a").options) and "chains" in page_text(at)


@pytest.mark.slow
def test_the_run_is_killed_mid_eval_then_marked_failed_and_resumed_reusing_saved_predictions(
    db, db_path, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    vid = make_version(db, n_chains=20)
    records = version_records(db, vid, "test")
    run = submit_eval(db, _config(tiny_model_dir, vid), launcher=throttled(0.6))
    # Kill once the chain mode is done and stepwise-own has started: both modes are half-way stories.
    n_chain_rows = units(records, "stepwise-own")  # chain mode saves one row per step too
    wait(lambda: _count(db, run) > n_chain_rows, what="stepwise-own predictions")
    crash_group(get_job(db, run).pid)
    before = snapshot(db_path, PREDICTIONS.format(run), 3)
    assert n_chain_rows < len(before) < _expected_rows(records), "the kill must land mid-run"
    saved_own = {k[1] for k in before if k[0] == "stepwise-own"}

    at = open_page(
        "evaluate", reviewer="fault-tester"
    )  # the restarted app's page load re-attaches and notices the dead process
    job = get_job(db, run)
    assert job.status == "failed" and not group_alive(job.pid)
    assert job.error.startswith("The process ended unexpectedly"), job.error
    assert at.button(key=f"resume_{run}").label == "Resume"  # the page offers it too

    # Resume headless, as an operator would after the crash: `coi eval --resume RUN --wait`.
    assert coi(["eval", "--resume", str(run), "--wait", "--db", str(db_path)]) == 0
    job = get_job(db, run)
    assert job.status == "succeeded", job.error
    after = snapshot(db_path, PREDICTIONS.format(run), 3)
    assert {k: v for k, v in after.items() if k in before} == before  # same ids, same predictions
    assert len(after) == _expected_rows(records)
    _no_duplicates(db, run)
    assert job.result["reused_chain_predictions"] == len(records) + len(saved_own)
    log = Path(job.log_path).read_text()
    assert f"resuming chain: {len(records)} of {len(records)} chains already predicted" in log
    report = json.loads((Path(job.result["report_dir"]) / "report.json").read_text())
    assert report["modes"]["chain"]["overall"]["n_chains"] == len(records)
    assert report["modes"]["stepwise-own"]["overall"]["n_chains"] == len(records)
    assert scalar(db_path, "SELECT count(*) FROM predictions WHERE eval_run_id = ?", [run]) == len(after)
    print(
        f"eval kill: predictions {len(before)} at the kill -> {len(after)}; {len(saved_own)} own chains reused"
    )
