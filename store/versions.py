"""Dataset versions: immutable, hashed snapshots of chains, split train/test by composition.

A version stores its records in ``dataset_version_items``, so later edits to chains never change it.
Each record is the paper's format plus the per-step lists that training and evaluation use.
"""

from __future__ import annotations

import io
import json
import random
import sqlite3
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlite_utils

from store.atomic import staged_dir, staged_files, write_error
from store.chains import chain_ids, get_chains
from store.coi_format import target_text
from store.db import utcnow
from store.errors import CoiError
from store.export import chain_record as paper_record
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
    # A fixed test set (the paper's test files): test is exactly this source's chains in file order,
    # and train drops every chain whose composition also appears in test.
    test_source: str | None = None
    # With test_source: the sources train is drawn from (empty: every other source).
    train_sources: tuple[str, ...] = ()
    # Single-instruction tasks of this source join train as length-1 chains (the paper's CoI1 data).
    task_source: str | None = None


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
    """The paper's record of a chain (as exported), with per-step lists for training and evaluation."""
    record = paper_record(chain)
    record.update(
        chain_id=chain.id,
        composition_id=chain.composition_id,
        length=chain.length,
        instructions=chain.instructions,
        outputs=chain.outputs,
        source=chain.source,
        category=chain.category,  # "a+b" for pipeline chains: one task category per step
        target=target_text(chain.outputs, chain.meta.get("format")),
    )
    return record


def _comp(c: Chain) -> int:
    """A chain's composition for splitting; one of its own when it has none (tasks: far below chains)."""
    if c.composition_id is not None:
        return c.composition_id
    return -c.id if c.id > 0 else c.id - 10**12


def check_spec(spec: SplitSpec) -> None:
    """CoiError for a split that cannot be honoured (rather than silently changing it)."""
    if not 0 <= spec.test_fraction < 1 and spec.test_source is None:
        raise CoiError(
            f"test_fraction {spec.test_fraction} leaves no training chains",
            "Use a fraction in [0, 1), or --test-source NAME for a fixed test set.",
        )
    if spec.test_source is not None and spec.test_source in spec.train_sources:
        raise CoiError(
            f"Source {spec.test_source!r} is both the test source and a train source",
            "Train on other sources: its chains would all be dropped as test compositions.",
        )


def split_by_composition(chains: list[Chain], spec: SplitSpec) -> dict[str, list[Chain]]:
    """Assign whole compositions to train or test; filter each side by its chain lengths.

    With ``spec.test_source`` the test split is that source's chains in file (id) order and train
    is every other selected chain whose composition is not in test; otherwise whole compositions
    are drawn at random for test.
    """
    if spec.test_source is not None:
        return _fixed_split(chains, spec)
    comps = sorted({_comp(c) for c in chains})
    random.Random(spec.seed).shuffle(comps)
    n_test = round(len(comps) * spec.test_fraction)
    if spec.test_fraction > 0 and len(comps) > 1:
        n_test = min(max(n_test, 1), len(comps) - 1)
    test_comps = set(comps[:n_test])
    splits: dict[str, list[Chain]] = {"train": [], "test": []}
    for c in chains:
        comp = _comp(c)
        if comp in test_comps and c.length in spec.test_lengths:
            splits["test"].append(c)
        elif comp not in test_comps and c.length in spec.train_lengths:
            splits["train"].append(c)
    return splits


def _fixed_split(chains: list[Chain], spec: SplitSpec) -> dict[str, list[Chain]]:
    test = [c for c in chains if c.source == spec.test_source and c.length in spec.test_lengths]
    test_comps = {_comp(c) for c in test}
    wanted = set(spec.train_sources) | ({spec.task_source} if spec.task_source else set())
    train = [
        c
        for c in chains
        if c.source != spec.test_source
        and (not wanted or c.source in wanted)
        and c.length in spec.train_lengths
        and _comp(c) not in test_comps
    ]
    return {"train": train, "test": test}


