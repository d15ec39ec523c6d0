"""Import single-instruction tasks (JSONL, JSON array, CSV, local HF dataset) and the paper's CoI chains.

An import reads the file twice, in bounded memory for JSON and JSONL (store.reading streams them):
a check pass parses and checks every record and decides the format, writing nothing; then a write
pass builds and inserts records in batches, all in one transaction. So bad input raises a
``CoiError`` naming the line, row or record, and leaves the database exactly as it was.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import sqlite_utils

from store import env
from store.chains import composition_key_for_instructions, insert_chain, upsert_composition
from store.coi_format import parse_record
from store.errors import CoiError
from store.hashing import content_hash
from store.models import Chain, Step, Task
from store.reading import (  # noqa: F401  (re-exported: the importer's readers and checks)
    MAX_DEPTH,
    MIB,
    PAPER_KEYS,
    CoiDetector,
    OnBytes,
    Record,
    check_size,
    detect_format,
    iter_json_array,
    iter_jsonl,
    looks_like_coi,
    parse_csv,
    read_hf,
    read_text,
)
from store.tasks import insert_tasks

FORMATS = ("auto", "jsonl", "json", "csv", "hf", "coi")
IMPORT_STATUSES = ("proposed", "accepted", "needs_review")
# Column names tried, in order, when the mapping leaves a field unset.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "prompt", "question", "query", "instructions"),
    "input": ("input", "context", "input_text", "inputs"),
    "output": ("output", "response", "completion", "answer", "target", "outputs"),
    "category": ("category", "task_type", "task_category", "type"),
    "name": ("name", "task_name", "task", "id"),
}
REQUIRED = ("instruction", "output")
BATCH = 2000  # records built and written at a time, inside the import's one transaction
Progress = Callable[[int, int], None]  # (bytes of work done, bytes of work in all)


@dataclass(frozen=True)
class FieldMapping:
    """Which column holds each task field; None picks the first of ``CANDIDATES`` present."""

    instruction: str | None = field(default=None, metadata={"help": "column with the instruction"})
    input: str | None = field(default=None, metadata={"help": "column with the input (optional)"})
    output: str | None = field(default=None, metadata={"help": "column with the gold output"})
    category: str | None = field(default=None, metadata={"help": "column with the category (optional)"})
    name: str | None = field(default=None, metadata={"help": "column with the task name (optional)"})

    @classmethod
    def from_pairs(cls, pairs: list[str] | None) -> FieldMapping:
        """Build from CLI ``field=column`` strings."""
        known = {f.name for f in fields(cls)}
        values: dict[str, str] = {}
        for pair in pairs or []:
            key, sep, column = pair.partition("=")
            if not sep or key not in known or not column:
                raise CoiError(
                    f"Bad field mapping {pair!r}", f"Use field=column with field one of {sorted(known)}."
                )
            values[key] = column
        return cls(**values)

    def resolve(self, columns: list[str]) -> dict[str, str | None]:
        """Map each field to a present column (None when absent and optional)."""
        out: dict[str, str | None] = {}
        for f in fields(self):
            chosen = getattr(self, f.name)
            if chosen is None:
                chosen = next((c for c in CANDIDATES[f.name] if c in columns), None)
            out[f.name] = chosen
        return out


@dataclass(frozen=True)
class ImportOptions:
    """How to import a file. The CLI flags and the Data page both build this."""

    format: str = field(default="auto", metadata={"help": "auto|jsonl|json|csv|hf|coi"})
    mapping: FieldMapping = field(default_factory=FieldMapping)
    status: str = field(default="proposed", metadata={"help": "status of imported chains"})
    source: str | None = field(default=None, metadata={"help": "source label; default import:<file name>"})
    max_bytes: int = field(
        default_factory=env.import_max_bytes,
        metadata={"help": "refuse larger files (a safety stop; default $COI_IMPORT_MAX_MB MiB, else 4 GiB)"},
    )


@dataclass
class ImportReport:
    """What an import did."""

    path: str
    format: str
    kind: str
    total: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_reasons: Counter = field(default_factory=Counter)
    unclean: int = 0
    unclean_reasons: Counter = field(default_factory=Counter)
    repeats_in_file: int = 0
    seconds: float = 0.0

    def table(self) -> list[dict]:
        """The report as rows of a small table (what happened to how many records)."""
        rows = [("records in the file", self.total), (f"{self.kind} imported", self.imported)]
        rows += [("skipped as duplicates", self.duplicates), ("rejected", self.rejected)]
        if self.kind == "chains":
            rows += [
                ("imported as needs_review (unclean)", self.unclean),
                ("repeated inside the file", self.repeats_in_file),
            ]
        rows += [(f"rejected: {why}", n) for why, n in self.rejected_reasons.most_common()]
        rows += [(f"unclean: {why}", n) for why, n in self.unclean_reasons.most_common()]
        return [{"": what, "records": n} for what, n in rows]

    def summary(self) -> str:
        """One line for the CLI and the page."""
        text = (
            f"{self.kind}: {self.imported} imported, {self.duplicates} skipped as duplicates, "
            f"{self.rejected} rejected"
        )
        if self.rejected_reasons:
            text += " (" + _reasons(self.rejected_reasons) + ")"
        if self.kind == "chains":
            text += f", {self.unclean} unclean"
            if self.unclean_reasons:
                text += " (" + _reasons(self.unclean_reasons) + ")"
        return text + f" from {Path(self.path).name} [{self.format}] in {self.seconds:.2f}s"


def _reasons(counter: Counter) -> str:
    return "; ".join(f"{n}x {reason}" for reason, n in counter.most_common())


@dataclass
class Loaded:
    """What the preview shows: the chosen format, the first records (each with where it came from) and the columns."""

    format: str
    records: list[Record]
    columns: list[str]


@dataclass
class Scan:
    """What the check pass found. Nothing is written, and no record is kept but the first few."""

    format: str  # the chosen format: coi, jsonl, json, csv or hf
    total: int
    columns: list[str]
    head: list[Record]
    size: int
    streamed: bool  # True: the write pass reads the file again; False: the records are in memory
    reread: Callable[[OnBytes | None], Iterable[Record]]
    stamp: tuple[int, int]  # (size, mtime) of a streamed file, to notice a change between the passes


# ---------------------------------------------------------------- the check pass


def _reader(path: Path, base: str) -> tuple[bool, Callable[..., Iterable[Record]]]:
    """(streamed, a function yielding the records on each call): JSON and JSONL are read again on
    each call, in bounded memory; CSV and HF datasets are read once, into memory."""
    if not path.is_dir() and base == "jsonl":
        return True, lambda check, on_bytes: iter_jsonl(path, check=check, on_bytes=on_bytes)
    if not path.is_dir() and base == "json":
        return True, lambda check, on_bytes: iter_json_array(path, check=check, on_bytes=on_bytes)
    records = read_hf(path) if path.is_dir() or base == "hf" else parse_csv(read_text(path), path.name)
    return False, lambda check, on_bytes: records


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def scan_file(
    path: Path, fmt: str, max_bytes: int, *, keep: int = 20, on_bytes: OnBytes | None = None
) -> Scan:
    """Read and check every record once; keep the count, the columns, the CoI verdict and the first
    ``keep`` records. ``fmt`` may be "auto". Nothing is written.

    Every record is read because a file is CoI when *any* record carries step markers or
    ``eng_output``: the last record can decide. A bad record anywhere stops the import here,
    in seconds, before any write.
    """
    if fmt not in FORMATS:
        raise CoiError(f"Unknown format {fmt!r}", f"Use one of {', '.join(FORMATS)}.")
    size = check_size(path, max_bytes)
    base = detect_format(path) if fmt in ("auto", "coi") else fmt
    streamed, read = _reader(path, base)
    stamp = _stamp(path) if streamed else (0, 0)
    detector, seen, head = CoiDetector(), {}, []
    for where, rec in read(True, on_bytes):
        if detector.seen < 1000:
            seen.update(dict.fromkeys(rec))
        if len(head) < keep:
            head.append((where, rec))
        detector.add(rec)
    if not detector.seen:
        if streamed and base == "jsonl":  # nothing but blank lines
            raise CoiError(f"{path.name} is empty", "Choose a file with at least one record.")
        raise CoiError(f"{path.name} holds no records", "Choose a file with at least one record.")
    chosen = fmt if fmt != "auto" else ("coi" if detector.verdict(base) else base)
    return Scan(chosen, detector.seen, list(seen), head, size, streamed, lambda on: read(False, on), stamp)


# ---------------------------------------------------------------- tasks


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def resolve_mapping(mapping: FieldMapping, columns: list[str]) -> dict[str, str | None]:
    """The column for each field; CoiError naming the field when a required one has no column."""
    resolved = mapping.resolve(columns)
    for name in REQUIRED:
        if resolved[name] is None:
            raise CoiError(
                f"No column for the task {name}: found columns {columns}",
                f"Map it with --map {name}=COLUMN (or choose it on the Data page).",
            )
    return resolved


def build_tasks(
    records: Iterable[Record], resolved: dict[str, str | None], source: str, report: ImportReport
) -> list[Task]:
    """Records -> tasks, by the ``resolve_mapping`` columns. Missing mapped fields are errors; rows
    with an empty instruction or output are rejected."""
    tasks = []
    for where, rec in records:
        for name in REQUIRED:
            if resolved[name] not in rec:
                raise CoiError(
                    f"{where} has no {resolved[name]!r} field (the task {name})",
                    "Every record needs it; fix the record or change the field mapping.",
                )
        values = {k: _text(rec.get(col)) if col else "" for k, col in resolved.items()}
        empty = [k for k in REQUIRED if not values[k].strip()]
        if empty:
            report.rejected += 1
            report.rejected_reasons[f"empty {' and '.join(empty)}"] += 1
            continue
        tasks.append(Task(source=source, **values))
    return tasks


# ---------------------------------------------------------------- chains (the paper's format)


def _check_coi_record(where: str, rec: dict, resolved: dict[str, str]) -> dict:
    paper = {}
    for name in PAPER_KEYS:
        column = resolved[name]
        value = rec.get(column, "" if name == "input" else None)
        if value is None and column not in rec:
            raise CoiError(f"{where} has no {column!r} field", "A CoI record needs instruction and output.")
        if not isinstance(value, str):
            raise CoiError(f"{where}: field {column!r} must be a string, got {type(value).__name__}", "")
        paper[name] = value
    if isinstance(rec.get("eng_output"), str):  # the downstream sets' step 1 output
        paper["eng_output"] = rec["eng_output"]
    return paper


def build_chain(paper: dict, rec: dict, resolved: dict[str, str], status: str, source: str) -> Chain:
    """One paper record -> a chain whose step k+1 input is step k's output; unclean ones are flagged."""
    parsed = parse_record(paper)
    flag = "; ".join(parsed.issues) or None
    steps, prev = [], parsed.input
    for k, (instruction, output) in enumerate(zip(parsed.instructions, parsed.outputs), 1):
        steps.append(Step(k, instruction, prev, output, origin="gold", flag=flag))
        prev = output
    meta: dict = {"format": parsed.format, "issues": parsed.issues}
    used = {resolved[k] for k in PAPER_KEYS} | ({"eng_output"} if "eng_output" in paper else set())
    extra = {k: v for k, v in rec.items() if k not in used}
    if extra:
        meta["extra"] = extra
    if list(rec) != [resolved[k] for k in PAPER_KEYS] or resolved != dict(zip(PAPER_KEYS, PAPER_KEYS)):
        meta["keys"] = [_paper_name(k, resolved) for k in rec]
    return Chain(steps=steps, status="needs_review" if parsed.issues else status, source=source, meta=meta)


