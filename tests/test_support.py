"""Support flows of SPEC §5: verification, answers per order status, confirmed changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import chat, support
from bot.domain.enums import FeedbackKind, OrderStatus, Stage, SubscriptionStatus
from bot.domain.support import YES_NO, FlowResult, NextStep, VerifyStatus
from bot.storage.models import (
    AuditLog,
    Conversation,
    Feedback,
    Lifecycle,
    Order,
    OrderItem,
    Subscription,
    utcnow,
)
from tests import factories

WINDOW = Settings().return_window_days
ADDRESS = "1 Test Street, 10115 Berlin"


def _d(value: datetime | None) -> str:
    return value.strftime("%-d %B %Y") if value else "unknown"


def _order(
    status: OrderStatus,
    *,
    delivered_days_ago: int = 3,
    placed_days_ago: int = 10,
    return_requested: bool = False,
) -> Order:
    """An in-memory order shaped like tests.factories.order (no database needed)."""
    now = utcnow()
    placed = now - timedelta(days=placed_days_ago)
    shipped = (
        None if status in (OrderStatus.placed, OrderStatus.cancelled) else placed + timedelta(1)
    )
    delivered = (
        now - timedelta(days=delivered_days_ago)
        if status in (OrderStatus.delivered, OrderStatus.returned, OrderStatus.refunded)
        else None
    )
    return Order(
        number="A10001",
        customer_id=1,
        status=status,
        total=Decimal("59.90"),
        currency="EUR",
        shipping_address=ADDRESS,
        carrier="DHL" if shipped else None,
        tracking_number="JJD000390007" if shipped else None,
        placed_at=placed,
        shipped_at=shipped,
        estimated_delivery=shipped + timedelta(days=3) if shipped else None,
        delivered_at=delivered,
        refunded_at=now - timedelta(days=1) if status is OrderStatus.refunded else None,
        cancelled_at=placed + timedelta(hours=2) if status is OrderStatus.cancelled else None,
        return_requested_at=now - timedelta(days=1) if return_requested else None,
        items=[
            OrderItem(sku="KIT-0001", name="Stoneware Mug", quantity=2, unit_price=Decimal("29.95"))
        ],
    )


def _flow(flow: str, order: Order) -> FlowResult:
    result: FlowResult = getattr(support, flow)(order, WINDOW)
    return result


def _phrases(order: Order, key: str) -> list[str]:
    """Expected key phrases, filled with the order's own dates."""
    tracking = "Tracking: DHL JJD000390007."
    return {
        "status_placed": [
            f"placed on {_d(order.placed_at)}",
            "2× Stoneware Mug",
            "has not shipped yet",
        ],
        # 6 days past the estimated date (issue #17: called late, a trace offered).
        "status_shipped_late": [
            f"shipped on {_d(order.shipped_at)}",
            f"was due on {_d(order.estimated_delivery)}, so it is 6 days late",
            tracking,
            "I can ask DHL to trace it",
        ],
        "status_delivered": [f"was delivered on {_d(order.delivered_at)}", tracking],
        "status_returned": ["was returned to us; the refund is being processed"],
        "status_refunded": [f"was refunded on {_d(order.refunded_at)} (59.90 EUR)"],
        "status_cancelled": [f"was cancelled on {_d(order.cancelled_at)}; you were not charged"],
        "delivery_placed": ["has not shipped yet", "within 2 working days"],
        "delivery_shipped": ["is running late", "asked DHL to trace it", tracking],
        "delivery_delivered": [
            f"shows as delivered on {_d(order.delivered_at)}",
            "opened a trace with DHL",
        ],
        "delivery_none": [f"is {order.status.value}, so there's no delivery in progress"],
        "damaged_not_delivered": [
            f"is still {order.status.value} in our system",
            "a person from our team will sort it out",
        ],
        "damaged_confirm": [
            "arrived like that",
            "Start a free return of order A10001 (2× Stoneware Mug, 59.90 EUR)?",
        ],
        "return_not_delivered": ["hasn't been delivered yet", f"within {WINDOW} days of delivery"],
        "return_confirm": ["Start a free return of order A10001 (2× Stoneware Mug, 59.90 EUR)?"],
        "return_done": ["has already been returned"],
        "return_cancelled": [
            "cancelled before it shipped",
            "nothing to return",
            "you were not charged",
        ],
        "refund_none": [
            f"There's no refund on order A10001: it is {order.status.value} and no return has been started."
        ],
        "refund_returned": [
            "We received your return of order A10001",
            "refund of 59.90 EUR will be issued within 5 working days",
        ],
        "refund_refunded": [
            f"Your refund of 59.90 EUR for order A10001 was issued on {_d(order.refunded_at)}"
        ],
        "refund_cancelled": ["cancelled before payment was taken, so there is nothing to refund"],
        "cancel_confirm": [
            "Cancel order A10001 (2× Stoneware Mug, 59.90 EUR)? It hasn't shipped yet, so you won't be charged."
        ],
        "refund_cancel_confirm": [
            "quickest way to your money is to cancel it",
            "Cancel order A10001 (2× Stoneware Mug, 59.90 EUR)?",
        ],
        "refund_return_confirm": [
            "Return order A10001 (2× Stoneware Mug) for a refund of 59.90 EUR?",
            "prepaid label",
        ],
        "refund_shipped": [
            "is on its way",
            f"return it within {WINDOW} days for a full refund of 59.90 EUR",
        ],
        "cancel_already": ["Order A10001 is already cancelled."],
        "cancel_too_late": [f"is already {order.status.value}, so it can't be cancelled any more"],
        "address_ask": [f"is going to: {ADDRESS}. What's the new delivery address?"],
        "address_too_late": [f"is {order.status.value}, so its address can't be changed any more"],
        "billing": [f"was charged once: 59.90 EUR on {_d(order.placed_at)}", "say 'agent'"],
        "billing_cancelled": [
            "cancelled before payment was taken",
            "weren't charged",
            "say 'agent'",
        ],
    }[key]


