"""The staff console and hand-over bugs a tester found (2026-12-07): presence while a console
page is open, what the customer hears after Resolve, the live status the widget hears."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import escalations, staff
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import EscalationReason, FeedbackKind, MessageSender
from bot.domain.identity import issue_token
from bot.storage import repositories
from bot.storage.models import (
    Conversation,
    Escalation,
    Message,
    Photo,
    StaffUser,
    SurveyDispatch,
    utcnow,
)
from bot.web import console
from bot.web.hub import StaffHub
from bot.web.rasa_client import RasaClient
from tests import factories
from tests.conftest import StubRasa
from tests.test_console import _escalate, _escalated_chat, _first_in_queue, _login, _setup
from tests.test_photos import _upload, jpeg_with_exif, photo_client, photo_dir  # noqa: F401
from tests.test_web_chat import SECRET, _open, _open_as, _turn

Client = TestClient[web.Request, web.Application]


async def _seen_long_ago(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """As if the page had been open for five minutes without loading anything."""
    async with session_factory() as db, db.begin():
        await db.execute(update(StaffUser).values(last_seen_at=utcnow() - timedelta(minutes=5)))


async def _online(session_factory: async_sessionmaker[AsyncSession]) -> list[str]:
    async with session_factory() as db:
        return [u.email for u in await staff.online_staff(db)]


async def test_an_open_console_keeps_its_agent_online_and_a_closed_one_goes_stale(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug 1: only page loads refreshed presence, so an agent looking at the queue counted
    as offline after 60 s and customers were told the team was offline."""
    monkeypatch.setattr(console, "PRESENCE_TOUCH_SECONDS", 0.1)
    await _setup(session_factory)
    await _login(client, "sam@example.com")
    queue = await client.ws_connect("/console/ws")  # the queue page's live connection
    second_tab = await client.ws_connect("/console/ws")
    await _seen_long_ago(session_factory)
    assert await _online(session_factory) == []
    await asyncio.sleep(0.35)
    assert await _online(session_factory) == ["sam@example.com"]

    await queue.close()
    await second_tab.close()
    await asyncio.sleep(0.1)  # the server sees the pages closed
    await _seen_long_ago(session_factory)
    await asyncio.sleep(0.35)
    assert await _online(session_factory) == []


def test_several_tabs_of_one_agent_refresh_presence_once_per_period() -> None:
    hub = StaffHub()
    assert [hub.presence_due(7, t, 18.0) for t in (100.0, 101.0, 117.9, 118.0)] == [
        True,
        False,
        False,
        True,
    ]
    assert hub.presence_due(8, 101.0, 18.0) is True
    assert staff.PRESENCE_WINDOW.total_seconds() / 2 > console.PRESENCE_TOUCH_SECONDS


async def _answered_a_survey_in(
    session_factory: async_sessionmaker[AsyncSession], conversation_id: str
) -> None:
    """The customer of this chat answered the CSAT after a bot answer, before the hand-over."""
    async with session_factory() as db, db.begin():
        owner = await factories.customer(db, 1)
        lifecycle = await lifecycles.current_lifecycle(db, owner)
        conversation = await db.get_one(Conversation, conversation_id)
        conversation.customer_id = owner.id
        now = utcnow()
        db.add(
            SurveyDispatch(
                customer_id=owner.id,
                lifecycle_id=lifecycle.id,
                conversation_id=conversation_id,
                trigger="support_chat",
                survey_kind=FeedbackKind.csat,
                created_at=now,
                sent_at=now,
                answered_at=now,
            )
        )


async def _resolve(
    client: Client, me: dict[str, Any], conversation_id: str, escalation_id: int
) -> dict[str, Any]:
    headers = {"X-CSRF-Token": me["csrf_token"]}
    claimed = await client.post(f"/console/api/escalations/{escalation_id}/claim", headers=headers)
    assert claimed.status == 200
    detail = await (await client.get(f"/console/api/conversations/{conversation_id}")).json()
    resolved = await client.post(
        f"/console/api/escalations/{escalation_id}/resolve", headers=headers
    )
    assert resolved.status == 200
    body: dict[str, Any] = await resolved.json()
    return {"survey_after_resolve": detail["conversation"]["survey_after_resolve"], **body}


