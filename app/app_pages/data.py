"""Data page: import a file (mapping + preview first), counts with charts, browse tasks and chains.

The logic lives in store.importers / store.stats / store.tasks / store.review; this page only shows it.
Uploaded bytes go to a temp file and through the same ``import_file`` the CLI uses.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app.actions import ADMIN_HELP, typed_import_path
from app.auth import current_actor
from app.safe_text import plotly_text
from app.state import db_path, init_state
from app.widgets import guarded, plain_text
from store.chains import get_chain
from store.db import open_db
from store.importers import (
    FORMATS,
    IMPORT_STATUSES,
    FieldMapping,
    ImportOptions,
    import_file,
    preview,
    preview_rows,
)
from store.models import CHAIN_STATUSES
from store.review import QueueFilter, queue_count, queue_page
from store.stats import collect_stats
from store.tasks import count_search_tasks, search_tasks

PAGE_SIZE = 50
NONE = "(none)"
init_state()
ss = st.session_state


def uploaded_path(upload) -> Path:
    """Write an upload once per file id to a temp file (keeping its name, so the format detects)."""
    cache = ss.setdefault("data_uploads", {})
    if upload.file_id not in cache:
        folder = Path(tempfile.mkdtemp(prefix="coi-upload-"))
        path = folder / (Path(upload.name).name.lstrip(".") or "upload")
        path.write_bytes(upload.getbuffer())
        cache[upload.file_id] = str(path)
    return Path(cache[upload.file_id])


def forget_uploads() -> None:
    """Delete this session's upload temp files (after an import, whether it worked or not)."""
    for path in ss.pop("data_uploads", {}).values():
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def progress_to(bar, label: str):
    """An ``on_progress(done, total)`` that moves a ``st.progress`` bar."""

    def show(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total), text=f"{label}… {done / total:.0%}")

    return show


def checked_preview(path: Path, fmt: str):
    """The preview (the whole file is read and checked), once per file version and format: a big
    file takes a while, and the page reruns on every widget change."""
    try:
        stat = path.stat()
    except OSError:
        stat = None
    key = (str(path), fmt, stat.st_size, stat.st_mtime_ns) if stat else None
    cache = ss.setdefault("data_previews", {})
    if key in cache:
        return cache[key]
    bar = st.progress(0.0, text="Checking the file…")
    try:
        loaded = guarded(preview, path, fmt, on_progress=progress_to(bar, "Checking the file"))
    finally:
        bar.empty()
    if loaded is not None and key:
        cache.clear()  # one file at a time: the cache holds only its first rows
        cache[key] = loaded
    return loaded


def mapping_form(columns: list[str]) -> FieldMapping:
    """One selectbox per task field, preset to the column the defaults would pick."""
    auto = FieldMapping().resolve(columns)
    cols = st.columns(5)
    chosen = {}
    for col, name in zip(cols, ("instruction", "input", "output", "category", "name")):
        options = [NONE, *columns]
        index = options.index(auto[name]) if auto[name] in options else 0
        chosen[name] = col.selectbox(name, options, index=index, key=f"map_{name}")
    return FieldMapping(**{k: v for k, v in chosen.items() if v != NONE})


def import_section() -> None:
    st.subheader("Import")
    upload = st.file_uploader(
        "Upload a file (JSONL, JSON array, CSV, or the paper's CoI JSON)", type=["jsonl", "json", "csv"]
    )
    actor = current_actor()
    typed = st.text_input(
        "…or a path in the import folder (a file, or a folder saved with datasets' save_to_disk)",
        disabled=not actor.is_admin,
        help=None if actor.is_admin else ADMIN_HELP,
        key="import_path",
    )
    typed = typed.strip()
    if upload and typed:
        st.info(
            "Both a file and a path are given: the uploaded file is the one imported. "
            "Remove the upload to import the path instead."
        )
    # A typed path must be an importable file in an import folder (store.paths); an upload is our own temp file.
    path = uploaded_path(upload) if upload else (guarded(typed_import_path, actor, typed) if typed else None)
    if path is None:
        return
    fmt = st.selectbox("Format", FORMATS, help="auto: by extension and content; coi = the paper's chains")
    loaded = checked_preview(path, fmt)
    if loaded is None:
        if upload:
            forget_uploads()  # a file that cannot be imported leaves nothing behind
        return
    st.caption(f"Detected format: {loaded.format}")
    st.text(f"Columns: {', '.join(loaded.columns)}")  # user text: never markdown
    if loaded.format == "coi":
        mapping = FieldMapping()
        status = st.selectbox(
            "Status of imported chains", IMPORT_STATUSES, help="unclean records get needs_review"
        )
    else:
        mapping, status = mapping_form(loaded.columns), "proposed"
    # Every mapped field, output included, each in a column of its own width (long instructions wrap there).
    rows = preview_rows(loaded, mapping=mapping)
    widths = {name: st.column_config.TextColumn(width="medium") for name in (rows[0] if rows else {})}
    st.dataframe(rows, hide_index=True, key="import_preview", column_config=widths)
    if st.button("Import", type="primary", key="import_button"):
        bar = st.progress(0.0, text="Importing…")
        try:
            with open_db(db_path()) as db:
                ss["data_report"] = guarded(
                    import_file,
                    db,
                    path,
                    ImportOptions(loaded.format, mapping, status),
                    on_progress=progress_to(bar, "Importing"),
                )
        finally:
            bar.empty()
            if upload:
                forget_uploads()
    report = ss.get("data_report")
    if report is not None and report.path == str(path):
        st.success(f"Imported {report.imported} {report.kind} in {report.seconds:.1f} s.")
        st.text(
            f"from {Path(report.path).name} [{report.format}]"
        )  # a file name is user text: never markdown
        st.dataframe(report.table(), hide_index=True, key="import_report")


