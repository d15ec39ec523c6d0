"""What a search box's text becomes: one place for the Data and Review searches.

Any text is accepted and none of it is query syntax: control characters (NUL included, which SQLite
reads as the end of the string) become spaces, each word is one quoted FTS5 phrase, at most
``MAX_WORDS`` words of ``MAX_WORD_CHARS`` characters are used, and ``#123`` is a chain id only when it
is plain ASCII digits that fit SQLite's integer (``²`` or ``#99999999999999999999`` are searched as
text, and find nothing).
"""

from __future__ import annotations

import unicodedata

MAX_WORDS = 16
MAX_WORD_CHARS = 100
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER


def clean(text: object) -> str:
    """``text`` without control or unpaired surrogate characters (each becomes a space)."""
    chars = str(text or "")[: MAX_WORDS * (MAX_WORD_CHARS + 1) * 4]
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in chars)


def words(text: object) -> list[str]:
    """The words a search uses: at most ``MAX_WORDS``, each at most ``MAX_WORD_CHARS`` long."""
    return [w[:MAX_WORD_CHARS] for w in clean(text).split()[:MAX_WORDS]]


def fts_query(text: object) -> str:
    """The words as FTS5 phrases (quotes doubled), all required; '' when there are none."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words(text))


def chain_id(text: object) -> int | None:
    """The id ``#123`` (or ``123``) names, or None when the text is not an id SQLite can hold."""
    token = clean(text).strip().removeprefix("#").strip()
    if not token or not token.isascii() or not token.isdigit():
        return None
    value = int(token)
    return value if value <= MAX_ID else None
