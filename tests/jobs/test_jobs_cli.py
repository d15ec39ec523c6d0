"""`coi jobs` and the exit codes of `coi train --wait` / `coi eval --wait`, as a shell user runs them."""

from __future__ import annotations

import pytest

from cli import main
from store.jobs import create_job, get_job
from tests.support.training import make_version


def test_jobs_list_show_cancel_log_of_a_queued_job(db, db_path, capsys):
    running = create_job(db, "train", {"base_model": "m"}, name="busy", status="running")
    db.execute(
        "UPDATE jobs SET started_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now') WHERE id = ?", [running]
    )
    queued = create_job(db, "eval", {"model": "m"}, name="waiting", resource="device")
    assert main(["jobs", "show", str(queued), "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert f"eval #{queued}: waiting" in out
    assert (
        f"status: queued, number 1 in line for the device (one local model at a time): train #{running} running"
        in out
    )
    assert main(["jobs", "list", "--db", str(db_path)]) == 0
    assert f"eval #{queued}\tqueued, number 1 in line" in capsys.readouterr().out
    assert main(["jobs", "cancel", str(queued), "--db", str(db_path)]) == 0
    assert capsys.readouterr().out.strip() == f"eval #{queued}: cancelled"
    assert get_job(db, queued).status == "cancelled" and get_job(db, queued).pid is None
    assert main(["jobs", "log", str(queued), "--db", str(db_path)]) == 0
    assert main(["jobs", "show", "999", "--db", str(db_path)]) == 2
    assert "There is no job #999" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_eval_wait_exit_non_zero_when_the_job_fails(db, db_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    vid = make_version(db)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # a folder that is not a loadable model
    base = ["--db", str(db_path), "--version", str(vid), "--wait"]
    assert main(["train", *base, "--base-model", str(broken), "--max-steps", "2"]) == 1
    assert main(["eval", *base, "--model", str(broken), "--modes", "chain", "--limit", "2"]) == 1
    out, err = capsys.readouterr()
    assert "train #1 failed" in out and "eval #2 failed" in err
    log = (tmp_path / "logs" / "job-2.log").read_text().rstrip().splitlines()
    assert any(line.startswith("== outcome: eval #2 failed") for line in log[-4:])


def test_a_stopped_job_shows_how_it_ended_not_its_last_eta(db):
    from jobs.runtime import state_line
    from store.jobs import create_job, finish_job, get_job, heartbeat

    job_id = create_job(db, "train", {}, status="running")
    heartbeat(db, job_id, done=3, total=10, message="step 3/10 · 1.2 s/step · ETA 0:21:34")
    assert state_line(db, get_job(db, job_id)) == "step 3/10 · 1.2 s/step · ETA 0:21:34"
    finish_job(db, job_id, "cancelled", error="cancelled by the user")
    line = state_line(db, get_job(db, job_id))
    assert line == f"train #{job_id} cancelled: cancelled by the user at 3 of 10 (30%)"
    assert "ETA" not in line and "running" not in line