S, C, A = NextStep.survey, NextStep.confirm, NextStep.address
P, SH, DE, RE, RF, CA = (
    OrderStatus.placed,
    OrderStatus.shipped,
    OrderStatus.delivered,
    OrderStatus.returned,
    OrderStatus.refunded,
    OrderStatus.cancelled,
)
# flow → status → (next_step, pending_action, phrase key)
FLOW_TABLE: dict[str, dict[OrderStatus, tuple[NextStep, str | None, str]]] = {
    "order_status": {
        P: (S, None, "status_placed"),
        SH: (NextStep.done, None, "status_shipped_late"),
        DE: (S, None, "status_delivered"),
        RE: (S, None, "status_returned"),
        RF: (S, None, "status_refunded"),
        CA: (S, None, "status_cancelled"),
    },
    "delivery_problem": {
        P: (S, None, "delivery_placed"),
        SH: (S, None, "delivery_shipped"),
        DE: (S, None, "delivery_delivered"),
        RE: (S, None, "delivery_none"),
        RF: (S, None, "delivery_none"),
        CA: (S, None, "delivery_none"),
    },
    "damaged_item": {
        # not delivered in our records: a person is offered, no CSAT (nothing was solved)
        P: (NextStep.done, None, "damaged_not_delivered"),
        SH: (NextStep.done, None, "damaged_not_delivered"),
        DE: (C, "return_item", "damaged_confirm"),
        RE: (NextStep.done, None, "damaged_not_delivered"),
        RF: (NextStep.done, None, "damaged_not_delivered"),
        CA: (NextStep.done, None, "damaged_not_delivered"),
    },
    "return_item": {
        P: (S, None, "return_not_delivered"),
        SH: (S, None, "return_not_delivered"),
        DE: (C, "return_item", "return_confirm"),
        RE: (S, None, "return_done"),
        RF: (S, None, "return_done"),
        CA: (S, None, "return_cancelled"),
    },
    "refund_status": {
        P: (S, None, "refund_none"),
        SH: (S, None, "refund_none"),
        DE: (S, None, "refund_none"),
        RE: (S, None, "refund_returned"),
        RF: (S, None, "refund_refunded"),
        CA: (S, None, "refund_cancelled"),
    },
    "cancel_order": {
        P: (C, "cancel_order", "cancel_confirm"),
        SH: (S, None, "cancel_too_late"),
        DE: (S, None, "cancel_too_late"),
        RE: (S, None, "cancel_too_late"),
        RF: (S, None, "cancel_too_late"),
        CA: (S, None, "cancel_already"),
    },
    "change_address": {
        P: (A, None, "address_ask"),
        SH: (S, None, "address_too_late"),
        DE: (S, None, "address_too_late"),
        RE: (S, None, "address_too_late"),
        RF: (S, None, "address_too_late"),
        CA: (S, None, "address_too_late"),
    },
    "request_refund": {
        P: (C, "cancel_order", "refund_cancel_confirm"),
        SH: (S, None, "refund_shipped"),
        DE: (C, "return_item", "refund_return_confirm"),
        RE: (S, None, "refund_returned"),
        RF: (S, None, "refund_refunded"),
        CA: (S, None, "refund_cancelled"),
    },
    "billing_issue": {
        status: (S, None, "billing_cancelled" if status is OrderStatus.cancelled else "billing")
        for status in OrderStatus
    },
}


