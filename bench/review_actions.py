"""Review page actions in a real browser over 10,000 chains: click to updated DOM, against a full rerun.

Starts ``streamlit run app/main.py`` on a fresh SQLite file of 10,000 review-like chains
(bench/chains_db.py), opens the Review page in Debian's chromium (Playwright), and times, from the
key press or click until the page shows the change and the run it started has ended:

* accept_ms: Accept (the A key) until the next chain's heading is shown;
* save_ms: Save of an edited step output until the chain shows the new text;
* next_ms: Next page until the queue shows the next page;
* full_rerun_ms (the named baseline): a full rerun of the same page (Streamlit's R key), which is
  what every action cost before the page was split into fragments (an action there was a full
  run plus an ``st.rerun()``, so this baseline understates the old cost).

A run's end is read from Streamlit's own ``data-test-script-state`` attribute on the app root,
observed in the page. Medians of --reps (default 20) each; target ratio full_rerun_ms / accept_ms >= 3.
Run: .venv/bin/python bench/review_actions.py   (last line: RESULT accept_ms=... ratio=...)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chains_db import fill  # noqa: E402
from store.db import connect  # noqa: E402
from tests.e2e.browser import app_env, chromium_page, expand, free_port, serve, streamlit_cmd  # noqa: E402

# Counts the ends of script runs (full or fragment) as Streamlit flags them on the app root.
WATCH_RUNS = """() => {
  window.__runEnds = 0;
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => {
    if (app.getAttribute('data-test-script-state') === 'notRunning') window.__runEnds += 1;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def timed(page, act, shown: str, arg=None) -> float:
    """Milliseconds from ``act()`` until the JS predicate ``shown`` holds and a run started since ended."""
    before = page.evaluate("window.__runEnds")
    t0 = time.perf_counter()
    act()
    page.wait_for_function(
        f"([before, arg]) => window.__runEnds > before && ({shown})(arg)", arg=[before, arg], timeout=60_000
    )
    return (time.perf_counter() - t0) * 1000


HEADING = "() => [...document.querySelectorAll('h3')].map(h => h.innerText).find(t => t.startsWith('Chain #')) || ''"


def chain_heading(page) -> str:
    return page.evaluate(HEADING)


def accept_times(page, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        old = chain_heading(page)
        out.append(
            timed(
                page,
                lambda: page.keyboard.press("a"),
                f"(old) => ({HEADING})() !== old && ({HEADING})() !== ''",
                old,
            )
        )
    return out


def save_times(page, reps: int) -> list[float]:
    out = []
    for i in range(reps):
        box = page.get_by_label("New output").first
        expand(page, "Edit step 1 output", box)
        text = f"edited output number {i} {random.random():.6f}"
        box.fill(text)
        save = page.get_by_role("button", name="Save step 1").first
        shows = "(text) => [...document.querySelectorAll('code')].some(c => c.innerText.includes(text))"
        out.append(timed(page, save.click, shows, text))
    return out


def next_page_times(page, reps: int) -> list[float]:
    out = []
    label = "() => [...document.querySelectorAll('summary')].map(s => s.innerText).find(t => t.includes('Queue:')) || ''"
    for _ in range(reps):
        old = page.evaluate(label)
        button = page.get_by_role("button", name="Next page").first
        out.append(timed(page, button.click, f"(old) => ({label})() !== old", old))
    return out


def full_rerun_times(page, reps: int) -> list[float]:
    return [timed(page, lambda: page.keyboard.press("r"), "() => true") for _ in range(reps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coi-review-actions-"))
    db_path = work / "coi.db"
    db = connect(db_path)
    fill(db, args.chains, random.Random(0))
    with db.atomic():  # a chain with stale steps refuses Accept; every timed Accept must go through
        db.execute("UPDATE steps SET stale = 0")
    db.conn.close()
    port = free_port()
    env = app_env(db_path, port, COI_REVIEWER="bench")
    results: dict[str, list[float]] = {}
    with serve(streamlit_cmd(port), env, work / "streamlit.log", timeout=90) as url, chromium_page() as page:
        page.goto(url + "/review")
        page.get_by_role("button", name="Next page").first.wait_for(timeout=60_000)
        page.get_by_text("Chain #").first.wait_for(timeout=60_000)
        page.evaluate(WATCH_RUNS)
        # A freshly loaded headless page has no keyboard focus: give it to the first navigation link.
        page.bring_to_front()
        page.evaluate("document.querySelector('[data-testid=\"stSidebarNav\"] a').focus()")
        for name, fn in (
            ("full_rerun", full_rerun_times),
            ("accept", accept_times),
            ("save", save_times),
            ("next", next_page_times),
            ("full_rerun_after", full_rerun_times),
        ):
            fn(page, 2)  # warm-up, not counted
            results[name] = fn(page, args.reps)
            print(
                f"{name:>16}: median {statistics.median(results[name]):7.1f} ms over {args.reps}", flush=True
            )
    med = {k: statistics.median(v) for k, v in results.items()}
    full = statistics.median(results["full_rerun"] + results["full_rerun_after"])
    print(f"{args.chains} chains; full rerun measured before and after the actions, pooled")
    print(
        f"RESULT accept_ms={med['accept']:.1f} save_ms={med['save']:.1f} next_ms={med['next']:.1f} "
        f"full_rerun_ms={full:.1f} ratio={full / med['accept']:.2f}"
    )


if __name__ == "__main__":
    main()
