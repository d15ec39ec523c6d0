"""Real training in real subprocesses with the tiny model: metrics, adapter, queue, cancel, kill, resume."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from jobs import process
from store.jobs import get_job, get_metrics, list_jobs
from tests.support.throttled import throttled
from tests.support.training import make_version, tiny_config, wait_for
from training import queue
from training.cli import build_config
from training.config import TrainConfig


@pytest.fixture
def version(db):
    return make_version(db)


def _done(job) -> bool:
    return not job.active


def test_a_job_trains_logs_metrics_and_saves_an_adapter_that_changes_the_model(db, version, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    job_id = queue.submit(db, tiny_config(tiny_model_dir, version))
    job = wait_for(db, job_id, _done)
    assert job.status == "succeeded", job.error
    names = {(m["name"], m["step"]) for m in get_metrics(db, job_id)}
    for name in ("loss", "learning_rate", "grad_norm", "tokens_per_s"):
        assert {(name, s) for s in (1, 2, 3, 4)} <= names
    assert ("eval_loss", 2) in names and ("eval_loss", 4) in names
    assert (job.done, job.total, job.progress) == (4, 4, 1.0)

    adapter = Path(job.result["adapter_dir"])
    meta = json.loads((adapter / "coi_meta.json").read_text())
    assert meta["dataset_version"] == version == job.result["dataset_version"]
    assert meta["base_model"] == str(tiny_model_dir) and meta["config"]["lora_r"] == 4
    # What `vllm serve --lora-modules NAME=DIR` loads: PEFT's config naming the base, safetensors weights.
    peft_config = json.loads((adapter / "adapter_config.json").read_text())
    assert peft_config["peft_type"] == "LORA" and peft_config["base_model_name_or_path"] == str(
        tiny_model_dir
    )
    assert (adapter / "adapter_model.safetensors").is_file() and not list(adapter.glob("*.bin"))
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, adapter)(input_ids=ids).logits
    assert (tuned - before).abs().max() > 1e-6


@pytest.mark.slow
def test_cancel_mid_run_kills_the_process_group(db, version, tiny_model_dir, monkeypatch):
    job_id = queue.submit(db, tiny_config(tiny_model_dir, version, max_steps=500), launcher=throttled(0.3))
    job = wait_for(db, job_id, lambda j: j.done >= 1 or not j.active)
    assert job.status == "running"
    job = queue.cancel(db, job_id)
    assert job.status == "cancelled"
    assert not process.group_alive(job.pid)


@pytest.mark.slow
def test_killed_trainer_is_failed_with_its_log_then_resumes_from_its_checkpoint(
    db, version, tiny_model_dir, monkeypatch
):
    job_id = queue.submit(
        db, tiny_config(tiny_model_dir, version, max_steps=8, save_steps=2), launcher=throttled(0.3)
    )
    wait_for(db, job_id, lambda j: (queue.checkpoint_step(j) or 0) >= 2 or not j.active)
    job = get_job(db, job_id)
    os.kill(job.pid, signal.SIGKILL)
    wait_for(db, job_id, lambda j: not process.is_alive(j.pid), timeout=10)
    job = process.refresh(db, job_id)
    assert job.status == "failed"
    assert "killed" in job.error and "4/5 training" in job.error  # the plain reason, then the log tail
    last = process.log_tail(job.log_path, 1)
    assert last.startswith(f"== outcome: train #{job_id} failed: The process ended unexpectedly"), last
    ckpt_step = queue.checkpoint_step(job)
    assert 2 <= ckpt_step < 8

    queue.resume(db, job_id)  # the stored launcher slows the rest the same way
    job = wait_for(db, job_id, _done)
    assert job.status == "succeeded", job.error
    assert job.result["start_step"] == ckpt_step and job.result["global_step"] == 8
    assert queue.trainer_state(job)["global_step"] == 8
    assert "resuming from" in process.log_tail(job.log_path, 200)
    # The second launch logged only the steps after the checkpoint.
    resumed_steps = [m["step"] for m in get_metrics(db, job_id, ["loss"]) if m["at"] >= job.started_at]
    assert resumed_steps == list(range(ckpt_step + 1, 9))


def test_resume_refuses_a_job_that_is_not_failed_or_cancelled(db, version, tiny_model_dir):
    from store.errors import CoiError
    from store.jobs import create_job

    job_id = create_job(db, "train", tiny_config(tiny_model_dir, version).to_dict(), status="succeeded")
    with pytest.raises(CoiError):
        queue.resume(db, job_id)


def test_bad_base_model_fails_with_a_plain_reason(db, version, tmp_path):
    # Inside the allowed roots (a path outside them is refused at submit, see test_paths.py).
    job_id = queue.submit(db, tiny_config(tmp_path / "missing-model", version))
    job = wait_for(db, job_id, _done)
    assert job.status == "failed"
    assert "does not exist" in job.error and "Traceback" not in job.error  # the plain reason, not a crash


def test_cli_builds_the_config_from_preset_and_flags(db, version):
    import argparse

    from training.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--preset", "quick", "--version", str(version), "--lora-r", "2"])
    cfg = build_config(args)
    assert (cfg.dataset_version, cfg.lora_r, cfg.max_steps) == (version, 2, 20)


@pytest.mark.slow
def test_coi_train_waits_in_the_queue_then_runs_headless_to_the_end(
    db, version, tiny_model_dir, db_path, capsys
):
    from cli import main

    first = queue.submit(db, tiny_config(tiny_model_dir, version, max_steps=2))
    argv = ["train", "--version", str(version), "--base-model", str(tiny_model_dir), "--max-steps", "2"]
    argv += ["--max-seq-len", "128", "--batch-size", "2", "--wait", "--db", str(db_path)]
    assert main(argv) == 0  # one training job at a time: this one was queued behind the first
    out = capsys.readouterr().out
    assert "queued" in out and "succeeded: adapter at" in out
    assert re.search(r"\(final loss [0-9.e+-]+, \d+ s\)", out)  # the --wait line gives loss and time
    assert "note: eval_fraction 0.1 holds 10% of the training chains out" in out
    second = list_jobs(db, kind="train")[0]
    assert second.id != first and get_job(db, first).status == "succeeded"
    assert get_job(db, first).ended_at <= second.started_at


def test_multi_gpu_runs_launch_through_accelerate():
    import subprocess

    assert queue.accelerate_launcher(0) is None and queue.accelerate_launcher(1) is None
    prefix = queue.accelerate_launcher(4)
    assert prefix[1:3] == ["-m", "accelerate.commands.launch"] and prefix[3:5] == ["--num_processes", "4"]
    # --multi_gpu is torchrun's data-parallel launcher, CPUs included (without it a CPU gets 1 process).
    assert "--multi_gpu" in prefix and prefix[prefix.index("--main_process_port") + 1] == "0"
    launcher, env = queue.launch_spec(TrainConfig(num_processes=2))  # two CPU processes share the cores
    assert launcher[3:5] == ["--num_processes", "2"] and env == {"CUDA_VISIBLE_DEVICES": ""}
    threads = launcher[launcher.index("--num_cpu_threads_per_process") + 1]
    assert int(threads) == max(1, (os.cpu_count() or 1) // 2)
    assert queue.launch_spec(TrainConfig())[0] is None
    assert queue.launch_spec(TrainConfig(num_gpus=2))[0][3:5] == ["--num_processes", "2"]
    # The prefix is a working accelerate CLI (launch() appends `-m training.run --job ID`).
    out = subprocess.run([*prefix, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Accelerate launch command" in out.stdout


def test_gpus_asked_for_on_a_machine_without_cuda_is_a_plain_error(monkeypatch):
    import torch

    from store.errors import CoiError
    from training.run import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CoiError, match="CUDA is missing"):
        resolve_precision("auto", 2)
    with pytest.raises(CoiError, match="fp16 needs a GPU"):
        resolve_precision("fp16", 0)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_the_cpu_is_bf16_only_where_it_runs_natively(monkeypatch, native):
    from models import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve_precision("auto", 0) == ("bf16" if native else "fp32")
    assert precision.resolve_precision("fp32", 0) == "fp32"


def test_failure_reasons_in_plain_words():
    header = (
        '[01:00:00] Training job 1 (rank 0), config:\n{"lora_r": 8}\n[01:00:05] 4/5 training -> runs/job-1\n'
    )
    assert process.explain_failure(header).startswith("The process ended unexpectedly")
    assert process.explain_failure(header + "torch.OutOfMemoryError: CUDA out of memory").startswith(
        "Out of memory"
    )
    assert process.explain_failure(header + "CoiError: CUDA is missing: num_gpus > 0").startswith(
        "CUDA is missing"
    )
    assert process.explain_failure(header + "CoiError: Bad training config: lora_r").startswith(
        "Bad configuration"
    )
