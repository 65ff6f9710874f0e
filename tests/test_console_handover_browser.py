"""The console tester's hand-over bugs (2026-12-07) in a real browser, a customer on the chat
page and an agent in the console: the customer panel's "Previous escalations … (this one)"
follows Claim and Release without a reload (bug 3); the widget's "Back to the assistant"
goes away when the agent joins and comes back when the chat waits in the queue again
(bug 4). axe-core WCAG 2.1 AA at 0 violations on both screens in each state.

Only the web service runs (Rasa is the echo stand-in of tests/live_app.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain import escalations, staff
from bot.domain.enums import EscalationReason, StaffRole
from bot.storage.models import Conversation, Customer
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

pytestmark = pytest.mark.browser

PASSWORD = "console-password-1"
WIDGET = "#shop-chat-widget"


async def _seed(sessions: Sessions) -> None:
    async with sessions() as db, db.begin():
        await staff.create_user(db, "sam@example.com", "Sam", StaffRole.agent, PASSWORD)
        db.add(Customer(external_id="C3001", name="Olga Berg", email="olga@example.com"))


async def _latest_conversation(sessions: Sessions) -> str:
    async with sessions() as db:
        found = await db.scalar(select(Conversation.id).order_by(Conversation.created_at.desc()))
    assert found is not None
    return str(found)


async def _escalate(sessions: Sessions, conversation_id: str) -> None:
    """Olga verified herself in the chat and asked for a person."""
    async with sessions() as db, db.begin():
        conversation = await db.get_one(Conversation, conversation_id)
        olga = await db.scalar(select(Customer).where(Customer.external_id == "C3001"))
        assert olga is not None
        conversation.customer_id = olga.id
        await escalations.escalate(db, conversation, EscalationReason.customer_request)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(tmp_path_factory.mktemp("handover"), seed=_seed) as app:
        yield app


def _this_one(agent: Any) -> Any:
    return agent.locator(".entry", has_text="(this one)")


def test_claim_updates_the_panel_and_the_widget_drops_back_to_the_assistant(
    live: LiveApp, browser: Any
) -> None:
    customer = browser.new_context().new_page()
    customer.goto(f"{live.url}/")
    customer.get_by_label("Your message").fill("hello")
    customer.keyboard.press("Enter")
    customer.locator(f"{WIDGET} .msg--bot", has_text="echo: hello").wait_for(timeout=15_000)
    conversation_id = live.run(_latest_conversation(live.sessions))
    live.run(_escalate(live.sessions, conversation_id))
    customer.reload()  # the chat is with the team now: the widget learns it on its hello
    customer.locator(f"{WIDGET} .msg--bot", has_text="echo: hello").wait_for(timeout=15_000)
    customer.get_by_label("Your message").fill("is anyone there?")
    customer.keyboard.press("Enter")
    back = customer.get_by_role("button", name="Back to the assistant")
    back.wait_for(timeout=15_000)
    assert back.is_enabled()

    agent = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    agent.goto(f"{live.url}/console/login")
    agent.get_by_label("Email").fill("sam@example.com")
    agent.get_by_label("Password").fill(PASSWORD)
    agent.get_by_role("button", name="Sign in").click()
    agent.wait_for_url(lambda url: "/login" not in url, timeout=15_000)
    agent.goto(f"{live.url}/console/conversations/{conversation_id}")
    _this_one(agent).locator(".badge", has_text="Waiting").wait_for(timeout=15_000)

    agent.get_by_role("button", name="Claim", exact=True).click()
    # Bug 3: the panel said "Waiting" until a reload.
    _this_one(agent).locator(".badge", has_text="Claimed").wait_for(timeout=15_000)
    # Bug 4: the button stayed and, clicked, sent "talk to the bot" to the agent.
    customer.locator(f"{WIDGET} .msg--system", has_text="has joined the chat").wait_for(
        timeout=15_000
    )
    back.wait_for(state="hidden", timeout=15_000)
    assert customer.get_by_role("button", name="Back to the assistant").count() == 0
    assert axe_violations(agent) == []
    assert axe_violations(customer) == []

    # Released to the queue: the chat waits for a person again, and the button is back.
    agent.get_by_role("button", name="Release to queue").click()
    _this_one(agent).locator(".badge", has_text="Waiting").wait_for(timeout=15_000)
    back.wait_for(state="visible", timeout=15_000)
    assert back.is_enabled()
    assert axe_violations(customer) == []

    # After a reload while the agent has the chat, the old button does not come back.
    agent.get_by_role("button", name="Claim", exact=True).click()
    _this_one(agent).locator(".badge", has_text="Claimed").wait_for(timeout=15_000)
    back.wait_for(state="hidden", timeout=15_000)
    customer.reload()
    customer.locator(f"{WIDGET} .msg--system", has_text="has joined the chat").first.wait_for(
        timeout=15_000
    )
    assert customer.get_by_role("button", name="Back to the assistant").count() == 0
    agent.context.close()
    customer.context.close()
