"""The operator's API key goes only to endpoints the operator configured (store.endpoints).

A listener on 127.0.0.1 (the scripted server) records every Authorization header. A web user saves its
URL on Settings; with $OPENAI_API_KEY set, the key must never arrive there: not from the page's Test
connection, not from a background job the page starts, not from `coi generate`. With the URL on the
operator's list ($COI_LLM_ENDPOINTS), the same run does deliver it, so each check can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from store.db import connect
from store.endpoints import (
    NOT_OPERATOR_NOTE,
    check_base_url,
    job_key,
    normalize_url,
    operator_endpoints,
    operator_key,
)
from store.errors import CoiError
from store.jobs import get_job
from store.settings import all_settings
from tests.support import ROOT
from tests.support.llm_server import ScriptedLLMServer
from tests.support.pages import open_page, page_text
from tests.support.tasks import insert_test_tasks, pipeline_responder

KEY = "sk-operator-SECRET-7"


@pytest.fixture
def operator_env(monkeypatch):
    """The operator's key in the environment; no endpoint configured by the operator (yet)."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("OPENAI_BASE_URL", "COI_LLM_ENDPOINTS", "COI_JOB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _key_arrived(server: ScriptedLLMServer) -> bool:
    return any(KEY in h for h in server.authorizations)


def _save_url_on_settings(url: str) -> None:
    at = open_page("settings", via_main=True, reviewer=None)
    at.text_input(key="set_llm_url").input(url)
    at.text_input(key="set_llm_model").input("scripted-model")
    at.button(key="set_llm_save").click()
    at.run()
    assert not at.exception, at.exception
    assert (NOT_OPERATOR_NOTE in page_text(at)) == (url not in os.environ.get("COI_LLM_ENDPOINTS", ""))


# -- the rule itself ----------------------------------------------------------------------------
def test_operator_key_only_for_listed_endpoints():
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "https://API.example.com:443/v1/"}
    assert operator_key("https://api.example.com/v1", env, {}) == KEY  # one normalisation
    assert operator_key("http://127.0.0.1:9/v1", env, {}) == ""
    env["COI_LLM_ENDPOINTS"] = "http://127.0.0.1:9/v1, http://10.0.0.2/v1"
    assert operator_key("http://127.0.0.1:9/v1", env, {}) == KEY
    assert operator_key(
        "http://127.0.0.1:9/v1", {"OPENAI_API_KEY": KEY}, {"llm_endpoints": ["http://127.0.0.1:9/v1"]}
    )
    assert operator_key("", env, {}) == ""  # the embedded model needs no key
    assert normalize_url("HTTP://Host:80/v1/") == "http://host/v1"


def test_job_key_uses_the_handed_key_else_the_rule():
    env = {"OPENAI_API_KEY": KEY}
    assert job_key("http://127.0.0.1:9/v1", env) == ""
    assert job_key("http://127.0.0.1:9/v1", {**env, "COI_JOB_API_KEY": "typed"}) == "typed"


def test_urls_with_credentials_are_refused_without_repeating_them(db):
    from pipeline.status import save_endpoint

    for url in ("http://bob:sk-url-SECRET@127.0.0.1:9/v1", "https://sk-url-SECRET@host/v1"):
        with pytest.raises(CoiError) as info:
            save_endpoint(db, url, "m", "chat")
        assert "sk-url-SECRET" not in str(info.value) + info.value.hint
        with pytest.raises(CoiError) as info:
            operator_endpoints({"COI_LLM_ENDPOINTS": url}, {})
        assert "sk-url-SECRET" not in str(info.value)
    assert "sk-url-SECRET" not in str(all_settings(db))
    assert check_base_url(" http://h:1/v1/ ") == "http://h:1/v1"


def test_credentials_url_on_the_settings_page_is_refused_and_not_shown(db_path, operator_env):
    at = open_page("settings", via_main=True, reviewer=None)
    at.text_input(key="set_llm_url").input("http://bob:sk-url-SECRET@127.0.0.1:9/v1")
    at.button(key="set_llm_save").click()
    at.run()
    assert not at.exception and at.error
    assert "sk-url-SECRET" not in page_text(at)
    assert b"sk-url-SECRET" not in db_path.read_bytes()


# -- from the page ------------------------------------------------------------------------------
@pytest.mark.parametrize("listed", [False, True])
def test_test_connection_from_the_page(db_path, operator_env, listed):
    with ScriptedLLMServer(responder=lambda body: "OK") as server:
        if listed:
            operator_env.setenv("COI_LLM_ENDPOINTS", server.base_url)
        _save_url_on_settings(server.base_url)
        at = open_page("generate", via_main=True, reviewer=None)
        at.button(key="gen_test_connection").click()
        at.run()
        assert not at.exception, at.exception
        assert server.request_count == 1
        assert _key_arrived(server) == listed, server.authorizations