PERSON = {"title": "Talk to a person", "payload": "I want to talk to a person"}
LATE_TRACE_BUTTONS = [{"title": "Trace my parcel", "payload": "/delivery_problem"}, PERSON]


def test_flow_table_covers_every_order_flow_and_status() -> None:
    assert set(FLOW_TABLE) == support.ORDER_FLOWS
    for flow, by_status in FLOW_TABLE.items():
        assert set(by_status) == set(OrderStatus), flow


@pytest.mark.parametrize(
    ("flow", "status"),
    [(flow, status) for flow, by_status in FLOW_TABLE.items() for status in by_status],
)
def test_order_flow_per_status(flow: str, status: OrderStatus) -> None:
    order = _order(status)
    next_step, pending, phrase_key = FLOW_TABLE[flow][status]

    result = _flow(flow, order)

    assert result.next_step is next_step
    assert result.pending_action == pending
    assert result.buttons == (
        YES_NO
        if next_step is NextStep.confirm
        else LATE_TRACE_BUTTONS
        if phrase_key == "status_shipped_late"
        else [support.PERSON_BUTTON]
        if phrase_key == "damaged_not_delivered"
        else []
    )
    assert result.reply.startswith("Order A10001") or "order A10001" in result.reply
    for phrase in _phrases(order, phrase_key):
        assert phrase in result.reply


def test_delivery_problem_of_a_shipment_still_on_time() -> None:
    order = _order(OrderStatus.shipped, placed_days_ago=1)
    result = support.delivery_problem(order, WINDOW)
    assert result.next_step is NextStep.survey
    assert result.reply == (
        f"Order A10001 is on its way and due by {_d(order.estimated_delivery)}. "
        "Tracking: DHL JJD000390007."
    )


def test_refund_status_of_an_open_return() -> None:
    order = _order(OrderStatus.delivered, return_requested=True)
    result = support.refund_status(order, WINDOW)
    assert result.reply == (
        f"Your return for order A10001 was opened on {_d(order.return_requested_at)}. "
        "We refund as soon as the parcel reaches us."
    )


@pytest.mark.parametrize(("days_ago", "overdue"), [(1, False), (9, False), (11, True), (60, True)])
def test_a_refund_issued_long_ago_offers_a_person(days_ago: int, overdue: bool) -> None:
    """Tester 3: "refund still not on my card its been 2 months" got "It can take 3-5
    working days to show on your statement"."""
    order = _order(OrderStatus.refunded)
    order.refunded_at = utcnow() - timedelta(days=days_ago)

    result = support.refund_status(order, WINDOW)

    if overdue:
        assert (result.next_step, result.pending_action) == (NextStep.confirm, "offer_human")
        assert result.reply == (
            f"Your refund of 59.90 EUR for order A10001 was issued on {_d(order.refunded_at)}, "
            "so it should be on your statement by now. Your bank can look it up with that date "
            "and amount; if it isn't there, a person from our team can check it with our "
            "payment provider. Shall I get one?"
        )
    else:
        assert result.next_step is NextStep.survey
        assert "3–5 working days" in result.reply