def _paper_name(key: str, resolved: dict[str, str]) -> str:
    back = {v: k for k, v in resolved.items()}
    return back.get(key, key)


class Repeats:
    """How often each record has come earlier in this file (in memory; ``FileRepeats`` for big files)."""

    def __init__(self) -> None:
        self.seen: Counter = Counter()
        self.repeats = 0

    def occurrences(self, hashes: list[str]) -> list[int]:
        """For each record hash, how many times it came before (0: first time), counting them in."""
        out = []
        for h in hashes:
            out.append(self.seen[h])
            self.seen[h] += 1
        self.repeats += sum(1 for n in out if n)
        return out


class FileRepeats(Repeats):
    """``Repeats`` kept in a temporary table, so a file of millions of records needs no memory for it.

    Create it inside the import's transaction: a rollback takes the table away too.
    """

    def __init__(self, db: sqlite_utils.Database) -> None:
        super().__init__()
        self.db = db
        db.execute("DROP TABLE IF EXISTS temp.import_repeats")
        db.execute(
            "CREATE TEMP TABLE import_repeats (hash TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID"
        )

    def occurrences(self, hashes: list[str]) -> list[int]:
        counts: dict[str, int] = {}
        for start in range(0, len(hashes), 500):
            chunk = list(set(hashes[start : start + 500]))
            marks = ",".join("?" * len(chunk))
            counts.update(
                self.db.execute(f"SELECT hash, n FROM temp.import_repeats WHERE hash IN ({marks})", chunk)
            )
        out = []
        for h in hashes:
            out.append(counts.get(h, 0))
            counts[h] = out[-1] + 1
        self.db.conn.executemany(
            "INSERT INTO temp.import_repeats (hash, n) VALUES (?, ?) ON CONFLICT(hash) DO UPDATE SET n = excluded.n",
            [(h, counts[h]) for h in dict.fromkeys(hashes)],
        )
        self.repeats += sum(1 for n in out if n)
        return out

    def close(self) -> None:
        self.db.execute("DROP TABLE IF EXISTS temp.import_repeats")


