"""Judge verdicts per step, and how well the judge agrees with the humans who reviewed the same steps.

A row judges one step of one chain: of an eval run's predictions (``eval_run_id``, ``mode``), or of a
generated chain as the LLM wrote it (``eval_run_id`` 0, mode ``generated``). Re-judging replaces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import sqlite_utils

from store.agreement import cohens_kappa, percent_agreement
from store.db import utcnow

GENERATED = "generated"


@dataclass
class Judgement:
    eval_run_id: int
    chain_id: int
    position: int
    mode: str
    step_type: str
    rubric: str
    verdict: str
    reason: str
    model: str = ""
    llm_call_id: int | None = None


_COLS = [f for f in Judgement.__dataclass_fields__]


def save_judgements(db: sqlite_utils.Database, rows: list[Judgement]) -> None:
    now = utcnow()
    with db.atomic():
        db.conn.executemany(
            f"INSERT OR REPLACE INTO judgements ({', '.join(_COLS)}, created_at) "
            f"VALUES ({', '.join('?' * (len(_COLS) + 1))})",
            [(*asdict(r).values(), now) for r in rows],
        )


def judgements_for(db: sqlite_utils.Database, eval_run_id: int, mode: str) -> list[Judgement]:
    sql = f"SELECT {', '.join(_COLS)} FROM judgements WHERE eval_run_id = ? AND mode = ? ORDER BY chain_id, position"
    return [Judgement(*r) for r in db.execute(sql, [eval_run_id, mode])]


def verdict_counts(db: sqlite_utils.Database, eval_run_id: int, mode: str) -> dict[str, int]:
    sql = "SELECT verdict, count(*) FROM judgements WHERE eval_run_id = ? AND mode = ? GROUP BY verdict"
    return dict(db.execute(sql, [eval_run_id, mode]).fetchall())


@dataclass
class JudgeAgreement:
    """The judge against human decisions on the same generated steps (labels: ok / not ok)."""

    n: int
    percent: float | None
    kappa: float | None
    pairs: list[tuple[str, str]]


def human_labels(db: sqlite_utils.Database) -> dict[tuple[int, int], str]:
    """What reviewers said about each LLM-written step: 'not ok' if they edited it or rejected its
    chain, 'ok' if they accepted the chain and left the step as written. Undecided chains say nothing."""
    edited = {
        (cid, pos)
        for cid, pos in db.execute("SELECT DISTINCT chain_id, position FROM edits WHERE field = 'output'")
    }
    labels = {}
    rows = db.execute(
        "SELECT j.chain_id, j.position, c.status FROM judgements j JOIN chains c ON c.id = j.chain_id "
        "WHERE j.mode = ? AND c.status IN ('accepted', 'rejected')",
        [GENERATED],
    )
    for cid, pos, status in rows:
        labels[(cid, pos)] = "not ok" if status == "rejected" or (cid, pos) in edited else "ok"
    return labels


def human_agreement(db: sqlite_utils.Database) -> JudgeAgreement:
    """Percent agreement and Cohen's kappa of the judge (correct = ok; partly or wrong = not ok)."""
    humans = human_labels(db)
    pairs = []
    for cid, pos, verdict in db.execute(
        "SELECT chain_id, position, verdict FROM judgements WHERE mode = ? AND verdict != 'unknown'",
        [GENERATED],
    ):
        if (cid, pos) in humans:
            pairs.append(("ok" if verdict == "correct" else "not ok", humans[(cid, pos)]))
    return JudgeAgreement(len(pairs), percent_agreement(pairs), cohens_kappa(pairs), pairs)
