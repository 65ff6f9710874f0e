"""Support actions: exact events returned and rows written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.support import ActionResolvePending, ActionSupportRequest
from bot.domain.enums import OrderStatus, Stage
from bot.storage.models import AuditLog, Conversation, Lifecycle, Order, SurveyDispatch
from tests import factories
from tests.rasa_helpers import run, slot_events, tracker


async def _verified_conversation(
    session: AsyncSession, status: OrderStatus, **kwargs: Any
) -> Order:
    owner = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, owner, "A10001", status, **kwargs)
    session.add(Conversation(id="conv-1", customer_id=owner.id, order_id=order.id))
    await session.commit()
    return order


VERIFIED = {"identity": "verified", "order_number": "A10001", "email": "jane.doe@example.com"}


async def test_order_status_answers_with_tracking_and_opens_survey(
    session: AsyncSession, action_services: object
) -> None:
    await _verified_conversation(session, OrderStatus.shipped, placed_days_ago=1)
    state = tracker(
        "conv-1",
        "where is my order",
        "order_status",
        {**VERIFIED, "support_request": "order_status"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    dispatch = (await session.scalars(select(SurveyDispatch))).one()
    assert slot_events(events) == {
        "next_step": "survey",
        "awaiting": "nothing",
        "pending_action": None,
        "return_draft": None,
        "survey_kind": "csat",
        "survey_dispatch_id": float(dispatch.id),
        "survey_score": None,
        "survey_comment": None,
        "survey_retries": 0.0,
        "survey_declined": False,
    }
    assert len(messages) == 2
    assert "Order A10001" in messages[0]["text"]
    assert "DHL JJD000390007" in messages[0]["text"]
    # The order's card follows the answer (issue #19 item 3; tests/test_order_cards.py).
    assert [card["number"] for card in messages[1]["custom"]["order_cards"]] == ["A10001"]
    assert dispatch.trigger == "in_chat:order_status"
    assert dispatch.conversation_id == "conv-1"


async def test_cancel_asks_first_and_changes_nothing(
    session: AsyncSession, action_services: object
) -> None:
    order = await _verified_conversation(session, OrderStatus.placed)
    state = tracker(
        "conv-1", "cancel my order", "cancel_order", {**VERIFIED, "support_request": "cancel_order"}
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert slot_events(events) == {
        "next_step": "confirm",
        "awaiting": "confirmation",
        "pending_action": "cancel_order",
        "return_draft": None,
    }
    assert messages[0]["buttons"] == [
        {"title": "Yes", "payload": "yes"},
        {"title": "No", "payload": "no"},
    ]
    await session.refresh(order)
    assert order.status is OrderStatus.placed


async def test_confirmed_cancel_cancels_closes_lifecycle_and_audits(
    session: AsyncSession, action_services: object
) -> None:
    order = await _verified_conversation(session, OrderStatus.placed)
    state = tracker(
        "conv-1",
        "yes",
        "affirm",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    events, messages = await run(ActionResolvePending(), state)

    slots = slot_events(events)
    assert slots["awaiting"] == "nothing"
    assert slots["pending_action"] is None
    assert slots["next_step"] == "survey"
    assert messages[0]["text"] == "Done: order A10001 is cancelled. You won't be charged."
    order_id = order.id
    session.expire_all()
    assert (await session.get_one(Order, order_id)).status is OrderStatus.cancelled
    lifecycle = (
        await session.scalars(select(Lifecycle).where(Lifecycle.order_id == order.id))
    ).one()
    assert lifecycle.closed_at is not None and lifecycle.close_reason == "cancelled"
    audit = (await session.scalars(select(AuditLog))).one()
    assert (audit.action, audit.target_type, audit.target_id) == ("cancel_order", "order", "A10001")


async def test_declined_change_leaves_order_untouched(
    session: AsyncSession, action_services: object
) -> None:
    order = await _verified_conversation(session, OrderStatus.placed)
    state = tracker(
        "conv-1",
        "no",
        "deny",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    events, messages = await run(ActionResolvePending(), state)

    assert slot_events(events) == {
        "awaiting": "nothing",
        "pending_action": None,
        "next_step": "done",
        "pause_until": None,
        "declined_change": "cancel_order",  # a yes naming it right after asks it again
        "return_draft": None,
    }
    assert messages[0]["text"].startswith("Okay, I haven't changed anything")
    order_id = order.id
    session.expire_all()
    assert (await session.get_one(Order, order_id)).status is OrderStatus.placed
    assert (await session.scalars(select(AuditLog))).all() == []


async def test_return_of_cancelled_order_is_refused_clearly(
    session: AsyncSession, action_services: object
) -> None:
    await _verified_conversation(session, OrderStatus.cancelled)
    state = tracker(
        "conv-1",
        "i want to return it",
        "return_item",
        {**VERIFIED, "support_request": "return_item"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert "nothing to return" in messages[0]["text"]
    assert slot_events(events)["next_step"] == "survey"


async def test_delivery_problem_moves_lifecycle_to_support(
    session: AsyncSession, action_services: object
) -> None:
    order = await _verified_conversation(session, OrderStatus.shipped)
    state = tracker(
        "conv-1",
        "my parcel is late",
        "delivery_problem",
        {**VERIFIED, "support_request": "delivery_problem"},
    )

    await run(ActionSupportRequest(), state)

    lifecycle = (
        await session.scalars(select(Lifecycle).where(Lifecycle.order_id == order.id))
    ).one()
    assert lifecycle.stage is Stage.support


async def test_unverified_request_shows_no_order_details(
    session: AsyncSession, action_services: object
) -> None:
    await _verified_conversation(session, OrderStatus.shipped)
    state = tracker(
        "conv-2", "where is my order", "order_status", {"support_request": "order_status"}
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert "A10001" not in messages[0]["text"]
    # Never a dead end (issue #17): a person and an email contact are offered.
    assert messages[0]["text"] == (
        "I couldn't verify your order, so I can't show its details. Please check the order "
        "number and email in your confirmation email and try again, talk to a person from "
        "our team, or email us at support@example.com."
    )
    assert messages[0]["buttons"] == [
        {"title": "Talk to a person", "payload": "I want to talk to a person"}
    ]
    assert slot_events(events)["next_step"] == "done"


async def _signed_in_customer(session: AsyncSession) -> Order:
    """A customer the shop's identity token vouched for: no order chosen yet."""
    owner = await factories.customer(session, email="jane.doe@example.com")
    await factories.order(session, owner, "A10001", OrderStatus.delivered, placed_days_ago=20)
    latest = await factories.order(session, owner, "A10002", OrderStatus.placed, placed_days_ago=1)
    stranger = await factories.customer(session, 2)
    await factories.order(session, stranger, "A20002", OrderStatus.shipped)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    return latest