def build_chains(
    records: Iterable[Record],
    mapping: FieldMapping,
    status: str,
    source: str,
    report: ImportReport,
    repeats: Repeats | None = None,
) -> list[tuple[Chain, str]]:
    """Records -> (chain, dedupe key). The key counts repeats, so identical records all import."""
    resolved = {k: getattr(mapping, k) or k for k in PAPER_KEYS}
    repeats = repeats or Repeats()
    checked = [(where, rec, _check_coi_record(where, rec, resolved)) for where, rec in records]
    record_hashes = [content_hash(rec) for _, rec, _ in checked]
    out = []
    for (_, rec, paper), record_hash, n in zip(checked, record_hashes, repeats.occurrences(record_hashes)):
        chain = build_chain(paper, rec, resolved, status, source)
        if chain.meta["issues"]:
            report.unclean += 1
            report.unclean_reasons.update(chain.meta["issues"])
        out.append((chain, content_hash(["coi", record_hash, n])))
    report.repeats_in_file = repeats.repeats
    return out


def write_chains(db: sqlite_utils.Database, chains: list[tuple[Chain, str]], report: ImportReport) -> None:
    """Insert chains and their compositions (call inside the import's transaction)."""
    for chain, key in chains:
        comp_key = composition_key_for_instructions(chain.instructions)
        chain.composition_id = upsert_composition(db, comp_key, length=chain.length, source=chain.source)
        _, added = insert_chain(db, chain, key=key)
        if added:
            report.imported += 1
        else:
            report.duplicates += 1


