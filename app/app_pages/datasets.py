"""Dataset versions page: freeze accepted chains into an immutable, hashed version; export it."""

from __future__ import annotations

import streamlit as st

from app.state import db_path, init_state
from app.widgets import guarded
from store.db import open_db
from store.models import CHAIN_STATUSES
from store.version_browse import browse_version, describe_filter
from store.versions import (
    SplitSpec,
    chain_sources,
    composition_overlap,
    create_version,
    list_versions,
    selectable_counts,
    task_sources,
    version_summary,
    version_zip,
)

LENGTHS = [1, 2, 3, 4, 5, 6, 7, 8]
BROWSE_PAGE = 50

init_state()
st.title("Dataset versions")
st.caption(
    "A version freezes the chosen chains as they are now, with a content hash. Train and test never share a "
    "composition; test can hold longer chains than train (the paper trains on 1-3 and tests on 1-5). "
    "Later edits never change a version: freeze again to get a new one."
)


RANDOM = "(random split by composition)"


def spec_form(sources: dict[str, int], tasks: dict[str, int]) -> tuple[SplitSpec, str] | None:
    with st.form("new_version"):
        name = st.text_input("Name (optional)")
        statuses = st.multiselect("Chains with status", CHAIN_STATUSES, default=["accepted"])
        left, right = st.columns(2)
        train_lengths = left.multiselect("Train chain lengths", LENGTHS, default=[1, 2, 3])
        test_lengths = right.multiselect("Test chain lengths", LENGTHS, default=[1, 2, 3, 4, 5])
        test_fraction = left.slider("Share of compositions held out for test", 0.0, 0.9, 0.2, 0.05)
        seed = int(right.number_input("Split seed", value=0, step=1))
        source = st.text_input("Only this source (optional, random split)")
        names = list(sources)
        test_source = st.selectbox(
            "Fixed test set: exactly the chains of this source, in file order",
            [RANDOM, *names],
            format_func=lambda s: s if s == RANDOM else f"{s} ({sources[s]} chains)",
            help="Train then drops every chain whose composition also appears in test.",
        )
        train_sources = st.multiselect("Train on these sources (empty: every other source)", names)
        task_source = st.selectbox(
            "Tasks that join train as length-1 chains (CoI1)",
            ["", *tasks],
            format_func=lambda s: "(none)" if not s else f"{s} ({tasks[s]} tasks)",
        )
        if not st.form_submit_button("Freeze a new version", type="primary"):
            return None
    if not statuses:
        st.error("Choose at least one status.")
        return None
    spec = SplitSpec(
        statuses=tuple(statuses),
        train_lengths=tuple(sorted(train_lengths)),
        test_lengths=tuple(sorted(test_lengths)),
        test_fraction=test_fraction,
        seed=seed,
        source=source.strip() or None,
        test_source=None if test_source == RANDOM else test_source,
        train_sources=tuple(train_sources),
        task_source=task_source or None,
    )
    return spec, name.strip()


with open_db(db_path()) as db:
    counts = selectable_counts(db, SplitSpec())
    sources, tasks = chain_sources(db), task_sources(db)
st.text(
    f"Accepted chains now: {counts['chains']} ({counts['stale']} with stale steps, which block a version)"
)
request = spec_form(sources, tasks)
if request:
    spec, name = request
    with open_db(db_path()) as db:
        before = {v.id for v in list_versions(db)}
        vid = guarded(create_version, db, spec, name=name, created_by=st.session_state["reviewer"])
    if vid is not None:
        st.success(
            f"Version #{vid} created." if vid not in before else f"Identical to existing version #{vid}."
        )

with open_db(db_path()) as db:
    versions = list_versions(db)
if not versions:
    st.info("No versions yet.")
    st.stop()
st.subheader("Versions")
st.dataframe(
    [
        {
            "id": v.id,
            "name": v.name,
            "hash": v.content_hash[:12],
            "train": v.split_sizes.get("train", 0),
            "test": v.split_sizes.get("test", 0),
            "created": v.created_at[:19],
            "by": v.created_by,
        }
        for v in versions
    ],
    hide_index=True,
)
labels = {v.id: f"#{v.id} {v.name}".strip() for v in versions}
chosen = st.selectbox("Version", list(labels), format_func=labels.get)
version = next(v for v in versions if v.id == chosen)
with open_db(db_path()) as db:
    summary = version_summary(db, chosen)
    overlap = composition_overlap(db, chosen)
st.text(f"Content hash: {version.content_hash}")
st.caption("What it holds")
st.text(describe_filter(version.filter))
st.dataframe(summary, hide_index=True)
st.caption(f"Compositions in both train and test: {overlap}")


@st.fragment
def browse_rows(version_id: int) -> None:
    """The frozen train or test rows, searchable and paged (only this part redraws)."""
    st.subheader("Rows")
    left, mid, right = st.columns([1, 3, 1])
    split = left.radio("Split", ["train", "test"], horizontal=True, key="browse_split")
    search = mid.text_input("Search instruction, input or output (or #chain id)", key="browse_search")
    page = int(right.number_input("Page", min_value=1, value=1, step=1, key="browse_page"))
    with open_db(db_path()) as db:
        shown = browse_version(db, version_id, split, search=search, page=page, size=BROWSE_PAGE)
    matching = f" matching {search.strip()!r}" if search.strip() else ""
    st.caption(f"{shown.total} {split} rows{matching} · page {shown.page} of {shown.pages}")
    if shown.rows:
        st.dataframe(shown.rows, hide_index=True, width="stretch")


browse_rows(chosen)


def _zip(fmt: str) -> bytes:
    with open_db(db_path()) as conn:
        return version_zip(conn, chosen, fmt)


left, right = st.columns(2)
left.download_button(
    "Download JSONL (paper format, zip)",
    data=lambda: _zip("jsonl"),
    file_name=f"coi-version-{chosen}-jsonl.zip",
    mime="application/zip",
)
right.download_button(
    "Download HF DatasetDict (save_to_disk, zip)",
    data=lambda: _zip("hf"),
    file_name=f"coi-version-{chosen}-hf.zip",
    mime="application/zip",
)
