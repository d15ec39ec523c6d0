"""User text is text everywhere: column headers, categories, sources and run names, in markdown captions
and in plotly labels and hovers alike."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.eval_charts import ALL_FIGURES
from app.safe_text import md_text, plotly_text
from store.models import Task
from store.tasks import insert_tasks
from tests.support import APP

LINK = "[click](http://evil.example/x)"
IMAGE = "![x](http://evil.example/pixel.png)"
ANCHOR = '<a href="http://evil.example">go</a>'


def _markdown_bits(at: AppTest) -> list[str]:
    return [str(e.value) for kind in ("caption", "markdown", "subheader", "title") for e in at.get(kind)]


def test_csv_headers_are_shown_as_text_not_markdown(tmp_path):
    path = tmp_path / "evil.csv"
    path.write_text(f"instruction,{LINK},{IMAGE}\nRepeat,a,b\n")
    at = AppTest.from_file(str(APP / "app_pages" / "data.py"), default_timeout=60)
    at.run()
    at.text_input(key="import_path").input(str(path)).run()
    assert not at.exception, at.exception
    assert not any("evil.example" in m for m in _markdown_bits(at))  # no live link or image anywhere
    assert any(LINK in t.value and IMAGE in t.value for t in at.text)  # but the header reads as typed


def test_category_and_source_ticks_are_escaped_in_plotly(db):
    insert_tasks(db, [Task(instruction="Do it.", input="a", output="b", category=ANCHOR, source=ANCHOR)])
    at = AppTest.from_file(str(APP / "app_pages" / "data.py"), default_timeout=60)
    at.run()
    specs = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert "&lt;a href=" in specs
    assert "<a href" not in specs.replace("\\u003c", "<")


def test_run_names_are_escaped_in_eval_figures():
    report = {"modes": {"chain": {"by_length": {"2": {"final": {"mean": 0.5, "low": 0.4, "high": 0.6}}}}}}
    for make in ALL_FIGURES:
        fig = make([(ANCHOR, report)], "chain")
        names = [t.name for t in fig.data if t.name]
        assert all("<a" not in n for n in names), (make.__name__, names)


def test_escapes():
    assert plotly_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert "](" not in md_text(LINK) and md_text("a*b_c:d") == "a\\*b\\_c\\:d"
