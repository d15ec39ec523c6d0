"""Search boxes accept any text: a hypothesis sweep drives every search and filter input through AppTest.

Pinned examples are the inputs that used to raise: a NUL (sqlite3.OperationalError), a huge id
(OverflowError), a unicode digit (ValueError), FTS syntax and 10k characters.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from store.queue import QueueFilter, queue_count, queue_page
from store.search import chain_id, fts_query
from store.tasks import count_search_tasks, search_tasks
from tests.app.test_review_page import make_chain
from tests.support import APP
from tests.support.tasks import insert_test_tasks

PINNED = [
    "a\x00b",
    "\x00",
    "#99999999999999999999",
    "99999999999999999999",
    "²",
    "#²",
    '" OR NEAR(a b) * ^ - : col:x AND NOT (',
    "x" * 10_000,
    "word " * 2_000,
    "#1",
    "",
]
SWEEP = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# A lone surrogate cannot come from a browser (the page protocol is UTF-8); the store takes it anyway.
STORE_ONLY = ["\ud800", "a\udfffb"]
TEXT = st.text(max_size=300) | st.sampled_from(PINNED)


def _examples(fn):
    for value in PINNED:
        fn = example(text=value)(fn)
    return fn


@pytest.fixture
def data(db):
    insert_test_tasks(db)
    make_chain(db)
    return db


@pytest.mark.parametrize("text", PINNED + STORE_ONLY)
def test_store_searches_take_any_text(data, text):
    assert isinstance(search_tasks(data, text), list)
    assert count_search_tasks(data, text)[0] >= 0
    f = QueueFilter(statuses=(), search=text)
    assert queue_count(data, f)[0] >= 0 and isinstance(queue_page(data, f), list)


def test_ids_only_when_sqlite_can_hold_them():
    assert chain_id("#12") == 12 and chain_id(" 7 ") == 7
    assert chain_id("#99999999999999999999") is None and chain_id("²") is None and chain_id("#") is None
    assert fts_query("a\x00b") == '"a" "b"' and fts_query('say "hi"') == '"say" """hi"""'
    assert len(fts_query("w " * 5000).split()) == 16


_apps: dict[str, AppTest] = {}


def _app(page: str) -> AppTest:
    """One AppTest per page for the whole sweep (a run per example is what costs)."""
    if page not in _apps:
        at = AppTest.from_file(str(APP / "app_pages" / f"{page}.py"), default_timeout=60)
        at.session_state["reviewer"] = "alice"
        at.run()
        _apps[page] = at
    return _apps[page]


def _type(page: str, key: str, text: str) -> AppTest:
    at = _app(page)
    at.text_input(key=key).input(text).run()
    assert not at.exception, (key, text[:50], at.exception)
    assert not any("Traceback" in e.value for e in at.error)
    return at


@pytest.fixture(autouse=True)
def fresh_apps():
    _apps.clear()
    yield
    _apps.clear()


@SWEEP
@given(text=TEXT)
@_examples
def test_sweep_data_task_search(data, text):
    _type("data", "task_search", text)


@SWEEP
@given(text=TEXT)
@_examples
def test_sweep_data_chain_search(data, text):
    _type("data", "chain_search", text)


@SWEEP
@given(text=TEXT, status=st.lists(st.sampled_from(["proposed", "accepted", "rejected", "needs_review"])))
def test_sweep_data_chain_search_with_status_filter(data, text, status):
    at = _app("data")
    at.multiselect(key="chain_status").set_value(list(status))
    _type("data", "chain_search", text)


@SWEEP
@given(text=TEXT)
@_examples
def test_sweep_review_search(data, text):
    _type("review", "search", text)


@SWEEP
@given(
    text=TEXT,
    sort=st.sampled_from(["newest", "oldest", "least_confident", "most_confident", "risk", "random"]),
    stale=st.sampled_from(["(any)", "with stale steps", "without"]),
    status=st.lists(st.sampled_from(["proposed", "accepted", "rejected", "needs_review"]), unique=True),
)
def test_sweep_review_filters(data, text, sort, stale, status):
    at = _app("review")
    [s for s in at.selectbox if s.label == "Sort"][0].set_value(sort)
    [s for s in at.selectbox if s.label == "Stale steps"][0].set_value(stale)
    [m for m in at.multiselect if m.label == "Status"][0].set_value(status)
    _type("review", "search", text)
