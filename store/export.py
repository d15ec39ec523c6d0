"""Export chains in the paper's format: a JSON array ("coi"), JSONL, a Hugging Face DatasetDict ("hf"), or CSV.

Records are rendered by ``store.coi_format.render_record`` with each chain's imported format, so an
unchanged imported chain exports exactly as it came in. Order is chain id order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from store.atomic import staged_dir, staged_files
from store.chains import chain_ids, get_chains
from store.coi_format import render_record
from store.errors import CoiError
from store.models import CHAIN_STATUSES, Chain

EXPORT_FORMATS = ("coi", "jsonl", "hf", "csv")
# Cells starting with these run as formulas in spreadsheets (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BATCH = 1000


@dataclass
class ExportReport:
    """What an export wrote."""

    path: str
    format: str
    count: int

    def summary(self) -> str:
        return f"exported {self.count} chains to {self.path} [{self.format}]"


def statuses_for(status: str | list[str] | None) -> list[str] | None:
    """ "all" -> no filter; a status name or a list of them -> that filter. Default: accepted."""
    if status is None:
        return ["accepted"]
    wanted = [status] if isinstance(status, str) else list(status)
    if wanted == ["all"]:
        return None
    bad = [s for s in wanted if s not in CHAIN_STATUSES]
    if bad:
        raise CoiError(f"Unknown chain status {bad[0]!r}", f"Use all or one of {', '.join(CHAIN_STATUSES)}.")
    return wanted


def chain_record(chain: Chain, *, with_meta: bool = False) -> dict:
    """A chain as one paper record (plus fields it was imported with, and optionally its metadata)."""
    record = render_record(chain.instructions, chain.input, chain.outputs, chain.meta.get("format"))
    record.update(chain.meta.get("extra") or {})
    keys = chain.meta.get("keys")
    if keys:
        record = {k: record.get(k, "") for k in keys}
    if with_meta:
        record.update(
            chain_id=chain.id,
            status=chain.status,
            length=chain.length,
            source=chain.source,
            category=chain.category,
        )
    return record


def iter_records(
    db: sqlite_utils.Database, status: str | list[str] | None = "accepted", *, with_meta: bool = False
) -> Iterator[dict]:
    """Paper records of the chosen chains, in id order, read in batches (memory stays flat)."""
    ids = chain_ids(db, statuses=statuses_for(status))
    for start in range(0, len(ids), BATCH):
        for chain in get_chains(db, ids[start : start + BATCH]):
            yield chain_record(chain, with_meta=with_meta)


def export_chains(
    db: sqlite_utils.Database,
    path: str | Path,
    *,
    format: str = "coi",
    status: str | list[str] | None = "accepted",
    with_meta: bool = False,
) -> ExportReport:
    """Write the chosen chains to ``path`` (replaced atomically for files).

    Args:
        format: "coi" (the paper's JSON array), "jsonl" (one record per line), "hf" (DatasetDict folder)
            or "csv" (one row per record; formula-like cells escaped, see ``csv_cell``).
        status: "accepted" (default), "all", a status, or a list of statuses.
        with_meta: Add chain_id, status, length, source and category to each record.
    """
    if format not in EXPORT_FORMATS:
        raise CoiError(f"Unknown export format {format!r}", f"Use one of {', '.join(EXPORT_FORMATS)}.")
    path = Path(path)
    records = iter_records(db, status, with_meta=with_meta)
    if format == "hf":
        count = _write_hf(path, list(records))
    elif format == "csv":
        count = write_csv(path, records)
    else:
        count = _write_file(path, records, lines=format == "jsonl")
    return ExportReport(str(path), format, count)


def _write_file(path: Path, records: Iterator[dict], *, lines: bool) -> int:
    """Write records to a temp file beside ``path``, fsync, rename: ``path`` is whole or untouched."""
    count = 0
    with staged_files([path], nothing=f"{path} was left as it was") as (f,):
        if not lines:
            f.write("[")
        for record in records:
            if lines:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                # The paper's files use json.dumps defaults: ", " between records, raw UTF-8.
                f.write((", " if count else "") + json.dumps(record, ensure_ascii=False))
            count += 1
        if not lines:
            f.write("]")
    return count


def _write_hf(path: Path, records: list[dict]) -> int:
    """Save a DatasetDict into a temp folder beside ``path``, then swap it in (never half-saved)."""
    import datasets  # lazy: importing datasets costs about a second

    if records:
        table = datasets.Dataset.from_list(records)
    else:
        table = datasets.Dataset.from_dict({"instruction": [], "input": [], "output": []})
    with staged_dir(path, nothing=f"{path} was left as it was") as tmp:
        datasets.DatasetDict({"train": table}).save_to_disk(str(tmp))
    return len(records)


# ------------------------------------------------------------------------------------------------- csv


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: a leading ``= + - @``, tab or CR gets a ``'`` before it.

    This is OWASP's CSV-injection advice; numbers and None pass unchanged. Reading the file back with
    the csv module gives the text with that one quote in front.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    if isinstance(value, (list, dict)):
        return csv_cell(json.dumps(value, ensure_ascii=False))
    return value


def write_csv(path: str | Path, records: Iterator[dict]) -> int:
    """Write records as CSV (a header of every key, in first-seen order); ``path`` is whole or untouched."""
    rows = list(records)  # the header needs every record's keys (extra imported fields vary)
    header = list(dict.fromkeys(k for r in rows for k in r)) or ["instruction", "input", "output"]
    path = Path(path)
    with staged_files([path], nothing=f"{path} was left as it was") as (f,):
        writer = csv.writer(f, lineterminator="\r\n")  # RFC 4180 row ends; cell text is kept as is
        writer.writerow([csv_cell(h) for h in header])
        for r in rows:
            writer.writerow([csv_cell(r.get(k, "")) for k in header])
    return len(rows)
