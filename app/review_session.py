"""The Review page's session logic: what each action changes, and which parts of the page redraw.

Every action is a widget callback. A callback runs before Streamlit redraws anything, so the page
never shows a faded copy of itself (which ``if st.button(...): ...; st.rerun()`` does), and it names
the fragments that changed (``st.rerun([...])``), so a decision redraws the counts, the queue and the
chain, and a step edit only the chain and the queue, never the sidebar and its filter queries.
All changes go through store.review with optimistic locking on the version this session loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import streamlit as st

from app.guard import unexpected_error_message
from app.state import db_path
from app.widgets import StepAction
from store import review as rv
from store.db import open_db
from store.errors import CoiError
from store.jobs import get_job
from store.models import Step
from store.regenerate import apply_regeneration, close_regeneration, job_proposals

COUNTS, AGREEMENT, QUEUE, CHAIN = "review_counts", "review_agreement", "review_queue", "review_chain"
PAGE_SIZE = 20
ss = st.session_state


def me() -> str:
    return ss["reviewer"]


def flash(kind: str, message: str) -> None:
    ss["review_flash"] = (kind, message)


def redraw(*fragments: str) -> None:
    """Rerun only these fragments after the callback (the rest of the page stays as drawn)."""
    st.rerun(list(fragments))


def callback(*fragments: str) -> Callable:
    """A widget callback that redraws ``fragments`` afterwards; an unexpected error becomes a plain
    message on the page (a callback runs outside the page guard, which would show a stack trace)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs) -> None:
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - no page ever shows a stack trace
                flash("error", unexpected_error_message(exc))
            redraw(*fragments)

        return run

    return wrap


def run_action(fn, *args, **kwargs):
    """Run a store change; a conflict or user error is kept for the next draw. Returns its result or None."""
    try:
        with open_db(db_path()) as db:
            result = fn(db, *args, **kwargs)
        return True if result is None else result
    except rv.ConflictError as exc:
        ss["review_conflict"] = exc
    except CoiError as exc:
        flash("error", exc.message + (f"\n\n{exc.hint}" if exc.hint else ""))
    return None


def change(fn, chain_id: int, *args, **kwargs) -> bool:
    """A change to one chain; remembered as this session's last change, which Undo reverts."""
    version = run_action(fn, chain_id, *args, **kwargs)
    if version is None:
        return False
    ss["review_seen"].pop(chain_id, None)
    ss["review_last"] = [(chain_id, version)]
    return True


# -- where the session is: its filter, its page of the queue, its open chain --------------------------
def current_filter() -> rv.QueueFilter:
    """The sidebar's filter (set on every full run) minus the chains this session skipped."""
    return replace(ss["review_filter"], exclude_ids=tuple(ss["review_skipped"]))


def page_rows(db) -> list[rv.QueueRow]:
    return rv.queue_page(db, current_filter(), offset=ss["review_offset"], limit=PAGE_SIZE)


def open_next(after: int, step: int = 1) -> None:
    """Open the chain ``step`` places after ``after`` on the current queue page (the first one if
    ``after`` left the page, e.g. because it was just decided)."""
    with open_db(db_path()) as db:
        ids = [r.id for r in page_rows(db)]
    if after in ids:
        i = ids.index(after) + step
        ss["review_current"] = ids[i] if 0 <= i < len(ids) else after
    else:
        ss["review_current"] = ids[0] if ids else None


# -- actions -------------------------------------------------------------------------------------------
@callback(COUNTS, AGREEMENT, QUEUE, CHAIN)
def on_decide(chain_id: int, decision: str, seen: int) -> None:
    reason = (ss.get("reject_tag") or "") if decision == "reject" else ""
    if decision == "skip":
        ok = run_action(rv.decide, chain_id, decision, reviewer=me(), expected_version=seen) is not None
        if ok:
            ss["review_skipped"].append(chain_id)
    else:
        ok = change(rv.decide, chain_id, decision, reviewer=me(), expected_version=seen, reason=reason)
    if ok:
        open_next(chain_id)
        flash("success", f"Chain #{chain_id}: {decision}.")


@callback(COUNTS, AGREEMENT, QUEUE, CHAIN)
def on_undo(current_id: int, seen: int) -> None:
    """Undo this session's last change (a decision moves the queue on, so it may be another chain).
    A bulk decision is one change: every chain it changed goes back."""
    last = ss.get("review_last") or [(current_id, seen)]
    undone = []
    for chain_id, version in last:
        if run_action(rv.undo_last, chain_id, author=me(), expected_version=version) is not None:
            undone.append(chain_id)
            ss["review_seen"].pop(chain_id, None)
            if chain_id in ss["review_skipped"]:
                ss["review_skipped"].remove(chain_id)
    if undone:
        ss.pop("review_last", None)
        ss["review_current"] = undone[0]
        where = f"chain #{undone[0]}" if len(undone) == 1 else f"{len(undone)} chains"
        flash("success", f"Undid the last change on {where}.")


