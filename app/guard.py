"""The page guard's plain half: log an unexpected exception with a reference, return what to show.

``app/main.py`` wraps every page in one ``try``; an exception nobody expected is logged here with its
traceback and a short reference, and the page shows only a sentence with that reference
(``client.showErrorDetails = "none"`` in ``.streamlit/config.toml`` covers what escapes the guard).
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger("coi.app")


def unexpected_error_message(exc: BaseException) -> str:
    """Log ``exc`` with its traceback under a fresh reference; the sentence the page shows."""
    ref = uuid.uuid4().hex[:8]
    log.error("unexpected error on a page [ref %s]", ref, exc_info=(type(exc), exc, exc.__traceback__))
    return (
        f"Something went wrong on this page (reference {ref}). "
        "The details are in the server log under that reference. Reload the page to go on."
    )
