"""Settings page: non-secret settings persist in the database; the API key stays in this session."""

import streamlit as st

from app.actions import ADMIN_HELP, reset_sampling, save_endpoint, save_sampling
from app.auth import current_actor
from app.state import db_path, init_state, reviewer_locked
from app.widgets import config_widget, guarded, plain_text
from pipeline.llm import APIS, SETTING_API, SETTING_BASE_URL, SETTING_MODEL, LLMConfig, resolve_with_sources
from pipeline.status import SAMPLING_FIELDS, page_config, source_lines
from store.config import form_fields
from store.db import open_db
from store.endpoints import key_note
from store.settings import get_setting, set_setting

init_state()
st.title("Settings")
with open_db(db_path()) as db:
    saved_reviewer = get_setting(db, "reviewer")
locked = reviewer_locked()
if saved_reviewer and not locked and "reviewer_loaded" not in st.session_state:
    st.session_state["reviewer"] = saved_reviewer
    st.session_state["reviewer_loaded"] = True

st.subheader("Reviewer")
name = st.text_input(
    "Your name (recorded on every edit and decision)",
    value=st.session_state["reviewer"],
    disabled=locked,
    help="Fixed by your login." if locked else None,
)
if locked:
    st.caption("You are logged in: edits and decisions are recorded under your login name.")
elif st.button("Save reviewer name"):
    st.session_state["reviewer"] = name.strip() or st.session_state["reviewer"]
    with open_db(db_path()) as db:
        set_setting(db, "reviewer", st.session_state["reviewer"])
    st.success("Saved.")

st.subheader("LLM endpoint")
st.caption(
    "Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server). Leave the base URL empty to use "
    "the embedded Gemma 3 270M model (weak proposals). $OPENAI_BASE_URL / $COI_LLM_MODEL apply when these are empty."
)
with open_db(db_path()) as db:
    llm_now = page_config(db)
    llm_saved = {k: get_setting(db, k) or "" for k in (SETTING_BASE_URL, SETTING_MODEL, SETTING_API)}
llm_url = st.text_input("Base URL", value=llm_saved[SETTING_BASE_URL], key="set_llm_url")
llm_model = st.text_input("Model", value=llm_saved[SETTING_MODEL], key="set_llm_model")
llm_api = st.selectbox(
    "API",
    list(APIS),
    index=APIS.index(llm_saved[SETTING_API] or "completions"),
    key="set_llm_api",
    help="completions: raw prompts (base models); chat: chat models",
)
llm_key = st.text_input(
    "API key (kept in this browser session only; never saved)",
    type="password",
    key="set_llm_key",
    value=st.session_state.get("llm_api_key", ""),
)
actor = current_actor()
if not actor.is_admin:
    st.caption("Only an admin may change the LLM endpoint.")
if st.button(
    "Save LLM endpoint",
    key="set_llm_save",
    disabled=not actor.is_admin,
    help=None if actor.is_admin else ADMIN_HELP,
):
    st.session_state["llm_api_key"] = llm_key
    with open_db(db_path()) as db:
        if guarded(save_endpoint, actor, db, llm_url, llm_model, llm_api):
            st.success("Saved (the key stays in this session).")
with open_db(db_path()) as db:
    llm_now = page_config(db)
st.text(f"In use now: {llm_now.describe()}")
if key_note(llm_now.base_url):  # the operator's key is not sent there: say so plainly
    st.warning(key_note(llm_now.base_url), icon=":material/key_off:")

st.subheader("LLM sampling and limits")
st.caption(
    "Precedence, highest first: a flag of `coi generate`, these Settings, the environment "
    "($COI_LLM_TEMPERATURE, $COI_LLM_MAX_TOKENS, ...), the default. Each value says where it comes from now."
)
with open_db(db_path()) as db:
    llm_cfg, llm_sources = resolve_with_sources(db)
sampling = {}
for spec in (s for s in form_fields(LLMConfig) if s.name in SAMPLING_FIELDS):
    sampling[spec.name] = config_widget(spec, getattr(llm_cfg, spec.name), key=f"set_llm_{spec.name}")
    st.caption(f"now from: {llm_sources[spec.name]}")
left, right = st.columns(2)
admin_only = {"disabled": not actor.is_admin, "help": None if actor.is_admin else ADMIN_HELP}
if left.button("Save sampling settings", key="set_llm_sampling_save", **admin_only):
    with open_db(db_path()) as db:
        changed = guarded(save_sampling, actor, db, sampling)
    if changed is not None:
        st.success(f"Saved: {', '.join(changed)}." if changed else "Nothing changed.")
if right.button("Reset to environment / defaults", key="set_llm_sampling_reset", **admin_only):
    with open_db(db_path()) as db:
        guarded(reset_sampling, actor, db)
    st.rerun()
with st.expander("Where every LLM value comes from"):
    with open_db(db_path()) as db:
        plain_text("\n".join(source_lines(db)))

st.subheader("Database")
st.text(f"Database file: {db_path()}  (set $COI_DB to use another)")
