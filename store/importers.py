"""Import single-instruction tasks (JSONL, JSON array, CSV, local HF dataset) and the paper's CoI chains.

Every import reads and checks the whole file first and writes in one transaction, so bad input
raises a ``CoiError`` and leaves the database exactly as it was.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import sqlite_utils

from store.chains import composition_key_for_instructions, insert_chain, upsert_composition
from store.coi_format import MARKER_RE, parse_record
from store.errors import CoiError
from store.hashing import content_hash
from store.models import Chain, Step, Task
from store.tasks import insert_tasks

MIB = 1024 * 1024  # sizes are counted and shown in MiB (2**20 bytes), as the --max-mb flag counts them
FORMATS = ("auto", "jsonl", "json", "csv", "hf", "coi")
IMPORT_STATUSES = ("proposed", "accepted", "needs_review")
PAPER_KEYS = ["instruction", "input", "output"]
# Column names tried, in order, when the mapping leaves a field unset.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "prompt", "question", "query", "instructions"),
    "input": ("input", "context", "input_text", "inputs"),
    "output": ("output", "response", "completion", "answer", "target", "outputs"),
    "category": ("category", "task_type", "task_category", "type"),
    "name": ("name", "task_name", "task", "id"),
}
REQUIRED = ("instruction", "output")
# Deeper JSON than this is refused: Python's json and our hashing recurse, and no task needs it.
MAX_DEPTH = 100


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
    max_bytes: int = field(default=200 * 1024 * 1024, metadata={"help": "refuse larger files"})


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
    """Records read from a file, each with where it came from (for error messages)."""

    format: str
    records: list[tuple[str, dict]]
    columns: list[str]


# ---------------------------------------------------------------- reading


def check_size(path: Path, max_bytes: int) -> int:
    """The size of a file or dataset folder; CoiError if it is missing, empty or too large."""
    if not path.exists():
        raise CoiError(f"{path} does not exist", "Check the path.")
    size = (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
    if size == 0:
        raise CoiError(f"{path.name} is empty", "Choose a file with at least one record.")
    if size > max_bytes:
        raise CoiError(
            f"{path.name} is {size / MIB:.1f} MiB, over the {max_bytes / MIB:.3g} MiB limit",
            "Split the file, or raise the limit (ImportOptions.max_bytes).",
        )
    return size


def read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM is dropped); CoiError naming the byte offset and line if not UTF-8."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CoiError(
            f"{path.name} is not UTF-8 text: byte {exc.start} (line {line}) is {data[exc.start : exc.start + 1]!r}",
            "Save the file as UTF-8 and import it again.",
        ) from exc
    if not text.strip():
        raise CoiError(f"{path.name} is empty", "Choose a file with at least one record.")
    return text


def parse_jsonl(text: str, name: str) -> list[tuple[str, dict]]:
    """One JSON object per line; blank lines are skipped. Errors name the line."""
    out = []
    # split("\n"), not splitlines(): U+2028 may sit unescaped inside a JSON string.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CoiError(
                f"{name}: line {number} is not valid JSON ({exc.msg} at column {exc.colno})",
                "Fix or remove that line; each line must be one JSON object.",
            ) from exc
        except (RecursionError, ValueError) as exc:  # nesting past Python's stack, or a 5000-digit number
            raise _unreadable_json(name, f"line {number}", exc) from exc
        out.append((f"line {number}", _as_object(value, f"line {number}", name)))
    return out


def _unreadable_json(name: str, where: str, exc: BaseException) -> CoiError:
    what = "is nested too deeply" if isinstance(exc, RecursionError) else f"cannot be read ({exc})"
    return CoiError(f"{name}: the JSON at {where} {what}", "Fix that record; import plain objects of text.")


def parse_json_array(text: str, name: str) -> list[tuple[str, dict]]:
    """A JSON array of objects. Errors name the line and column, or the record."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CoiError(
            f"{name}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})",
            "A .json file must hold one JSON array of objects; use .jsonl for one object per line.",
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise _unreadable_json(name, "the top level", exc) from exc
    if not isinstance(value, list):
        raise CoiError(f"{name}: expected a JSON array of objects, got {type(value).__name__}", "")
    return [(f"record {i}", _as_object(v, f"record {i}", name)) for i, v in enumerate(value, 1)]