@pytest.mark.parametrize(
    ("days_ago", "allowed"),
    [(0, True), (3, True), (WINDOW - 1, True), (WINDOW + 1, False), (40, False)],
)
def test_return_window(days_ago: int, allowed: bool) -> None:
    order = _order(OrderStatus.delivered, delivered_days_ago=days_ago, placed_days_ago=days_ago + 5)

    result = support.return_item(order, WINDOW)

    if allowed:
        assert support.return_eligibility(order, WINDOW) is None
        assert (result.next_step, result.pending_action) == (NextStep.confirm, "return_item")
    else:
        # past the window a person is offered (repair or replacement), no CSAT on a refusal
        assert (result.next_step, result.pending_action) == (NextStep.done, None)
        assert result.buttons == [support.PERSON_BUTTON]
        assert f"outside our {WINDOW}-day return window" in result.reply
        assert f"was delivered on {_d(order.delivered_at)}" in result.reply
        # a faulty or damaged item outside the window: the warranty, a person on a yes
        # (tester tr13: the same refusal again, then "I've checked again")
        damaged = support.damaged_item(order, WINDOW)
        assert (damaged.next_step, damaged.pending_action) == (NextStep.confirm, "offer_human")
        assert damaged.buttons == support.YES_NO
        assert damaged.reply == (
            f"Sorry it's faulty. Order A10001 was delivered on {_d(order.delivered_at)}, past "
            f"our {WINDOW}-day return window, but faults are covered by the warranty: a person "
            "from our team can arrange a repair or a replacement. Shall I get one?"
        )


def test_return_of_a_cancelled_order_is_refused() -> None:
    result = support.return_item(_order(OrderStatus.cancelled), WINDOW)
    assert result.next_step is NextStep.survey
    assert result.pending_action is None
    assert result.reply == (
        "Order A10001 was cancelled before it shipped, so there is nothing to return "
        "and you were not charged."
    )


def test_second_return_while_one_is_open_is_refused() -> None:
    order = _order(OrderStatus.delivered, return_requested=True)
    result = support.return_item(order, WINDOW)
    assert result.next_step is NextStep.survey
    assert "is already open since" in result.reply
    assert "use the label we emailed you" in result.reply


def test_billing_issue_on_a_cancelled_order_does_not_claim_a_charge() -> None:
    reply = support.billing_issue(_order(OrderStatus.cancelled), WINDOW).reply
    assert "was charged once" not in reply


@pytest.mark.parametrize("status", [OrderStatus.delivered, OrderStatus.returned])
def test_cancel_too_late_message_fits_the_status(status: OrderStatus) -> None:
    reply = support.cancel_order(_order(status), WINDOW).reply
    assert "Once it's delivered" not in reply


# --- addresses, extraction, subscriptions (no database) ----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 Baker Street, London NW1 6XE", "12 Baker Street, London NW1 6XE"),
        ("  12   Baker Street,\n London  NW1 6XE ", "12 Baker Street, London NW1 6XE"),
        ("Hauptstr. 5, 10115 Berlin", "Hauptstr. 5, 10115 Berlin"),
        ("hello", None),
        ("", None),
        ("Baker Street London", None),  # no number
        ("12345 6789", None),  # no letters
        ("a1" * 200, None),  # 400 chars of junk
        ("9 " + "x" * 299, None),  # 301 chars
    ],
)
def test_validate_address(text: str, expected: str | None) -> None:
    assert support.validate_address(text) == expected


def test_confirm_address_asks_first() -> None:
    result = support.confirm_address(_order(OrderStatus.placed), "12 Baker Street, London NW1 6XE")
    assert result.reply == (
        "Change the delivery address of order A10001 to: 12 Baker Street, London NW1 6XE?"
    )
    assert (result.next_step, result.pending_action, result.buttons) == (
        NextStep.confirm,
        "change_address",
        YES_NO,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my order is #10023", "A10023"),
        ("a10023 please", "A10023"),
        ("A10023", "A10023"),
        ("order 10023", "A10023"),
        ("order 1002", None),
        ("call 0123456789", None),
        ("", None),
    ],
)
def test_extract_order_number(text: str, expected: str | None) -> None:
    assert support.extract_order_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("it's Jane.Doe@Example.COM thanks", "jane.doe@example.com"),
        ("no email here", None),
        ("jane@localhost", None),
    ],
)
def test_extract_email(text: str, expected: str | None) -> None:
    assert support.extract_email(text) == expected


