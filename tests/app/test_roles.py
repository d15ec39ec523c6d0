"""Roles: each admin-only action is refused to an annotator, on the page and in the function behind it."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app import actions
from store.chains import get_chain, insert_chain
from store.errors import CoiError
from store.jobs import list_jobs
from store.roles import ADMIN, ANNOTATOR, Actor, require
from store.settings import all_settings
from tests.support import APP
from tests.support.chains import chain_of
from tests.support.eval_runs import fake_run
from tests.support.tasks import insert_test_tasks
from tests.support.training import make_version

BOB = Actor("bob", ANNOTATOR)
ADMIN_ACTIONS = [
    ("save_endpoint", (None, "http://127.0.0.1:9/v1", "m", "chat")),
    ("test_connection", (None, "db")),
    ("launch_batch", (None, None, None)),
    ("resume_batch", (None, 1)),
    ("cancel_job", (None, 1)),
    ("submit_training", (None, None)),
    ("cancel_training", (None, 1)),
    ("resume_training", (None, 1)),
    ("submit_eval", (None, None)),
    ("resume_eval", (None, 1)),
    ("typed_import_path", ("data/imports/tasks.jsonl",)),
    ("save_sampling", (None, {})),
    ("reset_sampling", (None,)),
    ("write_batch_requests", (None, None, None, None, None)),
    ("read_batch_results", (None, "out.jsonl")),
]


@pytest.mark.parametrize(("name", "args"), ADMIN_ACTIONS, ids=[a[0] for a in ADMIN_ACTIONS])
def test_each_admin_function_refuses_an_annotator(name, args):
    with pytest.raises(CoiError, match="annotator and may not"):
        getattr(actions, name)(BOB, *args)


def test_send_failures_to_review_refuses_an_annotator_and_changes_nothing(db):
    cid = insert_chain(db, chain_of(0, 2))[0]
    with pytest.raises(CoiError):
        actions.send_failures_to_review(BOB, db, [cid], reason="x")
    assert get_chain(db, cid).status == "accepted"
    assert actions.send_failures_to_review(Actor("ann", ADMIN), db, [cid], reason="x") == 1


def test_require_and_admin_passes():
    require(Actor("a", ADMIN), ANNOTATOR)
    require(Actor("a", ADMIN), ADMIN)
    with pytest.raises(CoiError):
        require(BOB, ADMIN)


def page(name: str, role: str) -> AppTest:
    """A page as a session that logged in with ``role`` (what app.auth stores after a login)."""
    at = AppTest.from_file(str(APP / "app_pages" / f"{name}.py"), default_timeout=60)
    at.session_state["auth_user"] = "bob"
    at.session_state["auth_role"] = role
    at.session_state["reviewer"] = "bob"
    at.run()
    assert not at.exception, at.exception
    return at


def _button(at: AppTest, key: str = "", label: str = ""):
    found = [b for b in at.button if (key and b.key == key) or (label and b.label == label)]
    assert found, f"no button {key or label}"
    return found[0]


def _refused(at: AppTest, button) -> None:
    """The button is disabled for an annotator (AppTest, like a browser, cannot click it then); the
    function behind it refuses too (test_each_admin_function_refuses_an_annotator)."""
    assert not at.exception, at.exception
    assert button.disabled, f"{button.label} is enabled for an annotator"


def test_settings_save_is_refused_to_an_annotator(db):
    at = page("settings", ANNOTATOR)
    at.text_input(key="set_llm_url").input("http://127.0.0.1:9/v1")
    _refused(at, _button(at, "set_llm_save"))
    assert "llm_base_url" not in all_settings(db)
    admin = page("settings", ADMIN)
    assert not _button(admin, "set_llm_save").disabled


def test_generate_actions_are_refused_to_an_annotator(db):
    insert_test_tasks(db)
    at = page("generate", ANNOTATOR)
    _refused(at, _button(at, "gen_test_connection"))
    _refused(at, _button(at, label="Start batch"))
    assert list_jobs(db, kind="generate") == []
    assert not _button(page("generate", ADMIN), "gen_test_connection").disabled


def test_train_start_is_refused_to_an_annotator(db):
    make_version(db)
    at = page("train", ANNOTATOR)
    _refused(at, _button(at, "train_start"))
    assert list_jobs(db, kind="train") == []
    assert not _button(page("train", ADMIN), "train_start").disabled


def test_evaluate_start_and_send_to_review_are_refused_to_an_annotator(db):
    ids = [insert_chain(db, chain_of(i, n))[0] for i, n in enumerate([2, 3])]
    fake_run(db, {ids[0]: [0.9, 0.1], ids[1]: [0.2, 0.9, 0.9]}, mode="stepwise-own")
    at = page("evaluate", ANNOTATOR)
    assert _button(at, label="Start").disabled
    _refused(at, _button(at, "to_review"))
    assert {get_chain(db, c).status for c in ids} == {"accepted"}
    admin = page("evaluate", ADMIN)
    admin.checkbox(key="to_review_sure").check().run()  # reopening accepted chains asks first
    assert not _button(admin, "to_review").disabled


def test_data_typed_path_is_admin_only(db):
    at = page("data", ANNOTATOR)
    assert at.text_input(key="import_path").disabled
    assert not page("data", ADMIN).text_input(key="import_path").disabled


def test_annotators_still_review_and_freeze_versions(db):
    at = page("datasets", ANNOTATOR)
    assert not any(b.disabled for b in at.button)
