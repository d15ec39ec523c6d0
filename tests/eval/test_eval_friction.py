"""Friction a new user met in `coi eval`: a typo in --split, and --adapter-job on a train-only version."""

from __future__ import annotations

import pytest

from eval.cli import check_adapter_version
from eval.config import EvalConfig
from store.errors import CoiError
from store.jobs import create_job, finish_job, update_job
from store.versions import SplitSpec, create_version
from tests.support.eval_runs import make_version


def test_a_typo_in_split_lists_the_valid_splits(capsys):
    from cli import main

    with pytest.raises(SystemExit):
        main(["eval", "--split", "tset"])
    assert "invalid choice: 'tset' (choose from 'train', 'test')" in capsys.readouterr().err


def test_adapter_job_on_a_train_only_version_says_which_version_to_pass(db):
    with_test = make_version(db)  # train and test
    train_only = create_version(db, SplitSpec(test_fraction=0.0), name="all-train")
    job = create_job(db, "train", {}, name="t", status="running")
    update_job(db, job, result={"dataset_version": train_only, "adapter_dir": "/x"})
    finish_job(db, job, "succeeded")
    with pytest.raises(CoiError) as err:
        check_adapter_version(db, EvalConfig(adapter_job=job))
    assert f"trained on version #{train_only}, whose test split is empty" in str(err.value)
    assert f"#{with_test} (" in err.value.hint and "Pass --version ID" in err.value.hint
    check_adapter_version(db, EvalConfig(adapter_job=job, version=with_test))  # explicit: fine
