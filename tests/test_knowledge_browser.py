"""The console's knowledge page (/console/knowledge, issue #19) in a real browser: an admin
sees the unanswered questions with their counts and the demo shop's products and articles,
edits an article with the keyboard and saves it; the page passes axe-core's WCAG 2.1 AA
rules with 0 violations before and after. Screenshot: /tmp/console_knowledge.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.domain import knowledge, staff
from bot.domain.enums import StaffRole
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

PASSWORD = "console-password-1"


async def _seed(sessions: Sessions) -> None:
    async with sessions() as db, db.begin():
        await staff.create_user(db, "ada@example.com", "Ada", StaffRole.admin, PASSWORD)
        await knowledge.load_demo(db)
        for question in ("do you sell bikes", "Do you sell bikes?", "are you hiring"):
            await knowledge.record_unanswered(db, question, ["returns-policy", "warranty"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(tmp_path_factory.mktemp("console_knowledge"), seed=_seed) as app:
        yield app


@pytest.mark.browser
def test_an_admin_reads_unanswered_questions_and_edits_an_article(
    live: LiveApp, browser: Any
) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live.url}/console/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)

    page.goto(f"{live.url}/console/knowledge")
    rows = page.locator("#unanswered tr")
    rows.nth(1).wait_for(timeout=15_000)
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)] == ["2", "1"]
    assert rows.nth(0).locator("td").first.inner_text() == "Do you sell bikes?"
    assert page.locator("#summary").inner_text() == (
        "42 products, 29 articles, 2 unanswered questions"
    )
    assert axe_violations(page) == []

    page.get_by_role("button", name="Edit Gift vouchers").click()
    assert page.get_by_label("Slug (lower-case words joined by -)").input_value() == "gift-vouchers"
    body = page.get_by_label("Body (Markdown)")
    body.fill(body.input_value() + "\n\nVouchers can also be bought in the chat.")
    page.get_by_label("Body (Markdown)").press("Tab")
    page.keyboard.press("Enter")  # the focused "Save article" button
    page.locator("#status").filter(has_text="saved").wait_for(timeout=15_000)
    assert page.locator("#status").inner_text() == "Article “Gift vouchers” saved."
    page.screenshot(path="/tmp/console_knowledge.png", full_page=True)
    assert axe_violations(page) == []
