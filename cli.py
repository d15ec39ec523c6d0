"""`coi`: headless use of the same functions the app calls.

Each area registers its own subcommands (``register(subparsers)``) so the CLI stays a thin router.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    except CoiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