async def _bot_texts(
    session_factory: async_sessionmaker[AsyncSession], conversation_id: str
) -> list[str]:
    async with session_factory() as db:
        rows = await db.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.sender == MessageSender.bot)
            .order_by(Message.id)
        )
        return [m.text for m in rows]


async def test_resolve_with_the_survey_held_back_tells_the_customer_and_promises_no_survey(
    client: Client,
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug 2: the console promised a survey after Resolve, but when the transactional rule
    held it back (a survey answered in this chat) the bot said nothing and the customer
    heard nothing at all."""
    ws, conversation_id, me, escalation_id = await _escalated_chat(client, rasa, session_factory)
    await _answered_a_survey_in(session_factory, conversation_id)

    async def held_back(_self: Any, _sender: str, _intent: str, **_kw: Any) -> list[Any]:
        return []  # what action_start_support_survey says then: nothing

    monkeypatch.setattr(RasaClient, "trigger_intent", held_back)
    body = await _resolve(client, me, conversation_id, escalation_id)
    assert (body["survey_after_resolve"], body["handed_back"], body["status"]) == (
        False,
        "closing",
        "resolved",
    )
    closing = (
        "Our team has marked your request as resolved. "
        "I'm here if you need anything else: just write below."
    )
    assert (await _bot_texts(session_factory, conversation_id))[-1] == closing
    frames = [await ws.receive_json(timeout=5) for _ in range(4)]
    assert [(f["type"], f.get("status") or f.get("text")) for f in frames] == [
        ("message", "Sam (support) from our team has joined the chat and will reply here."),
        ("status", "with_agent"),
        ("status", "bot"),
        ("message", closing),
    ]
    await ws.close()


async def test_resolve_with_the_survey_due_says_the_bot_asked_it(
    client: Client,
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ws, conversation_id, me, escalation_id = await _escalated_chat(client, rasa, session_factory)
    body = await _resolve(client, me, conversation_id, escalation_id)
    assert (body["survey_after_resolve"], body["handed_back"]) == (True, "survey")
    assert (await _bot_texts(session_factory, conversation_id))[-1] == "How satisfied are you?"
    await ws.close()


async def test_the_widget_hears_every_change_of_hands(
    client: Client,
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Bug 4 (server side): claim and release tell the customer's tabs the chat's status,
    so "Back to the assistant" goes when the agent joins and comes back in the queue."""
    ws, _conversation_id, me, escalation_id = await _escalated_chat(client, rasa, session_factory)
    headers = {"X-CSRF-Token": me["csrf_token"]}
    for action in ("claim", "release"):
        answer = await client.post(
            f"/console/api/escalations/{escalation_id}/{action}", headers=headers
        )
        assert answer.status == 200
    frames = [await ws.receive_json(timeout=5) for _ in range(3)]
    assert [(f["type"], f.get("status") or f.get("sender")) for f in frames] == [
        ("message", "system"),  # "Sam (support) from our team has joined the chat …"
        ("status", "with_agent"),
        ("status", "waiting_for_agent"),
    ]
    await ws.close()


async def test_a_signed_in_customer_in_a_fresh_browser_sees_the_agents_reply_and_reaches_the_agent(
    client: Client,
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Bug 5: signed in again from a fresh browser (no conversation token), the customer got
    a new empty chat without the agent's last reply, and asking about it there opened a
    second hand-over."""
    await _setup(session_factory)
    ws, opened = await _open(client)
    first_token = opened["token"]
    await _turn(ws, "where is my refund")
    conversation_id = rasa[0].received[0]["sender"]
    await _escalate(session_factory, conversation_id)
    me = await _login(client, "sam@example.com")
    escalation_id = await _first_in_queue(client)
    async with session_factory() as db, db.begin():
        owner = await factories.customer(db, 1)
        conversation = await db.get_one(Conversation, conversation_id)
        conversation.customer_id, conversation.identified_by = owner.id, "token"
    headers = {"X-CSRF-Token": me["csrf_token"]}
    await client.post(f"/console/api/escalations/{escalation_id}/claim", headers=headers)
    sent = await client.post(
        f"/console/api/conversations/{conversation_id}/messages",
        json={"text": "Your refund went out today."},
        headers=headers,
    )
    assert sent.status == 201
    await ws.close()  # the customer left

    fresh, frames = await _open_as(client, None, identity=issue_token(SECRET, "T1"))
    session = frames[-1]
    assert (session["status"], session["identity"]) == ("with_agent", "verified")
    assert [(m["sender"], m["text"]) for m in session["history"]][-1] == (
        "agent",
        "Your refund went out today.",
    )
    received = len(rasa[0].received)
    await fresh.send_json({"type": "message", "text": "did my refund go out?", "client_id": "f-1"})
    ack = await fresh.receive_json(timeout=5)
    assert ack["type"] == "ack"
    await asyncio.sleep(0.3)
    async with session_factory() as db:
        assert await repositories.count(db, Escalation) == 1  # no second hand-over
        assert (await db.get_one(Conversation, conversation_id)).status.value == "with_agent"
        last = await db.scalar(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
        )
    assert last is not None and (last.sender, last.text) == (
        MessageSender.customer,
        "did my refund go out?",
    )
    assert len(rasa[0].received) == received  # the bot stays out of the agent's chat
    await fresh.close()

    # The first browser's token still resumes the same chat.
    back, frames = await _open_as(client, first_token, identity=issue_token(SECRET, "T1"))
    assert (frames[-1]["token"], frames[-1]["history"][-1]["text"]) == (
        first_token,
        "did my refund go out?",
    )
    await back.close()


async def test_a_signed_in_customer_without_a_chat_with_the_team_starts_afresh(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Only a chat a person is on (or answered lately) continues in a fresh browser; a chat
    with the bot alone does not (docs/widget.md: a new browser is a new conversation)."""
    async with session_factory() as db, db.begin():
        await factories.customer(db, 1)
    first, frames = await _open_as(client, None, identity=issue_token(SECRET, "T1"))
    await first.close()
    second, again = await _open_as(client, None, identity=issue_token(SECRET, "T1"))
    assert frames[-1]["token"] != again[-1]["token"] and again[-1]["history"] == []
    await second.close()


async def test_a_chat_continued_in_a_fresh_browser_takes_photos(
    photo_client: Client,  # noqa: F811 (the fixture of tests/test_photos.py)
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The fresh browser holds a signed resume token: photo uploads accept it too (they
    only knew the hashed conversation token, so an emailed reply's link could not either)."""
    async with session_factory() as db, db.begin():
        owner = await factories.customer(db, 1)
    ws, opened = await _open_as(photo_client, None, identity=issue_token(SECRET, "T1"))
    await _turn(ws, "my mug arrived broken")
    conversation_id = rasa[0].received[0]["sender"]
    async with session_factory() as db, db.begin():
        conversation = await db.get_one(Conversation, conversation_id)
        assert conversation.customer_id == owner.id
        await escalations.escalate(db, conversation, EscalationReason.customer_request)
    await ws.close()

    fresh, frames = await _open_as(photo_client, None, identity=issue_token(SECRET, "T1"))
    token = frames[-1]["token"]
    assert token != opened[-1]["token"] and token.startswith("rl1.")
    answer = await _upload(photo_client, token, jpeg_with_exif())
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["message"]["sender"] == "customer"
    async with session_factory() as db:
        assert await repositories.count(db, Photo) == 1
        stored = await db.scalar(select(Photo))
    assert stored is not None and stored.conversation_id == conversation_id
    await fresh.close()
