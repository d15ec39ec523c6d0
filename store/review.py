"""Review-time queries: the queue, edits with stale propagation, decisions, undo and history.

Every change goes through ``apply_changes``: one transaction that first bumps ``chains.version``
with optimistic locking (``UPDATE chains SET version = version + 1 WHERE id = ? AND version = ?``;
the row count decides), then writes each changed field and an ``edits`` row with its old and new
value. All rows of one change share the version it produced, so undo reverts them together, and
the original LLM output stays recoverable from the edit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlite_utils

from store.db import utcnow
from store.errors import CoiError
from store.flags import refresh_risk
from store.queue import (  # noqa: F401  (re-exported: pages import the queue from here)
    COUNT_CAP,
    OPEN_STATUSES,
    SORTS,
    QueueFilter,
    QueueRow,
    filter_choices,
    queue_count,
    queue_ids,
    queue_page,
    status_counts,
)
from store.settings import get_setting

STEP_FIELDS = ("output", "input", "origin", "stale", "llm_call_id", "flag")
CHAIN_FIELDS = ("status", "reviewer")
DECISIONS = ("accept", "reject", "skip")
REJECT_TAGS = ("", "wrong output", "steps do not chain", "unsafe", "duplicate", "low quality", "other")
DOUBLE_REVIEW_KEY = "review_double"


class ConflictError(CoiError):
    """Someone else changed the chain since this reviewer loaded it.

    Attributes:
        chain_id: The chain.
        expected_version: The version this reviewer saw.
        current_version: The version now stored.
        changes: The edits made since ``expected_version`` (the other reviewer's change).
    """

    def __init__(self, chain_id: int, expected_version: int, current_version: int, changes: list[EditRow]):
        authors = ", ".join(sorted({c.author or "someone" for c in changes})) or "someone"
        super().__init__(
            f"Chain #{chain_id} was changed by {authors} (version {expected_version} -> {current_version}) "
            "since you opened it; your change was not saved.",
            "Look at their change below, then Reload the chain and redo yours if still needed.",
        )
        self.chain_id = chain_id
        self.expected_version = expected_version
        self.current_version = current_version
        self.changes = changes


@dataclass(frozen=True)
class Change:
    """One field to set: a step field when ``position`` is given, else a chain field."""

    field: str
    new: str | None
    position: int | None = None


@dataclass
class EditRow:
    """One row of a chain's edit log."""

    id: int
    chain_id: int
    position: int | None
    field: str
    old: str | None
    new: str | None
    author: str
    reason: str
    at: str
    version: int | None
    undoes: int | None


# ----------------------------------------------------------------------------------------------- changes


def _current_version(db: sqlite_utils.Database, chain_id: int) -> int:
    row = db.execute("SELECT version FROM chains WHERE id = ?", [chain_id]).fetchone()
    if row is None:
        raise CoiError(f"Chain #{chain_id} does not exist", "Reload the queue.")
    return row[0]


def _bump_version(db: sqlite_utils.Database, chain_id: int, expected_version: int) -> int:
    cur = db.execute(
        "UPDATE chains SET version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
        [utcnow(), chain_id, expected_version],
    )
    if cur.rowcount != 1:
        current = _current_version(db, chain_id)
        raise ConflictError(chain_id, expected_version, current, edits_since(db, chain_id, expected_version))
    return expected_version + 1


def _read_field(db: sqlite_utils.Database, chain_id: int, change: Change) -> str | None:
    if change.position is None:
        if change.field not in CHAIN_FIELDS:
            raise ValueError(f"not a chain field: {change.field}")
        row = db.execute(f"SELECT {change.field} FROM chains WHERE id = ?", [chain_id]).fetchone()
    else:
        if change.field not in STEP_FIELDS:
            raise ValueError(f"not a step field: {change.field}")
        row = db.execute(
            f"SELECT {change.field} FROM steps WHERE chain_id = ? AND position = ?",
            [chain_id, change.position],
        ).fetchone()
        if row is None:
            raise CoiError(f"Chain #{chain_id} has no step {change.position}", "Reload the chain.")
    return None if row[0] is None else str(row[0])


def _write_field(db: sqlite_utils.Database, chain_id: int, change: Change) -> None:
    value: object = change.new
    if change.field in ("stale", "llm_call_id") and value is not None:
        value = int(value)
    if change.position is None:
        db.execute(f"UPDATE chains SET {change.field} = ? WHERE id = ?", [value, chain_id])
    else:
        db.execute(
            f"UPDATE steps SET {change.field} = ? WHERE chain_id = ? AND position = ?",
            [value, chain_id, change.position],
        )


def apply_changes(
    db: sqlite_utils.Database,
    chain_id: int,
    changes: Iterable[Change],
    *,
    author: str,
    expected_version: int,
    reason: str = "",
    undoes: int | None = None,
) -> int:
    """Apply field changes to a chain in one transaction, with an edits row per changed field.

    Returns:
        The chain's new version (``expected_version`` itself when nothing actually changed: then the
        transaction is rolled back, so other reviewers see no phantom change).

    Raises:
        ConflictError: if the chain's version is no longer ``expected_version``.
    """
    try:
        return _apply(db, chain_id, changes, author, expected_version, reason, undoes)
    except _NothingChanged:
        return expected_version


class _NothingChanged(Exception):
    pass


def _apply(db, chain_id, changes, author, expected_version, reason, undoes) -> int:
    now = utcnow()
    with db.atomic():
        # The version bump comes first: it takes the write lock, so the reads below are current.
        version = _bump_version(db, chain_id, expected_version)
        written, flags_changed = 0, False
        for change in changes:
            old = _read_field(db, chain_id, change)
            if old == change.new:
                continue
            written += 1
            flags_changed = flags_changed or change.field == "flag"
            _write_field(db, chain_id, change)
            db.execute(
                """INSERT INTO edits (chain_id, position, field, old, new, author, reason, at, version, undoes)
                   VALUES (?,?,?,?,?,?,?,?,?,?)""",
                [
                    chain_id,
                    change.position,
                    change.field,
                    old,
                    change.new,
                    author,
                    reason,
                    now,
                    version,
                    undoes,
                ],
            )
        if not written:
            raise _NothingChanged  # rolls the version bump back
        if flags_changed:  # of a chain's edits, only its flags change its risk
            refresh_risk(db, [chain_id])
    return version


def step_rows(db: sqlite_utils.Database, chain_id: int) -> list[tuple]:
    """(position, input, output, origin, stale) of each step, in order."""
    return db.execute(
        "SELECT position, input, output, origin, stale FROM steps WHERE chain_id = ? ORDER BY position",
        [chain_id],
    ).fetchall()


def save_step_output(
    db: sqlite_utils.Database,
    chain_id: int,
    position: int,
    new_output: str,
    *,
    author: str,
    expected_version: int,
    reason: str = "",
) -> int:
    """A reviewer's correction of step ``position``'s output.

    The step becomes origin ``human`` and not stale; the next step's input becomes the new output;
    every later step is marked stale because its input (directly or through the chain) changed.

    Returns:
        The chain's new version.
    """
    steps = step_rows(db, chain_id)
    if not any(s[0] == position for s in steps):
        raise CoiError(f"Chain #{chain_id} has no step {position}", "Reload the chain.")
    if next(s[2] for s in steps if s[0] == position) == new_output:
        # Unchanged text: at most a confirmation of a stale step; origin and later steps stay as they are.
        changes = [Change("stale", "0", position)]
        return apply_changes(
            db, chain_id, changes, author=author, expected_version=expected_version, reason=reason
        )
    changes = [
        Change("output", new_output, position),
        Change("origin", "human", position),
        Change("stale", "0", position),
        Change("flag", None, position),  # the checks judged the LLM's text, not the reviewer's
    ]
    for pos, *_ in steps:
        if pos == position + 1:
            changes.append(Change("input", new_output, pos))
        if pos > position:
            changes.append(Change("stale", "1", pos))
    return apply_changes(
        db, chain_id, changes, author=author, expected_version=expected_version, reason=reason
    )


def confirm_step(
    db: sqlite_utils.Database, chain_id: int, position: int, *, author: str, expected_version: int
) -> int:
    """The reviewer checked a stale step's output against its new input and keeps it as is."""
    return apply_changes(
        db,
        chain_id,
        [Change("stale", "0", position)],
        author=author,
        expected_version=expected_version,
        reason="confirmed as is",
    )


# --------------------------------------------------------------------------------------- history, undo


def _edit_rows(db: sqlite_utils.Database, sql: str, params: list) -> list[EditRow]:
    cols = "id, chain_id, position, field, old, new, author, reason, at, version, undoes"
    return [EditRow(*r) for r in db.execute(f"SELECT {cols} FROM edits WHERE {sql}", params)]


def chain_history(db: sqlite_utils.Database, chain_id: int) -> list[EditRow]:
    """The chain's whole edit log, oldest first."""
    return _edit_rows(db, "chain_id = ? ORDER BY id", [chain_id])


def edits_since(db: sqlite_utils.Database, chain_id: int, version: int) -> list[EditRow]:
    """Edits that produced versions after ``version`` (what someone else changed)."""
    return _edit_rows(db, "chain_id = ? AND version > ? ORDER BY id", [chain_id, version])


def original_output(db: sqlite_utils.Database, chain_id: int, position: int) -> str | None:
    """The step's output before any edit (the LLM's or the gold one), or None if never edited."""
    row = db.execute(
        "SELECT old FROM edits WHERE chain_id = ? AND position = ? AND field = 'output' ORDER BY id LIMIT 1",
        [chain_id, position],
    ).fetchone()
    return row[0] if row else None


def last_undoable_version(db: sqlite_utils.Database, chain_id: int) -> int | None:
    """The newest edit group that is not an undo and has not been undone (an undo stack)."""
    row = db.execute(
        """SELECT max(version) FROM edits WHERE chain_id = ? AND undoes IS NULL AND version NOT IN
           (SELECT undoes FROM edits WHERE chain_id = ? AND undoes IS NOT NULL)""",
        [chain_id, chain_id],
    ).fetchone()
    return row[0]


def undo_last(db: sqlite_utils.Database, chain_id: int, *, author: str, expected_version: int) -> int:
    """Revert the last edit group exactly (text, origin, stale flags, status); recorded as an edit.

    Raises:
        CoiError: if there is nothing to undo.
    """
    target = last_undoable_version(db, chain_id)
    if target is None:
        raise CoiError(f"Chain #{chain_id} has no edit to undo", "")
    rows = _edit_rows(db, "chain_id = ? AND version = ? ORDER BY id DESC", [chain_id, target])
    changes = [Change(r.field, r.old, r.position) for r in rows]
    return apply_changes(
        db,
        chain_id,
        changes,
        author=author,
        expected_version=expected_version,
        reason=f"undo of version {target}",
        undoes=target,
    )


# ------------------------------------------------------------------------------------------- decisions


def double_review_enabled(db: sqlite_utils.Database) -> bool:
    return get_setting(db, DOUBLE_REVIEW_KEY, "0") == "1"


def _latest_decisions(db: sqlite_utils.Database, chain_id: int) -> dict[str, str]:
    """Each reviewer's latest accept/reject on the chain."""
    out: dict[str, str] = {}
    for reviewer, decision in db.execute(
        "SELECT reviewer, decision FROM reviews WHERE chain_id = ? AND decision != 'skip' ORDER BY id",
        [chain_id],
    ):
        out[reviewer] = decision
    return out


def _status_after(db: sqlite_utils.Database, chain_id: int, decision: str, double: bool) -> str | None:
    if not double:
        return {"accept": "accepted", "reject": "rejected"}[decision]
    decided = _latest_decisions(db, chain_id)
    if len(decided) < 2:
        return None  # waits for a second reviewer
    verdicts = set(decided.values())
    if len(verdicts) > 1:
        return "needs_review"
    return {"accept": "accepted", "reject": "rejected"}[verdicts.pop()]


def stale_positions(db: sqlite_utils.Database, chain_id: int) -> list[int]:
    return [
        r[0]
        for r in db.execute(
            "SELECT position FROM steps WHERE chain_id = ? AND stale = 1 ORDER BY position", [chain_id]
        )
    ]


def decide(
    db: sqlite_utils.Database,
    chain_id: int,
    decision: str,
    *,
    reviewer: str,
    expected_version: int,
    reason: str = "",
    double: bool | None = None,
) -> int:
    """Record a reviewer's decision: a ``reviews`` row, and the status change as an edit.

    In double-review mode the status changes only once two reviewers decided (agreeing: accepted or
    rejected; disagreeing: needs_review).

    Returns:
        The chain's version afterwards.

    Raises:
        CoiError: accepting a chain with stale steps, or an unknown decision.
        ConflictError: the chain changed since ``expected_version``.
    """
    if decision not in DECISIONS:
        raise CoiError(f"Unknown decision {decision!r}", f"Use one of {', '.join(DECISIONS)}.")
    stale = stale_positions(db, chain_id)
    if decision == "accept" and stale:
        raise CoiError(
            f"Chain #{chain_id} cannot be accepted: step(s) {', '.join(map(str, stale))} are stale "
            "(an earlier step changed, so their input changed).",
            "Regenerate from the edited step, or confirm or edit each stale step, then accept.",
        )
    double = double_review_enabled(db) if double is None else double
    with db.atomic():
        db.execute(
            "INSERT INTO reviews (chain_id, reviewer, decision, reason, at) VALUES (?,?,?,?,?)",
            [chain_id, reviewer, decision, reason, utcnow()],
        )
        if decision == "skip":
            return _current_version(db, chain_id)  # skipping changes nothing on the chain
        status = _status_after(db, chain_id, decision, double)
        changes = [Change("reviewer", reviewer)]
        if status:
            changes.insert(0, Change("status", status))
        return apply_changes(
            db,
            chain_id,
            changes,
            author=reviewer,
            expected_version=expected_version,
            reason=reason or decision,
        )


@dataclass
class BulkOutcome:
    """What a bulk decision did: (chain, its new version) per changed chain, and why others were left."""

    changed: list[tuple[int, int]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def decide_chains(
    db: sqlite_utils.Database, ids: list[int], decision: str, *, reviewer: str, reason: str = ""
) -> BulkOutcome:
    """Accept or reject many chains in one transaction, at their current versions.

    Chains already in that state, gone, or (to accept) with stale steps are left as they are and
    counted by reason. The changed versions let Undo revert the whole bulk action as one step.
    """
    if decision not in ("accept", "reject"):
        raise CoiError(f"Unknown bulk decision {decision!r}", "Use accept or reject.")
    target = "accepted" if decision == "accept" else "rejected"
    out = BulkOutcome()

    def skip(why: str) -> None:
        out.skipped[why] = out.skipped.get(why, 0) + 1

    with db.atomic():
        for cid in dict.fromkeys(ids):
            row = db.execute("SELECT version, status FROM chains WHERE id = ?", [cid]).fetchone()
            if row is None:
                skip("gone")
            elif row[1] == target:
                skip(f"already {target}")
            elif decision == "accept" and stale_positions(db, cid):
                skip("stale steps")
            else:
                version = decide(
                    db, cid, decision, reviewer=reviewer, expected_version=row[0], reason=reason, double=False
                )
                out.changed.append((cid, version))
    return out


def reject_chains(db: sqlite_utils.Database, ids: list[int], *, reviewer: str, reason: str = "") -> int:
    """Reject many chains in one transaction (their current versions); returns how many changed."""
    return len(decide_chains(db, ids, "reject", reviewer=reviewer, reason=reason).changed)


def reject_composition(
    db: sqlite_utils.Database, composition_id: int, *, reviewer: str, reason: str = ""
) -> int:
    """Reject every chain of a composition in one action."""
    ids = [r[0] for r in db.execute("SELECT id FROM chains WHERE composition_id = ?", [composition_id])]
    return reject_chains(db, ids, reviewer=reviewer, reason=reason or "composition rejected")


def composition_info(db: sqlite_utils.Database, composition_id: int | None) -> dict | None:
    """The checker's verdict, reason and confidence for a chain's composition."""
    if composition_id is None:
        return None
    row = db.execute(
        "SELECT id, verdict, reason, confidence, task_ids FROM compositions WHERE id = ?", [composition_id]
    ).fetchone()
    if row is None:
        return None
    n = db.execute("SELECT count(*) FROM chains WHERE composition_id = ?", [composition_id]).fetchone()[0]
    return {
        "id": row[0],
        "verdict": row[1],
        "reason": row[2],
        "confidence": row[3],
        "task_ids": json.loads(row[4]) if row[4] else None,
        "n_chains": n,
    }


def chain_reviews(db: sqlite_utils.Database, chain_id: int) -> list[dict]:
    return [
        dict(zip(("reviewer", "decision", "reason", "at"), r))
        for r in db.execute(
            "SELECT reviewer, decision, reason, at FROM reviews WHERE chain_id = ? ORDER BY id", [chain_id]
        )
    ]
