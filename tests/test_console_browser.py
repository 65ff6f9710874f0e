"""Live handoff in two browsers: a customer in the widget and an agent in the console."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.enums import FeedbackKind, Stage
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Feedback, SurveyDispatch

pytestmark = pytest.mark.browser


def _widget(page: Any, css: str, text: str) -> Any:
    locator = page.locator(f"#shop-chat-widget {css}", has_text=text).last
    locator.wait_for(timeout=30_000)
    return locator


def test_agent_takes_over_replies_live_resolves_and_the_bot_asks_csat_and_ces(
    live_stack: Any, browser: Any
) -> None:
    customer = browser.new_context().new_page()
    customer.goto(f"{live_stack.web_url}/demo/shop/login?customer=C1002")
    customer.get_by_role("button", name="Open chat").click()
    customer.get_by_label("Your message").fill("I want to talk to a real person please")
    customer.keyboard.press("Enter")
    _widget(customer, ".msg--bot", "support team")

    agent = browser.new_context().new_page()
    agent.goto(f"{live_stack.web_url}/console/login")
    agent.get_by_label("Email").fill("agent@example.com")
    agent.get_by_label("Password").fill("demo-password-123")
    agent.get_by_role("button", name="Sign in").click()
    # Playwright's has_text is a case-insensitive substring: "Tom" alone also matched
    # "customer back with the bot" in other tests' rows of the shared queue.
    row = (
        agent.locator("[data-escalation-id]", has_text="Tom Becker")
        .filter(has_text="real person")
        .first
    )
    row.wait_for(timeout=15_000)
    row.get_by_role("button", name="Claim").click()
    agent.locator(".msg--customer", has_text="real person").wait_for(timeout=15_000)

    agent.get_by_label("Message").fill(
        "Hi Tom, Sam here. Your parcel is with DPD, arriving tomorrow."
    )
    agent.get_by_role("button", name="Send").click()
    reply = _widget(customer, ".msg--agent", "Sam here")
    assert "Sam (support)" in reply.inner_text()

    customer.get_by_label("Your message").fill("great, thanks Sam")
    customer.keyboard.press("Enter")
    agent.locator(".msg--customer", has_text="great, thanks Sam").wait_for(
        timeout=15_000
    )  # live, no reload
    assert customer.locator("#shop-chat-widget .msg--bot", has_text="great, thanks").count() == 0

    agent.get_by_role("button", name="Resolve & hand back to bot").click()
    agent.wait_for_timeout(500)  # a quick double click does not count as the confirmation
    agent.get_by_role("button", name="Really resolve?").click()
    _widget(customer, ".msg--bot", "How satisfied are you")
    customer.locator("#shop-chat-widget .msg--bot").last.get_by_role(
        "button", name="5", exact=True
    ).click()
    _widget(customer, ".msg--bot", "how easy was it")
    customer.locator("#shop-chat-widget .msg--bot").last.get_by_role(
        "button", name="2", exact=True
    ).click()
    _widget(customer, ".msg--bot", "Thank you for your feedback")

    # Playwright's sync API owns this thread's event loop: query from another thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        rows = pool.submit(asyncio.run, _support_feedback(live_stack.database_url)).result()
    assert rows == [("csat", 5, "support"), ("ces", 2, "support")]


async def _support_feedback(database_url: str) -> list[tuple[str, int | None, str]]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as db:
            rows = (
                await db.scalars(
                    select(Feedback)
                    .join(SurveyDispatch, Feedback.survey_dispatch_id == SurveyDispatch.id)
                    .where(
                        SurveyDispatch.trigger == "support_resolved",
                        Feedback.conversation_id.is_not(None),
                    )
                    .order_by(Feedback.id)
                )
            ).all()
            return [(FeedbackKind(r.kind).value, r.score, Stage(r.stage).value) for r in rows]
    finally:
        await engine.dispose()
