"""LLMClient against the scripted server, through the real openai SDK and real HTTP."""

from __future__ import annotations

import random

import pytest

from pipeline.llm import LLMClient, LLMConfig, LLMRequest
from store.llm_calls import count_calls, get_call
from store.settings import set_setting
from tests.support.llm_server import Fault, ScriptedLLMServer

SECRET = "sk-test-SECRET-0123456789"


class Sleeps:
    """Records requested waits instead of sleeping (so tests stay fast and exact)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def server():
    with ScriptedLLMServer() as s:
        yield s


def make_client(server, db_path, sleeps=None, **kw) -> LLMClient:
    cfg = LLMConfig(base_url=server.base_url, model="scripted-model", api_key=SECRET, **kw)
    return LLMClient(cfg, db_path, sleep=sleeps or Sleeps(), rng=random.Random(0))


def test_plain_completion_records_usage(server, db_path, db):
    client = make_client(server, db_path)
    res = client.complete(LLMRequest("Instruction: x\nOutput:", stop=("\n",)))
    assert res.ok and res.text == "OUT(struction: x\nOutput:)" and not res.cached
    assert res.prompt_tokens > 0 and res.completion_tokens > 0 and res.attempts == 1
    row = get_call(db, res.llm_call_id)
    assert row["response"] == res.text and row["error"] is None and row["latency_ms"] >= 0
    assert row["request"]["stop"] == ["\n"]
    assert server.requests[0]["stop"] == ["\n"] and server.requests[0]["prompt"].startswith("Instruction")


def test_chat_api_sends_messages(server, db_path):
    client = make_client(server, db_path, api="chat")
    res = client.complete("hello there")
    assert res.text == "OUT(hello there)"
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hello there"}]


def test_429_retry_after_is_honoured(server, db_path):
    sleeps = Sleeps()
    server.enqueue(Fault(status=429, retry_after=7.0), "fine")
    res = make_client(server, db_path, sleeps, backoff_base_s=0.1).complete("p")
    assert res.text == "fine" and res.attempts == 2 and server.request_count == 2
    assert sleeps.waits == [7.0]  # the server's Retry-After, not the 0.05-0.1 s backoff


def test_500_then_success_backs_off_exponentially(server, db_path):
    sleeps = Sleeps()
    server.enqueue(Fault(status=500), Fault(status=503), "ok now")
    res = make_client(server, db_path, sleeps, backoff_base_s=1.0).complete("p")
    assert res.text == "ok now" and res.attempts == 3
    assert 0.5 <= sleeps.waits[0] <= 1.0 and 1.0 <= sleeps.waits[1] <= 2.0


def test_timeout_is_retried(server, db_path):
    server.enqueue(Fault(kind="timeout", delay=1.5), "after timeout")
    res = make_client(server, db_path, timeout_s=0.3).complete("p")
    assert res.text == "after timeout" and res.attempts == 2


def test_dropped_connection_is_retried(server, db_path):
    server.enqueue(Fault(kind="drop"), "after drop")
    res = make_client(server, db_path).complete("p")
    assert res.text == "after drop" and res.attempts == 2


def test_malformed_and_empty_completions_are_retried_when_sampling(server, db_path):
    server.enqueue(Fault(kind="malformed"), Fault(kind="empty"), "good")
    res = make_client(server, db_path, temperature=0.7).complete("p")
    assert res.text == "good" and res.attempts == 3 and server.request_count == 3


def test_an_empty_answer_at_temperature_0_is_not_resent_unchanged(server, db_path):
    server.enqueue(Fault(kind="empty"), "would come only on a resend")
    res = make_client(server, db_path).complete("p")
    assert server.request_count == 1 and res.attempts == 1
    assert "empty completion" in res.error and server.base_url in res.error and "temperature 0" in res.error


def test_final_failure_is_recorded_and_batch_goes_on(server, db_path, db):
    server.enqueue(*[Fault(status=500)] * 3)
    client = make_client(server, db_path, max_retries=2, concurrency=1)
    results = client.complete_many(["bad one", "good one"])
    assert results[0].error.startswith("HTTP 500") and results[0].attempts == 3
    assert results[1].ok and results[1].text == "OUT(good one)"
    row = get_call(db, results[0].llm_call_id)
    assert row["error"].startswith("HTTP 500") and row["response"] is None and row["attempts"] == 3
    # A failed call is not a cache hit: the next run tries again, and succeeds.
    again = client.complete("bad one")
    assert again.ok and not again.cached and again.llm_call_id == results[0].llm_call_id


def test_client_error_is_not_retried(server, db_path):
    server.enqueue(Fault(status=400))
    res = make_client(server, db_path).complete("p")
    assert res.error.startswith("HTTP 400 from") and res.attempts == 1 and server.request_count == 1


def test_cache_makes_zero_requests_on_repeat(server, db_path, db):
    client = make_client(server, db_path)
    prompts = [f"prompt {i}" for i in range(20)]
    first = client.complete_many(prompts)
    assert server.request_count == 20
    second = make_client(server, db_path).complete_many(prompts)
    assert server.request_count == 20
    assert [r.text for r in first] == [r.text for r in second] and all(r.cached for r in second)
    # Another sampling parameter is another cache entry.
    make_client(server, db_path, temperature=0.7).complete("prompt 0")
    assert server.request_count == 21 and count_calls(db) == 21


def test_duplicates_in_a_batch_are_sent_once(server, db_path):
    results = make_client(server, db_path).complete_many(["same", "same", "other"])
    assert server.request_count == 2 and results[0].text == results[1].text


def test_concurrency_is_bounded(db_path):
    import threading

    active, peak, lock = [0], [0], threading.Lock()

    def responder(body):
        import time

        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return "x"

    with ScriptedLLMServer(responder=responder) as server:
        make_client(server, db_path, concurrency=3).complete_many([f"p{i}" for i in range(12)])
    assert peak[0] == 3


def test_key_never_persisted_or_shown(server, db_path, db):
    client = make_client(server, db_path)
    client.complete("hello")
    assert SECRET not in repr(client.config) and SECRET not in repr(client)
    assert "api_key" not in client.config.to_dict()
    db.conn.commit()
    assert SECRET.encode() not in db_path.read_bytes()


def test_resolve_reads_settings_then_env(db, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("COI_LLM_MODEL", "env-model")
    cfg = LLMConfig.resolve(db)
    assert (cfg.base_url, cfg.model, cfg.api_key, cfg.api) == (
        "http://env:1/v1",
        "env-model",
        SECRET,
        "completions",
    )
    set_setting(db, "llm_base_url", "http://settings:2/v1")
    set_setting(db, "llm_api", "chat")
    cfg = LLMConfig.resolve(db)
    assert (cfg.base_url, cfg.model, cfg.api) == ("http://settings:2/v1", "env-model", "chat")
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert LLMConfig.resolve(None).embedded


def test_slow_response_within_timeout_is_not_retried(db_path):
    with ScriptedLLMServer(latency=0.4) as server:
        res = make_client(server, db_path, timeout_s=5.0).complete("slow one")
        assert res.ok and res.attempts == 1 and server.request_count == 1
        assert res.latency_ms >= 400  # the recorded latency is the real wait
