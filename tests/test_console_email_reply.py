"""Issue #20: email reply when the customer has left, and the agent typing indicator, over
HTTP and WebSockets against the tests' SMTP server (tests/smtp_server.py). Both
databases; Rasa is the stand-in of tests/conftest.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.config import Settings
from bot.domain import email_reply
from bot.domain.enums import MessageSender
from bot.storage.models import Escalation, Message, utcnow
from bot.web.app import create_app
from bot.web.email_reply import EMAIL_REPLIES
from bot.web.keys import HUB, SETTINGS
from tests.smtp_server import SmtpSink, smtp_server, smtp_settings, text_of  # noqa: F401
from tests.test_console import _escalate, _login
from tests.test_console_workflow import _accounts, _post, _queue
from tests.test_web_chat import _open, _turn

GATHER = 1.5  # long enough that a burst of POSTs on a loaded machine is one email
LINK = re.compile(r"^(http://shop\.test/#resume=(rl1\.[0-9a-f]+\.\d+\.[A-Za-z0-9_-]+))$", re.M)


@pytest.fixture
async def mail_client(
    engine: Any,
    settings: Settings,
    rasa: Any,
    smtp_server: SmtpSink,  # noqa: F811
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(
        smtp_settings(
            smtp_server,
            replace(settings, rasa_url=rasa[1], rasa_timeout_seconds=1.0),
            email_reply_gather_seconds=GATHER,
            email_reply_minutes=10,
            public_url="http://shop.test",
        )
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _claimed_chat(
    client: TestClient[web.Request, web.Application],
    rasa: Any,
    session_factory: Any,
    email: str | None,
) -> tuple[Any, str, dict[str, Any]]:
    """A customer's chat claimed by Sam; the customer left `email` in the chat."""
    await _accounts(session_factory)
    customer, _ = await _open(client)
    await _turn(customer, "hi")
    conversation_id: str = rasa[0].received[0]["sender"]
    await _escalate(session_factory, conversation_id)
    async with session_factory() as db, db.begin():
        escalation = await db.scalar(
            select(Escalation).where(Escalation.conversation_id == conversation_id)
        )
        escalation.contact_email = email
    me = await _login(client, "sam@example.com")
    [item] = await _queue(client)
    assert (await _post(client, me, f"/escalations/{item['escalation_id']}/claim")).status == 200
    return customer, conversation_id, me


async def _leave(
    client: TestClient[web.Request, web.Application], customer: Any, conversation_id: str
) -> None:
    await customer.close()
    for _ in range(100):
        if client.app[HUB].connected(conversation_id) == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the customer's socket is still registered")


async def _say(
    client: TestClient[web.Request, web.Application],
    me: dict[str, Any],
    conversation_id: str,
    text: str,
) -> None:
    response = await _post(client, me, f"/conversations/{conversation_id}/messages", {"text": text})
    assert response.status == 201


async def test_a_burst_to_a_customer_who_left_is_one_email_and_the_link_reopens_the_chat(
    mail_client: TestClient[web.Request, web.Application],
    rasa: Any,
    session_factory: Any,
    smtp_server: SmtpSink,  # noqa: F811
) -> None:
    client = mail_client
    customer, conversation_id, me = await _claimed_chat(
        client, rasa, session_factory, "ann@example.com"
    )
    await _leave(client, customer, conversation_id)
    for line in ("Hello Ann, I found your parcel.", "It ships today.\nTracking: ZX1", "Bye!"):
        await _say(client, me, conversation_id, line)

    [message] = await smtp_server.wait(1)
    await asyncio.sleep(GATHER + 0.3)
    assert len(smtp_server.messages) == 1  # one email for the three lines
    assert (message["To"], message["Subject"]) == (
        "ann@example.com",
        "Sam (support) replied to your chat",
    )
    body = text_of(message)
    assert (
        "> Hello Ann, I found your parcel.\n\n> It ships today.\n> Tracking: ZX1\n\n> Bye!" in body
    )
    [(_link, token)] = LINK.findall(body)
    assert email_reply.conversation_of_link(_secret(client), token, utcnow()) == conversation_id

    # The link's token resumes the same conversation; the customer's reply lands there.
    console = await client.ws_connect("/console/ws")
    await console.send_json({"type": "watch", "conversation_id": conversation_id})
    await asyncio.sleep(0.05)
    back, session = await _open(client, token)
    assert session["type"] == "session" and session["token"] == token
    assert [m["text"] for m in session["history"] if m["sender"] == "agent"] == [
        "Hello Ann, I found your parcel.",
        "It ships today.\nTracking: ZX1",
        "Bye!",
    ]
    await back.send_json({"type": "message", "text": "Thanks, got it", "client_id": "r-1"})
    while True:
        frame = await console.receive_json(timeout=5)
        if frame["type"] == "message":
            break
    assert (frame["conversation_id"], frame["message"]["sender"], frame["message"]["text"]) == (
        conversation_id,
        "customer",
        "Thanks, got it",
    )
    async with session_factory() as db:
        last = await db.scalar(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(1)
        )
    assert (last.sender, last.text) == (MessageSender.customer, "Thanks, got it")
    await back.close()
    await console.close()


def _secret(client: TestClient[web.Request, web.Application]) -> str:
    return client.app[SETTINGS].widget_secret


