"""The review queue: filtered, sorted, paginated reads that stay fast at 100,000 chains.

Every filter maps to an indexed condition; a page reads its ids first (index-only where it can),
then the details of just those rows; counts stop at a cap. Sorts: newest, oldest, checker confidence
either way, risk first (generation-check flags, checker doubt, eval failures; an indexed column), or
random with a seed (a hash of id and seed, so it is stable and pages never overlap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils

from store.errors import CoiError
from store.flags import flag_kinds
from store.models import CHAIN_STATUSES

SORTS = ("newest", "oldest", "least_confident", "most_confident", "risk", "random")
OPEN_STATUSES = ("proposed", "needs_review")
COUNT_CAP = 1_000


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows and in which order (every field maps to an indexed condition)."""

    statuses: tuple[str, ...] = OPEN_STATUSES
    lengths: tuple[int, ...] = ()
    category: str | None = None
    verdict: str | None = None
    stale: bool | None = None
    reviewer: str | None = None
    source: str | None = None
    search: str = ""
    sort: str = "newest"
    seed: int = 0
    pending_for: str | None = None
    flag_kind: str | None = None
    exclude_ids: tuple[int, ...] = field(default=())


@dataclass
class QueueRow:
    """One line of the queue."""

    id: int
    length: int
    status: str
    version: int
    category: str
    source: str
    reviewer: str | None
    verdict: str | None
    confidence: float | None
    composition_id: int | None
    updated_at: str
    risk: int = 0
    n_stale: int = 0
    preview: str = ""


def _fts_query(text: str) -> str:
    """The user's words as one FTS5 phrase per word (quotes doubled), so no query syntax leaks in."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words)


def _where(f: QueueFilter) -> tuple[str, list]:
    clauses, params = [], []

    def add(sql: str, *values: object) -> None:
        clauses.append(sql)
        params.extend(values)

    if f.statuses:
        add(f"c.status IN ({','.join('?' * len(f.statuses))})", *f.statuses)
    if f.lengths:
        add(f"c.length IN ({','.join('?' * len(f.lengths))})", *f.lengths)
    for col, value in (("category", f.category), ("source", f.source), ("reviewer", f.reviewer)):
        if value:
            add(f"c.{col} = ?", value)
    if f.verdict == "none":
        add("+c.composition_id IN (SELECT id FROM compositions WHERE verdict IS NULL)")
    elif f.verdict:
        # The unary + keeps the planner on the status/id index (newest first, stop after a page)
        # instead of collecting every chain of every matching composition and sorting them.
        add("+c.composition_id IN (SELECT id FROM compositions WHERE verdict = ?)", f.verdict)
    if f.stale is not None:
        add(f"c.id {'' if f.stale else 'NOT '}IN (SELECT chain_id FROM steps WHERE stale = 1)")
    if f.search.strip().lstrip("#").isdigit():
        add("c.id = ?", int(f.search.strip().lstrip("#")))
    elif f.search.strip():
        add(
            "c.id IN (SELECT s.chain_id FROM steps s WHERE s.id IN "
            "(SELECT rowid FROM steps_fts WHERE steps_fts MATCH ?))",
            _fts_query(f.search),
        )
    if f.pending_for:
        add(
            "NOT EXISTS (SELECT 1 FROM reviews r WHERE r.reviewer = ? AND r.chain_id = c.id AND r.decision != 'skip')",
            f.pending_for,
        )
    if f.flag_kind:
        # Reads only flagged steps (a partial index); a legacy plain-text flag is skipped, not an error.
        add(
            "c.id IN (SELECT s.chain_id FROM steps s, json_each(s.flag) j WHERE s.flag IS NOT NULL "
            "AND json_valid(s.flag) AND json_type(s.flag) = 'array' AND json_extract(j.value, '$.kind') = ?)",
            f.flag_kind,
        )
    if f.exclude_ids:
        add(f"c.id NOT IN ({','.join('?' * len(f.exclude_ids))})", *f.exclude_ids)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _seed_mix(seed: int) -> int:
    return (seed * 2654435761 + 0x9E3779B9) % 4294967296


def _order(f: QueueFilter) -> str:
    if f.sort not in SORTS:
        raise CoiError(f"Unknown sort {f.sort!r}", f"Use one of {', '.join(SORTS)}.")
    if f.sort == "oldest":
        return "c.id ASC"
    if f.sort == "least_confident":
        return "co.confidence ASC, co.id, c.id DESC"  # unknown confidence (NULL) counts as least sure
    if f.sort == "most_confident":
        return "co.confidence DESC, co.id DESC, c.id DESC"
    if f.sort == "risk":
        return "c.risk DESC, c.id DESC"
    if f.sort == "random":
        # A multiply-xor-multiply hash of (id, seed): stable per seed, so pages never overlap.
        h = "((c.id * 2654435761) % 4294967296)"
        s = _seed_mix(f.seed)
        return f"((({h} | {s}) - ({h} & {s})) * 2246822519) % 4294967296, c.id"
    return "c.id DESC"


def _from(f: QueueFilter) -> str:
    """Confidence sorts walk compositions by their confidence index (CROSS JOIN fixes that order),
    so a page costs a few index steps; chains without a composition are not listed under them."""
    if f.sort in ("least_confident", "most_confident"):
        return "compositions co CROSS JOIN chains c ON c.composition_id = co.id"
    return "chains c"


def queue_ids(db: sqlite_utils.Database, f: QueueFilter, limit: int = 100_000, offset: int = 0) -> list[int]:
    """Ids of the matching chains in queue order (a page of them, or the filtered set for bulk actions)."""
    where, params = _where(f)
    sql = f"SELECT c.id FROM {_from(f)} {where} ORDER BY {_order(f)} LIMIT ? OFFSET ?"
    return [r[0] for r in db.execute(sql, [*params, int(limit), int(offset)])]


def queue_page(
    db: sqlite_utils.Database, f: QueueFilter, *, offset: int = 0, limit: int = 20
) -> list[QueueRow]:
    """One page of the queue: ids first (index-only where possible), then details for just those."""
    ids = queue_ids(db, f, limit=limit, offset=offset)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = db.execute(
        f"""SELECT c.id, c.length, c.status, c.version, c.category, c.source, c.reviewer, co.verdict,
                   co.confidence, c.composition_id, c.updated_at, c.risk
            FROM chains c LEFT JOIN compositions co ON co.id = c.composition_id WHERE c.id IN ({marks})""",
        ids,
    ).fetchall()
    by_id = {r[0]: QueueRow(*r) for r in rows}
    page = [by_id[i] for i in ids if i in by_id]
    _fill_previews(db, page)
    return page


def _fill_previews(db: sqlite_utils.Database, page: list[QueueRow]) -> None:
    if not page:
        return
    by_id = {r.id: r for r in page}
    marks = ",".join("?" * len(page))
    for cid, position, instruction, stale in db.execute(
        f"SELECT chain_id, position, substr(instruction, 1, 80), stale FROM steps WHERE chain_id IN ({marks})",
        list(by_id),
    ):
        row = by_id[cid]
        row.n_stale += int(stale)
        if position == 1:
            row.preview = instruction
    return


def queue_count(db: sqlite_utils.Database, f: QueueFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many chains match, counting at most ``cap`` (so counts stay cheap on huge tables).

    Returns:
        (count, True if the count hit the cap).
    """
    where, params = _where(f)
    n = db.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {_from(f)} {where} LIMIT ?)", [*params, cap + 1]
    ).fetchone()[0]
    return min(n, cap), n > cap


