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

from app.state import set_login_reviewer
from app.widgets import show_error
from store import access
from store.errors import CoiError

FAILED_LOGIN_DELAY_S = 1.0  # slows password guessing in one session; small enough not to annoy
AUTH_USER = "auth_user"
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
    if isinstance(key, str) and key and not os.environ.get(API_KEY_ENV):
        os.environ[API_KEY_ENV] = key
    return secrets


def current_credentials() -> access.Credentials:
    """The environment's secrets, then Streamlit's."""
    return access.credentials_from(os.environ, streamlit_secrets())


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


def _token_login(creds: access.Credentials) -> bool:
    """``?token=...`` (and optionally ``&reviewer=NAME``) logs the session in; the token leaves the URL."""
    token = st.query_params.get("token")
    if not token:
        return False
    name = access.verify_token(creds, token, st.query_params.get("reviewer", ""))
    del st.query_params["token"]
    if name is None:
        time.sleep(FAILED_LOGIN_DELAY_S)
        st.session_state["auth_failed"] = "The token in the link is wrong."
        return False
    _log_in(name)
    return True


def _login_form(creds: access.Credentials) -> None:
    st.title("CoI Studio: log in")
    hint = "Your user name" if creds.users else "Your name (recorded on every edit and decision)"
    with st.form("login"):
        name = st.text_input(hint, key="login_name")
        secret = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        reviewer = access.verify_login(creds, name, secret)
        if reviewer is not None:
            _log_in(reviewer)
            st.rerun()
        time.sleep(FAILED_LOGIN_DELAY_S)
        st.session_state["auth_failed"] = "Wrong name or password." if name.strip() else "Type your name."
    failure = st.session_state.pop("auth_failed", None)
    if failure:
        st.error(failure, icon=":material/lock:")


def _log_in(name: str) -> None:
    st.session_state.pop("login_password", None)  # keep no secret in session state
    st.session_state[AUTH_USER] = name
    set_login_reviewer(name)
