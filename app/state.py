"""Session-state defaults shared by the pages."""

from __future__ import annotations

import getpass
import os

import streamlit as st

from store.db import default_db_path


def init_state() -> None:
    """Set defaults once per session (the database path, the reviewer's name)."""
    st.session_state.setdefault("db_path", str(default_db_path()))
    st.session_state.setdefault("reviewer", os.environ.get("COI_REVIEWER") or _login_name())


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def db_path() -> str:
    """The database this session works on."""
    init_state()
    return st.session_state["db_path"]
