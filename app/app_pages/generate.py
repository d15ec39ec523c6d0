"""Generate page: propose chains with an LLM as a background job, and watch it.

The batch runs as `python -m pipeline.run --job ID`; this page only reads the job row, so it can be
left and come back. The API key typed in Settings stays in this session and reaches the job through
its environment only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from app.actions import (
    ADMIN_HELP,
    cancel_job,
    launch_batch,
    read_batch_results,
    resume_batch,
    test_connection,
    write_batch_requests,
)
from app.auth import current_actor
from app.state import db_path, init_state
from app.widgets import guarded, plain_text
from jobs import runtime
from jobs.process import refresh
from pipeline.run import BatchConfig
from pipeline.status import (
    WEAK_MODEL_NOTE,
    job_view,
    latest_job,
    page_config,
    parse_task_ids,
)
from store.db import open_db
from store.pipeline_queries import task_categories, verdict_counts
from store.tasks import count_tasks

init_state()
ss = st.session_state
st.title("Generate")

with open_db(db_path()) as db:
    config = page_config(db, ss.get("llm_api_key", ""))
    categories = task_categories(db)
    n_tasks = count_tasks(db)

st.subheader("LLM endpoint")
st.text(f"In use: {config.describe()}  (change it in Settings)")
if config.embedded:
    st.info(WEAK_MODEL_NOTE)
else:
    st.caption("A stronger endpoint gives better proposals than the embedded 270M model.")
actor = current_actor()
admin_only = {"disabled": not actor.is_admin, "help": None if actor.is_admin else ADMIN_HELP}
if st.button("Test connection", key="gen_test_connection", **admin_only):
    with st.spinner("Sending one small request..."):
        message = guarded(test_connection, actor, config, db_path())
    if message:
        st.success(message)


def batch_form() -> None:
    with st.form("gen_batch"):
        cats = st.multiselect("Task categories (none: all)", categories, key="gen_categories")
        ids_text = st.text_input("Task ids (optional, e.g. 1, 2, 5-9)", key="gen_task_ids")
        c1, c2, c3, c4 = st.columns(4)
        n_chains = c1.number_input("Chains", min_value=1, max_value=5000, value=20, key="gen_n")
        lengths = c2.multiselect("Lengths", [2, 3, 4, 5], default=[2], key="gen_lengths")
        seed = c3.number_input("Seed", min_value=0, value=0, key="gen_seed")
        concurrency = c4.number_input(
            "Concurrency", min_value=1, max_value=64, value=8, key="gen_concurrency"
        )
        submitted = st.form_submit_button("Start batch", type="primary", **admin_only)
        # Admin-only like Start; an annotator sees the reason in the tooltip instead of what it does.
        offline = st.form_submit_button(
            "Write the next batch request file instead",
            key="gen_batch_out",
            disabled=admin_only["disabled"],
            help=admin_only["help"] or BATCH_HELP,
        )
    if submitted or offline:
        built = build_batch(cats, ids_text, int(n_chains), lengths, int(seed), int(concurrency))
        if built is not None:
            (write_batch_file if offline else start_batch)(*built)


BATCH_HELP = (
    "Offline generation by step depth: the requests nothing has answered yet go into an OpenAI Batch JSONL "
    "file for vllm run-batch or a provider's batch API; upload its output below, then write the next one."
)


def build_batch(cats, ids_text, n_chains, lengths, seed, concurrency):
    """(batch, llm) from the form, or None after showing why not."""
    from dataclasses import replace

    task_ids = guarded(parse_task_ids, ids_text)
    if task_ids is None:
        return None
    llm = replace(config, concurrency=concurrency)
    batch = guarded(
        BatchConfig,
        task_ids=task_ids,
        categories=tuple(cats),
        n_chains=n_chains,
        lengths=tuple(lengths),
        seed=seed,
        llm=llm.to_dict(),
    )
    return None if batch is None else (batch, llm)


def write_batch_file(batch, llm) -> None:
    out_dir = Path(db_path()).resolve().parent / "batches"
    with open_db(db_path()) as db:
        out = guarded(write_batch_requests, actor, db, db_path(), llm, batch, out_dir)
    if out is None:
        return
    if out.report is not None:
        st.success(f"Every depth is answered: {out.report.chains_added} chains stored for review.")
        return
    ss["gen_batch_file"] = str(out.path)
    st.success(f"{out.requests} requests for the next step depth: {out.path.name}")


def batch_files() -> None:
    """Download the last request file; upload a provider's output file (stored all or nothing)."""
    path = ss.get("gen_batch_file")
    if path and Path(path).exists():
        st.download_button(
            f"Download {Path(path).name}",
            Path(path).read_bytes(),
            file_name=Path(path).name,
            key="gen_batch_dl",
        )
    upload = st.file_uploader("Batch output file (JSONL)", type=["jsonl"], key="gen_batch_in")
    if upload is not None and st.button("Store these answers", key="gen_batch_store", **admin_only):
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / Path(upload.name).name  # errors name the file the user uploaded
            target.write_bytes(upload.getvalue())
            with open_db(db_path()) as db:
                got = guarded(read_batch_results, actor, db, target)
        if got is not None:
            st.success(f"{got.answered} answers stored, {got.failed} failed, {got.already} already stored.")


def start_batch(batch, llm) -> None:
    with open_db(db_path()) as db:
        job_id = guarded(launch_batch, actor, db, batch, llm)
    if job_id:
        ss["gen_job"] = job_id
        st.toast(f"generate #{job_id} started")


st.subheader("New batch")
if n_tasks < 2:
    st.warning("Import at least two tasks on the Data page first.")
else:
    batch_form()
    with st.expander("Batch files (offline, by step depth)"):
        batch_files()


@st.fragment(run_every=2)
def live_progress() -> None:
    with open_db(db_path()) as db:
        job = latest_job(db)
        if job is not None:
            job = refresh(db, job.id)
        wait = runtime.describe_wait(db, job) if job is not None else ""
        counts = verdict_counts(db)
    if counts:
        st.text("Checker verdicts so far: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if job is None:
        st.caption("No generation job yet.")
        return
    view = job_view(job, wait)
    st.progress(view.fraction, text=view.label)
    if job.active and st.button("Cancel", key="gen_cancel", **admin_only):
        with open_db(db_path()) as db:
            guarded(cancel_job, actor, db, job.id)
        st.rerun(scope="fragment")
    if job.error:
        st.error("The job failed or was cancelled:")
        plain_text(job.error[-3000:])
    for warning in view.warnings:  # the text names models and URLs: shown literally
        st.warning("Warning about this batch:")
        plain_text(warning)
    if view.failed_line:
        st.warning(f"{view.failed_line}. Resume retries only those.")
    if view.resumable and st.button("Resume", key="gen_resume", **admin_only):
        with open_db(db_path()) as db:
            if guarded(resume_batch, actor, db, job.id, config.api_key):
                st.toast(f"generate #{job.id} resumed (saved chains and answers are reused)")
        st.rerun()
    if view.verdicts:
        st.text("This batch's verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(view.verdicts.items())))
    if view.totals:
        st.text(view.totals)
    if view.errors:
        st.caption("Failed items (the batch went on):")
        st.dataframe(view.errors, hide_index=True, use_container_width=True)
    if job.status == "succeeded":
        st.page_link("app_pages/review.py", label="Review the proposed chains", icon="✅")


st.subheader("Progress")
live_progress()
