"""Eval through an OpenAI-compatible endpoint: request shape and answers against the scripted
server, plain errors for a wrong path or a dead port, and the same greedy answers as local
generation through a real `transformers serve` on the tiny model."""

from __future__ import annotations

import pytest

from eval.endpoint import EndpointGenerator
from eval.predict import Generation, predict_chain, predict_stepwise_gold, predict_stepwise_own
from eval.rouge import RougeL
from store.coi_format import chain_prompt, render_output
from store.errors import CoiError
from store.versions import version_records
from tests.support.eval_runs import make_version
from tests.support.llm_server import Fault, ScriptedLLMServer, prompt_text


def _answer(prompt: str) -> str:
    """The chain's input upper-cased, as step outputs with the paper's markers for chain prompts."""
    text = prompt.split("Input:", 1)[-1].split("###", 1)[0].strip()[:40]
    n = prompt.count(" and then ") + 1
    return render_output([f"{text.upper()} {k}" for k in range(1, n + 1)]) if n > 1 else text.upper()


class Local:
    """The same answers from an in-process generator, for comparison."""

    def generate(self, prompts, on_batch=None):
        return [Generation(_answer(p), 3, False) for p in prompts]


@pytest.fixture
def records(db):
    return version_records(db, make_version(db), "test")


def test_the_three_modes_through_the_endpoint_equal_local_ones(records):
    with ScriptedLLMServer(responder=lambda body: _answer(prompt_text(body))) as server:
        gen = EndpointGenerator(
            server.base_url, "my-adapter", max_new_tokens=77, concurrency=4, stop=("###",)
        )
        for predict in (predict_chain, predict_stepwise_gold, predict_stepwise_own):
            remote = predict(gen, records, RougeL())
            local = predict(Local(), records, RougeL())
            assert [(p.chain_id, p.position, p.prediction, p.rougeL) for p in remote] == [
                (p.chain_id, p.position, p.prediction, p.rougeL) for p in local
            ]
        bodies = server.requests
    assert {(b["model"], b["temperature"], b["max_tokens"], tuple(b["stop"])) for b in bodies} == {
        ("my-adapter", 0.0, 77, ("###",))
    }
    assert chain_prompt(records[0]["instructions"], records[0]["input"]) in [b["prompt"] for b in bodies]


def test_answers_come_back_in_prompt_order_under_concurrency():
    with ScriptedLLMServer(responder=lambda body: prompt_text(body)[::-1], latency=0.02) as server:
        prompts = [f"prompt number {i}" for i in range(20)]
        out = EndpointGenerator(server.base_url, "m", concurrency=8).generate(prompts)
    assert [g.text for g in out] == [p[::-1] for p in prompts]


def test_a_wrong_path_hints_at_v1_and_a_dead_port_names_the_url():
    with ScriptedLLMServer() as server:
        server.enqueue(Fault(status=404))
        with pytest.raises(CoiError, match=r"HTTP 404 \(does the base URL end in /v1\?\)"):
            EndpointGenerator(server.base_url, "m", max_retries=0).generate(["x"])
    dead = "http://127.0.0.1:9/v1"
    with pytest.raises(CoiError, match="Cannot reach the eval endpoint http://127.0.0.1:9/v1"):
        EndpointGenerator(dead, "m", max_retries=0, timeout_s=2).generate(["x"])


@pytest.mark.slow
def test_transformers_serve_gives_the_local_greedy_answers(tiny_model_dir):
    from eval.predict import load_generator
    from pipeline.embedded import EmbeddedServer

    prompts = [
        chain_prompt(["Rewrite the text.", "Count the words."], "the cat sat on the mat"),
        "Hello there",
    ]
    local = load_generator(str(tiny_model_dir), None, max_new_tokens=6, log=lambda m: None).generate(prompts)
    with EmbeddedServer(str(tiny_model_dir), device="cpu") as server:
        remote = EndpointGenerator(server.base_url, str(tiny_model_dir), max_new_tokens=6).generate(prompts)
    assert [g.text for g in remote] == [g.text for g in local]
    assert all(g.n_tokens > 0 for g in remote)


def test_an_endpoint_eval_job_runs_beside_the_device_and_writes_its_report(db, tmp_path):
    import json
    from pathlib import Path

    from eval.config import EvalConfig
    from eval.run import submit_eval
    from store.jobs import get_job
    from store.predictions import predicted_modes
    from tests.support.eval_runs import wait_for

    vid = make_version(db)
    with ScriptedLLMServer(responder=lambda body: _answer(prompt_text(body))) as server:
        cfg = EvalConfig(
            version=vid, endpoint=server.base_url, endpoint_model="coi-adapter", max_new_tokens=16
        )
        run = submit_eval(db, cfg)
        assert get_job(db, run).resource == "remote"  # it loads no model, so it does not wait for the device
        job = wait_for(db, run, lambda j: not j.active)
        assert job.status == "succeeded", job.error
        n_test = len(version_records(db, vid, "test"))
        prompts = [b["prompt"] for b in server.requests]
    assert sorted(predicted_modes(db, run)) == ["chain", "stepwise-gold", "stepwise-own"]
    report = json.loads((Path(job.result["report_dir"]) / "report.json").read_text())
    assert report["modes"]["chain"]["overall"]["n_chains"] == n_test
    # Each distinct prompt is asked once (stepwise-own's step 1 is stepwise-gold's step 1), so fewer
    # requests go out than the modes have answers: chains + 2 x steps.
    n_steps = sum(r["length"] for r in version_records(db, vid, "test"))
    assert len(prompts) == len(set(prompts)) <= n_test + 2 * n_steps - n_test


def test_an_endpoint_with_credentials_or_without_a_model_name_is_refused():
    from eval.config import EvalConfig

    with pytest.raises(CoiError, match="must not contain a user name or key") as exc:
        EvalConfig(endpoint="http://bob:sk-secret@127.0.0.1:9/v1", endpoint_model="m")
    assert "sk-secret" not in str(exc.value)
    with pytest.raises(CoiError, match="needs the model name"):
        EvalConfig(endpoint="http://127.0.0.1:9/v1")


def test_eval_progress_gives_elapsed_time_and_an_eta():
    from eval.run import phase_timing

    assert phase_timing(0, 40, 5.0) == "elapsed 0:05"
    assert phase_timing(10, 40, 65.0) == "elapsed 1:05 · ETA 3:15"  # 6.5 s per unit, 30 to go
    assert phase_timing(40, 40, 4000.0) == "elapsed 1:06:40 · ETA 0:00"