def _select_chains(db: sqlite_utils.Database, spec: SplitSpec) -> list[Chain]:
    if spec.test_source is None:
        return get_chains(db, chain_ids(db, statuses=list(spec.statuses), source=spec.source))
    sources = [spec.test_source, *spec.train_sources] if spec.train_sources else [None]
    ids: list[int] = []
    for source in sources:
        ids += chain_ids(db, statuses=list(spec.statuses), source=source)
    chains = get_chains(db, sorted(set(ids)))
    if not any(c.source == spec.test_source for c in chains):
        raise CoiError(
            f"No {'/'.join(spec.statuses)} chains come from source {spec.test_source!r}",
            "Import the test file with --source NAME (and --status accepted), or list sources with coi stats.",
        )
    return chains


def chain_sources(db: sqlite_utils.Database) -> dict[str, int]:
    """Chain count per source, in first-import order (for picking a fixed test set)."""
    rows = db.execute("SELECT source, count(*) FROM chains GROUP BY source ORDER BY min(id)").fetchall()
    return {source or "": n for source, n in rows}


def task_sources(db: sqlite_utils.Database) -> dict[str, int]:
    """Task count per source (tasks can join a version as length-1 chains)."""
    rows = db.execute("SELECT source, count(*) FROM tasks GROUP BY source ORDER BY min(id)").fetchall()
    return {source or "": n for source, n in rows}


def task_chains(db: sqlite_utils.Database, source: str) -> list[Chain]:
    """Tasks of ``source`` as length-1 chains (id = -task id), with the composition of their instruction."""
    from store.chains import composition_key_for_instructions
    from store.models import Step

    out = []
    for row in db.query("SELECT * FROM tasks WHERE source = ? ORDER BY id", [source]):
        key = composition_key_for_instructions([row["instruction"]])
        comp = db.execute("SELECT id FROM compositions WHERE key = ?", [key]).fetchone()
        step = Step(1, row["instruction"], row["input"] or "", row["output"] or "", task_id=row["id"])
        out.append(
            Chain(
                [step],
                status="accepted",
                source=source,
                composition_id=comp[0] if comp else None,
                id=-row["id"],
            )
        )
    if not out:
        raise CoiError(f"There are no tasks from source {source!r}", "Import tasks with --source NAME first.")
    return out


def create_version(
    db: sqlite_utils.Database, spec: SplitSpec = SplitSpec(), *, name: str = "", created_by: str = ""
) -> int:
    """Freeze the chains that ``spec`` selects into a new version (or return the identical existing one).

    Raises:
        CoiError: if no chain matches, or any selected chain still has stale steps.
    """
    check_spec(spec)
    chains = _select_chains(db, spec)
    if spec.task_source:
        chains += task_chains(db, spec.task_source)
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
    try:
        return _insert_version(db, name, digest, spec, sizes, splits, created_by)
    except sqlite3.OperationalError as exc:
        if not _disk_full(exc):
            raise
        raise write_error(
            "the database", exc, nothing="the transaction was rolled back and no version was registered"
        ) from exc


