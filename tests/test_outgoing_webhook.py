"""Outgoing webhook: detractor escalations are POSTed to the shop, signed, retried with
backoff after a failure, delivered once; the web service runs it in the background."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain import escalations, intake, outbox, shop_events
from bot.domain.enums import EscalationReason, StaffRole
from bot.storage.models import Conversation, WebhookOutbox, utcnow
from bot.web.app import create_app
from bot.web.outgoing import OutgoingWebhook
from tests.staff_helpers import bearer, create_api_token
from tests.test_shop_events import order_event

Sessions = async_sessionmaker[AsyncSession]
SECRET = "shop-webhook-secret"


@dataclass
class Shop:
    """The shop's receiving end: answers with the queued statuses, then 200."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), dict(request.headers)))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    receiver = Shop()
    app = web.Application()
    app.router.add_post("/hooks/feedback", receiver.handle)
    server = TestServer(app)
    await server.start_server()
    receiver.url = str(server.make_url("/hooks/feedback"))
    yield receiver
    await server.close()


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def detractor(sessions: Sessions, external_id: str = "ticket-1") -> int:
    await shop_events.receive(sessions, shop_events.parse_event(order_event("e1", "placed", 0)))
    feedback_item = intake.parse_item(
        {
            "channel": "call_center",
            "customer_external_id": "C9001",
            "occurred_at": utcnow().isoformat(),
            "kind": "csat",
            "score": 1,
            "text": "Rude and useless.",
            "external_id": external_id,
        }
    )
    async with sessions() as session, session.begin():
        result = await intake.record_item(session, feedback_item, due_hours=48)
    assert result.escalation is not None
    return result.escalation.id


async def test_a_failed_delivery_is_retried_with_backoff_then_delivered_once(
    session_factory: Sessions, shop: Shop
) -> None:
    escalation_id = await detractor(session_factory)
    clock = Clock()
    shop.statuses = [500]
    async with aiohttp.ClientSession() as http:
        sender = OutgoingWebhook(session_factory, http, shop.url, SECRET, clock)
        assert await sender.run_once() == 0  # the shop answered 500
        async with session_factory() as session:
            row = (await session.scalars(select(WebhookOutbox))).one()
            assert (row.attempts, row.last_error, row.delivered_at) == (1, "HTTP 500", None)
            assert row.next_attempt_at == clock.now + timedelta(seconds=2)
        assert await sender.run_once() == 0  # not due yet: nothing sent
        assert len(shop.received) == 1
        clock.now += timedelta(seconds=3)
        assert await sender.run_once() == 1
        clock.now += timedelta(hours=1)
        assert await sender.run_once() == 0  # delivered rows are never sent again
    assert len(shop.received) == 2
    body, headers = shop.received[1]
    assert body == shop.received[0][0]
    # Signed like the incoming events, each try with its own time (the retry 3 s later).
    first_time = int(shop.received[0][1]["X-Signature"].split(",")[0].removeprefix("t="))
    retry_time = int((clock.now - timedelta(hours=1)).timestamp())
    assert retry_time == first_time + 3
    assert headers["X-Signature"] == shop_events.signature_header(SECRET, body, retry_time)
    assert shop_events.signature_ok(SECRET, body, headers["X-Signature"], now=retry_time)
    assert headers["X-Event-Type"] == "detractor.escalated"
    payload = json.loads(body)
    assert payload["id"] == f"escalation-{escalation_id}"
    assert payload["customer"]["external_id"] == "C9001"
    assert payload["feedback"] == {
        "channel": "call_center",
        "kind": "csat",
        "score": 1,
        "text": None,
        "stage": "purchase",
        "at": payload["feedback"]["at"],
    }
    assert payload["escalation"]["summary"] == "call center: csat 1 — Rude and useless."
    assert payload["escalation"]["in_chat"] is False
    async with session_factory() as session:
        row = (await session.scalars(select(WebhookOutbox))).one()
        assert (row.attempts, row.delivered_at, row.last_error) == (
            2,
            clock.now - timedelta(hours=1),
            None,
        )


async def test_unreachable_shop_gives_up_after_max_attempts(session_factory: Sessions) -> None:
    await detractor(session_factory)
    clock = Clock()
    async with aiohttp.ClientSession() as http:
        sender = OutgoingWebhook(session_factory, http, "http://127.0.0.1:9/nothing", SECRET, clock)
        for _ in range(outbox.MAX_ATTEMPTS + 2):
            await sender.run_once()
            clock.now += outbox.MAX_DELAY
    async with session_factory() as session:
        row = (await session.scalars(select(WebhookOutbox))).one()
        assert row.attempts == outbox.MAX_ATTEMPTS
        assert row.failed_at is not None and row.delivered_at is None
        assert row.last_error is not None and row.last_error.startswith("ClientConnectorError")


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert outbox.backoff(30) == timedelta(hours=1)


async def test_chat_detractors_are_queued_too_but_not_other_escalations(
    session_factory: Sessions,
) -> None:
    async with session_factory() as session, session.begin():
        low = Conversation(id="c-low")
        human = Conversation(id="c-human")
        session.add_all([low, human])
        await session.flush()
        negative, _ = await escalations.escalate(
            session, low, EscalationReason.negative_feedback, hand_over_now=False
        )
        await escalations.escalate(session, human, EscalationReason.customer_request)
        assert await outbox.enqueue_new_detractors(session) == 1
        assert await outbox.enqueue_new_detractors(session) == 0
        row = (await session.scalars(select(WebhookOutbox))).one()
        assert row.escalation_id == negative.id
        assert row.payload["escalation"]["in_chat"] is True
        assert row.payload["customer"] is None


async def test_the_web_service_sends_in_the_background(
    engine: Any, settings: Settings, session_factory: Sessions, shop: Shop
) -> None:
    app = create_app(
        replace(
            settings,
            outgoing_webhook_url=shop.url,
            outgoing_webhook_secret=SECRET,
            outgoing_webhook_poll_seconds=0.05,
        )
    )
    async with TestClient(TestServer(app)) as client:
        await shop_events.receive(
            session_factory, shop_events.parse_event(order_event("e1", "placed", 0))
        )
        token = await create_api_token(session_factory, StaffRole.cx_manager)
        response = await client.post(
            "/api/feedback",
            headers=bearer(token),
            json={
                "channel": "social",
                "customer": {"external_id": "C9001"},
                "occurred_at": utcnow().isoformat(),
                "kind": "complaint",
                "text": "Horrible, the worst, useless and rude.",
            },
        )
        assert response.status == 201, await response.text()
        for _ in range(100):
            if shop.received:
                break
            await asyncio.sleep(0.05)
    assert len(shop.received) == 1
    body, headers = shop.received[0]
    assert shop_events.signature_ok(SECRET, body, headers["X-Signature"])
    assert json.loads(body)["feedback"]["kind"] == "complaint"
