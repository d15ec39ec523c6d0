"""A word diff of two texts, as plain text (git's ``--word-diff=plain`` markers), never markup.

No Streamlit here: the Review page shows the result in a code block, and tests call it directly.
"""

from __future__ import annotations

import difflib
import re

_TOKENS = re.compile(r"\s+|[^\s]+")


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """The edit from ``old`` to ``new`` word by word: ('=', kept), ('-', removed), ('+', added).

    Whitespace runs are tokens too, so joining the '=' and '+' parts gives ``new`` back exactly.
    """
    a, b = _TOKENS.findall(old or ""), _TOKENS.findall(new or "")
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("-", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("+", "".join(b[j1:j2])))
    return out


def word_diff_text(old: str, new: str) -> str:
    """``word_diff`` written out: removed words as ``[-...-]``, added ones as ``{+...+}``."""
    marks = {"=": "{}", "-": "[-{}-]", "+": "{{+{}+}}"}
    return "".join(marks[op].format(text) for op, text in word_diff(old, new))