def bar(counts: dict, title: str) -> go.Figure:
    # Categories and sources are user text: plotly would render <a href> in a tick as a live link.
    fig = go.Figure(go.Bar(x=[plotly_text(str(k)) or "(blank)" for k in counts], y=list(counts.values())))
    fig.update_layout(title=title, height=280, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def overview_section() -> None:
    with open_db(db_path()) as db:
        stats = collect_stats(db)
    st.subheader("Overview")
    a, b, c = st.columns(3)
    a.metric("Tasks", stats["tasks"])
    b.metric("Chains", stats["chains"])
    c.metric("Accepted chains", stats["chains_by_status"].get("accepted", 0))
    charts = st.columns(3)
    charts[0].plotly_chart(bar(stats["tasks_by_category"], "Tasks by category"), key="chart_category")
    charts[1].plotly_chart(bar(stats["tasks_by_source"], "Tasks by source"), key="chart_source")
    charts[2].plotly_chart(bar(stats["chains_by_status"], "Chains by status"), key="chart_status")
    more = st.columns(2)
    more[0].plotly_chart(bar(stats["chains_by_source"], "Chains by source"), key="chart_chain_source")
    lengths = {f"CoI{n}": v for n, v in sorted(stats["chains_by_length"].items(), key=lambda kv: int(kv[0]))}
    more[1].plotly_chart(bar(lengths, "Chains by length"), key="chart_chain_length")


def page_number(total: int, key: str) -> int:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return int(st.number_input(f"Page (of {pages})", 1, pages, 1, key=key))


def browse_tasks() -> None:
    search = st.text_input("Search tasks (words in the instruction, input or output)", key="task_search")
    with open_db(db_path()) as db:
        total, capped = count_search_tasks(db, search)
        page = page_number(total, "task_page")
        tasks = search_tasks(db, search, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    st.caption(f"{total}{'+' if capped else ''} tasks")
    rows = [
        {
            "id": t.id,
            "category": t.category,
            "source": t.source,
            "instruction": t.instruction,
            "input": t.input[:300],
            "output": t.output[:300],
        }
        for t in tasks
    ]
    st.dataframe(rows, hide_index=True, key="task_table")


def browse_chains() -> None:
    left, right = st.columns([2, 1])
    search = left.text_input("Search chains (words in any step, or #id)", key="chain_search")
    statuses = right.multiselect("Status", CHAIN_STATUSES, default=list(CHAIN_STATUSES), key="chain_status")
    # Every status selected = no filter, so paging walks the primary key.
    chosen = () if set(statuses) == set(CHAIN_STATUSES) else tuple(statuses) or ("(none)",)
    filt = QueueFilter(statuses=chosen, search=search, sort="oldest")
    with open_db(db_path()) as db:
        total, capped = queue_count(db, filt)
        page = page_number(total, "chain_page")
        rows = queue_page(db, filt, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    st.caption(f"{total}{'+' if capped else ''} chains")
    table = [
        {
            "id": r.id,
            "status": r.status,
            "length": r.length,
            "source": r.source,
            "category": r.category,
            "first step": r.preview,
        }
        for r in rows
    ]
    st.dataframe(table, hide_index=True, key="chain_table")
    if rows:
        chosen = st.selectbox("Show chain", [r.id for r in rows], key="chain_pick")
        with open_db(db_path()) as db:
            chain = get_chain(db, chosen)
        for step in chain.steps if chain else []:
            st.markdown(f"**Step {step.position}** · {step.origin}" + (" · flagged" if step.flag else ""))
            plain_text(step.instruction)
            plain_text(step.output)


st.title("Data")
import_section()
overview_section()
tasks_tab, chains_tab = st.tabs(["Tasks", "Chains"])
with tasks_tab:
    browse_tasks()
with chains_tab:
    browse_chains()
