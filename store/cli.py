"""`coi init|import|export|version|stats|db`: the data commands, over the same functions the Data page calls."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from store.chains import count_chains
from store.db import default_db_path, open_db
from store.export import EXPORT_FORMATS, export_chains
from store.importers import FORMATS, IMPORT_STATUSES, FieldMapping, ImportOptions, import_file
from store.sample import load_sample_data
from store.stats import collect_stats
from store.tasks import count_tasks
from store.versions import (
    SplitSpec,
    create_version,
    export_version_hf,
    export_version_jsonl,
    get_version,
    list_versions,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to the `coi` parser."""
    p = subparsers.add_parser("init", help="create or migrate the database; load the sample data once")
    _db_arg(p)
    p.add_argument("--no-sample", action="store_true", help="do not load the built-in sample data")
    p.set_defaults(func=cmd_init)

    p = subparsers.add_parser("import", help="import tasks, or chains in the paper's CoI format")
    p.add_argument("path", help="a .jsonl, .json, .csv file or a saved HF dataset folder")
    _db_arg(p)
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--status", default="proposed", choices=IMPORT_STATUSES, help="status of imported chains")
    p.add_argument(
        "--map", action="append", metavar="FIELD=COLUMN", help="field mapping, e.g. output=response"
    )
    p.add_argument(
        "--max-mb",
        type=float,
        default=None,
        help="refuse files larger than this many MiB (a safety stop; default $COI_IMPORT_MAX_MB, else 4096)",
    )
    p.add_argument("--source", default=None, help="name the source of what is imported (default import:FILE)")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("export", help="export chains in the paper's format")
    p.add_argument("path")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    _db_arg(p)
    p.add_argument("--status", default="accepted", help="accepted (default), all, or another status")
    p.add_argument("--with-meta", action="store_true", help="add chain_id, status, length, source, category")
    p.set_defaults(func=cmd_export)

    _register_version(subparsers)
    _register_db(subparsers)

    p = subparsers.add_parser("stats", help="counts of tasks, chains and jobs")
    _db_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stats)