def _as_object(value: Any, where: str, name: str) -> dict:
    """The record, checked: a JSON object, not too deep, and text SQLite can store (no lone surrogates)."""
    if not isinstance(value, dict):
        raise CoiError(f"{name}: {where} is a {type(value).__name__}, not a JSON object", "")
    if _depth(value) > MAX_DEPTH:
        raise CoiError(
            f"{name}: {where} is nested more than {MAX_DEPTH} levels deep", "Import plain objects of text."
        )
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise CoiError(
            f"{name}: {where} holds a lone surrogate ({bad}), which is not valid Unicode text",
            "A JSON escape such as \\ud800 must be part of a surrogate pair; fix that text.",
        ) from exc
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest (iterative, so it cannot overflow the stack itself)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_csv(text: str, name: str) -> list[tuple[str, dict]]:
    """CSV (TSV for .tsv) with a header row. Rows with too few or too many fields are errors naming the row."""
    delimiter = "\t" if name.lower().endswith(".tsv") else ","
    # A field may be as long as the file (the size limit was checked); csv's default stops at 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = reader.fieldnames or []
    out = []
    try:
        for row in reader:
            where = f"row {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise CoiError(
                    f"{name}: {where} has {len(_row_values(row))} fields but the header has {len(header)}",
                    "Quote fields that contain commas or newlines.",
                )
            out.append((where, dict(row)))
    except csv.Error as exc:
        raise CoiError(f"{name}: CSV error at row {reader.line_num}: {exc}", "Check the quoting.") from exc
    return out


def _row_values(row: dict) -> list:
    extra = row.get(None) or []
    return [v for k, v in row.items() if k is not None and v is not None] + list(extra)


def read_hf(path: Path) -> list[tuple[str, dict]]:
    """Rows of a dataset saved with ``save_to_disk`` (a Dataset or every split of a DatasetDict)."""
    import datasets  # lazy: importing datasets costs about a second

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise CoiError(
            f"{path.name} is not a dataset saved with save_to_disk: {exc}",
            "Point at the folder that holds dataset_info.json or dataset_dict.json.",
        ) from exc
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [("", loaded)]
    out = []
    for split, ds in splits:
        label = f"split {split} row" if split else "row"
        out.extend((f"{label} {i}", dict(row)) for i, row in enumerate(ds, 1))
    return out


def detect_format(path: Path, text: str | None) -> str:
    """Guess the format from the folder/extension and the first character."""
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".jsonl":
        return "jsonl"
    first = (text or "").lstrip()[:1]
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    raise CoiError(f"Cannot tell the format of {path.name}", "Pass --format jsonl|json|csv|hf|coi.")


def looks_like_coi(records: list[tuple[str, dict]], base: str = "json") -> bool:
    """Whether a file is the paper's CoI format (every released shape, not only marked chains).

    Records need a text ``instruction`` and ``output``. Then any one of: a record carries step
    markers (mixed files of lengths 1..n, where marker-less records are CoI1), a record carries
    ``eng_output`` (the downstream sets), or the file is a JSON array whose records have exactly
    the paper's keys (the release shape of length-1 and BBH files). Pass ``--format json`` to read
    such an array as plain tasks instead.
    """
    recs = [r for _, r in records]
    if not recs or not all(isinstance(r.get("output"), str) and "instruction" in r for r in recs):
        return False
    if any(isinstance(r.get("eng_output"), str) for r in recs):
        return True
    if any((m := MARKER_RE.search(r["output"])) and m.group(1) == "1" for r in recs):
        return True
    return base == "json" and all(sorted(r) == sorted(PAPER_KEYS) for r in recs)


