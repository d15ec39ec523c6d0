"""The review loop in a real browser: `streamlit run app/main.py` driven by Playwright + Debian chromium.

Keyboard shortcuts accept, undo, skip and reject chains of the sample data; a step output holding
``<script>alert(1)</script>`` and ``**bold**`` must show literally. Screenshot: tests/e2e/artifacts/review.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from store.chains import insert_chain, upsert_composition
from store.db import connect
from store.models import Chain, Step
from tests.e2e.browser import (
    app_env,
    chromium_page,
    click_until,
    expand,
    free_port,
    serve,
    shot,
    streamlit_cmd,
)
from tests.support.probes import query, scalar, wait

pytestmark = pytest.mark.e2e
NASTY = "<script>alert(1)</script> and **bold**"


def fill_db(path: Path) -> int:
    db = connect(path)
    try:
        from store.sample import load_sample_data

        load_sample_data(db)
    except ImportError:  # the sample loader is optional here; the hand-made chains below suffice
        pass
    three = [
        Step(1, "Translate to French", "good morning", "bonjour", origin="llm"),
        Step(2, "Uppercase it", "bonjour", "BONJOUR", origin="llm"),
        Step(3, "Count the letters", "BONJOUR", "7", origin="llm"),
    ]
    insert_chain(db, Chain(steps=three, composition_id=upsert_composition(db, "e2e-three", length=3)))
    for i in range(3):
        steps = [Step(1, f"Summarize text {i}", f"input {i}", f"summary {i}", origin="llm")]
        insert_chain(db, Chain(steps=steps, composition_id=upsert_composition(db, f"e2e-{i}", length=1)))
    steps = [
        Step(1, "Write an HTML snippet", "a greeting", NASTY, origin="llm"),
        Step(2, "Count the words", NASTY, "5", origin="llm"),
    ]
    comp = upsert_composition(
        db, "e2e-nasty", length=2, verdict="yes", reason="**the** <b>reason</b>", confidence=0.7
    )
    chain_id = insert_chain(db, Chain(steps=steps, composition_id=comp, category="html"))[0]
    db.conn.close()
    return chain_id


@pytest.fixture
def app_url(tmp_path, db_path):
    nasty_id = fill_db(db_path)
    port = free_port()
    env = app_env(db_path, port, COI_REVIEWER="e2e-reviewer")
    with serve(streamlit_cmd(port), env, tmp_path / "streamlit.log", timeout=60) as url:
        yield url, nasty_id


def statuses(db_path: Path) -> dict[int, str]:
    return dict(query(db_path, "SELECT id, status FROM chains"))


def press(page, key: str, expect: str) -> None:
    """Press a shortcut with the focus on the page body, then wait for the flash message."""
    page.locator("h1").first.click()
    page.keyboard.press(key)
    page.get_by_text(expect).first.wait_for(timeout=20_000)


def current_chain(page) -> str:
    return page.get_by_role("heading", name="Chain #").first.inner_text()


def stale_flags(db_path: Path, chain_id: int) -> list[int]:
    rows = query(db_path, "SELECT stale FROM steps WHERE chain_id = ? ORDER BY position", [chain_id])
    return [r[0] for r in rows]


def edit_first_step(page, db_path: Path) -> int:
    """Open the 3-step chain by searching its id, edit step 1 through its form; returns the chain id."""
    chain_id = scalar(db_path, "SELECT chain_id FROM steps WHERE output = 'BONJOUR'")
    search = page.get_by_label("Search text (or #id)")
    search.fill(f"#{chain_id}")
    search.press("Enter")
    page.get_by_text(f"Chain #{chain_id} · 3 steps").first.wait_for(timeout=20_000)
    box = page.get_by_label("New output").first
    expand(page, "Edit step 1 output", box)
    # Typed key by key: the shortcut letters (a, x, s, u) must go into the text, not trigger decisions.
    box.fill("")
    box.press_sequentially("Typed: a x s u, corrected.")
    click_until(
        page.get_by_role("button", name="Save step 1").first,
        lambda: scalar(db_path, "SELECT COUNT(*) FROM edits WHERE chain_id = ?", [chain_id]),
        what="Save step 1",
    )
    page.get_by_text("Saved step 1").first.wait_for(timeout=20_000)
    return chain_id


def test_review_loop_with_shortcuts_and_literal_text(app_url, db_path):
    url, nasty_id = app_url
    with chromium_page() as page:
        page.goto(url + "/review")
        page.get_by_text(f"Chain #{nasty_id}").first.wait_for(timeout=30_000)
        # Code blocks render a moment after the heading.
        page.locator("code", has_text="<script>alert(1)</script>").first.wait_for(timeout=20_000)
        page.locator("code", has_text="**the** <b>reason</b>").first.wait_for(timeout=20_000)
        body = page.locator("body").inner_text()
        assert "<script>alert(1)</script>" in body and "**bold**" in body
        assert "**the** <b>reason</b>" in body
        assert page.locator("strong", has_text="bold").count() == 0
        assert page.locator("b", has_text="reason").count() == 0
        shot(page, "review")

        press(page, "a", f"Chain #{nasty_id}: accept.")
        assert statuses(db_path)[nasty_id] == "accepted"
        press(page, "u", f"Undid the last change on chain #{nasty_id}.")
        assert statuses(db_path)[nasty_id] == "proposed"
        press(page, "a", f"Chain #{nasty_id}: accept.")
        skipped = int(current_chain(page).split("#")[1].split()[0])
        press(page, "s", f"Chain #{skipped}: skip.")
        rejected = int(current_chain(page).split("#")[1].split()[0])
        assert rejected != skipped
        press(page, "x", f"Chain #{rejected}: reject.")
        shot(page, "review_after")
        edited = edit_first_step(page, db_path)
        shot(page, "review_stale")
        dialogs = page.dialogs
    assert stale_flags(db_path, edited) == [0, 1, 1]
    assert statuses(db_path)[edited] == "proposed"
    output = scalar(db_path, "SELECT output FROM steps WHERE chain_id = ? AND position = 1", [edited])
    assert output == "Typed: a x s u, corrected."
    final = statuses(db_path)
    assert final[nasty_id] == "accepted" and final[rejected] == "rejected" and final[skipped] == "proposed"
    assert dialogs == []


@pytest.fixture
def fifty_chains_url(tmp_path, db_path):
    db = connect(db_path)
    for i in range(50):
        steps = [
            Step(1, f"Summarize text {i}", f"input {i}", f"summary {i}", origin="llm"),
            Step(2, "Uppercase it", f"summary {i}", f"SUMMARY {i}", origin="llm"),
        ]
        insert_chain(db, Chain(steps=steps, composition_id=upsert_composition(db, f"k-{i}", length=2)))
    db.conn.close()
    port = free_port()
    env = app_env(db_path, port, COI_REVIEWER="keyboard")
    with serve(streamlit_cmd(port), env, tmp_path / "streamlit.log", timeout=60) as url:
        yield url


IDLE = "() => document.querySelector('[data-testid=\"stApp\"]').getAttribute('data-test-script-state') === 'notRunning'"


def key_then(page, key: str, expect: str) -> None:
    """Press a key (no click anywhere: focus stays on the page) and wait for the flash message.

    The key goes in once the last run ended: a shortcut pressed mid-run can land between redraws."""
    page.wait_for_function(IDLE, timeout=20_000)
    page.keyboard.press(key)
    page.get_by_text(expect, exact=True).first.wait_for(timeout=20_000)


def open_chain_id(page, not_this: int | None = None) -> int:
    """The open chain's id, once the heading no longer shows ``not_this`` (the flash draws first)."""
    read = lambda: int(current_chain(page).split("#")[1].split()[0])  # noqa: E731
    return wait(lambda: (c := read()) != not_this and c, timeout=20, step=0.05, what="the next chain")


