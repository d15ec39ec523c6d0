"""Train page: pick a dataset version and a preset, adjust the config, one click starts a LoRA run.

The run is a background process (training.queue / training.run); this page only reads its row,
metrics and log, so a reload or an app restart re-attaches to it.
"""

from __future__ import annotations

import streamlit as st

from app.actions import ADMIN_HELP, cancel_training, resume_training, submit_training
from app.auth import current_actor
from app.charts import loss_figure, throughput_figure
from app.state import db_path, init_state
from app.widgets import config_widget as field_widget
from app.widgets import guarded, plain_text
from jobs import runtime
from jobs.process import log_tail
from store.db import open_db
from store.jobs import Job, get_job, get_metrics, list_jobs
from store.versions import SplitSpec, create_version, list_versions
from training import queue
from training.config import PRESETS, config_diff, form_fields, preset

init_state()
ss = st.session_state
st.title("Train")


def version_label(v) -> str:
    sizes = ", ".join(f"{k} {n}" for k, n in v.split_sizes.items())
    return f"v{v.id} {v.name} ({sizes}) {v.created_at[:16]}"


def new_run_form(versions) -> None:
    version = st.selectbox("Dataset version", versions, format_func=version_label, key="train_version")
    name = st.selectbox(
        "Preset",
        list(PRESETS),
        key="train_preset",
        help=(
            "paper: the authors' model_trainer.sh (full fine-tuning, 3 epochs, batch 4 x accumulation 8, lr 2e-5, "
            "no holdout); paper-lora: the same schedule with LoRA at lr 2e-4; quick: a short CPU run"
        ),
    )
    base = preset(name)
    values = {}
    with st.expander("Adjust the config", expanded=False):
        cols = st.columns(3)
        specs = [s for s in form_fields() if s.name != "dataset_version"]
        for i, spec in enumerate(specs):
            with cols[i % 3]:
                values[spec.name] = field_widget(spec, getattr(base, spec.name), f"train_{name}_{spec.name}")
    actor = current_actor()
    admin_only = {"disabled": not actor.is_admin, "help": None if actor.is_admin else ADMIN_HELP}
    if st.button("Start training", type="primary", key="train_start", **admin_only):
        cfg = guarded(preset, name, **values, dataset_version=version.id)
        if cfg is not None:
            with open_db(db_path()) as db:
                job_id = guarded(submit_training, actor, db, cfg)
            if job_id:
                ss["train_watch"] = job_id
                st.toast(f"Training job #{job_id} submitted")


def no_version_yet() -> None:
    st.info("There is no dataset version yet: freeze the accepted chains into one to train on.")
    if st.button("Create a version from the accepted chains", key="train_make_version"):
        with open_db(db_path()) as db:
            vid = guarded(
                create_version, db, SplitSpec(), name="for training", created_by=ss.get("reviewer", "")
            )
        if vid:
            st.rerun()


def watched_job(db) -> Job | None:
    """The job this session started or picked, else the running/newest one (re-attaches after a restart)."""
    queue.pump_queue(db)  # marks dead runs failed and starts the next queued job
    job_id = ss.get("train_watch")
    if job_id:
        return get_job(db, job_id)
    return queue.current_job(db)


def job_actions(db, job: Job) -> None:
    actor = current_actor()
    admin_only = {"disabled": not actor.is_admin, "help": None if actor.is_admin else ADMIN_HELP}
    if job.active and st.button("Cancel", key="train_cancel", **admin_only):
        guarded(cancel_training, actor, db, job.id)
        st.rerun()
    if job.status in ("failed", "cancelled") and st.button(
        "Resume from the last checkpoint", key="train_resume", **admin_only
    ):
        if guarded(resume_training, actor, db, job.id):
            st.rerun()


def job_status(db, job: Job) -> None:
    st.subheader(f"{runtime.label(job)}: {job.status}")
    st.text(job.name)
    st.progress(min(max(job.progress or 0.0, 0.0), 1.0))
    st.text(runtime.state_line(db, job))
    if job.status == "failed" and job.error:
        reason, _, tail = job.error.partition("\n\n")
        st.error(reason, icon="⚠️")
        if tail:
            plain_text(tail, height=200)
    elif job.status == "succeeded":
        st.success("Done. The adapter is saved.")
        plain_text(job.result.get("adapter_dir", ""))


@st.fragment(run_every=2)
def live_view() -> None:
    """Re-runs every 2 s: status, progress, ETA, loss chart, log tail, Cancel / Resume."""
    with open_db(db_path()) as db:
        job = watched_job(db)
        if job is None:
            st.caption("No training run yet.")
            return
        job_status(db, job)
        job_actions(db, job)
        rows = get_metrics(db, job.id)
    if rows:
        left, right = st.columns([2, 1])
        left.plotly_chart(loss_figure(rows), key=f"train_loss_{job.id}")
        right.plotly_chart(throughput_figure(rows), key=f"train_tps_{job.id}")
    st.caption("Log (the last 30 lines; the newest at the bottom)")
    plain_text(log_tail(job.log_path, 30) or "(no log yet)")  # no fixed height: the newest line stays in view


def run_history(db) -> None:
    runs = list_jobs(db, kind="train", limit=200)
    if not runs:
        return
    st.header("Run history")
    st.dataframe(
        [
            {
                "job": j.id,
                "status": j.status,
                "progress": f"{j.progress:.0%}",
                "name": j.name,
                "created": j.created_at[:19],
            }
            | {
                k: str(j.config.get(k))
                for k in ("dataset_version", "base_model", "learning_rate", "epochs", "max_steps")
            }
            for j in runs
        ],
        hide_index=True,
    )
    by_id = {j.id: j for j in runs}
    ids = list(by_id)
    shown = st.selectbox(
        "Config of run", ids, key="train_show", format_func=lambda i: f"#{i} {by_id[i].status}"
    )
    if st.button("Watch this run", key="train_watch_btn"):
        ss["train_watch"] = shown
        st.rerun()
    st.json(by_id[shown].config, expanded=False)
    if len(ids) > 1:
        a, b = st.columns(2)
        run_a = a.selectbox("Compare run", ids, index=1, key="train_diff_a")
        run_b = b.selectbox("with run", ids, index=0, key="train_diff_b")
        diff = config_diff(by_id[run_a].config, by_id[run_b].config)
        rows = [{"field": k, f"#{run_a}": str(va), f"#{run_b}": str(vb)} for k, va, vb in diff]
        if rows:
            st.dataframe(rows, hide_index=True)
        else:
            st.caption("Same config.")


with open_db(db_path()) as _db:
    _versions = list_versions(_db)
st.header("New run")
if _versions:
    new_run_form(_versions)
else:
    no_version_yet()
st.header("Live view")
live_view()
with open_db(db_path()) as _db:
    run_history(_db)
