"""Evaluate page: start eval runs, compare one or two runs, drill into chains, send failures to Review."""

from __future__ import annotations

import streamlit as st

from app.actions import ADMIN_HELP, cancel_job, resume_eval, send_failures_to_review, submit_eval
from app.auth import current_actor
from app.eval_charts import ALL_FIGURES
from app.safe_text import md_text
from app.state import db_path, init_state
from app.widgets import config_widget, guarded, plain_text
from eval.analysis import drill_down, group
from eval.config import MODES, EvalConfig, help_of
from eval.report import build_report, compare_rows, first_failures, main_mode, metric_rows
from store.config import form_fields
from store.db import open_db
from store.jobs import list_jobs
from store.predictions import get_predictions, predicted_modes, reopen_counts
from store.versions import list_versions


def admin_only() -> dict:
    """Button arguments that disable an admin-only action for an annotator."""
    actor = current_actor()
    return {"disabled": not actor.is_admin, "help": None if actor.is_admin else ADMIN_HELP}


init_state()
st.title("Evaluate")
st.caption(
    "ROUGE-L per step and by chain length in three modes: chain (the whole CoI instruction at once, as in the "
    "paper), stepwise-gold (each step given the gold previous output) and stepwise-own (its own previous output)."
)


# Fields with a picker of their own (a train job, a dataset version, the modes); the rest come from
# EvalConfig's fields, so the form, the CLI flags and the saved job config are one dataclass.
PICKED = ("adapter_job", "adapter_dir", "version", "modes", "lengths", "name", "split", "use_stemmer", "out")


def new_run_form() -> None:
    with open_db(db_path()) as db:
        trained = list_jobs(db, kind="train", statuses=["succeeded"])
        versions = list_versions(db)
    with st.expander("Start a new eval run", expanded=False), st.form("new_eval"):
        adapters = {None: "base model only", **{j.id: f"train #{j.id} {j.name}" for j in trained}}
        adapter = st.selectbox(
            "Adapter", list(adapters), format_func=adapters.get, help=help_of("adapter_job")
        )
        vlabels = {None: "default", **{v.id: f"#{v.id} {v.name}".strip() for v in versions}}
        version = st.selectbox(
            "Dataset version", list(vlabels), format_func=vlabels.get, help=help_of("version")
        )
        modes = st.multiselect("Modes", MODES, default=list(MODES), help=help_of("modes"))
        values = {}
        columns = st.columns(2)
        specs = [spec for spec in form_fields(EvalConfig) if spec.name not in PICKED]
        for i, spec in enumerate(specs):
            with columns[i % 2]:
                values[spec.name] = config_widget(spec, spec.default, key=f"eval_{spec.name}")
        st.caption(
            "Endpoint: generate through a serving engine (vLLM, SGLang, llama.cpp) with the same prompts and scores."
        )
        if not st.form_submit_button("Start", type="primary", **admin_only()):
            return
    cfg = guarded(
        EvalConfig.from_dict,
        {**values, "adapter_job": adapter, "version": version, "modes": list(modes)},
    )
    if cfg is not None:
        with open_db(db_path()) as db:
            run = guarded(submit_eval, current_actor(), db, cfg)
        if run:
            st.success(f"Eval run #{run} started.")


@st.fragment(run_every=3)
def active_runs() -> None:
    from jobs import runtime
    from jobs.process import refresh

    with open_db(db_path()) as db:
        jobs = [refresh(db, j.id) for j in list_jobs(db, kind="eval", statuses=["queued", "running"])]
        waits = {j.id: runtime.describe_wait(db, j) for j in jobs}
    if not any(j.active for j in jobs):
        st.rerun()  # the last run ended: rerun the whole page so its report shows without a reload
    for job in jobs:
        label = md_text(
            f"{runtime.label(job)} {job.name}: {waits[job.id] or job.message}"
        )  # label is markdown
        st.progress(job.progress, text=label)
        if st.button("Cancel", key=f"cancel_{job.id}", **admin_only()):
            with open_db(db_path()) as db:
                guarded(cancel_job, current_actor(), db, job.id)
            st.rerun()


def stopped_runs() -> None:
    """Failed or cancelled runs, each resumable: saved predictions are kept and reused."""
    with open_db(db_path()) as db:
        jobs = list_jobs(db, kind="eval", statuses=["failed", "cancelled"])
    if jobs:
        st.caption("Stopped runs (resuming keeps their saved predictions)")
    for job in jobs[:5]:
        left, right = st.columns([4, 1])
        left.text(f"eval #{job.id} {job.name}: {job.status} at {job.progress:.0%}")
        if right.button("Resume", key=f"resume_{job.id}", **admin_only()):
            with open_db(db_path()) as db:
                if guarded(resume_eval, current_actor(), db, job.id):
                    st.rerun()


new_run_form()
with open_db(db_path()) as db:
    if list_jobs(db, kind="eval", statuses=["queued", "running"]):
        active_runs()
