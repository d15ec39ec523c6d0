"""Streamlit pages through AppTest: open one (directly or through the app's router) and read its text."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.support import APP


def open_page(
    page: str, *, via_main: bool = False, reviewer: str | None = "alice", timeout: float = 60
) -> AppTest:
    """A fresh AppTest of ``app/app_pages/<page>.py``, run once: what a newly loaded app shows.

    ``via_main`` goes through ``app/main.py`` first (login gate, job re-attach, navigation), as a
    browser does. ``reviewer`` presets the session's reviewer name (None: the app's own default).
    """
    if via_main:
        at = AppTest.from_file(str(APP / "main.py"), default_timeout=timeout)
        at.run()
        at.switch_page(f"app_pages/{page}.py")
    else:
        at = AppTest.from_file(str(APP / "app_pages" / f"{page}.py"), default_timeout=timeout)
    if reviewer is not None:
        at.session_state["reviewer"] = reviewer
    at.run()
    assert not at.exception, at.exception
    return at


def page_text(at: AppTest) -> str:
    """Every piece of text a page shows, joined (for plain 'does it say X' checks)."""
    parts = []
    for kind in ("title", "subheader", "text", "caption", "error", "success", "info", "warning", "code"):
        parts += [str(e.value) for e in at.get(kind)]
    parts += [e.proto.text for e in at.get("progress")]
    return "\n".join(parts)
