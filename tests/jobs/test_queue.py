"""The device-aware queue: local-model jobs one at a time, remote-endpoint jobs beside them.

Real processes throughout (a tiny model trains and evaluates on the CPU, generation talks to the
scripted server over HTTP). The test polls both the process table (/proc) and the jobs table.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval.config import EvalConfig
from eval.run import submit_eval
from jobs import runtime
from jobs.process import cancel
from pipeline.llm import LLMConfig
from pipeline.run import BatchConfig, launch_batch
from store.jobs import get_job
from tests.support import ROOT
from tests.support.llm_server import ScriptedLLMServer
from tests.support.tasks import insert_test_tasks, pipeline_responder
from tests.support.training import make_version, tiny_config
from training import queue

pytestmark = pytest.mark.slow
DEVICE_MODULES = (b"training.run", b"eval.run")


def device_processes(db_path) -> list[int]:
    """Live (non-zombie) processes running a device job's entry module on this test's database.

    Other test runs on the machine have job processes too; only those with our $COI_DB count.
    """
    ours = f"COI_DB={db_path}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if state == "Z" or ours not in environ:
            continue
        if b"-m" in args and b"--job" in args and any(m in args for m in DEVICE_MODULES):
            found.append(int(entry.name))
    return found


def running(db, kinds: tuple[str, ...]) -> list[int]:
    marks = ",".join("?" * len(kinds))
    rows = db.execute(f"SELECT id FROM jobs WHERE status = 'running' AND kind IN ({marks})", list(kinds))
    return [r[0] for r in rows]


def _eval_config(model_dir, vid: int, name: str) -> EvalConfig:
    return EvalConfig(
        model=str(model_dir),
        version=vid,
        modes=("chain",),
        batch_size=2,
        max_new_tokens=4,
        limit=4,
        name=name,
    )


def test_train_and_two_local_evals_never_run_together_while_a_remote_generate_runs_beside(
    db, db_path, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    vid = make_version(db)
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder, latency=0.25) as server:
        train_id = queue.submit(db, tiny_config(tiny_model_dir, vid, max_steps=6))
        eval_a = submit_eval(db, _eval_config(tiny_model_dir, vid, "a"))
        eval_b = submit_eval(db, _eval_config(tiny_model_dir, vid, "b"))
        llm = LLMConfig(base_url=server.base_url, model="scripted-model", concurrency=1)
        gen_id = launch_batch(db, BatchConfig(n_chains=4, seed=2, llm=llm.to_dict()), llm)

        # Queued jobs say where they stand and what they wait for.
        spot_a, spot_b = (runtime.queue_spot(db, get_job(db, i)) for i in (eval_a, eval_b))
        assert (spot_a.position, spot_b.position) == (1, 2)
        assert "the device" in spot_a.waits_for and f"train #{train_id} running" in spot_a.waits_for
        assert get_job(db, gen_id).status == "running"  # remote: not behind the device queue

        ids = (train_id, eval_a, eval_b, gen_id)
        assert device_processes(db_path), "the probe must see the running train job"
        most_in_db, most_procs, beside, order = 0, 0, False, []
        deadline = time.monotonic() + 400
        while any(get_job(db, i).active for i in ids):
            assert time.monotonic() < deadline, [get_job(db, i) for i in ids]
            on_device = running(db, ("train", "eval"))
            procs = device_processes(db_path)
            most_in_db, most_procs = max(most_in_db, len(on_device)), max(most_procs, len(procs))
            beside |= bool(on_device) and get_job(db, gen_id).status == "running"
            order += [i for i in on_device if i not in order]
            time.sleep(0.05)

    jobs = [get_job(db, i) for i in ids]
    assert [j.status for j in jobs] == ["succeeded"] * 4, [(j.id, j.status, j.error) for j in jobs]
    assert most_in_db == 1 and most_procs == 1, (most_in_db, most_procs)
    assert beside, "the remote generate job never ran while a device job ran"
    assert order == [train_id, eval_a, eval_b]  # first come, first served
    starts = sorted((j.started_at, j.ended_at, j.id) for j in jobs[:3])
    assert all(a[1] <= b[0] for a, b in zip(starts, starts[1:])), starts  # device intervals never overlap


def test_a_queued_job_cancels_and_the_queue_survives_a_restart(
    db, db_path, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    vid = make_version(db)
    first = submit_eval(db, _eval_config(tiny_model_dir, vid, "first"), launch_process=False)
    second = submit_eval(db, _eval_config(tiny_model_dir, vid, "second"), launch_process=False)
    assert [get_job(db, i).status for i in (first, second)] == ["queued", "queued"]

    job = cancel(db, second)
    assert job.status == "cancelled" and job.pid is None and not job.log_path

    # A fresh process (the restarted app) pumps the queue the DB kept.
    code = "from jobs.runtime import pump; from store.db import connect; print(pump(connect()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"[{first}]", out.stderr
    done = _wait_ended(db, first)
    assert done.status == "succeeded", done.error
    assert get_job(db, second).status == "cancelled" and get_job(db, second).pid is None


def _wait_ended(db, job_id: int, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while (job := get_job(db, job_id)).active:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job
