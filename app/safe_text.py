"""User text as text: escapes for the two places that would interpret it (markdown and plotly labels).

Prefer ``st.text`` / ``st.code`` for user text. Where it has to sit inside markdown (a caption, a
subheader) or a plotly label or hover, pass it through one of these first.
"""

from __future__ import annotations

import html
import re

# Every character markdown (and Streamlit's :emoji: / :color[...] extensions) gives a meaning to.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=])")


def md_text(text: object) -> str:
    """``text`` escaped so Streamlit markdown shows it literally (no links, images, HTML or emphasis)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def plotly_text(text: object) -> str:
    """``text`` escaped for a plotly label, tick or hover: plotly renders a few HTML tags (``<a>``, ``<b>``,
    ``<br>``) in them, and shows entities as their characters, so the text reads exactly as typed."""
    return html.escape(str(text), quote=True)