@callback(COUNTS, AGREEMENT, QUEUE, CHAIN)
def on_reject_composition(composition_id: int, n_chains: int) -> None:
    if run_action(rv.reject_composition, composition_id, reviewer=me(), reason=ss.get("reject_tag") or ""):
        flash("success", f"Rejected all {n_chains} chains of composition #{composition_id}.")


@callback(QUEUE, CHAIN)
def on_pick() -> None:
    ss["review_current"] = ss["review_pick"]


@callback(QUEUE, CHAIN)
def on_move(chain_id: int, step: int) -> None:
    open_next(chain_id, step)


@callback(QUEUE, CHAIN)
def on_page(delta: int) -> None:
    ss["review_offset"] = max(0, ss["review_offset"] + delta * PAGE_SIZE)
    ss.pop("review_current", None)


@callback(QUEUE, CHAIN)
def on_unskip() -> None:
    ss["review_skipped"] = []


@callback(QUEUE, CHAIN)
def on_reload(chain_id: int) -> None:
    ss.pop("review_conflict", None)
    ss["review_seen"].pop(chain_id, None)


@callback(QUEUE, CHAIN)
def on_step_action(chain_id: int, seen: int, length: int, step: Step, action: StepAction) -> None:
    if action.kind == "save" and action.text == step.output and not step.stale:
        flash("info", f"Step {action.position} is unchanged; nothing saved.")
        return
    if action.kind == "save":
        ok = change(
            rv.save_step_output,
            chain_id,
            action.position,
            action.text,
            author=me(),
            expected_version=seen,
            reason=action.reason,
        )
        later = (
            "" if action.position == length else " The later steps are stale until regenerated or confirmed."
        )
        message = f"Saved step {action.position}.{later}"
    else:
        ok = change(rv.confirm_step, chain_id, action.position, author=me(), expected_version=seen)
        message = f"Step {action.position} confirmed as is."
    if ok:
        flash("success", message)


# -- regeneration as a job -----------------------------------------------------------------------------
@callback(CHAIN)
def on_regenerate(chain_id: int) -> None:
    """Queue the regeneration job; the reviewer keeps working while it runs."""
    from pipeline.regenerate import submit_regeneration
    from pipeline.status import page_config

    def submit(db):
        return submit_regeneration(db, chain_id, page_config(db, ss.get("llm_api_key", "")), reviewer=me())

    job_id = run_action(submit)
    if job_id:
        flash("info", f"Regenerating chain #{chain_id} in the background (job #{job_id}).")


@callback(CHAIN)
def on_cancel_regeneration(job_id: int) -> None:
    from jobs import runtime

    run_action(runtime.cancel, job_id, "regenerate")


@callback(QUEUE, CHAIN)
def on_apply_regeneration(job_id: int, chain_id: int) -> None:
    with open_db(db_path()) as db:
        job = get_job(db, job_id)
    proposals = job_proposals(job)
    keep = {p.position: bool(ss.get(f"keep_{job_id}_{p.position}")) for p in proposals}
    # The proposals were made from this version: an edit since then is a conflict, never overwritten.
    version = job.result["version"]
    if change(apply_regeneration, chain_id, proposals, keep, author=me(), expected_version=version):
        run_action(close_regeneration, job_id, "applied")
        flash("success", "Saved the kept outputs. Discarded steps stay stale until you confirm or edit them.")


@callback(CHAIN)
def on_discard_regeneration(job_id: int) -> None:
    run_action(close_regeneration, job_id, "discarded")


# -- bulk (sidebar: a full rerun, since the counts and the filter's totals all change) ------------------
def on_bulk(confirmed: int, decision: str) -> None:
    """Decide every chain the filter matches now, if that is still the count the reviewer confirmed
    (a decision made since then in the chain view changed the set without redrawing the sidebar)."""
    ss["bulk_sure"] = False
    try:
        with open_db(db_path()) as db:
            ids = rv.queue_ids(db, current_filter())
            if len(ids) != confirmed:
                flash(
                    "warning",
                    f"The filtered set changed from {confirmed} to {len(ids)} chains since you confirmed; "
                    "nothing was changed. Confirm again.",
                )
                return
            out = rv.decide_chains(db, ids, decision, reviewer=me(), reason=f"bulk {decision}")
    except CoiError as exc:
        flash("error", exc.message)
        return
    ss["review_last"] = out.changed  # Undo reverts the whole bulk action
    left = "; ".join(f"{n} {why}" for why, n in out.skipped.items())
    flash(
        "success", f"{decision.title()}ed {len(out.changed)} chains" + (f" (left: {left})." if left else ".")
    )