def test_keyboard_only_review_of_fifty_chains(fifty_chains_url, db_path):
    """50 chains decided with the keyboard alone: J/K move, A accepts, X rejects, S skips, U undoes."""
    with chromium_page() as page:
        page.goto(fifty_chains_url + "/review")
        page.get_by_text("Chain #").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Next").last.wait_for(timeout=20_000)
        first = int(current_chain(page).split("#")[1].split()[0])
        # A freshly loaded headless page has no keyboard focus: give it to the first navigation link,
        # as one Tab would (no mouse), so the shortcuts reach the app.
        page.bring_to_front()
        page.evaluate("document.querySelector('[data-testid=\"stSidebarNav\"] a').focus()")
        page.wait_for_function(IDLE, timeout=20_000)
        page.keyboard.press("j")  # the next chain on the page opens
        page.get_by_role("heading", name=f"Chain #{first - 1} ").wait_for(timeout=20_000)
        page.keyboard.press("k")
        page.get_by_role("heading", name=f"Chain #{first} ").wait_for(timeout=20_000)
        key_then(page, "s", f"Chain #{first}: skip.")
        decided, chain = {}, first
        for i in range(49):
            chain = open_chain_id(page, not_this=chain)
            decision, key = ("reject", "x") if i % 10 == 9 else ("accept", "a")
            key_then(page, key, f"Chain #{chain}: {decision}.")
            decided[chain] = decision + "ed"
            if i == 20:  # one slip, undone: the same chain comes back and is decided again
                key_then(page, "u", f"Undid the last change on chain #{chain}.")
                key_then(page, "a", f"Chain #{chain}: accept.")
                decided[chain] = "accepted"
        page.get_by_text("Nothing to review with these filters.").wait_for(timeout=20_000)
        shot(page, "review_keyboard")
    final = statuses(db_path)
    assert {c: final[c] for c in decided} == decided and len(decided) == 49
    assert final[first] == "proposed"  # the skipped chain is left for later
    assert list(final.values()).count("rejected") == 4
