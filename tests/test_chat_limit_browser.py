"""Past the per-address new-chat limit (issue #22, bot/web/client_limits.py), in a real
browser: the widget and the chat page show the server's "Too many new chats…" message,
stop sending (never "Say hello first."), offer "Try again", and pass axe in that state.

The web service trusts loopback as its proxy (like the tester's stack) and each browser
context sends its own `X-Forwarded-For`, so one address can be refused and another let in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.web.client_limits import TOO_MANY_CONVERSATIONS
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, serve_app

pytestmark = pytest.mark.browser

BUSY, FRESH = "203.0.113.7", "203.0.113.8"  # documentation addresses (RFC 5737)
STATUS = "#shop-chat-widget .header__status"  # the chat page is the widget, filling the page


@pytest.fixture
def live(tmp_path: Any) -> Iterator[LiveApp]:
    with serve_app(tmp_path, client_new_conversations=1, trusted_proxies=("127.0.0.1",)) as app:
        yield app


def _context(browser: Any, address: str) -> Any:
    return browser.new_context(extra_http_headers={"X-Forwarded-For": address})


def _use_up_the_limit(live: LiveApp, browser: Any) -> None:
    """One new chat from BUSY: the limit (1) is reached."""
    context = _context(browser, BUSY)
    page = context.new_page()
    page.goto(f"{live.url}/")
    page.get_by_role("button", name="Where is my order?").wait_for(timeout=10_000)
    context.close()


def test_chat_page_explains_the_limit_and_tries_again(live: LiveApp, browser: Any) -> None:
    _use_up_the_limit(live, browser)
    context = _context(browser, BUSY)
    page = context.new_page()
    page.goto(f"{live.url}/")
    notice = page.locator(".msg--system", has_text=TOO_MANY_CONVERSATIONS)
    notice.wait_for(timeout=10_000)
    assert page.locator(STATUS).text_content() == "Not connected"
    assert page.get_by_label("Your message").is_disabled()
    assert page.get_by_role("button", name="Send").is_disabled()
    assert page.get_by_role("button", name="Where is my order?").count() == 0
    assert axe_violations(page) == []

    # Still refused: a second notice, still no session and nothing sent.
    page.get_by_role("button", name="Try again").click()
    page.locator(".msg--system", has_text=TOO_MANY_CONVERSATIONS).nth(1).wait_for(timeout=10_000)
    assert page.get_by_role("button", name="Try again", disabled=False).count() == 1
    assert page.get_by_label("Your message").is_disabled()

    # From an address with chats left (as after the window): a session, and chatting works.
    context.set_extra_http_headers({"X-Forwarded-For": FRESH})
    page.get_by_role("button", name="Try again", disabled=False).click()
    page.get_by_role("button", name="Where is my order?").wait_for(timeout=10_000)
    assert page.locator(".msg--system").count() == 0  # the log now shows the conversation
    assert page.get_by_label("Your message").is_enabled()
    # The header tells the team's real status, as the widget's does (it said "Online").
    assert page.locator(STATUS).text_content() == (
        f"Team offline · usually here {live.settings.support_hours}"
    )
    page.get_by_label("Your message").fill("hello there")
    page.keyboard.press("Enter")
    page.locator(".msg--bot", has_text="echo: hello there").wait_for(timeout=10_000)
    # The greeting's quick replies answered the greeting: disabled once the customer spoke.
    assert page.get_by_role("button", name="Where is my order?").is_disabled()
    assert page.get_by_text("Say hello first").count() == 0
    assert [m["message"] for m in live.rasa.received] == ["hello there"]
    context.close()


def _shop_page(widget_url: str) -> str:
    return (
        "<!doctype html><html lang=en><head><title>Shop</title></head><body><main>"
        f'<h1>A shop</h1></main><script src="{widget_url}/widget.js" defer></script>'
        "</body></html>"
    )


def test_widget_explains_the_limit_and_sends_its_outbox_after_trying_again(
    live: LiveApp, browser: Any
) -> None:
    _use_up_the_limit(live, browser)
    live.shop.html = _shop_page(live.url)
    context = _context(browser, BUSY)
    # The tester's case: a message typed before the reload waits in the outbox, and the
    # widget connects at once to send it.
    outbox = [
        {
            "client_id": "c0ffee00-0000-4000-8000-000000000001",
            "text": "where is my order",
            "shown": "where is my order",
            "time": "2026-12-07T02:00:00Z",
        }
    ]
    context.add_init_script(
        f"sessionStorage.setItem('shop-chat-outbox', {json.dumps(json.dumps(outbox))});"
    )
    page = context.new_page()
    page.goto(f"{live.shop_url}/checkout")
    widget = page.locator("#shop-chat-widget")
    widget.locator(".badge", has_text="1").wait_for(timeout=10_000)  # the notice is unread
    page.get_by_role("button", name="Open chat").click()

    notice = widget.locator(".msg--system", has_text=TOO_MANY_CONVERSATIONS)
    notice.wait_for(timeout=10_000)
    assert notice.count() == 1
    assert widget.locator(".header__status").text_content() == "Not connected"
    assert widget.get_by_label("Your message").is_disabled()
    assert widget.locator(".composer__send").is_disabled()
    pending = widget.locator(".msg--customer", has_text="where is my order")
    assert pending.get_attribute("data-state") == "pending"  # kept, not lost
    assert widget.locator(".msg__buttons .quick", has_text="Try again").is_enabled()
    assert axe_violations(page) == []

    context.set_extra_http_headers({"X-Forwarded-For": FRESH})
    widget.get_by_role("button", name="Try again").click()
    widget.locator(".msg--bot", has_text="echo: where is my order").wait_for(timeout=10_000)
    assert (
        widget.locator(".msg--customer", has_text="where is my order").get_attribute("data-state")
        == "sent"
    )
    assert widget.locator(".msg--system").count() == 0
    assert widget.locator(".header__status").text_content() == (
        f"Team offline · usually here {live.settings.support_hours}"  # nobody on the console
    )
    assert widget.get_by_label("Your message").is_enabled()
    assert page.get_by_text("Say hello first").count() == 0
    assert [m["message"] for m in live.rasa.received] == ["where is my order"]
    context.close()