def test_a_key_typed_in_the_session_goes_to_the_saved_url(db_path, operator_env):
    with ScriptedLLMServer(responder=lambda body: "OK") as server:
        _save_url_on_settings(server.base_url)
        at = open_page("generate", via_main=True, reviewer=None)
        at.session_state["llm_api_key"] = "sk-typed-here"
        at.button(key="gen_test_connection").click()
        at.run()
        assert server.authorizations and all("sk-typed-here" in h for h in server.authorizations)
        assert not _key_arrived(server)


# -- from a background job started by the page --------------------------------------------------
@pytest.mark.parametrize("listed", [False, True])
def test_background_job_started_by_the_page(db_path, tmp_path, operator_env, listed):
    operator_env.setenv("COI_LOG_DIR", str(tmp_path / "logs"))
    with connect(db_path) as db:
        insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder) as server:
        if listed:
            operator_env.setenv("COI_LLM_ENDPOINTS", server.base_url)
        _save_url_on_settings(server.base_url)
        at = open_page("generate", via_main=True, reviewer=None)
        at.number_input(key="gen_n").set_value(2)
        at.button[1].click()  # the form's submit button
        at.run()
        assert not at.exception, at.exception
        with connect(db_path) as db:
            deadline = time.monotonic() + 90
            while get_job(db, 1).status in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.2)
            job = get_job(db, 1)
        assert job.status == "succeeded", job.error
        assert server.request_count > 0
        assert _key_arrived(server) == listed, server.authorizations[:3]


# -- from `coi generate` ------------------------------------------------------------------------
@pytest.mark.parametrize("listed", [False, True])
def test_coi_generate_uses_the_saved_url_without_the_key(db, db_path, operator_env, listed):
    insert_test_tasks(db)
    with ScriptedLLMServer(responder=pipeline_responder) as server:
        from pipeline.status import save_endpoint

        save_endpoint(db, server.base_url, "scripted-model", "completions")
        env = {**os.environ, "COI_DB": str(db_path)}
        if listed:
            env["COI_LLM_ENDPOINTS"] = server.base_url
        done = subprocess.run(
            [sys.executable, str(ROOT / "cli.py"), "generate", "-n", "2", "--lengths", "2"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert server.request_count > 0
        assert _key_arrived(server) == listed, server.authorizations[:3]
        assert KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("listed", [False, True])
def test_an_endpoint_listed_in_streamlit_secrets_gets_the_secrets_key(db_path, operator_env, listed):
    """``llm_endpoints`` in secrets.toml is the operator's list too; the secrets key goes nowhere else."""
    operator_env.delenv("OPENAI_API_KEY")
    operator_env.setenv("COI_LLM_ENDPOINTS", "placeholder")
    operator_env.delenv("COI_LLM_ENDPOINTS")  # recorded, so the app's export of the list is undone after
    operator_env.setenv("OPENAI_API_KEY", "placeholder")
    operator_env.delenv("OPENAI_API_KEY")
    with ScriptedLLMServer(responder=lambda body: "OK") as server:
        with connect(db_path) as db:
            from pipeline.status import save_endpoint

            save_endpoint(db, server.base_url, "scripted-model", "completions")
        at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
        at.secrets["OPENAI_API_KEY"] = KEY
        if listed:
            at.secrets["llm_endpoints"] = [server.base_url]
        at.run()
        at.switch_page("app_pages/generate.py").run()
        at.button(key="gen_test_connection").click().run()
        assert not at.exception, at.exception
        assert server.request_count == 1
        assert _key_arrived(server) == listed, server.authorizations


# -- from Regenerate in Review ------------------------------------------------------------------
@pytest.mark.parametrize("listed", [False, True])
def test_regenerate_in_review_follows_the_rule(db, operator_env, listed):
    from pipeline.llm import SETTING_BASE_URL, SETTING_MODEL
    from store.settings import set_setting
    from tests.app.test_review_page import edit_step, make_chain, wait_regen

    cid = make_chain(db)
    with ScriptedLLMServer() as server:
        if listed:
            operator_env.setenv("COI_LLM_ENDPOINTS", server.base_url)
        set_setting(db, SETTING_BASE_URL, server.base_url)  # as a web user saved it
        set_setting(db, SETTING_MODEL, "scripted")
        at = open_page("review")
        edit_step(at, cid, 1, "corrected one")
        at.button(key="regen").click().run()
        assert not at.exception, at.exception
        job = wait_regen(db, cid, at)  # the regeneration job's own process called the endpoint
        assert job.status == "succeeded", job.error
        assert server.request_count > 0
        assert _key_arrived(server) == listed, server.authorizations
