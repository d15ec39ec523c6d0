"""Faults: kill the app, or the training job itself, in the middle of a run; restart; resume.

Metrics logged after the newest checkpoint of a killed run are replayed when it resumes from that
checkpoint. Resume deletes them first (they describe a trajectory the kill threw away) and the metrics
table is unique on (job, name, step) with an upsert, so a replay can never duplicate a row.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs.process import group_alive, is_alive
from store.jobs import get_job
from tests.support.faults import (
    crash,
    crash_group,
    no_leftover_jobs,  # noqa: F401 - a fixture (usefixtures)
    snapshot,
    start_stand_in_app,
)
from tests.support.pages import open_page, page_text
from tests.support.probes import wait
from tests.support.throttled import throttled
from tests.support.training import make_version, tiny_config
from training import queue

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_leftover_jobs")]
METRICS = "SELECT name, step, id, value, at FROM metrics WHERE job_id = {}"


def _loss_steps(db, job_id: int) -> list[int]:
    sql = "SELECT step FROM metrics WHERE job_id = ? AND name = 'loss' ORDER BY step"
    return [r[0] for r in db.execute(sql, [job_id])]


def _no_duplicates(db, job_id: int) -> None:
    n, distinct = db.execute(
        "SELECT count(*), count(DISTINCT name || '/' || step) FROM metrics WHERE job_id = ?", [job_id]
    ).fetchone()
    assert n == distinct


def test_the_app_crashes_mid_training_the_job_goes_on_and_a_restarted_page_re_attaches(
    db, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    vid = make_version(db)
    body = (
        "from tests.support.training import tiny_config\n"
        "from tests.support.throttled import throttled\n"
        "from training import queue\n"
        f"cfg = tiny_config({str(tiny_model_dir)!r}, {vid}, max_steps=10, save_steps=4)\n"
        "job_id = queue.submit(db, cfg, launcher=throttled(0.3))\n"
    )
    env = dict(os.environ)
    app, job_id = start_stand_in_app(body, env, tmp_path / "app.log")
    wait(lambda: get_job(db, job_id).done >= 2, what="training steps")
    crash(app)
    job = get_job(db, job_id)
    assert job.status == "running" and is_alive(job.pid), "the job died with the app"
    wait(lambda: get_job(db, job_id).done > job.done, what="steps after the crash")

    at = open_page(
        "train", reviewer="fault-tester"
    )  # the restarted app's Train page re-attaches to the running job
    assert any(f"train #{job_id}: running" in h.value for h in at.subheader) or not get_job(db, job_id).active
    job = wait(lambda: (j := get_job(db, job_id)) and not j.active and j, what="the job to end")
    assert job.status == "succeeded", job.error
    assert any(
        f"train #{job_id}: succeeded" in h.value
        for h in open_page("train", reviewer="fault-tester").subheader
    )
    assert _loss_steps(db, job_id) == list(range(1, 11))
    _no_duplicates(db, job_id)


def test_the_job_is_killed_after_a_checkpoint_then_resumed_from_the_page_without_duplicate_metrics(
    db, db_path, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    vid = make_version(db)
    job_id = queue.submit(
        db, tiny_config(tiny_model_dir, vid, max_steps=12, save_steps=4), launcher=throttled(0.3)
    )
    # Kill when a checkpoint exists AND metrics were logged after it (the rows a resume replays).
    wait(
        lambda: (j := get_job(db, job_id)).done >= (queue.checkpoint_step(j) or 99) + 2,
        what="steps logged after a checkpoint",
    )
    crash_group(get_job(db, job_id).pid)
    ckpt = queue.checkpoint_step(get_job(db, job_id))
    before = snapshot(db_path, METRICS.format(job_id), 2)
    kept = {k: v for k, v in before.items() if k[1] <= ckpt}
    replayed = {k: v for k, v in before.items() if k[1] > ckpt}
    assert kept and replayed and max(s for _, s in before) < 12, (
        "the kill must land mid-run, after a checkpoint"
    )

    at = open_page(
        "train", reviewer="fault-tester"
    )  # page load: the dead run is marked failed with a plain reason
    job = get_job(db, job_id)
    assert job.status == "failed" and not group_alive(job.pid)
    assert any(f"train #{job_id}: failed" in h.value for h in at.subheader)
    assert "The process ended unexpectedly" in page_text(at)

    at.button(key="train_resume").click().run()  # the page's own Resume button
    assert not at.exception, at.exception
    job = wait(lambda: (j := get_job(db, job_id)) and not j.active and j, what="the resumed job to end")
    assert job.status == "succeeded", job.error
    assert job.result["start_step"] == ckpt and job.result["global_step"] == 12

    after = snapshot(db_path, METRICS.format(job_id), 2)
    assert {k: after[k] for k in kept} == kept  # rows up to the checkpoint: same ids, same values
    # Rows after the checkpoint were logged again by the resumed launch, once each (not doubled).
    assert all(after[k][2] >= job.started_at for k in replayed)
    assert f"dropped {len(replayed)} metric rows logged after step {ckpt}" in Path(job.log_path).read_text()
    assert _loss_steps(db, job_id) == list(range(1, 13))
    _no_duplicates(db, job_id)
    print(
        f"train kill at step {max(s for _, s in before)} (checkpoint {ckpt}): metric rows {len(before)} "
        f"({len(kept)} kept, {len(replayed)} replayed) -> {len(after)}"
    )
