"""The Generate and Settings pages through AppTest, against the scripted server."""

from __future__ import annotations

import time

import pytest

from pipeline.status import WEAK_MODEL_NOTE, job_view, parse_task_ids, save_endpoint
from store.db import connect
from store.errors import CoiError
from store.jobs import create_job, get_job, update_job
from store.settings import all_settings
from tests.support.llm_server import ScriptedLLMServer
from tests.support.pages import open_page
from tests.support.tasks import insert_test_tasks, pipeline_responder


def test_embedded_default_shows_the_weak_model_note(db_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    at = open_page("generate", via_main=True, reviewer=None)
    assert any(WEAK_MODEL_NOTE in i.value for i in at.info)
    assert any("embedded local model" in t.value for t in at.text)
    assert any("Import at least two tasks" in w.value for w in at.warning)


def test_form_renders_and_test_connection_uses_the_endpoint(db_path, monkeypatch):
    with connect(db_path) as db:
        insert_test_tasks(db)
    with ScriptedLLMServer(responder=lambda body: "OK") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("COI_LLM_MODEL", "scripted-model")
        at = open_page("generate", via_main=True, reviewer=None)
        assert at.number_input(key="gen_n").value == 20
        assert at.multiselect(key="gen_lengths").value == [2]
        assert any(server.base_url in t.value for t in at.text)
        at.button(key="gen_test_connection").click()
        at.run()
        assert not at.exception, at.exception
        assert server.request_count == 1
        assert at.success[0].value.startswith("Connected to " + server.base_url)


def test_failed_connection_is_a_plain_error(db_path, monkeypatch):
    with ScriptedLLMServer() as server:
        url = server.base_url
    monkeypatch.setenv("OPENAI_BASE_URL", url)  # the server is gone: nothing listens there now
    at = open_page("generate", via_main=True, reviewer=None)
    at.button(key="gen_test_connection").click()
    at.run()
    assert not at.exception and "did not answer" in at.error[0].value


def test_start_batch_from_the_form_runs_a_job(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    with connect(db_path) as db:
        insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        at = open_page("generate", via_main=True, reviewer=None)
        at.number_input(key="gen_n").set_value(3)
        at.button[1].click()  # the form's submit button
        at.run()
        assert not at.exception, at.exception
        with connect(db_path) as db:
            deadline = time.monotonic() + 60
            while get_job(db, 1).status == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
            job = get_job(db, 1)
        assert job.status == "succeeded", job.error
        at.run()
        assert any("chains added" in t.value for t in at.text)
        assert any(
            p.proto.page == "app_pages/review.py" or "review" in str(p.proto) for p in at.get("page_link")
        )


def test_job_view_and_task_id_parsing(db):
    job_id = create_job(db, "generate", {})
    result = {
        "verdicts": {"yes": 3, "unknown": 1},
        "errors": [{"item": "chain [1, 2]", "error": "step 2: empty completion"}],
        "usage": {
            "requests": 9,
            "cache_hits": 2,
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "latency_ms": 1500,
        },
        "chains_added": 2,
    }
    update_job(db, job_id, status="succeeded", result=result, done=5, total=5, message="generating steps")
    view = job_view(get_job(db, job_id))
    assert view.fraction == 1.0 and view.verdicts == {"yes": 3, "unknown": 1} and len(view.errors) == 1
    assert "9 requests, 2 cache hits" in view.totals and "1.5 s" in view.totals
    assert parse_task_ids("1, 2 5-7") == (1, 2, 5, 6, 7) and parse_task_ids("") == ()
    with pytest.raises(CoiError):
        parse_task_ids("1, x")


def test_settings_endpoint_section_saves_no_key(db_path):
    at = open_page("settings", via_main=True, reviewer=None)
    at.text_input(key="set_llm_url").input("http://127.0.0.1:9999/v1")
    at.text_input(key="set_llm_model").input("my-model")
    at.selectbox(key="set_llm_api").set_value("chat")
    at.text_input(key="set_llm_key").input("sk-page-SECRET-42")
    at.button(key="set_llm_save").click()
    at.run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Saved") for s in at.success)
    with connect(db_path) as db:
        saved = all_settings(db)
        assert saved["llm_base_url"] == "http://127.0.0.1:9999/v1" and saved["llm_api"] == "chat"
        assert "sk-page-SECRET-42" not in str(saved)
        with pytest.raises(CoiError):
            save_endpoint(db, "ftp://x", "m", "chat")
    assert at.session_state["llm_api_key"] == "sk-page-SECRET-42"
    assert b"sk-page-SECRET-42" not in db_path.read_bytes()


def test_settings_shows_where_each_llm_value_comes_from_and_saves_only_changes(db_path, monkeypatch):
    from pipeline.llm import resolve_with_sources

    monkeypatch.setenv("COI_LLM_MAX_TOKENS", "64")
    at = open_page("settings", via_main=True, reviewer=None)
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert "now from: environment ($COI_LLM_MAX_TOKENS)" in captions and "now from: default" in captions
    at.number_input(key="set_llm_temperature").set_value(0.5)
    at.text_input(key="set_llm_stop").input("###")
    at.button(key="set_llm_sampling_save").click()
    at.run()
    assert not at.exception, at.exception
    assert any(s.value == "Saved: temperature, stop." for s in at.success)
    with connect(db_path) as db:
        saved = all_settings(db)
        assert saved["llm_temperature"] == "0.5" and saved["llm_stop"] == "###"
        assert "llm_max_tokens" not in saved  # unchanged: it keeps coming from the environment
        cfg, sources = resolve_with_sources(db, max_tokens=32)
    assert (cfg.temperature, cfg.stop) == (0.5, ("###",)) and sources["temperature"] == "Settings"
    assert cfg.max_tokens == 32 and sources["max_tokens"] == "command line"  # a flag beats everything
    at.number_input(key="set_llm_max_retries").set_value(-1)
    at.button(key="set_llm_sampling_save").click()
    at.run()
    assert any("retries must be 0 or more" in e.value for e in at.error)


def test_a_partly_failed_batch_shows_the_count_its_warnings_as_text_and_a_resume(db):
    insert_test_tasks(db)
    job_id = create_job(db, "generate", {"llm": {}}, name="partial", resource="remote")
    result = {"failed_items": 2, "total_items": 10, "warnings": ["**not bold** <b>model x</b>"], "errors": []}
    update_job(db, job_id, result=result)
    db.execute("UPDATE jobs SET status = 'succeeded' WHERE id = ?", [job_id])
    at = open_page("generate", via_main=True)  # via main: its success link names a routed page
    assert any(w.value == "2 of 10 items failed. Resume retries only those." for w in at.warning)
    assert "**not bold** <b>model x</b>" in [c.value for c in at.code]  # literal text, never markdown
    assert at.button(key="gen_resume")
    assert any(f"generate #{job_id} · succeeded" in p.proto.text for p in at.get("progress"))


def test_the_page_writes_the_next_batch_request_file_without_calling_anything(db):
    from tests.support.tasks import insert_test_tasks

    insert_test_tasks(db)
    at = open_page("generate")
    at.button(key="gen_batch_out").click().run()
    assert not at.exception, at.exception
    assert any(m.value.endswith("requests for the next step depth: requests-1.jsonl") for m in at.success)
    assert at.get("download_button")  # the file, to hand to vllm run-batch or a provider
    waiting = db.execute(
        "SELECT count(*) FROM llm_calls WHERE error = 'waiting for a batch result'"
    ).fetchone()[0]
    assert (
        waiting > 0
        and db.execute("SELECT count(*) FROM llm_calls WHERE response IS NOT NULL").fetchone()[0] == 0
    )
