"""End to end: a survey scheduled by a shop event is answered in the widget (real model,
action server and web service) and lands on the right lifecycle, stage and trigger."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from bot.config import DEV_WIDGET_SECRET
from bot.domain import proactive, surveys
from bot.domain.enums import (
    AcquisitionSource,
    ConversationStatus,
    EscalationReason,
    FeedbackKind,
    FeedbackSource,
    Stage,
)
from bot.domain.identity import issue_token
from bot.domain.lifecycle import lifecycle_for_order
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    Order,
    SurveyDispatch,
)
from tests.test_e2e import ChatClient, texts

pytestmark = pytest.mark.e2e


async def _schedule_for_jane(database_url: str, order_number: str, trigger: str) -> int:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            order = (await db.scalars(select(Order).where(Order.number == order_number))).one()
            lifecycle = await lifecycle_for_order(db, order)
            return (await surveys.schedule_proactive(db, lifecycle, trigger)).id
    finally:
        await engine.dispose()


async def _until_question(ws: aiohttp.ClientWebSocketResponse[bool]) -> list[dict[str, Any]]:
    """The bot messages pushed after hello, up to the first one with buttons (the question)."""
    messages: list[dict[str, Any]] = []
    while not messages or not messages[-1].get("buttons"):
        frame: dict[str, Any] = await ws.receive_json(timeout=30)
        if frame["type"] == "message":
            messages.append(frame)
    return messages


async def test_scheduled_first_order_survey_is_answered_in_the_widget(live_stack: Any) -> None:
    dispatch_id = await _schedule_for_jane(
        live_stack.database_url, "A10002", surveys.TRIGGER_FIRST_ORDER
    )
    identity = issue_token(DEV_WIDGET_SECRET, "C1001")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{live_stack.web_url}/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "identity": identity})
        session = await ws.receive_json(timeout=10)
        assert (session["type"], session["identity"]) == ("session", "verified")

        opened = await _until_question(ws)
        assert [m["text"] for m in opened] == [
            "Thanks for your first order A10002 with us! May we ask two quick questions?",
        ]
        assert [b["title"] for b in opened[-1]["buttons"]] == ["Sure", "Not now"]
        chat = ChatClient(ws)
        reply = await chat.say("sure")  # consent first (issue #18)
        assert (
            texts(reply)
            == "How did you first hear about us? Pick one or tell me in your own words."
        )
        assert [b["payload"] for b in reply[-1]["buttons"]] == [
            "search",
            "social",
            "friend",
            "ad",
            "affiliate",
            "marketing_email",
            "other",
            "skip",
        ]

        reply = await chat.say("friend")
        assert "how was your shopping experience" in texts(reply)
        reply = await chat.say("5")
        assert "Thank you for your feedback" in texts(reply)

    engine = create_engine(live_stack.database_url)
    try:
        async with create_session_factory(engine)() as db:
            dispatch = await db.get(SurveyDispatch, dispatch_id)
            assert dispatch is not None
            assert dispatch.trigger == surveys.TRIGGER_FIRST_ORDER
            assert dispatch.sent_at is not None and dispatch.answered_at is not None
            assert dispatch.declined_at is None and dispatch.expired_at is None
            order = (await db.scalars(select(Order).where(Order.number == "A10002"))).one()
            lifecycle = (
                await db.scalars(select(Lifecycle).where(Lifecycle.order_id == order.id))
            ).one()
            assert dispatch.lifecycle_id == lifecycle.id
            rows = (
                await db.scalars(
                    select(Feedback)
                    .where(Feedback.survey_dispatch_id == dispatch_id)
                    .order_by(Feedback.id)
                )
            ).all()
            assert [(r.kind, r.score, r.text, r.stage, r.source, r.lifecycle_id) for r in rows] == [
                (
                    FeedbackKind.discovery_source,
                    None,
                    "friend",
                    Stage.purchase,
                    FeedbackSource.proactive_survey,
                    lifecycle.id,
                ),
                (
                    FeedbackKind.csat,
                    5,
                    None,
                    Stage.purchase,
                    FeedbackSource.proactive_survey,
                    lifecycle.id,
                ),
            ]
            assert {r.conversation_id for r in rows} == {dispatch.conversation_id}
            jane = (await db.scalars(select(Customer).where(Customer.external_id == "C1001"))).one()
            assert jane.acquisition_source is AcquisitionSource.friend
            assert lifecycle.acquisition_channel is AcquisitionSource.friend
    finally:
        await engine.dispose()


async def test_renewal_nps_detractor_with_a_complaint_is_offered_a_person(live_stack: Any) -> None:
    engine = create_engine(live_stack.database_url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            dispatch = await proactive.schedule_for_customer(
                db, "C1001", surveys.TRIGGER_SUBSCRIPTION_RENEWED
            )
            dispatch_id, lifecycle_id = dispatch.id, dispatch.lifecycle_id
    finally:
        await engine.dispose()
    identity = issue_token(DEV_WIDGET_SECRET, "C1001")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{live_stack.web_url}/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "identity": identity})
        assert (await ws.receive_json(timeout=10))["type"] == "session"

        opened = await _until_question(ws)
        assert "subscription has renewed" in opened[0]["text"]
        chat = ChatClient(ws)
        reply = await chat.say("yes")
        assert texts(reply).startswith("How likely are you to recommend us")
        reply = await chat.say("3")
        assert "main reason for your score" in texts(reply)
        reply = await chat.say(
            "Terrible: the coffee arrived stale twice and nobody answered my emails"
        )
        assert "talk to a person now?" in texts(reply)

    engine = create_engine(live_stack.database_url)
    try:
        async with create_session_factory(engine)() as db:
            rows = (
                await db.scalars(
                    select(Feedback)
                    .where(Feedback.survey_dispatch_id == dispatch_id)
                    .order_by(Feedback.id)
                )
            ).all()
            lifecycle = await db.get(Lifecycle, lifecycle_id)
            assert lifecycle is not None
            assert [(r.kind, r.score, r.stage, r.lifecycle_id, r.source) for r in rows] == [
                (
                    FeedbackKind.nps,
                    3,
                    lifecycle.stage,
                    lifecycle_id,
                    FeedbackSource.proactive_survey,
                ),
                (
                    FeedbackKind.comment,
                    None,
                    lifecycle.stage,
                    lifecycle_id,
                    FeedbackSource.proactive_survey,
                ),
            ]
            escalation = (
                await db.scalars(select(Escalation).where(Escalation.feedback_id == rows[0].id))
            ).one()
            assert escalation.reason is EscalationReason.negative_feedback
    finally:
        await engine.dispose()


async def _open_with_survey(live_stack: Any, trigger: str, order: str | None = None) -> int:
    """A survey scheduled for Jane, whose earlier chats (other tests of this session handed
    some to a person) are closed: a fresh browser of hers would continue a chat a person is
    on (bot/domain/conversations.py) instead of opening one that offers the survey."""
    engine = create_engine(live_stack.database_url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            jane = select(Customer.id).where(Customer.external_id == "C1001").scalar_subquery()
            await db.execute(
                update(Conversation)
                .where(Conversation.customer_id == jane)
                .values(status=ConversationStatus.closed)
            )
            dispatch = await proactive.schedule_for_customer(db, "C1001", trigger, order)
            return dispatch.id
    finally:
        await engine.dispose()


async def _jane_offered_a_survey(
    ws: aiohttp.ClientWebSocketResponse[bool],
) -> tuple[ChatClient, list[dict[str, Any]]]:
    """Jane signs in to the widget and is offered her scheduled survey (the bot's messages)."""
    identity = issue_token(DEV_WIDGET_SECRET, "C1001")
    await ws.send_json({"type": "hello", "token": None, "identity": identity})
    assert (await ws.receive_json(timeout=10))["type"] == "session"
    return ChatClient(ws), await _until_question(ws)


async def _rows(live_stack: Any, dispatch_id: int) -> tuple[SurveyDispatch, list[Feedback]]:
    engine = create_engine(live_stack.database_url)
    try:
        async with create_session_factory(engine)() as db:
            dispatch = await db.get(SurveyDispatch, dispatch_id)
            assert dispatch is not None
            rows = (
                await db.scalars(select(Feedback).where(Feedback.survey_dispatch_id == dispatch_id))
            ).all()
            return dispatch, list(rows)
    finally:
        await engine.dispose()


async def test_a_request_typed_instead_of_answering_the_offer_is_served(live_stack: Any) -> None:
    """Issue #18: "where is my order" after the first-order offer was stored as the
    acquisition source; now the request is served and nothing is stored."""
    dispatch_id = await _open_with_survey(live_stack, surveys.TRIGGER_FIRST_ORDER, "A10002")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{live_stack.web_url}/ws") as ws:
        chat, opened = await _jane_offered_a_survey(ws)
        assert "May we ask two quick questions?" in opened[-1]["text"]
        reply = await chat.say("where is my order A10002")
        assert "A10002" in texts(reply)
        assert "hear about us" not in texts(reply)
    dispatch, rows = await _rows(live_stack, dispatch_id)
    assert rows == []
    assert (dispatch.offer_count, dispatch.accepted_at, dispatch.declined_at) == (1, None, None)


async def test_a_return_request_in_the_middle_of_a_delivery_survey_is_served(
    live_stack: Any,
) -> None:
    dispatch_id = await _open_with_survey(live_stack, surveys.TRIGGER_ORDER_DELIVERED, "A10001")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{live_stack.web_url}/ws") as ws:
        chat, _ = await _jane_offered_a_survey(ws)
        reply = await chat.say("sure")
        assert "How satisfied" in texts(reply) or "rate" in texts(reply).lower()
        reply = await chat.say("can i return the mug from A10001?")
        assert "Sorry, I didn't catch a number" not in texts(reply)
        assert "A10001" in texts(reply)
    dispatch, rows = await _rows(live_stack, dispatch_id)
    assert rows == []  # nothing stored as a score or a comment
    assert dispatch.accepted_at is not None


async def test_not_now_postpones_the_offer(live_stack: Any) -> None:
    dispatch_id = await _open_with_survey(live_stack, surveys.TRIGGER_ORDER_DELIVERED, "A10001")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{live_stack.web_url}/ws") as ws:
        chat, _ = await _jane_offered_a_survey(ws)
        reply = await chat.say("not now")
        assert "maybe another time" in texts(reply)
    dispatch, rows = await _rows(live_stack, dispatch_id)
    assert rows == []
    assert (dispatch.offer_count, dispatch.declined_at, dispatch.accepted_at) == (1, None, None)
