"""XSS corpus (tests/xss_payloads.py) as chat messages, customer names, emails, staff names,
notes and feedback comments, in a real browser: the widget embedded on a shop page of
another origin (no CSP there, so an injection would run), the staff console and the CX
dashboard (explorer, transcript). No dialog opens, nothing becomes markup, every text is
shown literally."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from bot.domain import staff
from bot.domain.enums import (
    Channel,
    ConversationStatus,
    EscalationReason,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    MessageSender,
    StaffRole,
    Stage,
)
from bot.domain.identity import issue_token
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    Message,
    StaffNote,
    utcnow,
)
from tests.live_app import LiveApp, Sessions, serve_app
from tests.xss_payloads import (
    EMAIL_PAYLOADS,
    NAME_PAYLOADS,
    PAYLOADS,
    injected,
    record_dialogs,
)

pytestmark = pytest.mark.browser

AGENT_EMAIL, AGENT_PASSWORD = "agent@example.com", "agent-password-1"
CX_EMAIL = "cx@example.com"
MAIN_NAME = "<img src=x onerror=alert('main-name')> Quarry"
MAIN_CONVERSATION = "conv-xss-main"
NOTES = PAYLOADS[:5]
COMMENTS = PAYLOADS[5:10]
STAFF_NAME = "<svg/onload=alert('staff')>"


async def _seed(sessions: Sessions) -> None:
    now = utcnow()
    async with sessions() as db, db.begin():
        agent = await staff.create_user(db, AGENT_EMAIL, "Sam", StaffRole.agent, AGENT_PASSWORD)
        await staff.create_user(db, "b@example.com", STAFF_NAME, StaffRole.agent, AGENT_PASSWORD)
        await staff.create_user(db, CX_EMAIL, "Chris", StaffRole.cx_manager, AGENT_PASSWORD)
        people = [(MAIN_NAME, EMAIL_PAYLOADS[0], MAIN_CONVERSATION, PAYLOADS)] + [
            (name, EMAIL_PAYLOADS[1], f"conv-xss-{i}", (PAYLOADS[-1 - i],))
            for i, name in enumerate(NAME_PAYLOADS)
        ]
        for n, (name, email, conversation_id, texts) in enumerate(people):
            customer = Customer(external_id=f"XSS-{n}", email=email, name=name)
            db.add(customer)
            await db.flush()
            db.add(
                Conversation(
                    id=conversation_id,
                    customer_id=customer.id,
                    status=ConversationStatus.waiting_for_agent,
                )
            )
            await db.flush()
            for k, text in enumerate(texts):
                at = now - timedelta(minutes=len(texts) - k)
                db.add(
                    Message(
                        conversation_id=conversation_id,
                        sender=MessageSender.customer,
                        text=text,
                        created_at=at,
                    )
                )
            db.add(
                Escalation(
                    conversation_id=conversation_id,
                    customer_id=customer.id,
                    reason=EscalationReason.customer_request,
                    priority=2,
                )
            )
            if conversation_id != MAIN_CONVERSATION:
                continue
            lifecycle = Lifecycle(
                customer_id=customer.id, kind=LifecycleKind.one_time, stage=Stage.support
            )
            db.add(lifecycle)
            await db.flush()
            for k, comment in enumerate(COMMENTS):
                db.add(
                    Feedback(
                        idempotency_key=f"xss:{k}",
                        customer_id=customer.id,
                        lifecycle_id=lifecycle.id,
                        stage=Stage.support,
                        channel=Channel.website_chat,
                        source=FeedbackSource.free_text,
                        kind=FeedbackKind.complaint,
                        text=comment,
                    )
                )
            for note in NOTES:
                db.add(
                    StaffNote(conversation_id=conversation_id, staff_user_id=agent.id, text=note)
                )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(
        tmp_path_factory.mktemp("xss"),
        seed=_seed,
        rate_limit_messages=1000,
    ) as app:
        yield app


def _shop_page(widget_url: str, identity: str) -> str:
    # The shop's own page: no CSP, so anything the widget injected would run.
    return (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>A shop</h1>"
        f'<script src="{widget_url}/widget.js" data-identity="{identity}" defer></script>'
        "</body></html>"
    )


def test_widget_on_a_shop_page_shows_every_payload_as_text(live: LiveApp, browser: Any) -> None:
    identity = issue_token(
        live.settings.widget_secret, "XSS-WIDGET", name=NAME_PAYLOADS[0], email=EMAIL_PAYLOADS[0]
    )
    live.shop.html = _shop_page(live.url, identity)
    context = browser.new_context()
    page = context.new_page()
    dialogs = record_dialogs(page)
    page.goto(f"{live.shop_url}/checkout")
    page.get_by_role("button", name="Open chat").click()
    greeting = page.locator("#shop-chat-widget .msg--bot .msg__text").first
    greeting.wait_for(timeout=15_000)
    assert greeting.text_content() == f"Hi {NAME_PAYLOADS[0]}! How can I help you today?"

    box = page.get_by_label("Your message")
    for payload in PAYLOADS:
        box.fill(payload)
        box.press("Enter")
    echoes = page.locator("#shop-chat-widget .msg--bot .msg__text", has_text="echo: ")
    echoes.nth(len(PAYLOADS) - 1).wait_for(timeout=30_000)

    shown = page.locator("#shop-chat-widget .msg--customer .msg__text").all_text_contents()
    assert shown == list(PAYLOADS)
    assert echoes.all_text_contents() == [f"echo: {p}" for p in PAYLOADS]
    quick_replies = page.locator("#shop-chat-widget .msg--bot .quick").all_text_contents()
    assert [q for q in quick_replies if q in PAYLOADS] == list(PAYLOADS)
    links = page.locator("#shop-chat-widget a.msg__link")
    hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
    assert hrefs and all(h.startswith("https://example.com/") for h in hrefs)
    page.wait_for_timeout(500)  # give anything injected a moment to run
    assert dialogs == []
    assert not injected(page)
    context.close()


def test_stand_alone_chat_page_shows_every_payload_as_text(live: LiveApp, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    dialogs = record_dialogs(page)
    page.goto(f"{live.url}/")
    # connected: the header shows the team's status ("Online" or "Team offline · usually here …")
    page.locator(
        "#shop-chat-widget .header__status", has_text=re.compile("Online|Team offline")
    ).wait_for(timeout=15_000)
    box = page.get_by_label("Your message")
    for payload in PAYLOADS:
        box.fill(payload)
        box.press("Enter")
    echoes = page.locator("#shop-chat-widget .log .msg--bot .msg__text", has_text="echo: ")
    echoes.nth(len(PAYLOADS) - 1).wait_for(timeout=30_000)
    shown = page.locator("#shop-chat-widget .log .msg--customer .msg__text").all_text_contents()
    assert shown == list(PAYLOADS)
    assert echoes.all_text_contents() == [f"echo: {p}" for p in PAYLOADS]
    page.wait_for_timeout(500)
    assert dialogs == []
    assert not injected(page)
    context.close()


def _sign_in(live: LiveApp, browser: Any, email: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context()
    page = context.new_page()
    dialogs = record_dialogs(page)
    page.goto(f"{live.url}/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(AGENT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    return context, page, dialogs


def _console(live: LiveApp, browser: Any) -> tuple[Any, Any, list[str]]:
    context, page, dialogs = _sign_in(live, browser, AGENT_EMAIL)
    page.locator("[data-escalation-id]").nth(len(NAME_PAYLOADS)).wait_for(timeout=15_000)
    return context, page, dialogs


def test_console_queue_shows_names_and_messages_as_text(live: LiveApp, browser: Any) -> None:
    context, page, dialogs = _console(live, browser)
    names = page.locator(".cell-customer .row__link").all_text_contents()
    assert sorted(names) == sorted([MAIN_NAME, *NAME_PAYLOADS])
    table = page.locator("#queue-table").inner_text()
    for i in range(len(NAME_PAYLOADS)):
        assert PAYLOADS[-1 - i] in table  # each conversation's last message
    page.wait_for_timeout(500)
    assert dialogs == []
    assert not injected(page)
    context.close()


def test_console_conversation_shows_every_payload_as_text(live: LiveApp, browser: Any) -> None:
    context, page, dialogs = _console(live, browser)
    page.goto(f"{live.url}/console/conversations/{MAIN_CONVERSATION}")
    page.locator(".entry__quote").nth(len(COMMENTS) - 1).wait_for(timeout=15_000)
    texts = page.locator("#log .msg__text").all_text_contents()
    assert [t for t in texts if t in PAYLOADS and t not in NOTES] == [
        p for p in PAYLOADS if p not in NOTES
    ]
    for note in NOTES:
        assert texts.count(note) == 2  # once as the customer's message, once as a note
    assert sorted(page.locator(".entry__quote").all_text_contents()) == sorted(COMMENTS)
    panel = page.locator("#customer").inner_text()
    assert MAIN_NAME in panel and EMAIL_PAYLOADS[0] in panel
    page.get_by_role("button", name="Claim").click()
    page.get_by_role("button", name="Transfer…").click()
    page.locator("#transfer-to option", has_text="alert('staff')").wait_for(state="attached")
    options = page.locator("#transfer-to option").all_text_contents()
    assert any(o.startswith(STAFF_NAME) for o in options), options  # a colleague's name
    page.wait_for_timeout(500)
    assert dialogs == []
    assert not injected(page)
    context.close()


def test_dashboard_explorer_and_transcript_show_every_payload_as_text(
    live: LiveApp, browser: Any
) -> None:
    context, page, dialogs = _sign_in(live, browser, CX_EMAIL)
    page.wait_for_url("**/dashboard/**", timeout=15_000)
    page.goto(f"{live.url}/dashboard/explorer")
    page.locator("#feedback-table td.comment").nth(len(COMMENTS) - 1).wait_for(timeout=15_000)
    comments = page.locator("#feedback-table td.comment").all_text_contents()
    assert sorted(comments) == sorted(COMMENTS)
    table = page.locator("#feedback-table").inner_text()
    assert MAIN_NAME in table

    page.goto(f"{live.url}/dashboard/transcript?conversation={MAIN_CONVERSATION}")
    page.locator("#transcript li").nth(len(PAYLOADS) - 1).wait_for(timeout=15_000)
    lines = page.locator("#transcript li").all_text_contents()
    # The seeded messages come first; a claim by the console test above adds a "joined"
    # note for the customer after them (issue #20).
    seeded = lines[: len(PAYLOADS)]
    assert all(line.endswith(payload) for line, payload in zip(seeded, PAYLOADS, strict=True))
    page.wait_for_timeout(500)
    assert dialogs == []
    assert not injected(page)
    context.close()
