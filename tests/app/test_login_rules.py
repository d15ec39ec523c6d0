"""Login that can't be bent: no token impersonation, one name normalisation, a per-name brake, roles."""

from __future__ import annotations

import pytest

from store import access
from store.access import Credentials, credentials_from, login, login_wait, record_login
from store.errors import CoiError
from store.roles import ADMIN, ANNOTATOR, Actor
from tests.app.test_auth_page import log_in, no_secrets, public_address, start, titles  # noqa: F401

USERS = {"passwords": {"alice": "a-pw", "bob": "b-pw"}, "roles": {"alice": "admin"}, "password": "shared"}


@pytest.mark.usefixtures("public_address")
def test_token_never_names_a_passwords_user(monkeypatch):
    monkeypatch.setenv("COI_TOKEN", "tok-123")
    for name in ("alice", "Alice", " ALICE "):
        at = start(secrets={"passwords": {"alice": "a-pw"}}, query={"token": "tok-123", "reviewer": name})
        assert titles(at) == ["CoI Studio: log in"], name
        assert "own password" in at.error[0].value
        assert "auth_user" not in at.session_state
    ok = start(secrets={"passwords": {"alice": "a-pw"}}, query={"token": "tok-123", "reviewer": "ci-bot"})
    assert titles(ok) == ["Data"] and ok.session_state["auth_role"] == ANNOTATOR


@pytest.mark.usefixtures("public_address")
def test_case_variants_of_a_user_name_are_refused_with_the_shared_password():
    at = log_in(start(secrets=USERS), "ALICE", "a-pw")  # her own password: she is alice, whatever the case
    assert titles(at) == ["Data"] and at.session_state["reviewer"] == "alice"
    assert at.session_state["auth_role"] == ADMIN
    for name in ("Alice", "ALICE", " alice", "ａｌｉｃｅ"):  # the last is full-width (NFKC folds it)
        at = log_in(start(secrets=USERS), name, "shared")
        assert titles(at) == ["CoI Studio: log in"], name
        assert "auth_user" not in at.session_state


def test_roles_only_for_proven_identities():
    creds = credentials_from({"COI_ADMIN_PASSWORD": "adm"}, USERS)
    assert login(creds, "alice", "a-pw") == Actor("alice", ADMIN)  # [roles] alice = "admin"
    assert login(creds, "bob", "b-pw") == Actor("bob", ANNOTATOR)  # no role given: annotator
    assert login(creds, "carol", "shared") == Actor("carol", ANNOTATOR)  # a typed name is an annotator
    assert login(creds, "root", "adm") == Actor("root", ADMIN)  # the admin secret
    assert login(creds, "alice", "adm") is None  # a [passwords] user needs her own password
    assert access.token_login(Credentials(token="t"), "t", "x") == Actor("x", ANNOTATOR)
    with pytest.raises(CoiError):
        credentials_from({}, {"roles": {"alice": "owner"}})
    with pytest.raises(CoiError):
        credentials_from({}, {"passwords": {"alice": "1", "Alice": "2"}})


def test_wrong_attempts_are_slowed_per_name_in_the_database(db):
    for _ in range(access.FREE_ATTEMPTS):
        assert login_wait(db, "alice", now=100.0) == 0
        record_login(db, "alice", ok=False, now=100.0)
    assert login_wait(db, "ALICE", now=100.0) == pytest.approx(1.0)  # same name after normalisation
    record_login(db, "alice", ok=False, now=100.0)
    assert login_wait(db, "alice", now=100.5) == pytest.approx(1.5)  # doubles with each wrong attempt
    assert login_wait(db, "bob", now=100.0) == 0  # other names are not slowed
    record_login(db, "alice", ok=True)
    assert login_wait(db, "alice", now=100.0) == 0


@pytest.mark.usefixtures("public_address")
def test_the_brake_holds_across_browser_sessions():
    for _ in range(access.FREE_ATTEMPTS):
        log_in(start(secrets=USERS), "alice", "guess")  # a fresh session each time
    at = log_in(start(secrets=USERS), "alice", "a-pw")  # the right password, but too soon
    assert titles(at) == ["CoI Studio: log in"]
    assert "Too many wrong attempts" in at.error[0].value
