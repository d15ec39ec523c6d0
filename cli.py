"""`coi`: headless use of the same functions the app calls.

Each area registers its own subcommands (``register(subparsers)``) so the CLI stays a thin router.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys

from store.db import operational_error
from store.errors import CoiError

COMMAND_MODULES = ["store.cli", "pipeline.cli", "training.cli", "eval.cli", "jobs.cli"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coi", description="CoI Studio: chain-of-instructions datasets.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def refresh_jobs(args: argparse.Namespace) -> None:
    """Mark jobs whose process died as failed, so counts never show a killed job as running.

    ``store`` imports nothing above it, so the data commands' caller does this for them.
    """
    from jobs.process import refresh_all
    from store.db import open_db

    with open_db(getattr(args, "db", None)) as db:
        refresh_all(db)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stats":
            refresh_jobs(args)
        return args.func(args) or 0
    except sqlite3.OperationalError as exc:  # e.g. still busy after the bounded wait: plain words
        return _report(operational_error(exc))
    except CoiError as exc:
        return _report(exc)
    except BrokenPipeError:  # `coi stats --json | head`: the reader left; that is not an error
        _quiet_stdout()
        return 0


def _report(exc: CoiError) -> int:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    return 2


def _quiet_stdout() -> None:
    """Point stdout at devnull, so the interpreter's final flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
