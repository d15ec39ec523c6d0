"""Review page: the queue, one chain at a time, edits, regeneration, decisions, history and agreement.

Layout: filters, bulk decisions and agreement in the sidebar; the status counts, then the queue as a
full-width table (collapsible), then the open chain with its decision bar on top (Accept A, Reject X,
Skip S, Undo U, next/previous chain J/K, pages ←/→, Regenerate G; R is Streamlit's). The counts, the
queue and the chain are fragments: an action redraws only the ones it changed (app.review_session).
A decision moves straight to the next chain; Undo reverts this session's last change even after the
queue moved on. Regeneration runs as a background job whose proposals appear on the chain when ready.
"""

from __future__ import annotations

import streamlit as st

from app import review_session as rs
from app.state import db_path, init_state, reviewer_locked
from app.widgets import (
    chain_view,
    changes_view,
    flag_lines,
    history_view,
    plain_text,
    proposals_review,
    show_error,
    verdict_box,
)
from jobs.runtime import outcome_line
from store import review as rv
from store.agreement import agreement
from store.chains import get_chain
from store.db import open_db
from store.flags import decode_flags
from store.jobs import Job
from store.models import CHAIN_STATUSES
from store.reasons import review_reasons
from store.regenerate import job_proposals, latest_regeneration, regenerating_chains
from store.settings import set_setting
from store.tasks import review_short_instruction, short_proposals

SORT_LABELS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "least_confident": "Checker confidence (least sure first)",
    "most_confident": "Checker confidence (most sure first)",
    "risk": "Risk first (step flags, checker doubt, eval failures)",
    "random": "Random (seeded)",
}
QUEUE_COLUMNS = {
    "id": st.column_config.NumberColumn("id", width="small"),
    "len": st.column_config.NumberColumn("steps", width="small"),
    "status": st.column_config.TextColumn("status", width="medium"),
    "stale": st.column_config.NumberColumn("stale", width="small"),
    "risk": st.column_config.NumberColumn("risk", width="small"),
    "verdict": st.column_config.TextColumn("checker", width="small"),
    "regen": st.column_config.TextColumn(
        "regen", width="small", help="A regeneration job of the chain: running or ready"
    ),
    "first step": st.column_config.TextColumn("first step", width="large"),
}

init_state()
ss = st.session_state
ss.setdefault("review_skipped", [])
ss.setdefault("review_seen", {})  # chain id -> the version this session loaded (optimistic locking)
ss.setdefault("review_offset", 0)


