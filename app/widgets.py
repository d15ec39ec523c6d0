"""Reusable page pieces. User and LLM text is always shown as text, never as HTML or markdown."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from store.errors import CoiError

T = TypeVar("T")


def show_error(exc: CoiError) -> None:
    st.error(exc.message + (f"\n\n{exc.hint}" if exc.hint else ""), icon="⚠️")


def guarded(fn: Callable[..., T], *args, **kwargs) -> T | None:
    """Call ``fn``; show a CoiError on the page instead of crashing it."""
    try:
        return fn(*args, **kwargs)
    except CoiError as exc:
        show_error(exc)
        return None


def plain_text(text: str, *, height: int | None = None, key: str | None = None) -> None:
    """Show user or model text literally: st.code never interprets HTML or markdown."""
    st.code(text or "", language=None, wrap_lines=True, height=height)
