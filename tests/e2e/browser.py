"""Shared helpers of the browser tests: start the app (streamlit or ./run_app.sh), drive Debian's chromium.

The app runs as a real server process in its own process group (killed as a group at the end), on a
free port, against the test's database. The browser is always ``/usr/bin/chromium`` (headless), never a
downloaded one. Waits are on visible text or state, never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.probes import wait

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STREAMLIT_FLAGS = [
    "--server.address",
    "127.0.0.1",
    "--server.headless",
    "true",
    "--browser.gatherUsageStats",
    "false",
]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60, log: Path | None = None) -> None:
    """Poll Streamlit's health endpoint until it answers 200; fail early if the process exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the app did not become healthy within {timeout:.0f}s")


def stop_group(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process's whole group, then SIGKILL what is left after ``timeout`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (the leader already exited)


@contextlib.contextmanager
def serve(cmd: list[str], env: dict, log_path: Path, timeout: float = 120) -> Iterator[str]:
    """Run an app server command in its own session; yield its URL once healthy; kill its group after.

    ``env`` must hold ``COI_PORT`` (the port the command serves on).
    """
    url = f"http://127.0.0.1:{env['COI_PORT']}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_healthy(url, proc, timeout, log_path)
            yield url
        finally:
            stop_group(proc)


def streamlit_cmd(port: int) -> list[str]:
    """``streamlit run app/main.py`` on 127.0.0.1:port with this interpreter."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app/main.py",
        "--server.port",
        str(port),
        *STREAMLIT_FLAGS,
    ]


def app_env(db_path: Path, port: int, **extra: str) -> dict:
    """The environment of an app process: this one's, plus the database, the port and ``extra``."""
    return {**os.environ, "COI_DB": str(db_path), "COI_PORT": str(port), **extra}


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./run_tests.sh does it as root)")


@contextlib.contextmanager
def chromium_page(width: int = 1500, height: int = 1300) -> Iterator:
    """A headless Debian-chromium page; JavaScript dialogs are dismissed and recorded in ``page.dialogs``."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.dialogs = []
            page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
            yield page
        finally:
            browser.close()


def shot(page, name: str) -> Path:
    """Save a screenshot of the whole page as tests/e2e/artifacts/<name>.png.

    Streamlit scrolls inside its main container, not the document, so Playwright's ``full_page`` would
    only catch the viewport: the viewport is stretched to the content's height for the shot instead.
    """
    path = ARTIFACTS / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 8000)})
    try:
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)
    return path


def click_until(
    button, done: Callable[[], object], *, what: str, attempts: int = 3, timeout: float = 60
) -> None:
    """Click ``button`` until ``done()`` holds, clicking again (as a user would) when a click had no effect.

    Streamlit can drop a click that lands while the page is still finishing a rerun (seen on a form's
    Save button right after a search). ``done`` checks the click's effect (a DB row, or text on the
    page), so a click whose effect shows up within its share of ``timeout`` is not repeated.
    """
    for _ in range(attempts):
        button.click()
        with contextlib.suppress(AssertionError):
            wait(done, timeout=timeout / attempts, step=0.2, what=what)
            return
    raise AssertionError(f"{what}: {attempts} clicks had no effect in {timeout:.0f} s")


def shows(page, text: str) -> Callable[[], bool]:
    """A ``done`` check for :func:`click_until`: the page shows this text."""
    return lambda: page.get_by_text(text).first.is_visible()


def expand(page, label: str, content) -> None:
    """Open the expander titled ``label`` until ``content`` (a locator inside it) is visible."""
    if not content.is_visible():
        click_until(page.get_by_text(label).first, content.is_visible, what=f"open {label!r}")