def _subscription(status: SubscriptionStatus) -> Subscription:
    now = utcnow()
    return Subscription(
        customer_id=1,
        plan="Coffee Explorer Box",
        price=Decimal("24.00"),
        currency="EUR",
        status=status,
        started_at=now - timedelta(days=95),
        current_period_start=now - timedelta(days=5),
        current_period_end=now + timedelta(days=25),
    )


def test_subscription_flows() -> None:
    missing = support.subscription_flow("pause_subscription", None)
    assert (missing.reply, missing.next_step) == (
        "I can't find an active subscription on your account.",
        NextStep.done,
    )

    active = _subscription(SubscriptionStatus.active)
    pause = support.subscription_flow("pause_subscription", active)
    assert (pause.next_step, pause.pending_action) == (NextStep.confirm, "pause_subscription")
    assert pause.reply.startswith("Pause your Coffee Explorer Box subscription?")
    assert _d(active.current_period_end) in pause.reply

    already = support.subscription_flow(
        "pause_subscription", _subscription(SubscriptionStatus.paused)
    )
    assert (already.reply, already.next_step) == (
        "Your Coffee Explorer Box subscription is already paused.",
        NextStep.survey,
    )

    cancel = support.subscription_flow("cancel_subscription", active)
    assert (cancel.next_step, cancel.pending_action) == (NextStep.confirm, "cancel_subscription")
    assert "(24.00 EUR a month)" in cancel.reply


def test_a_period_end_the_shop_has_not_moved_on_is_never_said_in_the_past() -> None:
    """On 7 December a subscription started 40 days before, with no renewal event, was to be
    paused with "nothing will be charged after 27 November" (a dev conversation of
    2026-12-07): the period end rolls forward by whole 30-day periods."""
    now = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    stale = _subscription(SubscriptionStatus.active)
    stale.current_period_start = datetime(2026, 10, 28, 9, 0, tzinfo=timezone.utc)
    stale.current_period_end = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)

    assert support.next_period_end(stale, now) == datetime(2026, 12, 27, 9, 0, tzinfo=timezone.utc)
    pause = support.subscription_flow("pause_subscription", stale, now=now)
    assert "27 December 2026" in pause.reply and "November" not in pause.reply
    stale.current_period_end = datetime(2026, 12, 8, tzinfo=timezone.utc)  # still ahead
    assert support.next_period_end(stale, now) == datetime(2026, 12, 8, tzinfo=timezone.utc)


# --- with the database ----------------------------------------------------------------------


async def _audit_rows(session: AsyncSession) -> list[AuditLog]:
    return list((await session.scalars(select(AuditLog).order_by(AuditLog.id))).all())


async def test_verify_outcomes(session: AsyncSession) -> None:
    owner = await factories.customer(session, email="Jane.Doe@Example.com")
    order = await factories.order(session, owner, "A10023", OrderStatus.shipped)
    conversation = Conversation(id="conv-1")
    session.add(conversation)
    await session.commit()

    unknown = await support.verify(session, conversation, "A99999", "jane.doe@example.com")
    mismatch = await support.verify(session, conversation, "A10023", "someone@example.com")
    assert unknown == support.Verification(VerifyStatus.unknown_order)
    assert mismatch == support.Verification(VerifyStatus.email_mismatch)
    assert (conversation.customer_id, conversation.order_id) == (None, None)

    for number, email in [
        ("A10023", "jane.doe@example.com"),
        ("#10023", "  JANE.DOE@EXAMPLE.COM "),
        ("a10023", "Jane.Doe@Example.com"),
        ("10023", "jane.doe@example.com"),
    ]:
        result = await support.verify(session, conversation, number, email)
        assert result.status is VerifyStatus.ok, number
        assert result.order is not None
        assert result.order.id == order.id
    await session.commit()

    await session.refresh(conversation)
    stored = conversation
    assert (stored.customer_id, stored.order_id) == (owner.id, order.id)