def load_records(path: Path, fmt: str, max_bytes: int) -> Loaded:
    """Read and parse a file into records; ``fmt`` may be "auto". Nothing is written."""
    if fmt not in FORMATS:
        raise CoiError(f"Unknown format {fmt!r}", f"Use one of {', '.join(FORMATS)}.")
    check_size(path, max_bytes)
    text = None if path.is_dir() else read_text(path)
    base = detect_format(path, text) if fmt in ("auto", "coi") else fmt
    if base == "hf" or path.is_dir():
        records = read_hf(path)
    elif base == "csv":
        records = parse_csv(text or "", path.name)
    elif base == "jsonl":
        records = parse_jsonl(text or "", path.name)
    else:
        records = parse_json_array(text or "", path.name)
    if not records:
        raise CoiError(f"{path.name} holds no records", "Choose a file with at least one record.")
    chosen = fmt if fmt != "auto" else ("coi" if looks_like_coi(records, base) else base)
    return Loaded(chosen, records, _columns(records))


def _columns(records: list[tuple[str, dict]]) -> list[str]:
    seen: dict[str, None] = {}
    for _, rec in records[:1000]:
        seen.update(dict.fromkeys(rec))
    return list(seen)


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
    records: list[tuple[str, dict]], mapping: FieldMapping, source: str, report: ImportReport
) -> list[Task]:
    """Records -> tasks. Missing mapped fields are errors; empty instruction/output rows are rejected."""
    resolved = resolve_mapping(mapping, _columns(records))
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


def build_chains(
    records: list[tuple[str, dict]], mapping: FieldMapping, status: str, source: str, report: ImportReport
) -> list[tuple[Chain, str]]:
    """Records -> (chain, dedupe key). The key counts repeats, so identical records all import."""
    resolved = {k: getattr(mapping, k) or k for k in PAPER_KEYS}
    seen: Counter = Counter()
    out = []
    for where, rec in records:
        paper = _check_coi_record(where, rec, resolved)
        record_hash = content_hash(rec)
        key = content_hash(["coi", record_hash, seen[record_hash]])
        seen[record_hash] += 1
        chain = build_chain(paper, rec, resolved, status, source)
        if chain.meta["issues"]:
            report.unclean += 1
            report.unclean_reasons.update(chain.meta["issues"])
        out.append((chain, key))
    report.repeats_in_file = sum(n - 1 for n in seen.values())
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


def import_file(
    db: sqlite_utils.Database, path: str | Path, options: ImportOptions | None = None
) -> ImportReport:
    """Import tasks, or chains for the paper's format, from ``path`` in one transaction.

    Raises:
        CoiError: on any bad input; nothing is written then.
    """
    options = options or ImportOptions()
    if options.status not in IMPORT_STATUSES:
        raise CoiError(f"Bad status {options.status!r}", f"Use one of {', '.join(IMPORT_STATUSES)}.")
    start = time.perf_counter()
    path = Path(path)
    loaded = load_records(path, options.format, options.max_bytes)
    source = options.source or f"import:{path.name}"
    kind = "chains" if loaded.format == "coi" else "tasks"
    report = ImportReport(str(path), loaded.format, kind, total=len(loaded.records))
    if kind == "chains":
        chains = build_chains(loaded.records, options.mapping, options.status, source, report)
        with db.atomic():
            write_chains(db, chains, report)
    else:
        tasks = build_tasks(loaded.records, options.mapping, source, report)
        counts = insert_tasks(db, tasks)
        report.imported, report.duplicates = counts.added, counts.duplicates
    report.seconds = time.perf_counter() - start
    return report


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
    path: str | Path, fmt: str = "auto", max_bytes: int = 200 * 1024 * 1024, rows: int = 20
) -> Loaded:
    """Records for the Data page's preview (the first ``rows``), the detected format and the columns."""
    loaded = load_records(Path(path), fmt, max_bytes)
    return Loaded(loaded.format, loaded.records[:rows], loaded.columns)
