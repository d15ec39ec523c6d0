"""Settings page: non-secret settings persist in the database; the API key stays in this session."""

import streamlit as st

from app.state import db_path, init_state
from store.db import open_db
from store.settings import get_setting, set_setting

init_state()
st.title("Settings")
with open_db(db_path()) as db:
    saved_reviewer = get_setting(db, "reviewer")
if saved_reviewer and "reviewer_loaded" not in st.session_state:
    st.session_state["reviewer"] = saved_reviewer
    st.session_state["reviewer_loaded"] = True

st.subheader("Reviewer")
name = st.text_input("Your name (recorded on every edit and decision)", value=st.session_state["reviewer"])
if st.button("Save reviewer name"):
    st.session_state["reviewer"] = name.strip() or st.session_state["reviewer"]
    with open_db(db_path()) as db:
        set_setting(db, "reviewer", st.session_state["reviewer"])
    st.success("Saved.")

st.subheader("Database")
st.text(f"Database file: {db_path()}  (set $COI_DB to use another)")
