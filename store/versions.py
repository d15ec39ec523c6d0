"""Dataset versions: immutable, hashed snapshots of chains, split train/test by composition.

A version stores its records in ``dataset_version_items``, so later edits to chains never change it.
Each record is the paper's format plus the per-step lists that training and evaluation use.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

import sqlite_utils

from store.chains import chain_ids, get_chains
from store.coi_format import render_record
from store.db import utcnow
from store.errors import CoiError
from store.hashing import content_hash
from store.models import Chain


@dataclass(frozen=True)
class SplitSpec:
    """Which chains go into a version and how they split.

    Train and test never share a composition. Test may hold longer chains than train, as in the
    paper (train on lengths 1-3, test on 1-5), to measure generalisation to unseen lengths.
    """

    statuses: tuple[str, ...] = ("accepted",)
    train_lengths: tuple[int, ...] = (1, 2, 3)
    test_lengths: tuple[int, ...] = (1, 2, 3, 4, 5)
    test_fraction: float = 0.2
    seed: int = 0
    source: str | None = None


@dataclass
class VersionInfo:
    id: int
    name: str
    content_hash: str
    filter: dict
    split_sizes: dict
    created_at: str
    created_by: str = ""
    path: str | None = None
    extra: dict = field(default_factory=dict)


def chain_record(chain: Chain) -> dict:
    """The paper's record of a chain, with per-step lists for training and evaluation."""
    record = render_record(chain.instructions, chain.input, chain.outputs, chain.meta.get("format"))
    record.update(
        chain_id=chain.id,
        composition_id=chain.composition_id,
        length=chain.length,
        instructions=chain.instructions,
        outputs=chain.outputs,
    )
    return record


def split_by_composition(chains: list[Chain], spec: SplitSpec) -> dict[str, list[Chain]]:
    """Assign whole compositions to train or test; filter each side by its chain lengths."""
    comps = sorted({c.composition_id if c.composition_id is not None else -c.id for c in chains})
    random.Random(spec.seed).shuffle(comps)
    n_test = round(len(comps) * spec.test_fraction)
    if spec.test_fraction > 0 and len(comps) > 1:
        n_test = min(max(n_test, 1), len(comps) - 1)
    test_comps = set(comps[:n_test])
    splits: dict[str, list[Chain]] = {"train": [], "test": []}
    for c in chains:
        comp = c.composition_id if c.composition_id is not None else -c.id
        if comp in test_comps and c.length in spec.test_lengths:
            splits["test"].append(c)
        elif comp not in test_comps and c.length in spec.train_lengths:
            splits["train"].append(c)
    return splits


def create_version(
    db: sqlite_utils.Database, spec: SplitSpec = SplitSpec(), *, name: str = "", created_by: str = ""
) -> int:
    """Freeze the chains that ``spec`` selects into a new version (or return the identical existing one).

    Raises:
        CoiError: if no chain matches, or any selected chain still has stale steps.
    """
    ids = chain_ids(db, statuses=list(spec.statuses), source=spec.source)
    chains = get_chains(db, ids)
    if not chains:
        raise CoiError("No chains match this filter", "Accept some chains in Review first.")
    stale = [c.id for c in chains if c.has_stale]
    if stale:
        raise CoiError(f"{len(stale)} chain(s) have stale steps, e.g. #{stale[0]}", "Regenerate them first.")
    splits = {k: [chain_record(c) for c in v] for k, v in split_by_composition(chains, spec).items()}
    digest = content_hash(splits)
    existing = db.execute("SELECT id FROM dataset_versions WHERE content_hash = ?", [digest]).fetchone()
    if existing:
        return existing[0]
    sizes = {k: len(v) for k, v in splits.items()}
    with db.atomic():
        vid = db.execute(
            """INSERT INTO dataset_versions (name, content_hash, filter, split_sizes, created_by, created_at)
               VALUES (?,?,?,?,?,?)""",
            [name, digest, json.dumps(asdict(spec)), json.dumps(sizes), created_by, utcnow()],
        ).lastrowid
        db.conn.executemany(
            """INSERT INTO dataset_version_items (version_id, split, position, chain_id, composition_id, length,
               record) VALUES (?,?,?,?,?,?,?)""",
            [
                (
                    vid,
                    split,
                    i,
                    r["chain_id"],
                    r["composition_id"],
                    r["length"],
                    json.dumps(r, ensure_ascii=False),
                )
                for split, records in splits.items()
                for i, r in enumerate(records)
            ],
        )
    return vid


def version_records(
    db: sqlite_utils.Database, version_id: int, split: str, lengths: list[int] | None = None
) -> list[dict]:
    """The frozen records of one split, in order, optionally only some chain lengths."""
    sql = "SELECT record FROM dataset_version_items WHERE version_id = ? AND split = ?"
    params: list = [version_id, split]
    if lengths:
        sql += f" AND length IN ({','.join('?' * len(lengths))})"
        params += list(lengths)
    return [json.loads(r[0]) for r in db.execute(sql + " ORDER BY position", params)]


def _row_to_version(row: dict) -> VersionInfo:
    return VersionInfo(
        id=row["id"],
        name=row["name"],
        content_hash=row["content_hash"],
        filter=json.loads(row["filter"]),
        split_sizes=json.loads(row["split_sizes"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        path=row["path"],
    )


def get_version(db: sqlite_utils.Database, version_id: int) -> VersionInfo | None:
    rows = list(db.query("SELECT * FROM dataset_versions WHERE id = ?", [version_id]))
    return _row_to_version(rows[0]) if rows else None


def list_versions(db: sqlite_utils.Database) -> list[VersionInfo]:
    return [_row_to_version(r) for r in db.query("SELECT * FROM dataset_versions ORDER BY id DESC")]
