"""Reading a frozen version back: its filter in words, and its train and test rows page by page."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import sqlite_utils

from store.versions import SplitSpec


def describe_filter(saved: dict) -> str:
    """A version's saved filter (its SplitSpec) as one plain sentence per rule."""
    known = {f.name for f in fields(SplitSpec)}
    spec = SplitSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known})
    lines = [f"Chains with status {_words(spec.statuses, 'or')}."]
    if spec.test_source:
        train_from = _words(spec.train_sources, "and") if spec.train_sources else "every other source"
        lines.append(f"Test is exactly the chains of source {spec.test_source!r}, in file order.")
        lines.append(f"Train comes from {train_from}, minus every chain whose composition is in test.")
    else:
        only = f" of source {spec.source!r}" if spec.source else ""
        lines.append(
            f"Chains{only} split by composition: {spec.test_fraction:.0%} of compositions held out for "
            f"test (seed {spec.seed})."
        )
    lines.append(
        f"Train keeps lengths {_lengths(spec.train_lengths)}; test keeps {_lengths(spec.test_lengths)}."
    )
    if spec.task_source:
        lines.append(f"Tasks of source {spec.task_source!r} join train as length-1 chains (CoI1).")
    return "\n".join(lines)


def _words(items, joiner: str) -> str:
    items = [repr(i) if isinstance(i, str) and " " in i else str(i) for i in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def _lengths(lengths) -> str:
    lengths = sorted(lengths)
    if lengths and lengths == list(range(lengths[0], lengths[-1] + 1)) and len(lengths) > 2:
        return f"{lengths[0]}-{lengths[-1]}"
    return _words(lengths, "and") if lengths else "none"


@dataclass(frozen=True)
class BrowsePage:
    total: int  # rows of the split that match the search
    page: int  # the page shown (1-based, clamped to the last one)
    pages: int
    rows: list[dict]  # position, chain_id, length, source, instruction, input, output


def browse_version(
    db: sqlite_utils.Database,
    version_id: int,
    split: str,
    *,
    search: str = "",
    page: int = 1,
    size: int = 50,
) -> BrowsePage:
    """One page of a version's split in file order; ``search`` matches instruction, input or output
    text (case-insensitive), or ``#id`` a chain id. A page past the end shows the last one."""
    where, params = "version_id = ? AND split = ?", [version_id, split]
    term = search.strip()
    if term.startswith("#") and term[1:].isdigit():
        where += " AND chain_id = ?"
        params.append(int(term[1:]))
    elif term:
        where += (
            " AND (instr(lower(json_extract(record, '$.instruction')), lower(?)) "
            "OR instr(lower(json_extract(record, '$.input')), lower(?)) "
            "OR instr(lower(json_extract(record, '$.output')), lower(?)))"
        )
        params += [term] * 3
    (total,) = db.execute(f"SELECT COUNT(*) FROM dataset_version_items WHERE {where}", params).fetchone()
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    rows = db.execute(
        f"SELECT position, chain_id, length, record FROM dataset_version_items WHERE {where} "
        "ORDER BY position LIMIT ? OFFSET ?",
        [*params, size, (page - 1) * size],
    )
    return BrowsePage(total, page, pages, [_browse_row(*row) for row in rows])


def _browse_row(position: int, chain_id: int, length: int, record: str) -> dict:
    rec = json.loads(record)
    return {
        "position": position,
        "chain_id": chain_id,
        "length": length,
        "source": rec.get("source") or "",
        "instruction": rec.get("instruction", ""),
        "input": rec.get("input", ""),
        "output": rec.get("output", ""),
    }
