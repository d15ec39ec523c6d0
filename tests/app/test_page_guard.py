"""No page shows a stack trace: the guard in app/main.py and the project's Streamlit config."""

from __future__ import annotations

import logging
import sqlite3

import pytest
import tomllib
from streamlit.testing.v1 import AppTest

import store.stats
from tests.support import APP, ROOT


def _data_page_raising(monkeypatch, exc: BaseException) -> AppTest:
    def boom(db):
        raise exc

    monkeypatch.setattr(store.stats, "collect_stats", boom)  # the Data page calls it on every run
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=60)
    at.run()
    return at


def test_an_unexpected_exception_shows_a_reference_not_a_trace(monkeypatch, caplog):
    with caplog.at_level(logging.ERROR, logger="coi.app"):
        at = _data_page_raising(monkeypatch, RuntimeError("secret internals at line 42"))
    assert not at.exception, at.exception
    [error] = at.error
    assert "Something went wrong on this page (reference " in error.value
    assert "secret internals" not in error.value and "Traceback" not in error.value
    ref = error.value.split("reference ")[1][:8]
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)  # the log has the trace


@pytest.mark.parametrize("message", ["database is locked", "disk I/O error"])
def test_an_operational_error_is_a_plain_message(monkeypatch, message):
    at = _data_page_raising(monkeypatch, sqlite3.OperationalError(message))
    assert not at.exception, at.exception
    assert at.error and "The database" in at.error[0].value


def test_streamlit_never_shows_error_details():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["address"] == "127.0.0.1"
