"""CoI Studio: the Streamlit entry point. It only routes; each page lives in app_pages/."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import streamlit as st

# `streamlit run app/main.py` puts app/ on sys.path, not the project root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth import require_login  # noqa: E402
from app.guard import unexpected_error_message  # noqa: E402
from app.state import init_state  # noqa: E402
from app.widgets import show_error  # noqa: E402
from store.db import operational_error  # noqa: E402
from store.errors import CoiError  # noqa: E402

PAGES = Path(__file__).parent / "app_pages"


def reattach_jobs_once() -> None:
    """Once per session: jobs whose process died while the app was down are marked failed (resumable),
    and queued jobs start if their resource is free (the queue survives a restart)."""
    if st.session_state.get("jobs_reattached"):
        return
    from app.state import db_path
    from jobs.runtime import pump
    from store.db import open_db

    with open_db(db_path()) as db:
        pump(db)
    st.session_state["jobs_reattached"] = True


st.set_page_config(page_title="CoI Studio", page_icon="🔗", layout="wide")
init_state()
# Before any page: a login when a secret is set, a refusal beyond loopback without one.
require_login()
navigation = st.navigation(
    [
        st.Page(PAGES / "data.py", title="Data", icon=":material/upload_file:", default=True),
        st.Page(PAGES / "generate.py", title="Generate", icon=":material/auto_awesome:", url_path="generate"),
        st.Page(PAGES / "review.py", title="Review", icon=":material/rule:", url_path="review"),
        st.Page(PAGES / "datasets.py", title="Datasets", icon=":material/dataset:", url_path="datasets"),
        st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:", url_path="train"),
        st.Page(PAGES / "evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"),
        st.Page(PAGES / "settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
    ]
)
try:
    reattach_jobs_once()
    navigation.run()
except CoiError as exc:  # e.g. a corrupt database file: say so in plain words instead of a stack trace
    show_error(exc)
except sqlite3.OperationalError as exc:  # still busy after the bounded wait, or another SQLite refusal
    show_error(operational_error(exc))
except Exception as exc:  # noqa: BLE001 - the page guard: no page ever shows a stack trace
    st.error(unexpected_error_message(exc), icon=":material/error:")
