"""Accessibility (issue #21): axe-core WCAG 2.1 AA on the widget (in its shadow DOM) and the
stand-alone chat page, and keyboard-only runs of the main flows: send a message in the
widget and on the chat page, open and move around the dashboard, filter the explorer.

The web service runs alone (tests/live_app.py) with the echo Rasa stand-in: what is
checked is the pages, not the bot's answers. Fixed demo data for the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.demo import load_demo_data
from bot.domain import staff
from tests.axe_helper import axe_violations
from tests.live_app import Sessions, serve_app

pytestmark = pytest.mark.browser


async def _seed(sessions: Sessions) -> None:
    await load_demo_data(sessions)
    async with sessions() as session, session.begin():
        await staff.ensure_demo_users(session)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app(tmp_path_factory.mktemp("a11y"), seed=_seed) as live:
        yield live.url


def _focused(page: Any) -> str:
    """What has the keyboard focus, looking into the widget's shadow root."""
    return str(
        page.evaluate(
            """() => {
              let el = document.activeElement;
              while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
              if (!el) return "";
              const label = el.labels && el.labels.length ? el.labels[0].textContent : "";
              return (el.getAttribute("aria-label") || label || el.textContent || el.name || el.id || el.tagName).trim();
            }"""
        )
    )


def _tab_to(page: Any, name: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused(page) == name:
            return
    raise AssertionError(f"{name!r} not reached with Tab; focus is on {_focused(page)!r}")


def test_chat_page_by_keyboard_and_axe(browser: Any, server: str) -> None:
    page = browser.new_page()
    page.goto(f"{server}/")
    page.locator(".msg--bot").first.wait_for(timeout=15_000)
    assert axe_violations(page) == []
    _tab_to(page, "Your message")
    page.keyboard.type("where is my parcel")
    page.keyboard.press("Enter")
    page.locator(".msg--bot", has_text="echo: where is my parcel").wait_for(timeout=15_000)
    assert _focused(page) == "Your message"  # still in the box for the next line
    assert axe_violations(page) == []  # with the conversation and its buttons
    page.close()


def test_widget_by_keyboard_and_axe(browser: Any, server: str) -> None:
    page = browser.new_page()
    page.goto(f"{server}/demo/shop/")
    page.locator("#shop-chat-widget").wait_for(state="attached")
    assert axe_violations(page) == []  # closed: the launcher only
    _tab_to(page, "Open chat")
    page.keyboard.press("Enter")
    widget = page.locator("#shop-chat-widget")
    widget.locator(".msg--bot").first.wait_for(timeout=15_000)
    assert _focused(page) == "Your message"  # opening moves the focus into the chat
    page.keyboard.type("hello there")
    page.keyboard.press("Enter")
    widget.locator(".msg--bot", has_text="echo: hello there").wait_for(timeout=15_000)
    assert axe_violations(page) == []  # open, with messages and buttons (shadow DOM)
    page.keyboard.press("Escape")
    assert _focused(page) == "Open chat"  # closing gives the focus back to the launcher
    page.close()


def test_dashboard_and_explorer_by_keyboard(browser: Any, server: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/dashboard/")
    page.wait_for_url("**/console/login**")
    page.locator("#email").wait_for()
    assert _focused(page) == "Email"  # autofocus
    page.keyboard.type("cx@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("demo-password-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/dashboard/")
    page.wait_for_selector("body[data-ready=true]")
    assert axe_violations(page) == []

    _tab_to(page, "Journey map")
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/journey**")
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#fix-first tbody tr").first.wait_for()
    assert axe_violations(page) == []
    # The first "what to fix first" row opens its comments from the keyboard. The demo data
    # is dated relative to now, and at some hours its range holds nothing to fix (a fresh
    # clone's run failed on the missing row link at 09:50): then the Comments link.
    links = page.locator("#fix-first tbody tr a")
    target = links.first.text_content() if links.count() else "Comments"
    _tab_to(page, target or "")
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/explorer**")
    page.wait_for_selector("body[data-ready=true]")
    assert axe_violations(page) == []

    # Filter the explorer: the Kind select by arrow keys, then Enter submits the form.
    select = page.locator("#explorer-form select[name=kind]")
    select.focus()
    page.keyboard.press("ArrowDown")  # "any" -> the first kind
    chosen = select.input_value()
    assert chosen
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**kind={chosen}**")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#feedback-table tr[data-id]").count() > 0
    page.close()