async def test_verify_does_not_cross_customers(session: AsyncSession) -> None:
    alice = await factories.customer(session, 1, email="alice@example.com")
    bob = await factories.customer(session, 2, email="bob@example.com")
    await factories.order(session, alice, "A10001", OrderStatus.placed)
    await factories.order(session, bob, "A10002", OrderStatus.placed)
    conversation = Conversation(id="conv-1")
    session.add(conversation)
    await session.commit()

    result = await support.verify(session, conversation, "A10002", "alice@example.com")

    assert result.status is VerifyStatus.email_mismatch
    assert result.order is None
    assert conversation.customer_id is None


async def test_run_order_flow_moves_lifecycle_to_support_for_problem_flows(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    expected_stage = {
        "order_status": Stage.use,
        "cancel_order": Stage.use,
        "change_address": Stage.use,
        "delivery_problem": Stage.support,
        "damaged_item": Stage.support,
        "return_item": Stage.support,
        "refund_status": Stage.support,
        "billing_issue": Stage.support,
    }
    orders = {}
    for n, flow in enumerate(sorted(expected_stage), start=1):
        orders[flow] = await factories.order(session, owner, f"A1000{n}", OrderStatus.delivered)
    await session.commit()

    for flow, order in orders.items():
        result = await support.run_order_flow(session, flow, order, WINDOW)
        assert result == _flow(flow, order), flow
    await session.commit()

    stages = {row.order_id: row.stage for row in await session.scalars(select(Lifecycle))}
    assert len(stages) == len(orders)
    assert {flow: stages[order.id] for flow, order in orders.items()} == expected_stage


async def test_apply_cancel_order(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.placed)
    await session.commit()

    result = await support.apply_confirmed(session, "cancel_order", owner, order, None)
    await session.commit()

    assert result == FlowResult(
        "Done: order A10001 is cancelled. You won't be charged.", NextStep.survey
    )
    await session.refresh(order)
    stored = order
    assert stored.status is OrderStatus.cancelled
    assert stored.cancelled_at is not None
    lifecycle = (await session.scalars(select(Lifecycle))).one()
    assert lifecycle.order_id == order.id
    assert lifecycle.closed_at is not None
    assert lifecycle.close_reason == "cancelled"
    [audit] = await _audit_rows(session)
    assert (audit.actor, audit.action, audit.target_type, audit.target_id, audit.details) == (
        f"customer:{owner.id}",
        "cancel_order",
        "order",
        "A10001",
        {"via": "chat"},
    )


async def test_apply_return_item(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.delivered)
    await session.commit()
    before = utcnow()

    result = await support.apply_confirmed(session, "return_item", owner, order, None)
    await session.commit()

    assert result.next_step is NextStep.survey
    assert result.reply == (
        "Your return for order A10001 is started. A prepaid label is on its way to "
        "customer1@example.com; drop the parcel off within 14 days and we'll refund 59.90 EUR."
    )
    await session.refresh(order)
    stored = order
    assert stored.status is OrderStatus.delivered
    assert stored.return_requested_at is not None
    assert stored.return_requested_at >= before - timedelta(seconds=1)
    lifecycle = (await session.scalars(select(Lifecycle))).one()
    assert (lifecycle.stage, lifecycle.closed_at) == (Stage.support, None)
    [audit] = await _audit_rows(session)
    assert (audit.actor, audit.action, audit.target_id) == (
        f"customer:{owner.id}",
        "return_item",
        "A10001",
    )


async def test_apply_change_address(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.placed)
    await session.commit()
    new = "12 Baker Street, London NW1 6XE"

    result = await support.apply_confirmed(
        session, "change_address", owner, order, None, new_address=new
    )
    await session.commit()

    assert result == FlowResult(f"Done: order A10001 will be delivered to {new}.", NextStep.survey)
    await session.refresh(order)
    stored = order
    assert stored.shipping_address == new
    [audit] = await _audit_rows(session)
    assert (audit.actor, audit.action, audit.target_type, audit.target_id) == (
        f"customer:{owner.id}",
        "change_address",
        "order",
        "A10001",
    )
    assert audit.details == {"via": "chat", "from": ADDRESS, "to": new}


async def test_apply_pause_and_cancel_subscription(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    plan = await factories.subscription(session, owner)
    await session.commit()

    paused = await support.apply_confirmed(session, "pause_subscription", owner, None, plan)
    await session.commit()
    assert paused.next_step is NextStep.survey
    assert paused.reply.startswith("Done: your Coffee Explorer Box subscription is paused.")
    await session.refresh(plan)
    stored = plan
    assert stored.status is SubscriptionStatus.paused
    assert stored.paused_at is not None

    cancelled = await support.apply_confirmed(session, "cancel_subscription", owner, None, plan)
    await session.commit()
    assert cancelled.next_step is NextStep.churn_survey
    assert cancelled.reply == (
        "Done: your Coffee Explorer Box subscription is cancelled; there will be no further charges."
    )
    await session.refresh(plan)
    stored = plan
    assert stored.status is SubscriptionStatus.cancelled
    assert stored.cancelled_at is not None

    audits = await _audit_rows(session)
    assert [(a.actor, a.action, a.target_type, a.target_id, a.details) for a in audits] == [
        (
            f"customer:{owner.id}",
            "pause_subscription",
            "subscription",
            str(plan.id),
            {"via": "chat"},
        ),
        (
            f"customer:{owner.id}",
            "cancel_subscription",
            "subscription",
            str(plan.id),
            {"via": "chat"},
        ),
    ]


async def test_apply_refuses_changes_the_order_no_longer_allows(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.placed)
    await session.commit()
    # the parcel ships between the question and the customer's "yes"
    order.status = OrderStatus.shipped
    await session.commit()

    cancel = await support.apply_confirmed(session, "cancel_order", owner, order, None)
    address = await support.apply_confirmed(
        session, "change_address", owner, order, None, new_address="12 Baker Street, London NW1 6XE"
    )
    await session.commit()

    assert cancel == FlowResult(
        "Order A10001 has just shipped, so it can no longer be cancelled.", NextStep.survey
    )
    assert address == FlowResult(
        "Order A10001 has just shipped, so its address can no longer be changed.", NextStep.survey
    )
    await session.refresh(order)
    stored = order
    assert (stored.status, stored.cancelled_at, stored.shipping_address) == (
        OrderStatus.shipped,
        None,
        ADDRESS,
    )
    lifecycle = (await session.scalars(select(Lifecycle))).one()
    assert (lifecycle.stage, lifecycle.closed_at) == (Stage.purchase, None)
    assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0

    # nothing to act on
    lost = await support.apply_confirmed(session, "return_item", owner, None, None)
    assert lost.reply.startswith("I've lost track of which order you meant")
    no_plan = await support.apply_confirmed(session, "pause_subscription", owner, None, None)
    assert no_plan.reply == "I can't find an active subscription on your account."
    unknown = await support.apply_confirmed(session, "format_disk", owner, order, None)
    assert unknown == FlowResult("Okay.")
    assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0


async def test_apply_return_refuses_an_order_refunded_in_the_meantime(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.refunded)
    await session.commit()

    result = await support.apply_confirmed(session, "return_item", owner, order, None)
    await session.commit()

    assert not result.reply.startswith("Your return for order A10001 is started")
    await session.refresh(order)
    assert order.return_requested_at is None
    assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0


async def test_verify_after_anonymous_feedback_merges_it_into_the_customer(
    session: AsyncSession,
) -> None:
    """Feedback typed before verifying lands on an anonymous customer made for the chat;
    verifying afterwards must work and move that feedback to the real customer's order."""
    owner = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, owner, "A10023", OrderStatus.delivered)
    session.add(Conversation(id="conv-1"))
    await session.commit()
    await chat.record_opinion(
        session, "conv-1", FeedbackKind.praise, "Lovely shop, great coffee", "m1"
    )
    await session.commit()
    conversation = await session.get(Conversation, "conv-1")
    assert conversation is not None
    anonymous_id = conversation.customer_id

    result = await support.verify(session, conversation, "A10023", "jane.doe@example.com")
    await session.commit()

    assert result.status is VerifyStatus.ok
    assert (conversation.customer_id, conversation.order_id) == (owner.id, order.id)
    order_lifecycle = await session.scalar(select(Lifecycle).where(Lifecycle.order_id == order.id))
    assert order_lifecycle is not None
    rows = (
        await session.execute(select(Feedback.customer_id, Feedback.lifecycle_id, Feedback.stage))
    ).all()
    assert [tuple(row) for row in rows] == [(owner.id, order_lifecycle.id, Stage.use)]
    left = (
        await session.execute(
            select(Lifecycle.closed_at.is_not(None), Lifecycle.close_reason).where(
                Lifecycle.customer_id == anonymous_id
            )
        )
    ).all()
    assert [tuple(row) for row in left] == [(True, "merged")]


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("can i skip next months coffee box", True),
        ("skip the next box pls", True),
        ("skip my next delivery", True),
        ("skip january", False),
        ("pause my sub", False),
    ],
)
def test_skip_next_is_asked(text: str, asks: bool) -> None:
    assert support.asks_skip_next(text) is asks


