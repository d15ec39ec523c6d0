"""The login in a real browser: `./run_app.sh --host 0.0.0.0` with $COI_PASSWORD, driven by Debian chromium.

The page is locked (no navigation, no Data page), a wrong password is refused, the right one opens the
Data page, and the password never shows in the page or the server's output.
Screenshots: tests/e2e/artifacts/auth_locked.png, auth_open.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import app_env, chromium_page, click_until, free_port, serve, shot

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-pw-7f3a9c"


@pytest.fixture
def protected_app(tmp_path, db_path):
    """./run_app.sh on every interface with a password (and no secret from this shell or ~/.streamlit)."""
    port = free_port()
    env = app_env(db_path, port, COI_PASSWORD=PASSWORD, HOME=str(tmp_path))
    for name in ("COI_TOKEN", "COI_REVIEWER", "COI_HOST"):
        env.pop(name, None)
    log_path = tmp_path / "run_app.log"
    cmd = ["./run_app.sh", "--host", "0.0.0.0", "--port", str(port)]
    with serve(cmd, env, log_path, timeout=180) as url:
        yield url, log_path


def submit(page, name: str, password: str, answer) -> None:
    """Log in, until ``answer`` (a locator of the page's reply) shows."""
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    click_until(page.get_by_role("button", name="Log in"), answer.is_visible, what="Log in")


def test_public_server_is_locked_until_the_right_password(protected_app):
    url, log_path = protected_app
    with chromium_page(1300, 900) as page:
        page.goto(url + "/review")  # a deep link is locked too
        page.get_by_text("CoI Studio: log in").first.wait_for(timeout=90_000)
        page.get_by_role("button", name="Log in").first.wait_for(timeout=60_000)
        assert page.get_by_role("heading", name="Review").count() == 0
        assert page.get_by_role("link", name="Data").count() == 0  # no navigation before the login
        shot(page, "auth_locked")

        submit(page, "alice", "not-the-password", page.get_by_text("Wrong name or password.").first)
        assert page.get_by_role("heading", name="Data").count() == 0

        submit(page, "alice", PASSWORD, page.get_by_role("heading", name="Data").first)
        settings = page.get_by_role("heading", name="Settings").first
        click_until(
            page.get_by_role("link", name="Settings").first, settings.is_visible, what="Settings link"
        )
        name_box = page.get_by_role("textbox", name="Your name (recorded on every edit and decision)")
        expect(name_box).to_have_value("alice", timeout=30_000)  # filled a frame after the box appears
        expect(name_box).to_be_disabled()
        page.get_by_text("You are logged in").first.wait_for(timeout=45_000)
        shot(page, "auth_open")
        assert PASSWORD not in page.content()
        assert page.dialogs == []
    assert PASSWORD not in log_path.read_text()
