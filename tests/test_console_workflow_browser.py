"""The console's workflow in a real browser, two agents in two contexts and a
customer in the chat page: unread counts live (row badge and tab title), priority words
and "Overdue", a canned reply inserted filled, a transfer to an offline colleague (warned,
then forced) taken over by another agent, history search and reopen, the CX manager's
read-only queue, the canned-replies page. Every console page passes axe-core's WCAG 2.1
AA rules with 0 violations. Screenshots: /tmp/console_*.png.

Only the web service runs (Rasa is the echo stand-in of tests/live_app.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain import escalations, inbox, staff
from bot.domain.enums import (
    ConversationStatus,
    EscalationReason,
    EscalationStatus,
    MessageSender,
    StaffRole,
)
from bot.storage.models import Conversation, Customer, Escalation, Message, utcnow
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

pytestmark = pytest.mark.browser

PASSWORD = "console-password-1"
SHOTS = Path("/tmp")


async def _seed(sessions: Sessions) -> None:
    now = utcnow()
    async with sessions() as db, db.begin():
        sam = await staff.create_user(db, "sam@example.com", "Sam", StaffRole.agent, PASSWORD)
        await staff.create_user(db, "alex@example.com", "Alex", StaffRole.agent, PASSWORD)
        ada = await staff.create_user(db, "ada@example.com", "Ada", StaffRole.admin, PASSWORD)
        await staff.create_user(db, "cx@example.com", "Chris", StaffRole.cx_manager, PASSWORD)
        eva = Customer(external_id="C2001", name="Eva Green", email="eva@example.com")
        nina = Customer(external_id="C2002", name="Nina Brandt", email="nina@example.com")
        db.add_all([eva, nina])
        await db.flush()
        # Eva's chat was resolved by Sam yesterday: history.
        db.add(Conversation(id="conv-eva", customer_id=eva.id, status=ConversationStatus.bot))
        await db.flush()
        db.add(
            Message(
                conversation_id="conv-eva",
                sender=MessageSender.customer,
                text="The lid of my kettle is cracked",
                created_at=now - timedelta(days=1),
            )
        )
        db.add(
            Escalation(
                conversation_id="conv-eva",
                customer_id=eva.id,
                reason=EscalationReason.customer_request,
                priority=2,
                status=EscalationStatus.resolved,
                claimed_by_id=sam.id,
                created_at=now - timedelta(days=1, minutes=30),
                claimed_at=now - timedelta(days=1, minutes=29),
                resolved_at=now - timedelta(days=1),
            )
        )
        # Nina's negative feedback has waited 40 minutes: urgent and overdue.
        db.add(
            Conversation(
                id="conv-nina", customer_id=nina.id, status=ConversationStatus.waiting_for_agent
            )
        )
        await db.flush()
        db.add(
            Message(
                conversation_id="conv-nina",
                sender=MessageSender.customer,
                text="Two stars, the delivery was a mess",
                created_at=now - timedelta(minutes=41),
            )
        )
        db.add(
            Escalation(
                conversation_id="conv-nina",
                customer_id=nina.id,
                reason=EscalationReason.negative_feedback,
                priority=3,
                created_at=now - timedelta(minutes=40),
            )
        )
        # Eva's angry complaint was flagged while she stays with the bot (tester 5): a
        # follow-up, not a customer waiting.
        db.add(Conversation(id="conv-eva-2", customer_id=eva.id, status=ConversationStatus.bot))
        await db.flush()
        db.add(
            Escalation(
                conversation_id="conv-eva-2",
                customer_id=eva.id,
                reason=EscalationReason.negative_feedback,
                priority=3,
                created_at=now - timedelta(minutes=2),
            )
        )
        await inbox.save_canned(
            db,
            ada,
            {
                "shortcut": "thanks",
                "title": "Thanks for waiting",
                "text": "Thanks for waiting, {customer_name}. I am looking at it now.",
            },
        )


async def _escalate(sessions: Sessions, conversation_id: str) -> None:
    """Nina verified herself in the chat and asked for a person."""
    async with sessions() as db, db.begin():
        conversation = await db.get_one(Conversation, conversation_id)
        nina = await db.scalar(select(Customer).where(Customer.external_id == "C2002"))
        assert nina is not None
        conversation.customer_id = nina.id
        await escalations.escalate(db, conversation, EscalationReason.customer_request)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(tmp_path_factory.mktemp("console2"), seed=_seed) as app:
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


def _widget_status(browser: Any, live: LiveApp, shot: str) -> str:
    page = browser.new_context().new_page()
    page.goto(f"{live.url}/demo/shop/")
    page.get_by_role("button", name="Open chat").click()
    status = page.locator("#shop-chat-widget .header__status")
    page.wait_for_function(
        "() => !/Connecting/.test(document.querySelector('#shop-chat-widget')"
        ".shadowRoot.querySelector('.header__status').textContent)"
    )
    text: str = status.inner_text()
    page.screenshot(path=str(SHOTS / f"console_{shot}.png"))
    page.context.close()
    return text


def test_console_workflow(live: LiveApp, browser: Any) -> None:
    # Nobody of the team has the console open: the widget's header says so, with the hours.
    assert _widget_status(browser, live, "widget_team_offline") == (
        "Team offline · usually here Monday to Friday, 9:00 to 17:00 (Central European Time)"
    )

    # A customer chats; the bot (echo) answers; then the chat is handed to a person.
    customer = browser.new_context().new_page()
    customer.goto(f"{live.url}/")
    customer.get_by_label("Your message").fill("hello, my parcel did not arrive")
    customer.keyboard.press("Enter")
    customer.locator(".msg--bot", has_text="echo:").first.wait_for(timeout=15_000)
    conversation_id = live.rasa.received[-1]["sender"]
    live.run(_escalate(live.sessions, conversation_id))

    # Alex watches the queue: Nina's row is urgent and overdue; the new chat has 1 unread.
    alex = _sign_in(browser, live, "alex@example.com")
    nina_row = alex.locator("[data-conversation-id='conv-nina']")
    nina_row.wait_for(timeout=15_000)
    assert nina_row.locator(".cell-priority").inner_text().split() == ["Urgent", "Overdue"]
    row = alex.locator(f"[data-conversation-id='{conversation_id}']")
    assert row.locator(".unread").text_content() == "1 unread message"
    assert row.locator(".cell-last").inner_text() == "hello, my parcel did not arrive"
    customer.get_by_label("Your message").fill("is anyone there?")
    customer.keyboard.press("Enter")
    row.locator(".unread", has_text="2").wait_for(timeout=15_000)  # live, no reload
    assert row.locator(".cell-last").inner_text() == "is anyone there?"
    assert alex.title() == "(3 unread, 2 waiting) Queue · Support console"
    flagged = alex.locator("[data-conversation-id='conv-eva-2']")
    assert flagged.locator(".cell-status").inner_text() == "Follow-up"
    assert "flagged, not waiting" in flagged.locator(".cell-reason").inner_text()
    _no_violations(alex, "queue")

    assert _widget_status(browser, live, "widget_team_online") == "Online"  # Alex signed in

    # Sam claims it, inserts a canned reply (filled with Nina's name) and sends it.
    sam = _sign_in(browser, live, "sam@example.com")
    sam.locator(f"[data-conversation-id='{conversation_id}']").get_by_role(
        "button", name="Claim"
    ).click()
    sam.locator(".msg--customer", has_text="is anyone there?").wait_for(timeout=15_000)
    sam.get_by_label("Canned reply").select_option(label="Thanks for waiting (/thanks)")
    assert sam.get_by_label("Message").input_value() == (
        "Thanks for waiting, Nina Brandt. I am looking at it now."
    )
    sam.get_by_role("button", name="Send").click()
    customer.locator(".msg--agent", has_text="Thanks for waiting, Nina Brandt").wait_for(
        timeout=15_000
    )
    assert "Priority: normal" in sam.locator("#conv-meta").inner_text()
    _no_violations(sam, "conversation")

    # Sam transfers to Ada, who is not signed in: warned first, then forced.
    sam.get_by_role("button", name="Transfer…").click()
    sam.get_by_label("Transfer to").select_option(label="Ada (admin) · offline")
    sam.get_by_role("button", name="Transfer now").click()
    sam.locator("#status", has_text="Ada is offline").wait_for(timeout=15_000)
    sam.get_by_role("button", name="Transfer anyway").click()
    sam.locator("#conv-state", has_text="Claimed by Ada").wait_for(timeout=15_000)

    # The chat is not stuck: Alex takes it over (Ada is offline) and may answer.
    alex.goto(f"{live.url}/console/conversations/{conversation_id}")
    alex.get_by_role("button", name="Take over").click()
    alex.locator("#conv-state", has_text="Claimed by you").wait_for(timeout=15_000)
    assert alex.get_by_label("Message").is_enabled()
    # The customer is told at each change of hands who has the chat now.
    customer.locator(".msg--system", has_text="Alex from our team has joined").wait_for(
        timeout=15_000
    )
    joined = customer.locator(".msg--system .msg__text", has_text="has joined")
    assert [text.split(" from our team")[0] for text in joined.all_inner_texts()] == [
        "Sam",
        "Ada",
        "Alex",
    ]
    # Alex sees the customer leave (she closes the chat).
    assert alex.locator("#conv-presence").inner_text() == "The customer is in the chat."
    customer.context.close()
    alex.locator("#conv-presence", has_text="The customer has left the chat").wait_for(
        timeout=15_000
    )
    alex.get_by_role("button", name="Release to queue").click()
    alex.locator("#conv-state", has_text="Waiting for an agent").wait_for(timeout=15_000)

    # History: Sam finds Eva's resolved chat by a word she wrote, and reopens it.
    sam.goto(f"{live.url}/console/history")
    sam.get_by_label("Customer, order number or words").fill("kettle")
    sam.get_by_role("button", name="Search", exact=True).click()
    result = sam.locator("#history-body tr")
    result.first.wait_for(timeout=15_000)
    assert result.count() == 1 and "Eva Green" in result.first.inner_text()
    _no_violations(sam, "history")
    result.first.get_by_role("button", name="Reopen").click()
    sam.locator("#conv-state", has_text="Claimed by you").wait_for(timeout=15_000)
    assert sam.url.endswith("/console/conversations/conv-eva")

    # A CX manager's "Console" link: the queue, read-only.
    chris = _sign_in(browser, live, "cx@example.com")  # lands on the dashboard
    chris.get_by_role("link", name="Console").click()
    chris.locator("[data-conversation-id='conv-nina']").wait_for(timeout=15_000)
    assert chris.locator("#readonly").is_visible()
    assert chris.get_by_role("button", name="Claim").count() == 0
    assert chris.locator("a[href='/console/replies']").count() == 0
    _no_violations(chris, "queue_cx")

    # Admins manage canned replies.
    ada = _sign_in(browser, live, "ada@example.com")
    ada.goto(f"{live.url}/console/replies")
    ada.get_by_label("Shortcut (letters, digits, - or _)").fill("late")
    ada.get_by_label("Title").fill("Late parcel")
    ada.get_by_label("Text").fill("Order {order_number} is on its way, {customer_name}.")
    ada.get_by_role("button", name="Save").click()
    ada.locator(".canned-item", has_text="/late").wait_for(timeout=15_000)
    _no_violations(ada, "replies")
