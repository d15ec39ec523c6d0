"""Reusable page pieces. User and LLM text is always shown as text, never as HTML or markdown."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import streamlit as st

from app.text_diff import word_diff_text
from store.config import FieldSpec
from store.errors import CoiError
from store.flags import decode_flags
from store.models import Chain, Step

T = TypeVar("T")


def show_error(exc: CoiError) -> None:
    st.error(exc.message + (f"\n\n{exc.hint}" if exc.hint else ""), icon="⚠️")


def guarded(fn: Callable[..., T], *args, **kwargs) -> T | None:
    """Call ``fn``; show a CoiError on the page instead of crashing it."""
    try:
        return fn(*args, **kwargs)
    except CoiError as exc:
        show_error(exc)
        return None


def config_widget(spec: FieldSpec, value, key: str):
    """One form widget for a config field (``store.config.FieldSpec``), chosen by its kind."""
    label, help_ = spec.title, spec.help
    if spec.kind == "bool":
        return st.checkbox(label, value=value, help=help_, key=key)
    if spec.kind == "choice":
        return st.selectbox(label, spec.choices, index=spec.choices.index(value), help=help_, key=key)
    if spec.kind == "int":
        return st.number_input(label, value=int(value), step=1, help=help_, key=key)
    if spec.kind == "float":
        return st.number_input(label, value=float(value), format="%g", help=help_, key=key)
    if spec.kind in ("int_list", "str_list"):
        return st.text_input(label, value=",".join(map(str, value)), help=help_, key=key)
    return st.text_input(label, value="" if value is None else str(value), help=help_, key=key)


def plain_text(text: str, *, height: int | None = None, key: str | None = None) -> None:
    """Show user or model text literally: st.code never interprets HTML or markdown."""
    st.code(text or "", language=None, wrap_lines=True, height=height)


# ------------------------------------------------------------------------------------- review widgets

ORIGIN_COLORS = {"gold": "orange", "llm": "blue", "human": "green"}
ORIGIN_LABELS = {"gold": "gold", "llm": "LLM", "human": "human"}


@dataclass(frozen=True)
class StepAction:
    """What the reviewer asked for on one step card: ``save`` (with text and reason) or ``confirm``."""

    kind: str
    position: int
    text: str = ""
    reason: str = ""


def verdict_box(composition: dict | None) -> None:
    """The checker's verdict (a fixed word), its confidence, and its reason shown literally."""
    if not composition:
        st.caption("No checker verdict (imported or hand-made chain).")
        return
    # Badge labels render markdown, so only word characters of the verdict go into one.
    verdict = re.sub(r"[^\w .-]", "", str(composition.get("verdict") or "none"))[:30]
    color = {"yes": "green", "fits": "green", "no": "red"}.get(str(verdict).lower(), "gray")
    conf = composition.get("confidence")
    cols = st.columns([1, 1, 4])
    cols[0].badge(f"checker: {verdict}", color=color)
    if conf is not None:
        cols[1].badge(f"confidence {conf:.2f}", color="gray")
    cols[2].caption(f"Composition #{composition['id']} · {composition.get('n_chains', 1)} chain(s)")
    if composition.get("reason"):
        st.text("Checker's reason:")
        plain_text(composition["reason"])


def chain_view(
    chain: Chain, *, key: str = "chain", on_action: Callable[[Step, StepAction], None] | None = None
) -> None:
    """The chain's steps as connected cards: instruction -> input -> output -> next step's input.

    The view opens at the first flagged step: the unflagged steps before it fold into one expander.
    With ``on_action``, each card has an editor whose Save or Keep calls ``on_action(step, action)``
    as a widget callback (before the page redraws); without it the view is read-only.
    """
    first_flagged = next((s.position for s in chain.steps if decode_flags(s.flag)), None)
    folded = (
        st.expander(f"Steps 1-{first_flagged - 1} (no flags)")
        if first_flagged and first_flagged > 1
        else None
    )
    for step in chain.steps:
        previous = chain.steps[step.position - 2] if step.position > 1 else None
        with folded if folded is not None and step.position < first_flagged else st.container():
            _step_card(step, chain.length, previous, key=f"{key}_{step.position}", on_action=on_action)
            if step.position < chain.length:
                st.caption(f"⬇ the output of step {step.position} is the input of step {step.position + 1}")


def flag_lines(flags: list[dict]) -> None:
    """One line per check flag, kind and reason, as text (a reason may quote model output)."""
    for flag in flags:
        st.text(f"🚩 {flag['kind'].replace('_', ' ')}: {flag.get('reason', '')}")