def test_skipping_the_next_box_pauses_until_the_box_after_it() -> None:
    """A tester's "skip next coffee box pls" (next box on 25 December) paused until 1
    February, which skipped the 25 January box too: the restart is one period after the
    next box."""
    now = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    sub = _subscription(SubscriptionStatus.active)
    sub.current_period_start = datetime(2026, 11, 25, tzinfo=timezone.utc)
    sub.current_period_end = datetime(2026, 12, 25, tzinfo=timezone.utc)

    restart = support.skip_next_restart(sub, now)
    result = support.subscription_flow("pause_subscription", sub, restart, now=now, skip_next=True)

    assert restart == datetime(2027, 1, 24, tzinfo=timezone.utc)  # 25 Dec + 30 days
    assert result.reply == (
        "Skip your next Coffee Explorer Box delivery, due 25 December 2026? You won't be "
        "charged for it, and deliveries restart with the one after, on 24 January 2027."
    )
    assert (result.next_step, result.pending_action) == (NextStep.confirm, "pause_subscription")


@pytest.mark.parametrize(
    "text",
    ["also can u send me the invoice for that order", "need an invoice with my company VAT id"],
)
def test_an_invoice_question_is_not_answered_with_the_double_charge_text(text: str) -> None:
    """Tester: invoice and VAT requests got "was charged once … pre-authorisation"."""
    assert support.asks_invoice(text)
    result = support.invoice(_order(OrderStatus.delivered))
    assert result.reply.startswith("The invoice for order A10001 (59.90 EUR) is attached")
    assert "VAT" in result.reply and "pre-authorisation" not in result.reply
    assert (result.next_step, result.pending_action) == (NextStep.confirm, "offer_human")
    assert not support.asks_invoice("i was charged twice for my order")