def status_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Chains per status (an index-only scan)."""
    counts = dict.fromkeys(CHAIN_STATUSES, 0)
    counts.update(db.execute("SELECT status, count(*) FROM chains GROUP BY status").fetchall())
    return counts


def filter_choices(db: sqlite_utils.Database) -> dict[str, list]:
    """Distinct values for the filter widgets (each from an index)."""

    def distinct(sql: str) -> list:
        return [r[0] for r in db.execute(sql) if r[0] not in (None, "")]

    return {
        "category": distinct("SELECT DISTINCT category FROM chains ORDER BY category"),
        "source": distinct("SELECT DISTINCT source FROM chains ORDER BY source"),
        "reviewer": _distinct_within_status(db, "reviewer"),
        "verdict": distinct("SELECT DISTINCT verdict FROM compositions ORDER BY verdict"),
        "length": _distinct_within_status(db, "length"),
        "flag_kind": flag_kinds(db),
    }


def _distinct_within_status(db: sqlite_utils.Database, column: str) -> list:
    """Distinct values of a column indexed as (status, column): one index seek per value found,
    instead of a scan of every chain (a loose index scan, which SQLite does not do by itself)."""
    values: set = set()
    for status in CHAIN_STATUSES:
        last = None
        while True:
            cond = "" if last is None else f" AND {column} > ?"
            row = db.execute(
                f"SELECT {column} FROM chains WHERE status = ? AND {column} IS NOT NULL{cond} "
                f"ORDER BY {column} LIMIT 1",
                [status] + ([] if last is None else [last]),
            ).fetchone()
            if row is None:
                break
            last = row[0]
            values.add(last)
    return sorted(v for v in values if v != "")
