"""Storage layer: SQLite schema, queries, import and export. Imports nothing else of the project."""

from store.errors import CoiError

__all__ = ["CoiError"]