def test_a_customer_who_checked_with_the_neighbours_is_not_told_to() -> None:
    """Tester: "theres nothing here, checked with neighbours too" got "Please check with
    neighbours"."""
    order = _order(OrderStatus.delivered)
    checked = support.delivery_problem(
        order, WINDOW, said="nothing here, checked with neighbours too"
    )
    plain = support.delivery_problem(order, WINDOW, said="my parcel says delivered but isnt here")
    assert "check with neighbours" not in checked.reply and "opened a trace" in checked.reply
    assert "Please check with neighbours" in plain.reply


def test_how_long_for_an_overdue_refund_gives_the_banks_time_then_a_person() -> None:
    """Tester 4 (tw4_02): "how long for the money to show up" after the overdue-refund answer
    got the same answer again ("Just to be sure: …")."""
    order = _order(OrderStatus.refunded)
    order.refunded_at = utcnow() - timedelta(days=60)

    result = support.refund_status(order, WINDOW, said="how long for the money to show up")

    assert result.reply.startswith(
        "A refund usually shows on your statement 3–5 working days after we issue it."
    )
    assert (result.next_step, result.pending_action) == (NextStep.confirm, "offer_human")
    plain = support.refund_status(order, WINDOW, said="where is my refund")
    assert plain.reply.startswith("Your refund of 59.90 EUR for order A10001 was issued on")
