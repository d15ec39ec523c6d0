"""Session-state defaults shared by the pages."""

from __future__ import annotations

import getpass

import streamlit as st

from store import env
from store.db import default_db_path

LOGIN_REVIEWER = "login_reviewer"  # set when the session logged in: the reviewer name is then fixed


def init_state() -> None:
    """Set defaults once per session (the database path, the reviewer's name)."""
    st.session_state.setdefault("db_path", str(default_db_path()))
    st.session_state.setdefault("reviewer", env.get("COI_REVIEWER") or _login_name())
    login = st.session_state.get(LOGIN_REVIEWER)
    if login:  # the login is who reviews; no page may rename it
        st.session_state["reviewer"] = login


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def set_login_reviewer(name: str) -> None:
    """The session logged in as ``name``: it reviews as ``name`` from now on."""
    st.session_state[LOGIN_REVIEWER] = name
    st.session_state["reviewer"] = name


def reviewer_locked() -> bool:
    """True when the reviewer name comes from the login (the name inputs are read-only then)."""
    return bool(st.session_state.get(LOGIN_REVIEWER))


def db_path() -> str:
    """The database this session works on."""
    init_state()
    return st.session_state["db_path"]
