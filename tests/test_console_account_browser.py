"""The console account page (/console/account, issue #22) in a real browser: Sam is
signed in twice (two browser contexts), sees both sessions with "this session" marked,
ends the other one (that browser is signed out) and sets up two-factor sign-in (secret and
otpauth:// link as text, confirmed with a code). The page passes axe-core's WCAG 2.1 AA
rules with 0 violations. Screenshots: /tmp/console_account*.png.

The anonymous-redirect check is a plain HTTP test (no browser). Only the web service runs
(Rasa is the echo stand-in of tests/live_app.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from bot.domain import staff
from bot.domain.enums import StaffRole
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

PASSWORD = "console-password-1"
SHOTS = Path("/tmp")


async def test_the_account_page_needs_a_sign_in(client: Any) -> None:
    page = await client.get("/console/account", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (302, "/console/login")
    assert (await client.get("/console/api/sessions")).status == 401


async def _seed(sessions: Sessions) -> None:
    async with sessions() as db, db.begin():
        await staff.create_user(db, "sam@example.com", "Sam", StaffRole.agent, PASSWORD)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(tmp_path_factory.mktemp("console_account"), seed=_seed) as app:
        yield app


def _sign_in(browser: Any, live: LiveApp, email: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{live.url}/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)
    return page


def _no_violations(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"console_{name}.png"), full_page=True)
    assert axe_violations(page) == [], name


@pytest.mark.browser
def test_staff_see_and_end_their_sessions_and_set_up_two_factor(
    live: LiveApp, browser: Any
) -> None:
    laptop = _sign_in(browser, live, "sam@example.com")
    phone = _sign_in(browser, live, "sam@example.com")

    # The header links the page; it lists both sessions, this one marked.
    laptop.get_by_role("link", name="Account").click()
    laptop.wait_for_url(f"{live.url}/console/account")
    rows = laptop.locator("#sessions-body tr")
    rows.nth(1).wait_for(timeout=15_000)
    assert rows.count() == 2
    assert laptop.locator("#sessions-summary").inner_text() == (
        "2 sessions; a session unused for 30 minutes ends by itself."
    )
    current = rows.filter(has_text="(this session)")
    assert current.count() == 1
    assert "Chrome on Linux" in current.locator(".cell-browser").inner_text()
    assert current.locator(".cell-address").inner_text() == "127.0.0.1"
    assert laptop.locator("#tfa-state").inner_text() == "Two-factor sign-in is off."
    _no_violations(laptop, "account")

    # Sam ends the other session: it is gone from the list, and that browser is signed out.
    other = rows.filter(has_not_text="(this session)")
    other.get_by_role("button", name="End").click()
    laptop.locator("#status", has_text="Session ended.").wait_for(timeout=15_000)
    laptop.wait_for_function("() => document.querySelectorAll('#sessions-body tr').length === 1")
    assert "(this session)" in rows.first.inner_text()
    phone.goto(f"{live.url}/console/account")
    phone.wait_for_url(lambda url: "/console/login" in url, timeout=15_000)

    # Two-factor sign-in: the secret and the otpauth:// link as text, confirmed with a code.
    laptop.get_by_role("button", name="Set up two-factor sign-in").click()
    secret_node = laptop.locator("#tfa-secret")
    secret_node.wait_for(timeout=15_000)
    laptop.wait_for_function("() => document.getElementById('tfa-secret').textContent !== ''")
    secret = secret_node.inner_text()
    assert laptop.locator("#tfa-uri").inner_text().startswith("otpauth://totp/")
    _no_violations(laptop, "account_2fa_setup")
    laptop.get_by_label("Code from your app", exact=True).fill(pyotp.TOTP(secret).now())
    laptop.get_by_role("button", name="Turn on").click()
    laptop.locator("#status", has_text="Two-factor sign-in is on.").wait_for(timeout=15_000)
    assert laptop.locator("#tfa-state").inner_text() == (
        "Two-factor sign-in is on: signing in needs a code from your authenticator app."
    )
    assert laptop.get_by_label("Code from your app, to turn it off").is_visible()
    _no_violations(laptop, "account_2fa_on")
