"""End to end: tiny model -> train a few steps (the training queue) -> eval in all three modes as a
background job -> report; then the CLI writes a run-vs-run report; cancelling a run works."""

import json
from pathlib import Path

import pytest

from cli import main as coi
from eval.config import MODES, EvalConfig
from eval.run import submit_eval
from jobs.process import cancel
from store.jobs import get_job
from store.predictions import predicted_modes
from store.versions import version_records
from tests.support.eval_runs import make_version, wait_for
from tests.support.training import tiny_config
from training.queue import submit

pytestmark = pytest.mark.slow


def _train(db, model_dir, vid) -> int:
    cfg = tiny_config(model_dir, vid, max_steps=3, save_steps=3, eval_fraction=0.0)
    job_id = submit(db, cfg, name="tiny")
    job = wait_for(db, job_id, lambda j: not j.active)
    assert job.status == "succeeded", job.error
    return job_id


def test_train_then_eval_all_modes_then_report(db, tiny_model_dir, tmp_path, capsys):
    vid = make_version(db)
    n_test = len(version_records(db, vid, "test"))
    train_id = _train(db, tiny_model_dir, vid)

    run = submit_eval(db, EvalConfig(adapter_job=train_id, batch_size=4, max_new_tokens=8, name="tuned"))
    job = wait_for(db, run, lambda j: not j.active)
    assert job.status == "succeeded", job.error
    assert job.config["adapter_dir"] == get_job(db, train_id).result["adapter_dir"]
    assert job.config["version"] == vid and job.progress == 1.0 and job.done == job.total > 0
    assert sorted(predicted_modes(db, run)) == sorted(MODES)

    report = json.loads((Path(job.result["report_dir"]) / "report.json").read_text())
    lengths = sorted({r["length"] for r in version_records(db, vid, "test")})
    for mode in MODES:
        a = report["modes"][mode]
        assert sorted(map(int, a["by_length"])) == lengths
        assert set(a["by_step"]["all"]) == {str(k) for k in range(1, max(lengths) + 1)}
        assert sum(a["first_failing"]["all"].values()) == n_test
        assert a["overall"]["n_chains"] == n_test
        # Every metric, per step and by length, with first failing steps that add up for each.
        assert set(a["metrics"]) == {"rougeL", "exact_match", "step_aware"}
        for name, view in a["metrics"].items():
            assert set(view["by_step"]["all"]) == set(a["by_step"]["all"]), name
            assert sorted(int(n) for n in view["by_length"] if n != "all") == lengths, name
            for length, hist in view["first_failing"].items():
                expected = n_test if length == "all" else view["by_length"][length]["n"]
                assert sum(hist.values()) == expected, (name, length)
        assert sum(a["step_types"].values()) == sum(int(n) * v["n"] for n, v in a["by_length"].items())

    # The base model through the CLI, compared with the tuned run.
    out = tmp_path / "report"
    args = ["eval", "--model", str(tiny_model_dir), "--version", str(vid), "--batch-size", "4"]
    assert (
        coi(
            [
                *args,
                "--max-new-tokens",
                "8",
                "--modes",
                "chain",
                "--wait",
                "--compare",
                str(run),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    md = (out / "summary.md").read_text()
    assert "## Mode: chain" in md and f"vs run #{run}" in md
    # One copy, where --out said: the job wrote there, and the default folder stays empty.
    from jobs.process import logs_dir

    new_run = json.loads((out / "report.json").read_text())["run"]["id"]
    assert not (logs_dir().parent / "eval" / f"run-{new_run}").exists()
    assert json.loads((out / "report.json").read_text())["compare"]["modes"]["chain"]["n_chains"] == n_test


def test_cancel_an_eval_run(db, tiny_model_dir):
    vid = make_version(db)
    cfg = EvalConfig(model=str(tiny_model_dir), version=vid, batch_size=1, max_new_tokens=400)
    run = submit_eval(db, cfg)
    wait_for(db, run, lambda j: j.done > 0 or not j.active)
    job = cancel(db, run)
    assert job.status == "cancelled"


def test_bad_configs_fail_in_the_form(db):
    from store.errors import CoiError

    with pytest.raises(CoiError, match="no dataset version"):
        submit_eval(db, EvalConfig())
    with pytest.raises(CoiError, match="no train job"):
        submit_eval(db, EvalConfig(adapter_job=42))
    with pytest.raises(CoiError, match="Unknown eval mode"):
        EvalConfig(modes=("chain", "beam"))