stopped_runs()

with open_db(db_path()) as db:
    # A stopped run's saved predictions are results too: shown, and marked as partial.
    runs = {
        j.id: f"eval #{j.id} {j.name}" + ("" if j.status == "succeeded" else f" ({j.status}: partial)")
        for j in list_jobs(db, kind="eval", statuses=["succeeded", "cancelled", "failed"])
        if j.status == "succeeded" or predicted_modes(db, j.id)
    }
if not runs:
    st.info("No finished eval run yet: start one above, or with `coi eval`.")
    st.stop()

left, right = st.columns(2)
first = left.selectbox("Run", list(runs), format_func=runs.get, key="run_a")
second = right.selectbox(
    "Compare with", [None, *runs], format_func=lambda r: runs.get(r, "none"), key="run_b"
)
threshold = st.slider(
    "A step fails below ROUGE-L", 0.0, 1.0, EvalConfig.fail_threshold, 0.05, key="threshold"
)
chosen = [r for r in (first, second) if r is not None]
with open_db(db_path()) as db:
    reports = [(runs[r], build_report(db, r, threshold=threshold)) for r in chosen]
modes = list(reports[0][1]["modes"])
if not modes:
    st.warning("This run has no predictions.")
    st.stop()
mode = st.selectbox("Mode", modes, index=modes.index(main_mode(reports[0][1]["modes"])), key="mode")

for label, report in reports:
    overall = report["modes"].get(mode, {}).get("overall")
    if overall:
        st.text(
            f"{label}: final-output ROUGE-L {100 * overall['final']['mean']:.1f} "
            f"(95% CI {100 * overall['final']['low']:.1f}-{100 * overall['final']['high']:.1f}), "
            f"all steps {100 * overall['steps']['mean']:.1f}, {overall['n_chains']} chains"
        )
st.caption("Every metric x 100: each step also scored by the metric that fits its type (step-aware)")
st.dataframe(metric_rows(reports[0][1]["modes"].get(mode, {})), hide_index=True, key="metric_table")
columns = st.columns(2)
for i, make in enumerate(ALL_FIGURES):
    columns[i % 2].plotly_chart(make(reports, mode), key=f"fig_{make.__name__}")

if len(chosen) == 2:
    from eval.analysis import compare

    with open_db(db_path()) as db:
        cmp = compare(get_predictions(db, second), get_predictions(db, first), mode)
    st.subheader("Run vs run")
    st.text(f"{runs[first]} vs {runs[second]}")  # run names are user text: never markdown
    st.text(
        f"{len(cmp['improved'])} improved, {len(cmp['regressed'])} regressed, {cmp['unchanged']} unchanged"
    )
    st.dataframe(compare_rows(cmp, runs[second], runs[first]), hide_index=True, key="compare_table")

st.subheader("Chains")
with open_db(db_path()) as db:
    preds = get_predictions(db, first, mode=mode)
chains = group(preds).get(mode, {})
failing = reports[0][1]["modes"][mode]["failing_chains"]
ordered = failing + [c for c in chains if c not in failing]
chain_id = st.selectbox(
    "Chain (failing first)",
    ordered,
    format_func=lambda c: f"#{c}{' (fails)' if c in failing else ''}",
    key="chain",
)
for step in drill_down(preds, chain_id, mode):
    st.markdown(f"**Step {step['position']}**: ROUGE-L {100 * step['rougeL']:.1f}")
    if step["issues"]:
        st.text("Parser: " + "; ".join(step["issues"]))
    ref_col, pred_col = st.columns(2)
    with ref_col:
        st.caption("Reference")
        plain_text(step["reference"])
    with pred_col:
        st.caption("Prediction")
        plain_text(step["prediction"])
    st.caption("Word diff: [-only in the reference-] {+only in the prediction+}")
    plain_text(step["diff"])

if failing:
    with open_db(db_path()) as db:
        reopens = reopen_counts(db, failing).get("accepted", 0)
    st.caption(
        f"Send to Review: {len(failing)} failing chain(s) go back as needs_review, {reopens} of them accepted"
        " before; each keeps this run, its first failing step and the score."
    )
    sure = st.checkbox(f"Yes, reopen {reopens} accepted chain(s)", key="to_review_sure") if reopens else True
    allowed = admin_only()
    allowed["disabled"] = allowed["disabled"] or not sure
    if st.button(f"Send the {len(failing)} failing chain(s) to Review", key="to_review", **allowed):
        failures = {
            cid: {"eval_run": first, "mode": mode, **f}
            for cid, f in first_failures(reports[0][1]["modes"][mode]).items()
        }
        with open_db(db_path()) as db:
            n = guarded(
                send_failures_to_review,
                current_actor(),
                db,
                failing,
                reason=f"failed eval run #{first} ({mode})",
                failures=failures,
            )
        if n is not None:
            st.success(f"{n} chain(s) are now in the Review queue as needs_review.")
