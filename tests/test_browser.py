"""The chat page in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed (make browser-deps installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def bot_says(page: Any, text: str) -> None:
    page.locator(".msg--bot", has_text=text).last.wait_for(timeout=30_000)


def test_customer_checks_an_order_and_answers_the_survey_by_tapping(
    live_stack: Any, browser: Any
) -> None:
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_stack.web_url}/")
    page.get_by_role("button", name="Where is my order?").click()
    bot_says(page, "What's your order number?")
    page.get_by_label("Your message").fill("A10003")
    page.keyboard.press("Enter")
    bot_says(page, "which email address")
    page.get_by_label("Your message").fill("tom.becker@example.com")
    page.keyboard.press("Enter")
    bot_says(page, "Order A10003")
    bot_says(page, "How satisfied are you")
    page.locator(".msg--bot").last.get_by_role("button", name="5", exact=True).click()
    bot_says(page, "Anything you'd like to add?")

    xss = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    page.get_by_label("Your message").fill(xss)
    page.keyboard.press("Enter")
    bot_says(page, "Thank you for your feedback")

    assert page.locator(".msg--customer", has_text="<img src=x onerror=alert(1)>").count() == 1
    assert page.locator(".chat__log img, .chat__log script").count() == 0
    assert dialogs == []

    page.reload()  # the conversation survives a reload
    page.locator(".msg--customer", has_text="tom.becker@example.com").wait_for(timeout=10_000)
    page.close()
