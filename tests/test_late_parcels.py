"""Late parcels (issue #17 item 6): a shipped parcel past its estimated delivery date is
called late, with the options of the policy table in docs/decisions.md ("Dialogue that
holds up"): under LATE_GRACE_DAYS wait, from it a trace, from REPLACEMENT_AFTER_DAYS a
replacement or a refund, a person at any time. A fixed clock throughout."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import chat, support
from bot.domain.enums import OrderStatus
from bot.domain.support import FlowResult, LatePolicy, NextStep
from bot.storage.models import Conversation, Order, OrderItem
from tests import factories

# The issue's day: on 6 December a parcel due on 1 December "should arrive by 1 December".
NOW = datetime(2026, 12, 6, 19, 40, tzinfo=timezone.utc)
PERSON = {"title": "Talk to a person", "payload": "I want to talk to a person"}
TRACE = {"title": "Trace my parcel", "payload": "/delivery_problem"}
REPLACE = {"title": "Arrange a replacement or refund", "payload": "I want to talk to a person"}
TRACKING = " Tracking: DPD 01234567890123."


def _shipped(due: datetime) -> Order:
    return Order(
        number="A10003",
        customer_id=1,
        status=OrderStatus.shipped,
        total=Decimal("177.00"),
        currency="EUR",
        shipping_address="1 Test Street, 10115 Berlin",
        carrier="DPD",
        tracking_number="01234567890123",
        placed_at=due - timedelta(days=4),
        shipped_at=due - timedelta(days=3),
        estimated_delivery=due,
        items=[
            OrderItem(
                sku="KIT-0166",
                name="Damascus Chef's Knife 20 cm",
                quantity=1,
                unit_price=Decimal("149.00"),
            ),
        ],
    )


def _due(days_ago: int) -> datetime:
    return (NOW - timedelta(days=days_ago)).replace(hour=18, minute=0)


def _date(days_ago: int) -> str:
    return _due(days_ago).strftime("%-d %B %Y")


def _status_head(days_ago: int, late: str) -> str:
    return (
        f"Order A10003 (1× Damascus Chef's Knife 20 cm) shipped on {_date(days_ago + 3)} and "
        f"was due on {_date(days_ago)}, so it is {late} late.{TRACKING}"
    )


@pytest.mark.parametrize(
    ("days_ago", "reply", "next_step", "buttons"),
    [
        (
            0,
            f"Order A10003 (1× Damascus Chef's Knife 20 cm) shipped on {_date(3)} and should arrive by {_date(0)}.{TRACKING}",
            NextStep.survey,
            [],
        ),
        (
            -2,
            f"Order A10003 (1× Damascus Chef's Knife 20 cm) shipped on {_date(1)} and should arrive by {_date(-2)}.{TRACKING}",
            NextStep.survey,
            [],
        ),
        (
            1,
            _status_head(1, "1 day")
            + f" Late parcels usually turn up within 2 days of the date; if it hasn't come by {_date(-1)}, I can ask DPD to trace it.",
            NextStep.done,
            [PERSON],
        ),
        (
            2,
            _status_head(2, "2 days")
            + f" I can ask DPD to trace it, and if it hasn't arrived by {_date(-5)} we'll send a replacement or refund you.",
            NextStep.done,
            [TRACE, PERSON],
        ),
        (
            5,
            _status_head(5, "5 days")
            + f" I can ask DPD to trace it, and if it hasn't arrived by {_date(-2)} we'll send a replacement or refund you.",
            NextStep.done,
            [TRACE, PERSON],
        ),
        (
            7,
            _status_head(7, "7 days")
            + " That's too long to keep waiting: we can send you a replacement or refund you, and a person from our team arranges it.",
            NextStep.done,
            [REPLACE],
        ),
    ],
)
def test_order_status_by_days_late(
    days_ago: int, reply: str, next_step: NextStep, buttons: list[dict[str, str]]
) -> None:
    result = support.order_status(_shipped(_due(days_ago)), 30, now=NOW)

    assert result == FlowResult(reply, next_step, buttons=buttons)


@pytest.mark.parametrize(
    ("days_ago", "reply", "next_step", "buttons"),
    [
        (0, f"Order A10003 is on its way and due by {_date(0)}.{TRACKING}", NextStep.survey, []),
        (
            1,
            f"Sorry, order A10003 is running late: it was due on {_date(1)}. Late parcels usually turn up within 2 days of the date, so please give it until {_date(-1)}; if it hasn't come by then, tell me and I'll ask DPD to trace it.{TRACKING}",
            NextStep.done,
            [PERSON],
        ),
        (
            5,
            f"Sorry, order A10003 is running late: it was due on {_date(5)}. I've asked DPD to trace it.{TRACKING} If it hasn't arrived by {_date(-2)}, we'll send a replacement or refund you.",
            NextStep.survey,
            [],
        ),
        (
            10,
            f"Sorry, order A10003 is 10 days late: it was due on {_date(10)}. We'll send you a replacement or refund you, whichever you prefer; a person from our team arranges it.{TRACKING}",
            NextStep.done,
            [REPLACE],
        ),
    ],
)
def test_delivery_problem_by_days_late(
    days_ago: int, reply: str, next_step: NextStep, buttons: list[dict[str, str]]
) -> None:
    result = support.delivery_problem(_shipped(_due(days_ago)), 30, now=NOW)

    assert result == FlowResult(reply, next_step, buttons=buttons)


def test_the_issues_late_parcel_is_called_late() -> None:
    result = support.order_status(
        _shipped(datetime(2026, 12, 1, 18, tzinfo=timezone.utc)), 30, now=NOW
    )

    assert "should arrive by" not in result.reply
    assert "was due on 1 December 2026, so it is 5 days late" in result.reply


def test_the_policy_thresholds_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().late_grace_days, Settings().replacement_after_days) == (2, 7)
    monkeypatch.setenv("LATE_GRACE_DAYS", "1")
    monkeypatch.setenv("REPLACEMENT_AFTER_DAYS", "3")
    settings = Settings.from_env()
    policy = LatePolicy(settings.late_grace_days, settings.replacement_after_days)

    trace = support.order_status(_shipped(_due(1)), 30, now=NOW, policy=policy)
    replace = support.order_status(_shipped(_due(3)), 30, now=NOW, policy=policy)

    assert trace.buttons == [TRACE, PERSON]
    assert replace.buttons == [REPLACE]


@pytest.mark.parametrize(
    ("status", "late"),
    [(OrderStatus.placed, 0), (OrderStatus.delivered, 0), (OrderStatus.shipped, 5)],
)
def test_days_late_counts_only_parcels_in_transit(status: OrderStatus, late: int) -> None:
    order = _shipped(_due(5))
    order.status = status

    assert support.days_late(order, NOW) == late


async def test_the_chat_uses_the_clock_and_the_settings(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10003", OrderStatus.shipped)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    assert order.estimated_delivery is not None
    now = order.estimated_delivery + timedelta(days=3)

    default = await chat.support_request(
        session, Settings(), "conv-1", "order_status", verified=True, now=now
    )
    strict = await chat.support_request(
        session,
        Settings(replacement_after_days=3),
        "conv-1",
        "order_status",
        verified=True,
        now=now,
    )

    assert "so it is 3 days late" in default.messages[0][0]
    assert default.messages[0][1] == [TRACE, PERSON]
    assert strict.messages[0][1] == [REPLACE]
    assert default.slots["next_step"] == "done"


REFUND = {"title": "Arrange my refund", "payload": "I want to talk to a person"}


@pytest.mark.parametrize(
    ("days_ago", "reply", "buttons"),
    [
        (
            1,
            f"Order A10003 is on its way; it was due on {_date(1)} and late parcels usually turn up "
            f"within 2 days. If it hasn't come by {_date(-1)}, tell me and I'll ask DPD to trace it; "
            f"from {_date(-6)} we can refund you 177.00 EUR or send a replacement. A person from our "
            f"team can help now if you'd rather not wait.{TRACKING}",
            [PERSON],
        ),
        (
            3,
            f"Order A10003 is late (it was due on {_date(3)}), so I've asked DPD to trace it. If it "
            f"hasn't arrived by {_date(-4)}, we'll refund you 177.00 EUR or send a replacement; a "
            f"person from our team can look at it now if you prefer.{TRACKING}",
            [PERSON],
        ),
        (
            8,
            "Order A10003 is 8 days late, so yes: we'll refund you 177.00 EUR, or send a "
            "replacement if you prefer. A person from our team arranges it; tap below and "
            "they'll take it from here.",
            [REFUND],
        ),
    ],
)
async def test_money_back_for_a_late_parcel_follows_the_late_table(
    session: AsyncSession, days_ago: int, reply: str, buttons: list[dict[str, str]]
) -> None:
    """ "i just want my money back" about a parcel 8 days late was answered "once it's
    delivered you can return it" (a dev conversation of 2026-12-07): it gets the late-parcel
    step, worded about the refund — not the delivery answer, which "my parcel is late, i
    want my money back" (two requests) would then get twice."""
    owner = await factories.customer(session)
    order = _shipped(_due(days_ago))
    order.customer_id = owner.id
    session.add(order)
    await session.flush()

    refund = await support.run_order_flow(session, "request_refund", order, 30, now=NOW)

    if buttons == [REFUND]:  # the person is offered as a question a typed "yes" accepts
        assert refund == FlowResult(reply, NextStep.confirm, "offer_human", buttons=buttons)
    else:
        assert refund == FlowResult(reply, NextStep.done, buttons=buttons)
    assert refund.reply != support.delivery_problem(order, 30, now=NOW).reply