def plural(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def sidebar_filter(choices: dict, double: bool) -> rv.QueueFilter:
    sb = st.sidebar
    # Each browser session names its reviewer (several annotators can share one server and database).
    locked = reviewer_locked()  # a login fixes the name
    help_text = "Your login name" if locked else "Recorded on every edit and decision"
    name = sb.text_input("Reviewing as", value=rs.me(), key="review_name", help=help_text, disabled=locked)
    if not locked and name.strip() and name.strip() != rs.me():
        ss["reviewer"] = name.strip()
    statuses = sb.multiselect("Status", CHAIN_STATUSES, default=list(rv.OPEN_STATUSES))
    lengths = sb.multiselect("Chain length", choices["length"])
    pick = {
        k: sb.selectbox(k.title(), ["(any)", *choices[k]])
        for k in ("category", "verdict", "source", "reviewer")
    }
    stale = sb.selectbox("Stale steps", ["(any)", "with stale steps", "without"])
    flag_kind = sb.selectbox("Step flag", ["(any)", *choices.get("flag_kind", [])], key="flag_kind")
    search = sb.text_input("Search text (or #id)", key="search")
    sort = sb.selectbox("Sort", list(SORT_LABELS), format_func=SORT_LABELS.get)
    seed = int(sb.number_input("Seed", value=0, step=1)) if sort == "random" else 0
    return rv.QueueFilter(
        statuses=tuple(statuses),
        lengths=tuple(lengths),
        **{k: (None if v == "(any)" else v) for k, v in pick.items()},
        stale={"(any)": None, "with stale steps": True, "without": False}[stale],
        flag_kind=None if flag_kind == "(any)" else flag_kind,
        search=search,
        sort=sort,
        seed=seed,
        pending_for=rs.me() if double else None,
    )


def sidebar_bulk(db, f: rv.QueueFilter, double: bool) -> None:
    sb = st.sidebar
    if sb.toggle("Double review (two reviewers per chain)", value=double, key="double_review") != double:
        set_setting(db, rv.DOUBLE_REVIEW_KEY, "0" if double else "1")
        st.rerun()
    with sb:
        agreement_panel(double)
    with sb.expander("Bulk accept or reject the filtered set"):
        ids = rv.queue_ids(db, f)
        decision = st.radio("Decision", ["accept", "reject"], horizontal=True, key="bulk_decision")
        sure = st.checkbox(f"Yes, {decision} all {len(ids)} chains that match the filters", key="bulk_sure")
        st.button(
            f"{decision.title()} {len(ids)} chains",
            disabled=not (sure and ids),
            key="bulk_go",
            on_click=rs.on_bulk,
            args=(len(ids), decision),
        )


@st.fragment(key=rs.AGREEMENT)
def agreement_panel(double: bool) -> None:
    """Agreement between reviewers (double review); a decision redraws it."""
    if not double:
        return
    with open_db(db_path()) as db:
        a = agreement(db)
    st.metric(
        "Agreement",
        "-" if a.percent is None else f"{a.percent:.0%}",
        help=f"{a.n_pairs} chains decided twice",
    )
    st.metric(
        "Cohen's kappa",
        "-" if a.kappa is None else f"{a.kappa:.2f}",
        help=f"{a.pending} await a second reviewer",
    )


@st.fragment(key=rs.COUNTS)
def status_counts() -> None:
    with open_db(db_path()) as db:
        counts = rv.status_counts(db)
    for col, (status, n) in zip(st.columns(len(counts)), counts.items()):
        col.metric(status.replace("_", " "), n)


@st.fragment(key=rs.QUEUE)
def queue_panel() -> None:
    """The queue page as a full-width table with a picker and paging; keeps ``review_current`` on it."""
    with open_db(db_path()) as db:
        total, capped = rv.queue_count(db, rs.current_filter())
        rows = rs.page_rows(db)
        regen = regenerating_chains(db, [r.id for r in rows])
    first = ss["review_offset"] + 1
    where = f"{first}-{first + len(rows) - 1} of {total}{'+' if capped else ''}" if rows else "empty"
    with st.expander(f"Queue: {where}", expanded=True):
        if not rows:
            ss["review_current"] = None
            st.info("Nothing to review with these filters.")
        else:
            queue_table(rows, regen)
        prev, nxt = st.columns(2)
        prev.button(
            "◀ Previous page",
            disabled=ss["review_offset"] == 0,
            shortcut="Left",
            key="prev_page",
            on_click=rs.on_page,
            args=(-1,),
        )
        nxt.button(
            "Next page ▶",
            disabled=len(rows) < rs.PAGE_SIZE,
            shortcut="Right",
            key="next_page",
            on_click=rs.on_page,
            args=(1,),
        )
    if ss["review_skipped"]:
        st.button("Bring back skipped chains", key="unskip", on_click=rs.on_unskip)


def queue_table(rows: list[rv.QueueRow], regen: dict[int, str]) -> None:
    table = [
        {
            "id": r.id,
            "len": r.length,
            "status": r.status.replace("_", " "),
            "stale": r.n_stale,
            "risk": r.risk,
            "verdict": r.verdict,
            "regen": regen.get(r.id, ""),
            "first step": r.preview,
        }
        for r in rows
    ]
    st.dataframe(table, hide_index=True, height=260, width="stretch", column_config=QUEUE_COLUMNS)
    ids = [r.id for r in rows]
    if ss.get("review_current") not in ids:
        ss["review_current"] = ids[0]
    # The picker follows review_current (decisions and undo move it); picking sets it in a callback.
    ss["review_pick"] = ss["review_current"]
    labels = {r.id: f"#{r.id} · {plural(r.length)} · {r.status}" for r in rows}
    st.selectbox("Open chain", ids, format_func=labels.get, key="review_pick", on_change=rs.on_pick)


@st.fragment(key=rs.CHAIN)
def chain_panel() -> None:
    if flash := ss.pop("review_flash", None):
        getattr(st, flash[0])(flash[1])
    chain_id = ss.get("review_current")
    if chain_id is None:
        return
    with open_db(db_path()) as db:
        chain = get_chain(db, chain_id)
        if chain is None:
            st.info("This chain no longer exists.")
            return
        comp = rv.composition_info(db, chain.composition_id)
        history = rv.chain_history(db, chain_id)
        reviews = rv.chain_reviews(db, chain_id)
        regen_job = latest_regeneration(db, chain_id)
    seen = ss["review_seen"].setdefault(chain_id, chain.version)
    st.subheader(f"Chain #{chain.id} · {plural(chain.length)} · {chain.status}")
    show_changes_since(chain, seen)
    if reasons := review_reasons(chain, comp):
        st.caption("Why this chain needs a look")
        st.text("\n".join(f"• {r}" for r in reasons))
    verdict_box(comp)
    decision_bar(chain, comp, seen)
    regeneration(chain, regen_job)
    chain_view(
        chain,
        key=f"c{chain.id}v{seen}",
        on_action=lambda step, action: rs.on_step_action(chain.id, seen, chain.length, step, action),
    )
    history_view(history, reviews)


def show_changes_since(chain, seen: int) -> None:
    """A conflict this session ran into, or a change someone else made since the chain was opened."""
    conflict = ss.get("review_conflict")
    if conflict is not None and conflict.chain_id != chain.id:
        ss.pop("review_conflict")  # it was about a chain no longer on screen
        conflict = None
    if conflict is not None:
        show_error(conflict)
        changes_view(conflict.changes)
        st.button(
            "Reload chain", type="primary", key="reload_conflict", on_click=rs.on_reload, args=(chain.id,)
        )
    elif chain.version != seen:
        st.warning(f"Someone changed this chain since you opened it (version {seen} -> {chain.version}).")
        st.button("Reload chain", key="reload_changed", on_click=rs.on_reload, args=(chain.id,))


def decision_bar(chain, comp: dict | None, seen: int) -> None:
    # (label, shortcut, key, help, callback, its arguments): one button each, the reason box last.
    buttons = [
        ("Accept", "A", "accept", None, rs.on_decide, (chain.id, "accept", seen)),
        ("Reject", "X", "reject", None, rs.on_decide, (chain.id, "reject", seen)),
        ("Skip", "S", "skip", None, rs.on_decide, (chain.id, "skip", seen)),
        ("Undo", "U", "undo", "Undo your last edit or decision", rs.on_undo, (chain.id, seen)),
        ("◀ Prev", "K", "prev_chain", "Previous chain on this page (K)", rs.on_move, (chain.id, -1)),
        ("Next ▶", "J", "next_chain", "Next chain on this page (J)", rs.on_move, (chain.id, 1)),
    ]
    cols = st.columns([1] * len(buttons) + [3])
    for col, (label, shortcut, key, help_, on_click, args) in zip(cols, buttons):
        kind = "primary" if key == "accept" else "secondary"
        col.button(label, type=kind, shortcut=shortcut, key=key, help=help_, on_click=on_click, args=args)
    cols[6].selectbox(
        "Reject reason", rv.REJECT_TAGS, format_func=lambda t: t or "(no reason)", key="reject_tag"
    )
    if comp and comp["n_chains"] > 1:
        st.button(
            f"Reject the whole composition ({comp['n_chains']} chains)",
            key="reject_composition",
            on_click=rs.on_reject_composition,
            args=(comp["id"], comp["n_chains"]),
        )


def regeneration(chain, job: Job | None) -> None:
    """Start regenerating the stale steps, follow the job, then keep or discard each proposal."""
    if job is None:
        if chain.has_stale:
            st.button(
                "Regenerate stale steps",
                shortcut="G",
                key="regen",
                on_click=rs.on_regenerate,
                args=(chain.id,),
            )
        return
    # While the job runs, only this panel polls; a finished job's proposals stay until applied or discarded.
    st.fragment(run_every=1.0 if job.active else None)(regeneration_job)(chain.id, job.id)


def regeneration_job(chain_id: int, job_id: int) -> None:
    from jobs.runtime import get

    with open_db(db_path()) as db:
        job = get(db, job_id)
    with st.container(border=True):
        if job.active:
            st.caption(f"Regenerating the stale steps (job #{job.id}): {job.message or job.status}")
            st.progress(job.progress, text=f"{job.done} of {job.total or '?'} steps")
            st.button(
                "Cancel", key=f"regen_cancel_{job.id}", on_click=rs.on_cancel_regeneration, args=(job.id,)
            )
        elif job.status == "succeeded":
            st.subheader("Regenerated outputs: keep or discard each")
            proposals_review(job_proposals(job), key=f"keep_{job.id}")
            left, right = st.columns(2)
            left.button(
                "Apply",
                type="primary",
                key="apply_regen",
                on_click=rs.on_apply_regeneration,
                args=(job.id, chain_id),
            )
            right.button(
                "Discard all", key="discard_regen", on_click=rs.on_discard_regeneration, args=(job.id,)
            )
        else:
            st.warning(outcome_line(job))
            right, left = st.columns(2)
            right.button("Dismiss", key="discard_regen", on_click=rs.on_discard_regeneration, args=(job.id,))
            left.button("Try again", key="regen", on_click=rs.on_regenerate, args=(chain_id,))


@st.fragment
def short_instruction_proposals() -> None:
    """The LLM's short instructions awaiting review: accept (as typed) or reject, flagged ones first."""
    with open_db(db_path()) as db:
        proposals = short_proposals(db, limit=10)
    if not proposals:
        return
    with st.expander(f"Short instructions to review ({len(proposals)}{'+' if len(proposals) == 10 else ''})"):
        st.caption(
            "A chain step uses a flagged proposal only once it is accepted; a rejected one is never asked again."
        )
        for task in proposals:
            with st.container(border=True):
                st.caption(f"Task #{task.id}: original instruction")
                plain_text(task.instruction)
                flag_lines(decode_flags(task.short_flags))
                st.text_input("Short instruction", value=task.short_instruction or "", key=f"short_{task.id}")
                left, right = st.columns(2)
                # Callbacks run before the fragment redraws, so a decided proposal is gone at once.
                left.button(
                    "Accept", key=f"short_accept_{task.id}", on_click=_decide_short, args=(task.id, "accept")
                )
                right.button(
                    "Reject", key=f"short_reject_{task.id}", on_click=_decide_short, args=(task.id, "reject")
                )


def _decide_short(task_id: int, decision: str) -> None:
    text = ss.get(f"short_{task_id}") if decision == "accept" else None
    rs.run_action(review_short_instruction, task_id, decision, text=text)


st.title("Review")
with open_db(db_path()) as conn:
    is_double = rv.double_review_enabled(conn)
    ss["review_filter"] = sidebar_filter(rv.filter_choices(conn), is_double)
    if ss.get("review_filter_was") != ss["review_filter"]:
        ss["review_filter_was"] = ss["review_filter"]
        ss["review_offset"] = 0  # a new filter starts at its first page
    sidebar_bulk(conn, rs.current_filter(), is_double)
status_counts()
queue_panel()
chain_panel()
short_instruction_proposals()