def _disk_full(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "full" in text or "disk i/o" in text


def _insert_version(
    db, name: str, digest: str, spec: SplitSpec, sizes: dict, splits: dict, created_by: str
) -> int:
    """The version row and all its records in one transaction: a version is registered whole or not at all."""
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


# ------------------------------------------------------------------------------------------- export

PAPER_KEYS = ("instruction", "input", "output")
VERSION_SPLITS = ("train", "test")


def version_summary(db: sqlite_utils.Database, version_id: int) -> list[dict]:
    """How many records each split holds per chain length."""
    return [
        {"split": s, "length": n, "records": c}
        for s, n, c in db.execute(
            """SELECT split, length, count(*) FROM dataset_version_items WHERE version_id = ?
               GROUP BY split, length ORDER BY split DESC, length""",
            [version_id],
        )
    ]


def composition_overlap(db: sqlite_utils.Database, version_id: int) -> int:
    """Compositions found in both train and test of a version (0 by construction; a check for tests)."""
    return db.execute(
        """SELECT count(DISTINCT a.composition_id) FROM dataset_version_items a
           JOIN dataset_version_items b ON a.composition_id = b.composition_id
           WHERE a.version_id = ? AND b.version_id = ? AND a.split = 'train' AND b.split = 'test'""",
        [version_id, version_id],
    ).fetchone()[0]


def _require(db: sqlite_utils.Database, version_id: int) -> VersionInfo:
    info = get_version(db, version_id)
    if info is None:
        raise CoiError(f"Dataset version #{version_id} does not exist", "Pick one from the list of versions.")
    return info


def export_version_jsonl(db: sqlite_utils.Database, version_id: int, out_dir: str | Path) -> dict[str, Path]:
    """Write each split as the paper's JSONL (``instruction``, ``input``, ``output`` per line).

    Returns:
        split -> file path (``<out_dir>/train.jsonl``, ``<out_dir>/test.jsonl``).
    """
    _require(db, version_id)
    out = Path(out_dir)
    paths = {split: out / f"{split}.jsonl" for split in VERSION_SPLITS}
    # Both splits go to temp files first; they replace the targets only once both are complete.
    with staged_files(list(paths.values())) as files:
        for split, f in zip(paths, files):
            for record in version_records(db, version_id, split):
                f.write(json.dumps({k: record[k] for k in PAPER_KEYS}, ensure_ascii=False) + "\n")
    return paths


_HF_KEYS = (*PAPER_KEYS, "chain_id", "composition_id", "length", "instructions", "outputs")


def export_version_hf(db: sqlite_utils.Database, version_id: int, out_dir: str | Path) -> Path:
    """Save the version as a Hugging Face ``DatasetDict`` (``save_to_disk``) with train and test splits.

    Each row has the paper's three fields plus chain_id, composition_id, length and the per-step
    ``instructions`` and ``outputs`` lists.
    """
    import datasets  # lazy: importing datasets takes about a second

    _require(db, version_id)
    features = datasets.Features(
        {
            **{k: datasets.Value("string") for k in PAPER_KEYS},
            "chain_id": datasets.Value("int64"),
            "composition_id": datasets.Value("int64"),
            "length": datasets.Value("int64"),
            "instructions": datasets.Sequence(datasets.Value("string")),
            "outputs": datasets.Sequence(datasets.Value("string")),
        }
    )
    splits = {}
    for split in VERSION_SPLITS:
        rows = [{k: r.get(k) for k in _HF_KEYS} for r in version_records(db, version_id, split)]
        columns = {k: [row[k] for row in rows] for k in _HF_KEYS}
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    path = Path(out_dir)
    with staged_dir(path) as tmp:  # a half-saved DatasetDict never appears at ``path``
        datasets.DatasetDict(splits).save_to_disk(str(tmp))
    return path


def zip_directory(path: str | Path) -> bytes:
    """A folder's files as zip bytes (for a download button), paths relative to the folder."""
    root = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            zf.write(file, file.relative_to(root).as_posix())
    return buf.getvalue()


def version_zip(db: sqlite_utils.Database, version_id: int, fmt: str) -> bytes:
    """A version exported as ``jsonl`` or ``hf`` and zipped, built in a temporary folder."""
    if fmt not in ("jsonl", "hf"):
        raise CoiError(f"Unknown version export format {fmt!r}", "Use jsonl or hf.")
    with tempfile.TemporaryDirectory(prefix="coi-version-") as tmp:
        target = Path(tmp) / f"coi-version-{version_id}"
        if fmt == "jsonl":
            export_version_jsonl(db, version_id, target)
        else:
            export_version_hf(db, version_id, target)
        try:
            return zip_directory(target)
        except OSError as exc:
            raise write_error(target, exc) from exc


def selectable_counts(db: sqlite_utils.Database, spec: SplitSpec) -> dict[str, int]:
    """How many chains the spec selects, and how many of those still have stale steps."""
    clauses = [f"status IN ({','.join('?' * len(spec.statuses))})"]
    params: list = list(spec.statuses)
    if spec.source:
        clauses.append("source = ?")
        params.append(spec.source)
    where = " AND ".join(clauses)
    total = db.execute(f"SELECT count(*) FROM chains WHERE {where}", params).fetchone()[0]
    stale = db.execute(
        f"SELECT count(*) FROM chains WHERE {where} AND id IN (SELECT chain_id FROM steps WHERE stale = 1)",
        params,
    ).fetchone()[0]
    return {"chains": total, "stale": stale}