# ---------------------------------------------------------------- entry point


def _batches(records: Iterable[Record], size: int = BATCH) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for item in records:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Progress:
    """Passes (done, total) on to ``on_progress``, a few hundred times at most, never going back."""

    def __init__(self, on_progress: Progress | None) -> None:
        self.on_progress, self.total, self.last = on_progress, 0, -1

    def at(self, done: int) -> None:
        if self.on_progress is None or not self.total:
            return
        done = min(done, self.total)
        if done >= self.total or done - self.last >= self.total / 200:
            if done > self.last:
                self.last = done
                self.on_progress(done, self.total)


def import_file(
    db: sqlite_utils.Database,
    path: str | Path,
    options: ImportOptions | None = None,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import tasks, or chains for the paper's format, from ``path`` in one transaction.

    Args:
        on_progress: Called as ``on_progress(done, total)`` in bytes of work, rising to ``total``
            at the end. A JSON or JSONL file is read twice (the check pass, then the write pass),
            so ``total`` is twice its size; a CSV file or HF dataset counts its size once.

    Raises:
        CoiError: on any bad input; nothing is written then.
    """
    options = options or ImportOptions()
    if options.status not in IMPORT_STATUSES:
        raise CoiError(f"Bad status {options.status!r}", f"Use one of {', '.join(IMPORT_STATUSES)}.")
    start = time.perf_counter()
    path = Path(path)
    progress = _Progress(on_progress)
    if on_progress is not None and path.is_file():
        progress.total = 2 * path.stat().st_size
    scan = scan_file(path, options.format, options.max_bytes, keep=0, on_bytes=progress.at)
    progress.total = 2 * scan.size if scan.streamed else scan.size
    offset = scan.size if scan.streamed else 0
    records = scan.reread(lambda done: progress.at(offset + done))
    source = options.source or f"import:{path.name}"
    kind = "chains" if scan.format == "coi" else "tasks"
    report = ImportReport(str(path), scan.format, kind, total=scan.total)
    with db.atomic():
        if kind == "chains":
            _write_chains(db, records, options, source, report, big=scan.streamed)
        else:
            _write_tasks(db, records, resolve_mapping(options.mapping, scan.columns), source, report)
        if scan.streamed and _stamp(path) != scan.stamp:
            raise CoiError(
                f"{path.name} changed while it was imported", "Import it again when nothing writes to it."
            )
    progress.at(progress.total)
    report.seconds = time.perf_counter() - start
    return report


def _write_chains(
    db: sqlite_utils.Database,
    records: Iterable[Record],
    options: ImportOptions,
    source: str,
    report: ImportReport,
    *,
    big: bool,
) -> None:
    repeats = FileRepeats(db) if big else Repeats()
    for batch in _batches(records):
        write_chains(
            db, build_chains(batch, options.mapping, options.status, source, report, repeats), report
        )
    if isinstance(repeats, FileRepeats):
        repeats.close()


def _write_tasks(
    db: sqlite_utils.Database,
    records: Iterable[Record],
    resolved: dict[str, str | None],
    source: str,
    report: ImportReport,
) -> None:
    for batch in _batches(records):
        counts = insert_tasks(db, build_tasks(batch, resolved, source, report))
        report.imported += counts.added
        report.duplicates += counts.duplicates


def preview_rows(
    loaded: Loaded, width: int = 300, mapping: FieldMapping | None = None
) -> list[dict[str, str]]:
    """The preview records as short strings (nested values as JSON), safe for any table widget.

    With a ``mapping``, one column per mapped field (``instruction ← prompt``), in field order, so
    every field that will be imported shows, output included, before any other column.
    """
    if mapping is None:
        return [{k: _text(v)[:width] for k, v in rec.items()} for _, rec in loaded.records]
    resolved = {f: c for f, c in mapping.resolve(loaded.columns).items() if c}
    header = {f: f if f == c else f"{f} ← {c}" for f, c in resolved.items()}
    return [{header[f]: _text(rec.get(c))[:width] for f, c in resolved.items()} for _, rec in loaded.records]


def preview(
    path: str | Path,
    fmt: str = "auto",
    max_bytes: int | None = None,
    rows: int = 20,
    on_progress: Progress | None = None,
) -> Loaded:
    """The Data page's preview: the chosen format, the first ``rows`` records and the columns.

    It reads and checks the whole file (in bounded memory), so a bad record shows before the import;
    ``on_progress(bytes read, file size)`` follows that read.
    """
    path = Path(path)
    limit = env.import_max_bytes() if max_bytes is None else max_bytes
    progress = _Progress(on_progress)
    progress.total = path.stat().st_size if on_progress and path.is_file() else 0
    scan = scan_file(path, fmt, limit, keep=rows, on_bytes=progress.at)
    progress.at(progress.total)
    return Loaded(scan.format, scan.head, scan.columns)
