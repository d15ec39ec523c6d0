"""Non-secret settings (LLM base URL and model, reviewer name, ...). Secrets are refused here."""

from __future__ import annotations

import sqlite_utils

_SECRET_WORDS = ("key", "token", "secret", "password")


def _check_not_secret(key: str) -> None:
    if any(word in key.lower() for word in _SECRET_WORDS):
        raise ValueError(f"setting {key!r} looks like a secret; secrets never go into the database")


def get_setting(db: sqlite_utils.Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_setting(db: sqlite_utils.Database, key: str, value: str) -> None:
    _check_not_secret(key)
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
        [key, value, value],
    )


def all_settings(db: sqlite_utils.Database) -> dict[str, str]:
    return dict(db.execute("SELECT key, value FROM settings ORDER BY key").fetchall())
