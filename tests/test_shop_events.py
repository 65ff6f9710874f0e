"""Shop events (SPEC §6): event sequences → exact lifecycles, order/subscription states, surveys."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import lifecycle as lifecycles
from bot.domain import shop_events
from bot.domain.errors import InvalidInput
from bot.storage.models import (
    Customer,
    Lifecycle,
    Order,
    ShopEvent,
    Subscription,
    SurveyDispatch,
    utcnow,
)

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ITEMS = [{"sku": "MUG-1", "name": "Mug", "qty": 2, "price": "12.50"}]


def at(hours: float, base: datetime = T0) -> str:
    return (base + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def recently() -> datetime:
    """A base time for events sent live through the webhook: a survey an event schedules is
    due from its `occurred_at`, so an event from T0 (months ago) schedules none."""
    return utcnow().replace(microsecond=0) - timedelta(hours=1)


def order_event(
    event_id: str,
    kind: str,
    hours: float,
    number: str = "A20001",
    customer: str = "C9001",
    base: datetime = T0,
) -> dict[str, Any]:
    order: dict[str, Any] = {"number": number, "items": [dict(i) for i in ITEMS], "total": "25.00"}
    return {
        "id": event_id,
        "type": f"order.{kind}",
        "occurred_at": at(hours, base),
        "customer": {"external_id": customer, "email": "kim@example.com", "name": "Kim"},
        "order": order,
    }


def sub_event(
    event_id: str, kind: str, hours: float, period: int = 0, customer: str = "C9001"
) -> dict[str, Any]:
    start = T0 + timedelta(days=30 * period)
    return {
        "id": event_id,
        "type": f"subscription.{kind}",
        "occurred_at": at(hours),
        "customer": {"external_id": customer},
        "subscription": {
            "id": "SUB-1",
            "plan": "Coffee monthly",
            "price": "19.00",
            "currency": "EUR",
            "period_start": start.isoformat(),
            "period_end": (start + timedelta(days=30)).isoformat(),
        },
    }


async def send(sessions: Sessions, payload: dict[str, Any]) -> shop_events.Receipt:
    """Received a minute after it happened, as a live shop sends it (a survey an event
    schedules is due from its `occurred_at`, T0 lies in the past)."""
    event = shop_events.parse_event(payload)
    return await shop_events.receive(sessions, event, event.occurred_at + timedelta(minutes=1))


async def lifecycle_rows(session: AsyncSession) -> list[tuple[Any, ...]]:
    rows = await session.scalars(select(Lifecycle).order_by(Lifecycle.id))
    return [
        (lc.kind.value, lc.stage.value, lc.closed_at, lc.close_reason, lc.order_id is not None)
        for lc in rows
    ]


async def dispatch_rows(session: AsyncSession) -> list[tuple[str, int, bool]]:
    rows = await session.scalars(select(SurveyDispatch).order_by(SurveyDispatch.id))
    return [(d.trigger, d.lifecycle_id, d.sent_at is None) for d in rows]


async def test_one_time_purchase_placed_shipped_delivered(session_factory: Sessions) -> None:
    first = await send(session_factory, order_event("e1", "placed", 0))
    assert first.replayed is False
    assert first.result["order"] == {"number": "A20001", "status": "placed"}
    assert first.result["lifecycle"]["stage"] == "purchase"
    assert [s["trigger"] for s in first.result["surveys_scheduled"]] == ["first_order"]
    await send(session_factory, order_event("e2", "shipped", 20))
    delivered = await send(session_factory, order_event("e3", "delivered", 50))
    assert [s["trigger"] for s in delivered.result["surveys_scheduled"]] == ["order_delivered"]

    async with session_factory() as session:
        assert await lifecycle_rows(session) == [("one_time", "use", None, None, True)]
        order = (await session.scalars(select(Order))).one()
        assert order.status.value == "delivered"
        assert order.placed_at == T0
        assert order.shipped_at == T0 + timedelta(hours=20)
        assert order.delivered_at == T0 + timedelta(hours=50)
        assert order.total == Decimal("25.00")
        customer = (await session.scalars(select(Customer))).one()
        assert (customer.external_id, customer.email, customer.name) == (
            "C9001",
            "kim@example.com",
            "Kim",
        )
        lifecycle_id = (await session.scalars(select(Lifecycle.id))).one()
        assert await dispatch_rows(session) == [
            ("first_order", lifecycle_id, True),
            ("order_delivered", lifecycle_id, True),
        ]


async def test_second_order_gets_its_own_lifecycle_and_no_first_order_survey(
    session_factory: Sessions,
) -> None:
    await send(session_factory, order_event("e1", "placed", 0))
    second = await send(session_factory, order_event("e2", "placed", 5, number="A20002"))
    assert second.result["surveys_scheduled"] == []
    async with session_factory() as session:
        assert await lifecycle_rows(session) == [
            ("one_time", "purchase", None, None, True),
            ("one_time", "purchase", None, None, True),
        ]


async def test_order_adopts_the_customers_open_discovery_lifecycle(
    session_factory: Sessions,
) -> None:
    async with session_factory() as session, session.begin():
        customer = Customer(external_id="C9001")
        session.add(customer)
        await session.flush()
        discovery = await lifecycles.current_lifecycle(session, customer, at=T0 - timedelta(days=1))
        discovery_id = discovery.id
    result = (await send(session_factory, order_event("e1", "placed", 0))).result
    assert result["lifecycle"]["id"] == discovery_id
    async with session_factory() as session:
        assert await lifecycle_rows(session) == [("one_time", "purchase", None, None, True)]


async def test_return_then_refund_closes_the_lifecycle_in_support(
    session_factory: Sessions,
) -> None:
    for event_id, kind, hours in (
        ("e1", "placed", 0),
        ("e2", "delivered", 48),
        ("e3", "returned", 100),
        ("e4", "refunded", 130),
    ):
        await send(session_factory, order_event(event_id, kind, hours))
    async with session_factory() as session:
        returned_at = T0 + timedelta(hours=100)
        assert await lifecycle_rows(session) == [
            ("one_time", "support", returned_at, "returned", True)
        ]
        order = (await session.scalars(select(Order))).one()
        assert order.status.value == "refunded"
        assert order.return_requested_at == returned_at
        assert order.refunded_at == T0 + timedelta(hours=130)
        assert [d[0] for d in await dispatch_rows(session)] == ["first_order", "order_delivered"]


async def test_cancelled_order_closes_its_lifecycle_in_purchase(session_factory: Sessions) -> None:
    await send(session_factory, order_event("e1", "placed", 0))
    result = (await send(session_factory, order_event("e2", "cancelled", 2))).result
    assert result["lifecycle"]["close_reason"] == "cancelled"
    async with session_factory() as session:
        assert await lifecycle_rows(session) == [
            ("one_time", "purchase", T0 + timedelta(hours=2), "cancelled", True)
        ]
        # A shipped event for a cancelled order arriving late changes nothing.
    late = await send(session_factory, order_event("e3", "shipped", 1))
    assert late.result["applied"] is False
    assert late.result["order"]["status"] == "cancelled"


async def test_subscription_over_three_periods(session_factory: Sessions) -> None:
    started = await send(session_factory, sub_event("s1", "started", 0, period=0))
    assert [s["trigger"] for s in started.result["surveys_scheduled"]] == ["first_order"]
    renewed = await send(session_factory, sub_event("s2", "renewed", 24 * 30, period=1))
    assert [s["trigger"] for s in renewed.result["surveys_scheduled"]] == ["subscription_renewed"]
    await send(session_factory, sub_event("s3", "renewed", 24 * 60, period=2))
    async with session_factory() as session:
        lifecycles_ = (await session.scalars(select(Lifecycle).order_by(Lifecycle.id))).all()
        assert [
            (lc.kind.value, lc.stage.value, lc.period_start, lc.closed_at, lc.close_reason)
            for lc in lifecycles_
        ] == [
            ("subscription_period", "use", T0, T0 + timedelta(days=30), "period_ended"),
            (
                "subscription_period",
                "use",
                T0 + timedelta(days=30),
                T0 + timedelta(days=60),
                "period_ended",
            ),
            ("subscription_period", "use", T0 + timedelta(days=60), None, None),
        ]
        p1, p2, _p3 = (lc.id for lc in lifecycles_)
        assert await dispatch_rows(session) == [
            ("first_order", p1, True),
            ("subscription_renewed", p1, True),
            ("subscription_renewed", p2, True),
        ]
        sub = (await session.scalars(select(Subscription))).one()
        assert (sub.status.value, sub.current_period_start, sub.started_at) == (
            "active",
            T0 + timedelta(days=60),
            T0,
        )


async def test_subscription_cancellation_closes_the_period_and_asks_the_churn_reason(
    session_factory: Sessions,
) -> None:
    await send(session_factory, sub_event("s1", "started", 0))
    cancelled = await send(session_factory, sub_event("s2", "cancelled", 24 * 10))
    assert [s["trigger"] for s in cancelled.result["surveys_scheduled"]] == [
        "subscription_cancelled"
    ]
    again = await send(session_factory, sub_event("s3", "cancelled", 24 * 11))
    assert again.result["applied"] is False
    late_renewal = await send(session_factory, sub_event("s4", "renewed", 24 * 30, period=1))
    assert late_renewal.result["ignored_reason"] == "subscription is cancelled"
    async with session_factory() as session:
        assert await lifecycle_rows(session) == [
            ("subscription_period", "purchase", T0 + timedelta(days=10), "cancelled", False)
        ]
        assert [d[0] for d in await dispatch_rows(session)] == [
            "first_order",
            "subscription_cancelled",
        ]
        sub = (await session.scalars(select(Subscription))).one()
        assert (sub.status.value, sub.cancelled_at) == ("cancelled", T0 + timedelta(days=10))


async def test_pause_and_resume_arriving_in_reverse_order_end_active(
    session_factory: Sessions,
) -> None:
    await send(session_factory, sub_event("s1", "started", 0))
    await send(session_factory, sub_event("s3", "started", 24 * 5))  # resumed on day 5
    late_pause = await send(session_factory, sub_event("s2", "paused", 24 * 3))  # paused on day 3
    assert late_pause.result["ignored_reason"] == "a newer status change is known"
    async with session_factory() as session:
        sub = (await session.scalars(select(Subscription))).one()
        assert sub.status.value == "active"


async def test_replay_returns_the_first_result_and_changes_nothing(
    session_factory: Sessions,
) -> None:
    payload = order_event("e1", "placed", 0)
    first = await send(session_factory, payload)
    changed = {**payload, "order": {**payload["order"], "total": "99.00"}}
    replay = await send(session_factory, changed)
    assert replay.replayed is True
    assert replay.result == first.result
    async with session_factory() as session:
        assert (await session.scalars(select(Order.total))).one() == Decimal("25.00")
        assert len(await dispatch_rows(session)) == 1
        assert await session.scalar(select(func.count()).select_from(ShopEvent)) == 1


async def test_concurrent_duplicates_apply_once(session_factory: Sessions) -> None:
    payload = order_event("e1", "placed", 0)
    receipts = await asyncio.gather(*(send(session_factory, payload) for _ in range(5)))
    assert sorted(r.replayed for r in receipts) == [False, True, True, True, True]
    assert len({str(r.result) for r in receipts}) == 1
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        assert len(await dispatch_rows(session)) == 1


async def test_delivered_before_shipped_ends_delivered(session_factory: Sessions) -> None:
    await send(session_factory, order_event("e3", "delivered", 50))
    late_shipped = await send(session_factory, order_event("e2", "shipped", 20))
    assert late_shipped.result["applied"] is False
    late_placed = await send(session_factory, order_event("e1", "placed", 0))
    assert late_placed.result["surveys_scheduled"] == []
    async with session_factory() as session:
        order = (await session.scalars(select(Order))).one()
        assert (order.status.value, order.placed_at, order.shipped_at, order.delivered_at) == (
            "delivered",
            T0,
            T0 + timedelta(hours=20),
            T0 + timedelta(hours=50),
        )
        assert await lifecycle_rows(session) == [("one_time", "use", None, None, True)]
        assert [d[0] for d in await dispatch_rows(session)] == ["first_order", "order_delivered"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "order.teleported"}, "Unknown event type 'order.teleported'"),
        ({"occurred_at": "2026-03-02T09:00:00"}, "'occurred_at' must include a time zone"),
        ({"customer": {"email": "x@example.com"}}, "'customer.external_id' is required"),
        (
            {"order": {"number": "A1", "items": [{"sku": "S", "name": "N", "qty": 0, "price": 1}]}},
            "'order.items[0].qty' must be an integer",
        ),
        ({"order": {"number": "A1"}}, "'order.items' is required for order.placed"),
        ({"id": ""}, "'id' must be a non-empty string"),
    ],
)
def test_invalid_events_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        shop_events.parse_event({**order_event("e1", "placed", 0), **change})
    assert error.value.message.startswith(message), error.value.message


def test_signature_round_trip() -> None:
    body = b'{"id": "e1"}'
    header = shop_events.signature_header("secret", body, timestamp=1_800_000_000)
    t, v1 = header.split(",")
    assert t == "t=1800000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    expected = hmac.new(b"secret", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert v1 == f"v1={expected}"  # HMAC-SHA256 of "<t>.<raw body>"
    now = 1_800_000_000.0
    assert shop_events.check_signature("secret", body, header, now=now) is None
    assert shop_events.signature_ok("secret", body, header, now=now + 299)
    wrong = shop_events.SignatureProblem.wrong
    assert shop_events.check_signature("other", body, header, now=now) is wrong
    assert shop_events.check_signature("secret", body + b" ", header, now=now) is wrong
    # The timestamp is signed: moving it forward breaks the signature.
    moved = header.replace("t=1800000000", "t=1800000500")
    assert shop_events.check_signature("secret", body, moved, now=now + 500) is wrong
    malformed = shop_events.SignatureProblem.malformed
    for bad in (None, "", v1, t, f"sha256={expected}", "t=abc," + v1, "t=1800000000,v1=xyz"):
        assert shop_events.check_signature("secret", body, bad, now=now) is malformed, bad
    # Several v1 values (the shop rotating its secret): any one may match.
    rotated = f"{header},v1={'0' * 64}"
    assert shop_events.check_signature("secret", body, rotated, now=now) is None


@pytest.mark.parametrize("offset", [-301, 301, -86400 * 365])
def test_a_signature_outside_the_tolerance_is_stale(offset: int) -> None:
    body = b'{"id": "e1"}'
    header = shop_events.signature_header("secret", body, timestamp=1_800_000_000)
    problem = shop_events.check_signature(
        "secret", body, header, tolerance_seconds=300, now=1_800_000_000 - offset
    )
    assert problem is shop_events.SignatureProblem.stale
    # A longer tolerance accepts the same header.
    assert shop_events.signature_ok(
        "secret", body, header, tolerance_seconds=abs(offset), now=1_800_000_000 - offset
    )
