"""The login gate before any page (the Streamlit glue; the policy is store.access, tested directly).

Defence in depth: ``run_app.sh`` refuses a non-loopback host without a secret, and this gate refuses to
show pages in that case too (for a bare ``streamlit run``). With a secret configured, every session logs in
once: a name and a password (or the token), or ``?token=...`` in the URL for scripted access. The login
name becomes the reviewer. Secrets are never shown, logged or kept in session state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from app.state import db_path, set_login_reviewer
from app.widgets import show_error
from store import access, endpoints, env
from store.db import open_db
from store.errors import CoiError
from store.roles import ADMIN, ANNOTATOR, Actor

FAILED_LOGIN_DELAY_S = 1.0  # a pause per wrong attempt; the per-name wait (store.access) is the real brake
AUTH_USER = "auth_user"
AUTH_ROLE = "auth_role"
API_KEY_ENV = "OPENAI_API_KEY"


def streamlit_secrets() -> dict:
    """Streamlit's secrets (``.streamlit/secrets.toml``, or AppTest's), {} when there are none.

    An ``OPENAI_API_KEY`` there is exported to this process's environment unless one is set already
    (Streamlit does so for a secrets file; this does it for every source), so the pipeline finds it
    the way it finds the environment variable, and jobs get it through their environment only.
    """
    try:
        secrets = st.secrets.to_dict()
    except FileNotFoundError:  # Streamlit raises a FileNotFoundError subclass for a missing or bad file
        # A file that exists but does not parse must lock the app, not open it as if there were none.
        access.read_secrets([Path(p) for p in st.get_option("secrets.files")])
        return {}
    key = secrets.get(API_KEY_ENV)
    if isinstance(key, str) and key and not env.get(API_KEY_ENV):
        os.environ[API_KEY_ENV] = key
    # The operator's endpoint list travels the same way, so the key rule (store.endpoints) sees it in
    # this process and in every job it starts.
    listed = endpoints.operator_endpoints({}, secrets)
    if listed and not env.get(endpoints.ENV_ENDPOINTS):
        os.environ[endpoints.ENV_ENDPOINTS] = " ".join(sorted(listed))
    return secrets


def current_credentials() -> access.Credentials:
    """The environment's secrets, then Streamlit's."""
    return access.credentials_from(env.environ(), streamlit_secrets())


def require_login() -> None:
    """Stop the script run unless this session may see the pages."""
    try:
        creds = current_credentials()
    except CoiError as exc:  # a broken secrets file: fail closed
        st.title("CoI Studio is locked")
        show_error(exc)
        st.stop()
    decision = access.gate(st.get_option("server.address"), creds)
    if decision.action == "open" or st.session_state.get(AUTH_USER):
        return
    if decision.action == "refuse":
        st.title("CoI Studio is locked")
        st.error(decision.reason, icon=":material/lock:")
        st.stop()
    if _token_login(creds):
        return
    _login_form(creds)
    st.stop()


def current_actor() -> Actor:
    """Who this session acts as. Open local use (loopback, no secret) is one admin; a logged-in session
    has the role its login proved; anything else (a page run without the gate) is an annotator."""
    name = st.session_state.get(AUTH_USER)
    if name:
        return Actor(name, st.session_state.get(AUTH_ROLE, ANNOTATOR))
    try:
        decision = access.gate(st.get_option("server.address"), current_credentials())
    except CoiError:
        decision = access.Gate("refuse")
    reviewer = str(st.session_state.get("reviewer") or "reviewer")
    return Actor(reviewer, ADMIN if decision.action == "open" else ANNOTATOR)


def _token_login(creds: access.Credentials) -> bool:
    """``?token=...`` (and optionally ``&reviewer=NAME``) logs the session in; the token leaves the URL.

    A token login is always an annotator, and may not name a ``[passwords]`` user.
    """
    token = st.query_params.get("token")
    if not token:
        return False
    name = st.query_params.get("reviewer", "")
    del st.query_params["token"]
    if not _may_try(name or access.TOKEN_REVIEWER):
        return False
    actor = access.token_login(creds, token, name)
    _record(name or access.TOKEN_REVIEWER, actor is not None)
    if actor is None:
        time.sleep(FAILED_LOGIN_DELAY_S)
        named_user = name and creds.user(name) is not None
        st.session_state["auth_failed"] = (
            "A link token cannot log in as a user with a password: log in with your own password."
            if named_user
            else "The token in the link is wrong."
        )
        return False
    _log_in(actor)
    return True


def _login_form(creds: access.Credentials) -> None:
    st.title("CoI Studio: log in")
    hint = "Your user name" if creds.users else "Your name (recorded on every edit and decision)"
    with st.form("login"):
        name = st.text_input(hint, key="login_name")
        secret = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted and _may_try(name):
        actor = access.login(creds, name, secret)
        if name.strip():
            _record(name, actor is not None)
        if actor is not None:
            _log_in(actor)
            st.rerun()
        time.sleep(FAILED_LOGIN_DELAY_S)
        st.session_state["auth_failed"] = "Wrong name or password." if name.strip() else "Type your name."
    failure = st.session_state.pop("auth_failed", None)
    if failure:
        st.error(failure, icon=":material/lock:")


def _may_try(name: str) -> bool:
    """False (with a message) while wrong attempts for this name, from any session, must wait."""
    if not name.strip():
        return True
    with open_db(db_path()) as db:
        wait = access.login_wait(db, name)
    if wait > 0:
        st.session_state["auth_failed"] = f"Too many wrong attempts for this name. Try again in {wait:.0f} s."
        return False
    return True


def _record(name: str, ok: bool) -> None:
    with open_db(db_path()) as db:
        access.record_login(db, name, ok)


def _log_in(actor: Actor) -> None:
    st.session_state.pop("login_password", None)  # keep no secret in session state
    st.session_state[AUTH_USER] = actor.name
    st.session_state[AUTH_ROLE] = actor.role
    set_login_reviewer(actor.name)
