"""Reading import files as a stream of records, in bounded memory, and telling their format.

JSONL is read line by line and a JSON array value by value (``json.JSONDecoder.raw_decode`` over
a sliding window of ``CHUNK_SIZE`` reads), so memory holds a chunk and the current record, never
the whole file. CSV and saved HF datasets are read whole (CSV quoting can span lines; ``datasets``
memory-maps its files), under the same size limit. Every error names the line, record, row or byte.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from store.coi_format import MARKER_RE
from store.errors import CoiError

MIB = 1024 * 1024  # sizes are counted and shown in MiB (2**20 bytes), as the --max-mb flag counts them
CHUNK_SIZE = MIB  # bytes per read: the window a streamed file is parsed through
# Deeper JSON than this is refused: Python's json and our hashing recurse, and no task needs it.
MAX_DEPTH = 100
PAPER_KEYS = ["instruction", "input", "output"]
BOM = codecs.BOM_UTF8
Record = tuple[str, dict]  # (where it is in the file, e.g. "line 3", the record)
OnBytes = Callable[[int], None]  # told the bytes read so far
_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
_DECODER = json.JSONDecoder()
# A decode error this close to the end of the window may only mean the value goes on in the next chunk.
_NEAR_END = 16


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
            "Split the file, or raise the limit (--max-mb, $COI_IMPORT_MAX_MB or ImportOptions.max_bytes).",
        )
    return size


def _not_utf8(name: str, offset: int, line: int, byte: bytes) -> CoiError:
    return CoiError(
        f"{name} is not UTF-8 text: byte {offset} (line {line}) is {byte!r}",
        "Save the file as UTF-8 and import it again.",
    )


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text (a BOM is dropped), for CSV; CoiError naming the byte and line if not UTF-8."""
    data = path.read_bytes()
    skip = len(BOM) if data.startswith(BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        raise _not_utf8(path.name, at, data.count(b"\n", 0, at) + 1, data[at : at + 1]) from exc
    if not text.strip():
        raise CoiError(f"{path.name} is empty", "Choose a file with at least one record.")
    return text


# ---------------------------------------------------------------- checking one record


def _unreadable_json(name: str, where: str, exc: BaseException) -> CoiError:
    what = "is nested too deeply" if isinstance(exc, RecursionError) else f"cannot be read ({exc})"
    return CoiError(f"{name}: the JSON at {where} {what}", "Fix that record; import plain objects of text.")


def as_object(value: Any, where: str, name: str) -> dict:
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


# ---------------------------------------------------------------- JSONL, line by line


def _lines(f: BinaryIO, size: int) -> Iterator[tuple[bytes, int]]:
    """(line without its newline, bytes read up to its end), reading ``size`` bytes at a time."""
    pending: list[bytes] = []
    done = 0
    while chunk := f.read(size):
        parts = chunk.split(b"\n")
        pending.append(parts[0])
        if len(parts) == 1:
            continue
        done += sum(map(len, pending)) + 1
        yield b"".join(pending), done
        for part in parts[1:-1]:
            done += len(part) + 1
            yield part, done
        pending = [parts[-1]]
    tail = b"".join(pending)
    if tail:
        yield tail, done + len(tail)


def iter_jsonl(
    path: Path, *, check: bool = True, on_bytes: OnBytes | None = None, chunk_size: int | None = None
) -> Iterator[Record]:
    """One JSON object per line, as read; blank lines are skipped. Errors name the line (and byte).

    ``check=False`` skips the per-record checks (for a second pass over a file already checked).
    """
    name, start = path.name, 0
    with path.open("rb") as f:
        for number, (raw, end) in enumerate(_lines(f, chunk_size or CHUNK_SIZE), 1):
            skip = len(BOM) if number == 1 and raw.startswith(BOM) else 0
            try:
                # Split on b"\n" only, not splitlines(): U+2028 may sit unescaped inside a JSON string.
                line = raw[skip:].decode("utf-8")
            except UnicodeDecodeError as exc:
                at = start + skip + exc.start
                raise _not_utf8(name, at, number, raw[skip + exc.start : skip + exc.start + 1]) from exc
            start = end
            if on_bytes:
                on_bytes(end)
            if not line.strip():
                continue
            where = f"line {number}"
            yield where, _load_line(line, where, name, check)


def _load_line(line: str, where: str, name: str, check: bool) -> dict:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CoiError(
            f"{name}: {where} is not valid JSON ({exc.msg} at column {exc.colno})",
            "Fix or remove that line; each line must be one JSON object.",
        ) from exc
    except (RecursionError, ValueError) as exc:  # nesting past Python's stack, or a 5000-digit number
        raise _unreadable_json(name, where, exc) from exc
    return as_object(value, where, name) if check else value


# ---------------------------------------------------------------- a JSON array, value by value


class _Window:
    """The decoded, not yet consumed text of a file read in chunks, and where that text starts.

    Consumed text is dropped before each read, so memory holds about one chunk plus the value
    being parsed; ``line`` and ``column`` of the text's start keep error positions file-absolute.
    """

    def __init__(self, f: BinaryIO, name: str, chunk_size: int, on_bytes: OnBytes | None) -> None:
        self.f, self.name, self.chunk_size, self.on_bytes = f, name, chunk_size, on_bytes
        head = f.read(len(BOM))
        self.raw_done = len(head)  # bytes read from the file
        self.pending = b"" if head == BOM else head  # bytes read but not decoded yet (a split UTF-8 sequence)
        self.newlines = 0  # b"\n" in the decoded bytes, for the line of a decoding error
        self.text, self.pos = "", 0
        self.line, self.column = 1, 0  # of text[0]: 1-based line, 0-based column
        self.eof = False

    def more(self, grow: bool = False) -> bool:
        """Read and decode the next chunk (at least the size of the unread text with ``grow``); False at the end."""
        if self.eof:
            return False
        size = max(self.chunk_size, len(self.text) - self.pos) if grow else self.chunk_size
        chunk = self.f.read(size)
        self.eof = not chunk
        data, base = self.pending + chunk, self.raw_done - len(self.pending)
        self.raw_done += len(chunk)
        try:
            text, used = codecs.utf_8_decode(data, "strict", self.eof)
        except UnicodeDecodeError as exc:
            line = self.newlines + data.count(b"\n", 0, exc.start) + 1
            raise _not_utf8(self.name, base + exc.start, line, data[exc.start : exc.start + 1]) from exc
        self.newlines += data.count(b"\n", 0, used)
        self.pending = data[used:]
        self._drop_consumed()
        self.text += text
        return bool(text) or not self.eof

    def tell(self) -> None:
        """Pass on about how many bytes are consumed (the unread text counted as one byte a character)."""
        if self.on_bytes:
            self.on_bytes(max(0, self.raw_done - len(self.pending) - (len(self.text) - self.pos)))

    def _drop_consumed(self) -> None:
        gone = self.text[: self.pos]
        newlines = gone.count("\n")
        if newlines:
            self.line += newlines
            self.column = len(gone) - gone.rfind("\n") - 1
        else:
            self.column += len(gone)
        self.text, self.pos = self.text[self.pos :], 0

    def peek(self) -> str:
        """The next non-whitespace character ("" at the end of the file), the position left on it."""
        while True:
            self.pos = _WS.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def value(self, where: str) -> Any:
        """Decode the JSON value at the position (reading more while it may go on in the next chunk)."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self._maybe_cut(exc) and self.more(grow=True):
                    continue
                raise self.error(exc.msg, exc.pos) from exc
            except (RecursionError, ValueError) as exc:
                raise _unreadable_json(self.name, where, exc) from exc
            # A number at the very end of the window may have more digits in the next chunk.
            if end >= len(self.text) and self.more(grow=True):
                continue
            self.pos = end
            return value

    def _maybe_cut(self, exc: json.JSONDecodeError) -> bool:
        """Whether a decode error may only mean the window ends inside the value."""
        if self.eof:
            return False
        return exc.pos >= len(self.text) - _NEAR_END or exc.msg.startswith("Unterminated string")

    def error(self, msg: str, pos: int) -> CoiError:
        """A JSON syntax error at ``pos`` of the window, named by its line and column in the file."""
        newline = self.text.rfind("\n", 0, pos)
        line = self.line + self.text.count("\n", 0, pos)
        column = pos - newline if newline >= 0 else self.column + pos + 1
        return CoiError(
            f"{self.name}: not valid JSON at line {line}, column {column} ({msg})",
            "A .json file must hold one JSON array of objects; use .jsonl for one object per line.",
        )

    def end(self) -> None:
        """Only whitespace may follow the top-level value."""
        if self.peek():
            raise self.error("Extra data", self.pos)


def iter_json_array(
    path: Path, *, check: bool = True, on_bytes: OnBytes | None = None, chunk_size: int | None = None
) -> Iterator[Record]:
    """The objects of a JSON array, one at a time. Errors name the line and column, or the record."""
    with path.open("rb") as f:
        w = _Window(f, path.name, chunk_size or CHUNK_SIZE, on_bytes)
        first = w.peek()
        if not first:
            raise CoiError(f"{path.name} is empty", "Choose a file with at least one record.")
        if first != "[":
            top = w.value("the top level")
            w.end()
            raise CoiError(f"{path.name}: expected a JSON array of objects, got {type(top).__name__}", "")
        w.pos += 1
        if w.peek() == "]":
            w.pos += 1
            w.end()
            return
        for number in _count(1):
            where = f"record {number}"
            if not w.peek():
                raise w.error("Expecting value", w.pos)
            value = w.value(where)
            w.tell()
            yield where, as_object(value, where, path.name) if check else value
            after = w.peek()
            if after == "]":
                w.pos += 1
                w.end()
                return
            if after != ",":
                raise w.error("Expecting ',' delimiter", w.pos)
            w.pos += 1


def _count(start: int) -> Iterator[int]:
    while True:
        yield start
        start += 1


def first_character(path: Path, chunk_size: int | None = None) -> str:
    """The file's first character that is not whitespace ("" if none), read from its start only."""
    with path.open("rb") as f:
        w = _Window(f, path.name, chunk_size or CHUNK_SIZE, None)
        while True:
            rest = w.text[w.pos :].lstrip()
            if rest:
                return rest[0]
            w.pos = len(w.text)
            if not w.more():
                return ""


# ---------------------------------------------------------------- CSV and HF datasets (in memory)


def parse_csv(text: str, name: str) -> list[Record]:
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


def read_hf(path: Path) -> list[Record]:
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


# ---------------------------------------------------------------- which format


def detect_format(path: Path, first: str | None = None) -> str:
    """Guess the format from the folder/extension, else from the first non-blank character (read
    from the file's start when not given)."""
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".jsonl":
        return "jsonl"
    if first is None:
        first = first_character(path)
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    raise CoiError(f"Cannot tell the format of {path.name}", "Pass --format jsonl|json|csv|hf|coi.")


class CoiDetector:
    """Whether a file is the paper's CoI format, decided over a stream of records (a few flags kept).

    Records need a text ``instruction`` and ``output``. Then any one of: a record carries step
    markers (mixed files of lengths 1..n, where marker-less records are CoI1), a record carries
    ``eng_output`` (the downstream sets), or the file is a JSON array whose records have exactly
    the paper's keys (the release shape of length-1 and BBH files). "Any record" means the last
    record can decide it, so every record is seen: the importer's check pass feeds them all.
    """

    def __init__(self) -> None:
        self.seen = 0
        self.all_text = True
        self.any_eng_output = False
        self.any_marker = False
        self.all_paper_keys = True

    def add(self, rec: dict) -> None:
        self.seen += 1
        if not self.all_text:
            return  # settled: not CoI
        output = rec.get("output")
        if not (isinstance(output, str) and "instruction" in rec):
            self.all_text = False
            return
        if not self.any_eng_output and isinstance(rec.get("eng_output"), str):
            self.any_eng_output = True
        if not self.any_marker and (m := MARKER_RE.search(output)) and m.group(1) == "1":
            self.any_marker = True
        if self.all_paper_keys and sorted(rec) != sorted(PAPER_KEYS):
            self.all_paper_keys = False

    def verdict(self, base: str) -> bool:
        if not self.seen or not self.all_text:
            return False
        return self.any_eng_output or self.any_marker or (base == "json" and self.all_paper_keys)


def looks_like_coi(records: Iterable[Record], base: str = "json") -> bool:
    """Whether these records are the paper's CoI format (see ``CoiDetector``); ``--format json`` reads
    an array of exactly the paper's keys as plain tasks instead."""
    detector = CoiDetector()
    for _, rec in records:
        detector.add(rec)
    return detector.verdict(base)