async def test_signed_in_customer_gets_their_latest_order_without_verifying(
    session: AsyncSession, action_services: object
) -> None:
    await _signed_in_customer(session)
    state = tracker(
        "conv-1",
        "where is my order",
        "order_status",
        {"identity": "verified", "support_request": "order_status"},
    )

    _, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"].startswith("Order A10002 (")
    conversation = await session.get_one(Conversation, "conv-1")
    await session.refresh(conversation)
    latest = (await session.scalars(select(Order).where(Order.number == "A10002"))).one()
    assert conversation.order_id == latest.id


async def test_named_order_is_used_only_if_it_is_the_customers(
    session: AsyncSession, action_services: object
) -> None:
    await _signed_in_customer(session)
    own = tracker(
        "conv-1",
        "what about A10001",
        "order_status",
        {"identity": "verified", "support_request": "order_status"},
        extracted={"order_number": "A10001"},
    )
    other = tracker(
        "conv-1",
        "and A20002?",
        "order_status",
        {"identity": "verified", "support_request": "order_status"},
        extracted={"order_number": "A20002"},
    )

    _, own_messages = await run(ActionSupportRequest(), own)
    other_events, other_messages = await run(ActionSupportRequest(), other)

    assert own_messages[0]["text"].startswith("Order A10001 (")
    # Not on the account: said so, and nothing about it (nor another order's answer) shown;
    # the customer's own orders that fit are offered instead (issue #17).
    assert other_messages[0]["text"] == (
        "Order A20002 isn't on your account, so I can't tell you anything about it. "
        "Did you mean one of your orders?"
    )
    # ... as order cards, each picking with its button's payload (issue #19 item 3).
    assert other_messages[0]["buttons"] == []
    assert [b["payload"] for b in other_messages[1]["buttons"]] == [
        '/inform{"order_number":"A10002"}'
    ]
    assert [c["payload"] for c in other_messages[1]["custom"]["order_cards"]] == [
        '/inform{"order_number":"A10002"}'
    ]
    assert slot_events(other_events)["order_number"] is None
