"""The login gate in app/main.py through AppTest: locked, refused, wrong and right logins, the reviewer name."""

from __future__ import annotations

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

import app.auth
from store.chains import get_chain
from store.review import chain_history
from store.settings import set_setting
from tests.app.test_review_page import edit_step, make_chain

MAIN = "../../app/main.py"


@pytest.fixture(autouse=True)
def no_secrets(monkeypatch):
    """No secret from the developer's shell, and no delay after a wrong password (keeps tests fast)."""
    for name in ("COI_PASSWORD", "COI_TOKEN", "COI_REVIEWER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(app.auth, "FAILED_LOGIN_DELAY_S", 0)


@pytest.fixture
def public_address():
    """Pretend the server binds every interface (AppTest runs in this process, so the option is global)."""
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", before)


def start(secrets: dict | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def log_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_loopback_without_secrets_opens_the_pages():
    at = start()
    assert titles(at) == ["Data"]


def test_public_address_without_secrets_shows_no_page(public_address):
    at = start()
    assert titles(at) == ["CoI Studio is locked"]
    assert "COI_PASSWORD" in at.error[0].value
    assert not at.text_input  # no login form either: nothing would open it


def test_locked_then_wrong_password_then_right_password(public_address, monkeypatch):
    monkeypatch.setenv("COI_PASSWORD", "s3cret-pw")
    at = start()
    assert titles(at) == ["CoI Studio: log in"] and not at.metric
    log_in(at, "alice", "wrong")
    assert titles(at) == ["CoI Studio: log in"]
    assert at.error[0].value == "Wrong name or password."
    log_in(at, "", "s3cret-pw")
    assert at.error[0].value == "Type your name."
    log_in(at, "alice", "s3cret-pw")
    assert titles(at) == ["Data"]
    assert at.session_state["reviewer"] == "alice"
    assert "login_password" not in at.session_state  # no secret kept in the session
    assert all("s3cret-pw" not in str(t.value) for t in at.text)


def test_a_secret_locks_loopback_too(monkeypatch):
    monkeypatch.setenv("COI_TOKEN", "tok-1")
    assert titles(start()) == ["CoI Studio: log in"]


def test_passwords_table_needs_the_users_own_password(public_address):
    secrets = {"passwords": {"alice": "a-pw", "bob": "b-pw"}}
    at = start(secrets)
    log_in(at, "alice", "b-pw")
    assert titles(at) == ["CoI Studio: log in"]
    log_in(at, "bob", "b-pw")
    assert titles(at) == ["Data"] and at.session_state["reviewer"] == "bob"


def test_token_in_the_url_opens_and_leaves_the_url(public_address, monkeypatch):
    monkeypatch.setenv("COI_TOKEN", "tok-123")
    at = start(query={"token": "tok-123", "reviewer": "ci-bot"})
    assert titles(at) == ["Data"]
    assert at.session_state["reviewer"] == "ci-bot"
    assert "token" not in at.query_params
    wrong = start(query={"token": "tok-999"})
    assert titles(wrong) == ["CoI Studio: log in"]
    assert wrong.error[0].value == "The token in the link is wrong."


def test_login_names_the_reviewer_of_every_edit_and_the_name_inputs_are_read_only(public_address, db):
    cid = make_chain(db)
    set_setting(db, "reviewer", "someone-else")  # a saved name must not override the login
    at = start({"passwords": {"alice": "a-pw"}})
    log_in(at, "alice", "a-pw")
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception, at.exception
    name_box = at.text_input[0]
    assert name_box.value == "alice" and name_box.disabled
    assert not [b for b in at.button if b.label == "Save reviewer name"]
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, at.exception
    sidebar_name = at.sidebar.text_input(key="review_name")
    assert sidebar_name.value == "alice" and sidebar_name.disabled
    edit_step(at, cid, 1, "corrected by alice")
    at.button(key="undo").click().run()  # a second change, also under the login name
    authors = {e.author for e in chain_history(db, cid)}
    assert authors == {"alice"}
    assert get_chain(db, cid).steps[0].output == "out one"


def test_a_secrets_file_that_does_not_parse_locks_the_app(tmp_path):
    bad = tmp_path / "secrets.toml"
    bad.write_text('password = "unterminated\n')
    before = st_config.get_option("secrets.files")
    st_config.set_option("secrets.files", [str(bad)])
    try:
        at = start()
    finally:
        st_config.set_option("secrets.files", before)
    assert titles(at) == ["CoI Studio is locked"]
    assert "is not valid TOML" in at.error[0].value and "unterminated" not in at.error[0].value