LONG_TEXT_CHARS, LONG_TEXT_LINES = 400, 6


def _is_long(text: str) -> bool:
    return len(text or "") > LONG_TEXT_CHARS or (text or "").count("\n") >= LONG_TEXT_LINES


def _step_card(step: Step, n: int, previous: Step | None, *, key: str, on_action) -> None:
    with st.container(border=True):
        head = st.columns([2, 1, 1, 3])
        head[0].markdown(f"**Step {step.position} of {n}**")
        head[1].badge(
            ORIGIN_LABELS.get(step.origin, step.origin), color=ORIGIN_COLORS.get(step.origin, "gray")
        )
        if step.stale:
            head[2].badge("stale", icon="⚠️", color="red")
        flags = decode_flags(step.flag)
        if flags:
            head[3].badge(f"{len(flags)} flag{'s' if len(flags) > 1 else ''}", icon="🚩", color="violet")
            flag_lines(flags)
        st.caption("Instruction")
        plain_text(step.instruction)
        # An input that is the previous step's output was just shown there: it is not repeated.
        if previous is None or step.input != previous.output:
            label = "Input" if previous is None else "Input (differs from the previous output!)"
            if _is_long(step.input):
                with st.expander(f"{label}: {len(step.input)} characters"):
                    plain_text(step.input)
            else:
                st.caption(label)
                plain_text(step.input)
        st.caption("Output")
        plain_text(step.output, height=240 if _is_long(step.output) else None)
        if step.stale:
            st.warning(
                "Stale: an earlier step changed, so this step's input changed. "
                "Regenerate, edit, or confirm it as is."
            )
        if on_action is not None:
            _step_editor(step, key, on_action)


def _step_editor(step: Step, key: str, on_action) -> None:
    if step.stale:
        st.button(
            "Keep this output as is",
            key=f"{key}_confirm",
            on_click=lambda: on_action(step, StepAction("confirm", step.position)),
        )
    with st.expander(f"✏️ Edit step {step.position} output"):
        with st.form(key=f"{key}_form", border=False):
            st.text_area("New output", value=step.output, key=f"{key}_text", height=150)
            st.text_input("Reason (optional)", key=f"{key}_reason")

            def save() -> None:  # a form's values are in session state when its callback runs
                text, reason = st.session_state[f"{key}_text"], st.session_state[f"{key}_reason"]
                on_action(step, StepAction("save", step.position, text, reason))

            st.form_submit_button(
                f"Save step {step.position}", type="primary", key=f"{key}_save", on_click=save
            )


def step_diff(old: str, new: str, *, title: str = "") -> None:
    """Old and new output as one word diff ([-removed-] {+added+}), literal text."""
    if title:
        st.markdown(f"**{title}**")
    if old == new:
        st.caption("No change.")
        plain_text(new)
        return
    st.caption("Word diff: [-removed-] {+added+}")
    plain_text(word_diff_text(old, new))


def proposals_review(proposals: list, *, key: str) -> dict[int, bool]:
    """Each regenerated output as a word diff with a keep checkbox; returns position -> keep.

    "Keep" starts unticked when the new output is empty, repeats its input or the old output.
    """
    keep = {}
    for p in proposals:
        step_diff(p.old_output, p.new_output, title=f"Step {p.position}")
        if p.error:
            st.error(f"Step {p.position}: the LLM call failed; the old output stays.")
            plain_text(p.error)
        elif p.why_not_keep:
            st.caption(f"Not ticked: {p.why_not_keep}.")
        keep[p.position] = st.checkbox(
            f"Keep the new output of step {p.position}",
            value=p.why_not_keep is None,
            key=f"{key}_{p.position}",
            disabled=bool(p.error),
        )
    return keep


def changes_view(changes: list) -> None:
    """Who changed which field of a chain, with the new value shown literally (edit rows)."""
    for edit in changes:
        where = f"step {edit.position} " if edit.position else ""
        st.text(f"{edit.author or 'someone'} changed {where}{edit.field} at {edit.at[:19]}:")
        plain_text(edit.new or "")


def history_view(history: list, reviews: list[dict]) -> None:
    """A chain's edit log and decisions (tables render text literally)."""
    with st.expander(f"History ({len(history)} edits, {len(reviews)} decisions)"):
        st.dataframe([vars(e) for e in history], hide_index=True)
        st.dataframe(reviews, hide_index=True)