async def test_a_second_burst_waits_for_the_rate_limit(
    mail_client: TestClient[web.Request, web.Application],
    rasa: Any,
    session_factory: Any,
    smtp_server: SmtpSink,  # noqa: F811
) -> None:
    client = mail_client
    customer, conversation_id, me = await _claimed_chat(
        client, rasa, session_factory, "ann@example.com"
    )
    await _leave(client, customer, conversation_id)
    await _say(client, me, conversation_id, "First")
    await smtp_server.wait(1)
    await asyncio.sleep(0.1)
    await _say(client, me, conversation_id, "Second")
    replies = client.app[EMAIL_REPLIES]
    assert replies.pending(conversation_id)  # waits for EMAIL_REPLY_MINUTES (10) to pass
    await asyncio.sleep(GATHER + 0.4)
    assert [text_of(m).count("> ") for m in smtp_server.snapshot()] == [1]
    assert replies.pending(conversation_id) and (replies.sent, replies.failed) == (1, 0)


async def test_no_email_while_the_customer_is_in_the_chat_or_without_an_address(
    mail_client: TestClient[web.Request, web.Application],
    rasa: Any,
    session_factory: Any,
    smtp_server: SmtpSink,  # noqa: F811
) -> None:
    client = mail_client
    customer, conversation_id, me = await _claimed_chat(client, rasa, session_factory, None)
    await _say(client, me, conversation_id, "Are you still there?")  # the customer is
    replies = client.app[EMAIL_REPLIES]
    assert not replies.pending(conversation_id)
    await _leave(client, customer, conversation_id)
    await _say(client, me, conversation_id, "I'll email you")  # left, but no address
    assert replies.pending(conversation_id)
    await asyncio.sleep(GATHER + 0.4)
    assert smtp_server.messages == [] and (replies.sent, replies.failed) == (0, 0)


async def test_a_customer_back_before_the_email_goes_gets_none(
    mail_client: TestClient[web.Request, web.Application],
    rasa: Any,
    session_factory: Any,
    smtp_server: SmtpSink,  # noqa: F811
) -> None:
    client = mail_client
    customer, conversation_id, me = await _claimed_chat(
        client, rasa, session_factory, "ann@example.com"
    )
    await _leave(client, customer, conversation_id)
    await _say(client, me, conversation_id, "Hello?")
    # The customer is back (here by a resume link) before the gathering time is over.
    link = email_reply.resume_link_token(_secret(client), conversation_id, utcnow())
    back, session = await _open(client, link)
    assert session["token"] == link
    await asyncio.sleep(GATHER + 0.4)
    assert smtp_server.messages == []
    await back.close()


async def test_forged_expired_or_closed_links_start_a_new_chat(
    mail_client: TestClient[web.Request, web.Application], rasa: Any, session_factory: Any
) -> None:
    client = mail_client
    customer, conversation_id, _me = await _claimed_chat(client, rasa, session_factory, None)
    await customer.close()
    secret = _secret(client)
    good = email_reply.resume_link_token(secret, conversation_id, utcnow())
    forged = email_reply.resume_link_token("another secret", conversation_id, utcnow())
    expired = email_reply.resume_link_token(secret, conversation_id, utcnow() - timedelta(days=8))
    tampered = good.replace(conversation_id, "0" * len(conversation_id))
    for token in (forged, expired, tampered, good[:-2], "rl1.x"):
        ws, session = await _open(client, token)
        assert session["token"] != token and session["history"] == []
        await ws.close()
    ws, session = await _open(client, good)
    assert session["token"] == good and session["history"] != []
    await ws.close()


def test_resume_link_tokens() -> None:
    now = utcnow()
    token = email_reply.resume_link_token("s" * 32, "ab12", now, days=7)
    assert email_reply.conversation_of_link("s" * 32, token, now) == "ab12"
    assert email_reply.conversation_of_link("s" * 32, token, now + timedelta(days=7)) is None
    assert email_reply.conversation_of_link("t" * 32, token, now) is None
    assert (
        email_reply.resume_link("https://help.shop/", token) == f"https://help.shop/#resume={token}"
    )


async def test_agent_typing_reaches_the_customer_throttled_and_only_from_agents(
    client: TestClient[web.Request, web.Application], rasa: Any, session_factory: Any
) -> None:
    customer, conversation_id, _me = await _claimed_chat(client, rasa, session_factory, None)
    console = await client.ws_connect("/console/ws")
    await console.send_json({"type": "watch", "conversation_id": conversation_id})
    for on in (True, True, True, False, False):
        await console.send_json({"type": "typing", "on": on})
    frames: list[dict[str, Any]] = []
    while len(frames) < 2:
        frame = await customer.receive_json(timeout=5)
        if frame["type"] == "typing":
            frames.append(frame)
    assert frames == [
        {"type": "typing", "on": True, "by": "agent", "name": "Sam (support)"},
        {"type": "typing", "on": False, "by": "agent", "name": "Sam (support)"},
    ]
    await console.close()
    # A CX manager's console (read-only) never shows the customer "typing".
    await _login(client, "cx@example.com")
    viewer = await client.ws_connect("/console/ws")
    await viewer.send_json({"type": "watch", "conversation_id": conversation_id})
    await viewer.send_json({"type": "typing", "on": True})
    with pytest.raises(asyncio.TimeoutError):
        while True:
            frame = await customer.receive_json(timeout=0.5)
            assert frame["type"] != "typing"
    await viewer.close()
    await customer.close()