def _register_version(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("version", help="freeze, list and export dataset versions")
    sub = p.add_subparsers(dest="version_command", required=True)
    create = sub.add_parser("create", help="freeze chains into a version split by composition")
    _db_arg(create)
    defaults = SplitSpec()
    create.add_argument(
        "--status", nargs="+", default=list(defaults.statuses), help="chain statuses to include"
    )
    create.add_argument("--train-lengths", nargs="+", type=int, default=list(defaults.train_lengths))
    create.add_argument("--test-lengths", nargs="+", type=int, default=list(defaults.test_lengths))
    create.add_argument(
        "--test-fraction",
        type=float,
        default=defaults.test_fraction,
        help="share of compositions drawn for test, in [0, 1) (ignored with --test-source)",
    )
    create.add_argument("--seed", type=int, default=defaults.seed)
    create.add_argument("--name", default="")
    create.add_argument("--source", default=None, help="only chains of this source (random split)")
    create.add_argument(
        "--test-source", default=None, help="fixed test set: exactly this source's chains, in file order"
    )
    create.add_argument(
        "--train-source",
        action="append",
        default=[],
        metavar="NAME",
        help="with --test-source: train on these sources (repeatable; default every other source)",
    )
    create.add_argument(
        "--tasks-source", default=None, help="tasks of this source join train as length-1 chains (CoI1)"
    )
    create.set_defaults(func=cmd_version_create)
    listing = sub.add_parser("list", help="list dataset versions")
    _db_arg(listing)
    listing.add_argument("--json", action="store_true", help='print JSON: [{"id", "name", "splits": {...}}]')
    listing.set_defaults(func=cmd_version_list)
    export = sub.add_parser("export", help="write a version as the paper's JSONL or a HF DatasetDict")
    export.add_argument("version_id", type=int)
    export.add_argument("path")
    export.add_argument("--format", choices=["jsonl", "hf"], default="jsonl")
    _db_arg(export)
    export.set_defaults(func=cmd_version_export)


def _register_db(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("db", help="check, back up or restore the database file")
    sub = p.add_subparsers(dest="db_command", required=True)
    check = sub.add_parser("check", help="integrity and foreign-key check, row counts (exit 1 if damaged)")
    _db_arg(check)
    check.set_defaults(func=cmd_db_check)
    backup = sub.add_parser("backup", help="a consistent copy made with SQLite's online backup API")
    backup.add_argument("out", help="the backup file to write")
    backup.add_argument("--force", action="store_true", help="replace OUT if it exists")
    _db_arg(backup)
    backup.set_defaults(func=cmd_db_backup)
    restore = sub.add_parser("restore", help="replace the database with a backup (stop the app first)")
    restore.add_argument("backup", help="a file written by `coi db backup`")
    restore.add_argument("--force", action="store_true", help="replace the existing database file")
    _db_arg(restore)
    restore.set_defaults(func=cmd_db_restore)


def cmd_db_check(args: argparse.Namespace) -> int:
    from store.maintenance import check_db

    report = check_db(args.db or default_db_path())
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_db_backup(args: argparse.Namespace) -> int:
    from store.maintenance import backup_db

    report = backup_db(args.db or default_db_path(), args.out, force=args.force)
    print(f"backed up to {args.out}: {'ok' if report.ok else 'DAMAGED'}, " + _pairs(report.counts))
    return 0 if report.ok else 1


def cmd_db_restore(args: argparse.Namespace) -> int:
    from store.maintenance import restore_db

    target = args.db or default_db_path()
    report = restore_db(args.backup, target, force=args.force)
    print(f"restored {target} from {args.backup}: " + _pairs(report.counts))
    return 0 if report.ok else 1


def cmd_version_create(args: argparse.Namespace) -> int:
    spec = SplitSpec(
        statuses=tuple(args.status),
        train_lengths=tuple(args.train_lengths),
        test_lengths=tuple(args.test_lengths),
        test_fraction=args.test_fraction,
        seed=args.seed,
        source=args.source,
        test_source=args.test_source,
        train_sources=tuple(args.train_source),
        task_source=args.tasks_source,
    )
    with open_db(args.db) as db:
        version = get_version(db, create_version(db, spec, name=args.name))
    print(f"version {version.id}: {_pairs(version.split_sizes)} hash {version.content_hash[:12]}")
    return 0


def cmd_version_list(args: argparse.Namespace) -> int:
    with open_db(args.db) as db:
        versions = list_versions(db)
    if args.json:
        rows = [
            {
                "id": v.id,
                "name": v.name,
                "splits": v.split_sizes,
                "hash": v.content_hash,
                "created_at": v.created_at,
            }
            for v in versions
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for v in versions:
        print(f"{v.id}\t{v.created_at[:19]}\t{v.name or '-'}\t{_pairs(v.split_sizes)}\t{v.content_hash[:12]}")
    return 0


def cmd_version_export(args: argparse.Namespace) -> int:
    with open_db(args.db) as db:
        if args.format == "hf":
            written = export_version_hf(db, args.version_id, args.path)
        else:
            written = ", ".join(str(p) for p in export_version_jsonl(db, args.version_id, args.path).values())
    print(f"wrote {written}")
    return 0


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="SQLite file (default: $COI_DB or data/coi.db)")


def cmd_init(args: argparse.Namespace) -> int:
    with open_db(args.db) as db:
        note = "sample data not loaded"
        if not args.no_sample:
            rep = load_sample_data(db)
            note = (
                "sample data already loaded"
                if rep.skipped
                else f"loaded {rep.tasks} sample tasks, {rep.chains} chains"
            )
        print(
            f"Database {args.db or default_db_path()} ready: {count_tasks(db)} tasks, {count_chains(db)} chains ({note})"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    limit = {} if args.max_mb is None else {"max_bytes": int(args.max_mb * 1024 * 1024)}
    options = ImportOptions(
        format=args.format,
        mapping=FieldMapping.from_pairs(args.map),
        status=args.status,
        source=args.source,
        **limit,
    )
    with open_db(args.db) as db, _ProgressBar(f"importing {args.path}") as show:
        report = import_file(db, args.path, options, on_progress=show)
    print(report.summary())
    return 0


class _ProgressBar:
    """A progress bar on stderr while an import runs, only when stderr is a terminal (logs and
    tests stay clean); a context manager that yields the ``on_progress`` callback (or None)."""

    def __init__(self, label: str) -> None:
        self.label, self.bar = label, None

    def __enter__(self) -> Callable[[int, int], None] | None:
        return self.update if sys.stderr.isatty() else None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm  # lazy: only a terminal needs it

            self.bar = tqdm(
                total=total, unit="B", unit_scale=True, desc=self.label, file=sys.stderr, leave=False
            )
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_export(args: argparse.Namespace) -> int:
    with open_db(args.db) as db:
        report = export_chains(
            db, args.path, format=args.format, status=args.status, with_meta=args.with_meta
        )
    print(report.summary())
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with open_db(args.db) as db:
        stats = collect_stats(db)
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return 0
    print(f"tasks: {stats['tasks']} in {len(stats['tasks_by_category'])} categories")
    print(f"chains: {stats['chains']}")
    print("  by status: " + _pairs(stats["chains_by_status"]))
    print("  by length: " + _pairs(stats["chains_by_length"]))
    jobs = {f"{kind}/{status}": n for kind, by in stats["jobs"].items() for status, n in by.items()}
    print("jobs: " + (_pairs(jobs) or "none"))
    return 0


def _pairs(counts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items())
