"""Review page: the queue, one chain at a time, edits, regeneration, decisions, history and agreement.

Layout: filters in the sidebar, the queue page (table + picker) on the left, the open chain on the right
with its decision bar on top (Accept A, Reject X, Skip S, Undo U, Regenerate G; R is reserved by
Streamlit). A decision moves straight to the next chain; Undo reverts this session's last change even
after the queue moved on. All changes go through store.review, with optimistic locking on the version
this session loaded, so a concurrent change shows as a conflict with the other reviewer's edit.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

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
from store import review as rv
from store.agreement import agreement
from store.chains import get_chain
from store.db import open_db
from store.errors import CoiError
from store.flags import decode_flags
from store.models import CHAIN_STATUSES
from store.reasons import review_reasons
from store.regenerate import apply_regeneration, propose_regeneration
from store.settings import set_setting
from store.tasks import review_short_instruction, short_proposals

PAGE_SIZE = 20
SORT_LABELS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "least_confident": "Checker confidence (least sure first)",
    "most_confident": "Checker confidence (most sure first)",
    "risk": "Risk first (step flags, checker doubt, eval failures)",
    "random": "Random (seeded)",
}

init_state()
ss = st.session_state
ss.setdefault("review_skipped", [])
ss.setdefault("review_seen", {})  # chain id -> the version this session loaded (optimistic locking)
ss.setdefault("review_offset", 0)
me = ss["reviewer"]


def plural(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def flash(kind: str, message: str) -> None:
    ss["review_flash"] = (kind, message)


def run_action(fn, *args, **kwargs):
    """Run a store change; a conflict or user error is kept for the next run. Returns its result or None."""
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


def undo(current_id: int, seen: int) -> None:
    """Undo this session's last change (a decision moves the queue on, so it may be another chain).
    A bulk decision is one change: every chain it changed goes back."""
    last = ss.get("review_last") or [(current_id, seen)]
    undone = []
    for chain_id, version in last:
        if run_action(rv.undo_last, chain_id, author=me, expected_version=version) is not None:
            undone.append(chain_id)
            ss["review_seen"].pop(chain_id, None)
            if chain_id in ss["review_skipped"]:
                ss["review_skipped"].remove(chain_id)
    if undone:
        ss.pop("review_last", None)
        ss["review_current"] = undone[0]
        where = f"chain #{undone[0]}" if len(undone) == 1 else f"{len(undone)} chains"
        flash("success", f"Undid the last change on {where}.")
    st.rerun()


def sidebar_filter(choices: dict, double: bool) -> rv.QueueFilter:
    sb = st.sidebar
    # Each browser session names its reviewer (several annotators can share one server and database).
    locked = reviewer_locked()  # a login fixes the name
    help_text = "Your login name" if locked else "Recorded on every edit and decision"
    name = sb.text_input("Reviewing as", value=me, key="review_name", help=help_text, disabled=locked)
    if not locked and name.strip() and name.strip() != me:
        ss["reviewer"] = name.strip()
        st.rerun()
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
        pending_for=me if double else None,
        exclude_ids=tuple(ss["review_skipped"]),
    )


def show_queue(db, f: rv.QueueFilter) -> int | None:
    """The queue page as a table and a picker; returns the chain to show."""
    total, capped = rv.queue_count(db, f)
    rows = rv.queue_page(db, f, offset=ss["review_offset"], limit=PAGE_SIZE)
    first = ss["review_offset"] + 1
    st.caption(f"{first}-{first + len(rows) - 1} of {total}{'+' if capped else ''} in the queue")
    if not rows:
        st.info("Nothing to review with these filters.")
        return None
    ids = [r.id for r in rows]
    table = [
        {
            "id": r.id,
            "len": r.length,
            "status": r.status,
            "stale": r.n_stale,
            "risk": r.risk,
            "verdict": r.verdict,
            "first step": r.preview,
        }
        for r in rows
    ]
    st.dataframe(table, hide_index=True, height=260)
    if ss.get("review_current") not in ids:
        ss["review_current"] = ids[0]
    # The picker follows review_current (decisions and undo move it); picking sets it in a callback.
    ss["review_pick"] = ss["review_current"]
    labels = {r.id: f"#{r.id} · {plural(r.length)} · {r.status}" for r in rows}
    st.selectbox(
        "Open chain",
        ids,
        format_func=labels.get,
        key="review_pick",
        on_change=lambda: ss.update(review_current=ss["review_pick"]),
    )
    prev, nxt = st.columns(2)
    if prev.button("◀ Previous page", disabled=ss["review_offset"] == 0, shortcut="Left", key="prev_page"):
        ss["review_offset"] = max(0, ss["review_offset"] - PAGE_SIZE)
        st.rerun()
    if nxt.button("Next page ▶", disabled=len(rows) < PAGE_SIZE, shortcut="Right", key="next_page"):
        ss["review_offset"] += PAGE_SIZE
        st.rerun()
    return ss["review_current"]


def show_conflict(chain_id: int) -> None:
    exc: rv.ConflictError = ss["review_conflict"]
    show_error(exc)
    changes_view(exc.changes)
    if st.button("Reload chain", type="primary", key="reload_conflict"):
        reload(chain_id)


def reload(chain_id: int) -> None:
    ss.pop("review_conflict", None)
    ss.pop("review_proposals", None)
    ss["review_seen"].pop(chain_id, None)
    st.rerun()


def decision_bar(chain, comp: dict | None, seen: int) -> None:
    cols = st.columns([1, 1, 1, 1, 2])
    if cols[0].button("Accept", type="primary", shortcut="A", key="accept"):
        decide(chain.id, "accept", seen)
    tag = cols[4].selectbox(
        "Reject reason", rv.REJECT_TAGS, format_func=lambda t: t or "(no reason)", key="reject_tag"
    )
    if cols[1].button("Reject", shortcut="X", key="reject"):
        decide(chain.id, "reject", seen, tag)
    if cols[2].button("Skip", shortcut="S", key="skip"):
        decide(chain.id, "skip", seen)
    if cols[3].button("Undo", shortcut="U", key="undo", help="Undo your last edit or decision"):
        undo(chain.id, seen)
    if (
        comp
        and comp["n_chains"] > 1
        and st.button(f"Reject the whole composition ({comp['n_chains']} chains)", key="reject_composition")
    ):
        if run_action(rv.reject_composition, comp["id"], reviewer=me, reason=tag):
            flash("success", f"Rejected all {comp['n_chains']} chains of composition #{comp['id']}.")
        st.rerun()


def decide(chain_id: int, decision: str, seen: int, reason: str = "") -> None:
    if decision == "skip":
        ok = run_action(rv.decide, chain_id, decision, reviewer=me, expected_version=seen) is not None
        if ok:
            ss["review_skipped"].append(chain_id)
    else:
        ok = change(rv.decide, chain_id, decision, reviewer=me, expected_version=seen, reason=reason)
    if ok:
        ss.pop("review_current", None)
        flash("success", f"Chain #{chain_id}: {decision}.")
    st.rerun()


def regenerate(chain) -> None:
    """Propose new outputs for the stale steps through the configured LLM (nothing saved yet)."""
    from pipeline.embedded import llm_endpoint
    from pipeline.generate import generate_output
    from pipeline.llm import LLMClient
    from pipeline.status import page_config

    try:
        with open_db(db_path()) as db:
            config = page_config(db, ss.get("llm_api_key", ""))
        # With no endpoint configured, the embedded model is served for the duration (Settings key wins).
        with st.spinner("Regenerating through the LLM..."), llm_endpoint(config, log=lambda m: None) as live:
            client = LLMClient(live, db_path())
            props = propose_regeneration(chain, lambda i, t: generate_output(client, i, t))
        ss["review_proposals"] = {"chain_id": chain.id, "items": props}
    except CoiError as exc:
        flash("error", str(exc))
    st.rerun()


def show_proposals(chain, seen: int) -> None:
    st.subheader("Regenerated outputs: keep or discard each")
    keep = proposals_review(ss["review_proposals"]["items"])
    left, right = st.columns(2)
    if left.button("Apply", type="primary", key="apply_regen"):
        items = ss["review_proposals"]["items"]
        if change(apply_regeneration, chain.id, items, keep, author=me, expected_version=seen):
            ss.pop("review_proposals", None)
            flash(
                "success",
                "Saved the kept outputs. Discarded steps stay stale until you confirm or edit them.",
            )
        st.rerun()
    if right.button("Discard all", key="discard_regen"):
        ss.pop("review_proposals", None)
        st.rerun()


def on_step_action(chain, action, seen: int) -> None:
    step = chain.steps[action.position - 1]
    if action.kind == "save" and action.text == step.output and not step.stale:
        flash("info", f"Step {action.position} is unchanged; nothing saved.")
        st.rerun()
    if action.kind == "save":
        ok = change(
            rv.save_step_output,
            chain.id,
            action.position,
            action.text,
            author=me,
            expected_version=seen,
            reason=action.reason,
        )
        later = (
            " The later steps are stale until regenerated or confirmed."
            if action.position < chain.length
            else ""
        )
        message = f"Saved step {action.position}.{later}"
    else:
        ok = change(rv.confirm_step, chain.id, action.position, author=me, expected_version=seen)
        message = f"Step {action.position} confirmed as is."
    if ok:
        flash("success", message)
    st.rerun()


def show_chain(chain_id: int) -> None:
    with open_db(db_path()) as db:
        chain = get_chain(db, chain_id)
        if chain is None:
            st.info("This chain no longer exists.")
            return
        comp = rv.composition_info(db, chain.composition_id)
        history = rv.chain_history(db, chain_id)
        reviews = rv.chain_reviews(db, chain_id)
    seen = ss["review_seen"].setdefault(chain_id, chain.version)
    st.subheader(f"Chain #{chain.id} · {plural(chain.length)} · {chain.status}")
    if "review_conflict" in ss and ss["review_conflict"].chain_id != chain_id:
        ss.pop("review_conflict")  # it was about a chain no longer on screen
    if "review_conflict" in ss:
        show_conflict(chain_id)
    elif chain.version != seen:
        st.warning(f"Someone changed this chain since you opened it (version {seen} -> {chain.version}).")
        if st.button("Reload chain", key="reload_changed"):
            reload(chain_id)
    reasons = review_reasons(chain, comp)
    if reasons:
        st.caption("Why this chain needs a look")
        st.text("\n".join(f"• {r}" for r in reasons))
    verdict_box(comp)
    decision_bar(chain, comp, seen)
    if chain.has_stale and st.button("Regenerate stale steps", shortcut="G", key="regen"):
        regenerate(chain)
    if ss.get("review_proposals", {}).get("chain_id") == chain.id:
        show_proposals(chain, seen)
    action = chain_view(chain, key=f"c{chain.id}v{seen}")
    if action:
        on_step_action(chain, action, seen)
    history_view(history, reviews)


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
    run_action(review_short_instruction, task_id, decision, text=text)


def bulk_and_agreement(db, f: rv.QueueFilter, double: bool) -> None:
    sb = st.sidebar
    if sb.toggle("Double review (two reviewers per chain)", value=double, key="double_review") != double:
        set_setting(db, rv.DOUBLE_REVIEW_KEY, "0" if double else "1")
        st.rerun()
    if double:
        a = agreement(db)
        sb.metric(
            "Agreement",
            "-" if a.percent is None else f"{a.percent:.0%}",
            help=f"{a.n_pairs} chains decided twice",
        )
        sb.metric(
            "Cohen's kappa",
            "-" if a.kappa is None else f"{a.kappa:.2f}",
            help=f"{a.pending} await a second reviewer",
        )
    with sb.expander("Bulk accept or reject the filtered set"):
        ids = rv.queue_ids(db, f)
        decision = st.radio("Decision", ["accept", "reject"], horizontal=True, key="bulk_decision")
        sure = st.checkbox(f"Yes, {decision} all {len(ids)} chains that match the filters", key="bulk_sure")
        if st.button(f"{decision.title()} {len(ids)} chains", disabled=not (sure and ids), key="bulk_go"):
            out = rv.decide_chains(db, ids, decision, reviewer=me, reason=f"bulk {decision}")
            ss["review_last"] = out.changed  # Undo reverts the whole bulk action
            left = "; ".join(f"{n} {why}" for why, n in out.skipped.items())
            flash(
                "success",
                f"{decision.title()}ed {len(out.changed)} chains" + (f" (left: {left})." if left else "."),
            )
            st.rerun()


st.title("Review")
with open_db(db_path()) as conn:
    is_double = rv.double_review_enabled(conn)
    counts = rv.status_counts(conn)
    queue_filter = sidebar_filter(rv.filter_choices(conn), is_double)
    if ss.get("review_filter_was") != replace(queue_filter, exclude_ids=()):
        ss["review_filter_was"] = replace(queue_filter, exclude_ids=())
        ss["review_offset"] = 0  # a new filter starts at its first page
    bulk_and_agreement(conn, queue_filter, is_double)
for col, (status, n) in zip(st.columns(len(counts)), counts.items()):
    col.metric(status.replace("_", " "), n)
if flash_msg := ss.pop("review_flash", None):
    getattr(st, flash_msg[0])(flash_msg[1])
queue_col, chain_col = st.columns([1, 2])
with queue_col:
    with open_db(db_path()) as conn:
        current_id = show_queue(conn, queue_filter)
    if ss["review_skipped"] and st.button("Bring back skipped chains"):
        ss["review_skipped"] = []
        st.rerun()
with chain_col:
    if current_id is not None:
        show_chain(current_id)
short_instruction_proposals()
