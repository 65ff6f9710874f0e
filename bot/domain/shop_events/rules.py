"""The shop events' rules: what one event does to the customer, their order or subscription,
the lifecycles, and the surveys it schedules (`apply`, the ORM path, one event at a time;
`batch.py` applies the common events of a batch set-based with the same results).

* Out of order: an order's status only moves up its rank (placed < shipped < delivered /
  cancelled < returned < refunded), so a late `shipped` after `delivered` only fills in
  `shipped_at`. A subscription's pause/resume older than its last status change is ignored;
  cancelled is final. Every event still records its timestamps.
* The customer row is locked in the apply transaction (PostgreSQL) as a second guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import lifecycle as lifecycles
from bot.domain import surveys
from bot.domain.enums import LifecycleKind, OrderStatus, Stage, SubscriptionStatus
from bot.domain.shop_events.payload import (
    ORDER_EVENTS,
    CustomerData,
    EventData,
    OrderData,
    SubscriptionData,
    invalid_event,
)
from bot.storage.models import Customer, Lifecycle, Order, OrderItem, Subscription, utcnow

# An order's status only moves up this rank; a cancelled order may still be refunded.
STATUS_RANK = {
    OrderStatus.placed: 0,
    OrderStatus.shipped: 1,
    OrderStatus.delivered: 2,
    OrderStatus.cancelled: 2,
    OrderStatus.returned: 3,
    OrderStatus.refunded: 4,
}
STATUS_TIME_FIELD = {
    OrderStatus.shipped: "shipped_at",
    OrderStatus.delivered: "delivered_at",
    OrderStatus.returned: "return_requested_at",
    OrderStatus.refunded: "refunded_at",
    OrderStatus.cancelled: "cancelled_at",
}


# ---- applying ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one event did; stored as the event's result and returned to the shop."""

    event: EventData
    changes: list[str] = field(default_factory=list)
    order: Order | None = None
    subscription: Subscription | None = None
    lifecycle: Lifecycle | None = None
    surveys: list[dict[str, Any]] = field(default_factory=list)
    ignored: str | None = None
    # Created by this event: it has no purchases yet (saves a query).
    new_customer: bool = False
    # When the shop sent it: a survey is not scheduled for an event already too old then.
    received_at: datetime = field(default_factory=utcnow)

    def as_json(self) -> dict[str, Any]:
        lifecycle = self.lifecycle
        return {
            "event_id": self.event.id,
            "type": self.event.type,
            "customer": self.event.customer.external_id,
            "applied": self.ignored is None,
            "ignored_reason": self.ignored,
            "changes": self.changes,
            "order": {"number": self.order.number, "status": self.order.status.value}
            if self.order
            else None,
            "subscription": {
                "id": self.subscription.external_id,
                "status": self.subscription.status.value,
            }
            if self.subscription
            else None,
            "lifecycle": {
                "id": lifecycle.id,
                "kind": lifecycle.kind.value,
                "stage": lifecycle.stage.value,
                "closed_at": lifecycle.closed_at.isoformat() if lifecycle.closed_at else None,
                "close_reason": lifecycle.close_reason,
            }
            if lifecycle
            else None,
            "surveys_scheduled": self.surveys,
        }


async def apply(
    session: AsyncSession, event: EventData, received_at: datetime | None = None
) -> dict[str, Any]:
    """Apply one event; `received_at` (when the shop sent it) dates what it schedules."""
    customer, created = await _customer(session, event.customer)
    outcome = Outcome(event, new_customer=created, received_at=received_at or utcnow())
    if event.order is not None:
        await _order_event(session, event, event.order, customer, outcome)
    else:
        assert event.subscription is not None
        await _subscription_event(session, event, event.subscription, customer, outcome)
    await session.flush()
    return outcome.as_json()


_CUSTOMERS = Customer.__table__.c
# Text, not the dialects' insert(): SQLAlchemy cannot cache an ON CONFLICT DO UPDATE
# statement and compiled it anew for every event (~7 % of an event's CPU). The same SQL runs
# on PostgreSQL and SQLite (>= 3.35).
_CUSTOMER_UPSERT = (
    select(Customer)
    .from_statement(
        text(
            "INSERT INTO customers (external_id, email, name, is_anonymous, created_at) "
            "VALUES (:external_id, :email, :name, false, :now) ON CONFLICT (external_id) "
            "DO UPDATE SET email = coalesce(excluded.email, customers.email), "
            "name = coalesce(excluded.name, customers.name) "
            f"RETURNING {', '.join(column.name for column in _CUSTOMERS)}"
        )
        .bindparams(bindparam("now", type_=_CUSTOMERS.created_at.type))
        .columns(*_CUSTOMERS)
    )
    .execution_options(populate_existing=True)
)


async def _customer(session: AsyncSession, data: CustomerData) -> tuple[Customer, bool]:
    """The customer by the shop's id, created or updated and row-locked in one upsert;
    and whether this call created them.

    The lock (ON CONFLICT DO UPDATE locks the row on PostgreSQL) serialises the events of
    one customer, so "first purchase" and the order's status are decided one at a time.
    """
    now = utcnow()
    customer: Customer | None = await session.scalar(
        _CUSTOMER_UPSERT,
        {"external_id": data.external_id, "email": data.email, "name": data.name, "now": now},
    )
    assert customer is not None
    return customer, customer.created_at == now


async def _has_purchases(session: AsyncSession, customer: Customer, outcome: Outcome) -> bool:
    if outcome.new_customer:
        return False
    orders = exists().where(Order.customer_id == customer.id)
    subscriptions = exists().where(Subscription.customer_id == customer.id)
    return bool(await session.scalar(select(orders | subscriptions)))


async def _schedule(
    session: AsyncSession, lifecycle: Lifecycle, trigger: str, outcome: Outcome
) -> None:
    """Schedule the trigger's survey, due from the event's `occurred_at`: an event older
    than the survey expiry (a shop back-filling its history) schedules nothing."""
    occurred_at = outcome.event.occurred_at
    if surveys.is_stale(occurred_at, outcome.received_at):
        outcome.changes.append(f"no {trigger} survey: the event is older than the survey expiry")
        return
    dispatch = await surveys.schedule_proactive(session, lifecycle, trigger, occurred_at)
    outcome.surveys.append({"id": dispatch.id, "trigger": trigger})


# ---- orders ----------------------------------------------------------------------------------


async def _order_event(
    session: AsyncSession, event: EventData, data: OrderData, customer: Customer, outcome: Outcome
) -> None:
    target = ORDER_EVENTS[event.type]
    # The order (row-locked) and its lifecycle in one round trip.
    found = (
        await session.execute(
            select(Order, Lifecycle)
            .outerjoin(Lifecycle, Lifecycle.order_id == Order.id)
            .where(Order.number == data.number)
            .with_for_update(of=Order)
        )
    ).first()
    order, known_lifecycle = (None, None) if found is None else found._tuple()
    created = order is None
    first_purchase = False
    if order is None:
        first_purchase = not await _has_purchases(session, customer, outcome)
        order = _new_order(customer, data, target, event.occurred_at)
        session.add(order)
        await session.flush()
        outcome.changes.append(f"order {order.number} created as {target.value}")
        moved = True
    else:
        if order.customer_id != customer.id:
            raise invalid_event("order.number", "belongs to another customer")
        _update_order(order, data, event)
        late_items = data.items and event.type == "order.placed"
        if late_items and not await session.scalar(
            select(exists().where(OrderItem.order_id == order.id))
        ):  # the order was first seen in an event without its items
            session.add_all(
                OrderItem(
                    order_id=order.id, sku=i.sku, name=i.name, quantity=i.qty, unit_price=i.price
                )
                for i in data.items
            )
        moved = STATUS_RANK[target] > STATUS_RANK[order.status]
        if moved:
            outcome.changes.append(f"order {order.number}: {order.status.value} → {target.value}")
            order.status = target
        else:
            outcome.ignored = f"order is already {order.status.value}"
    _stamp(order, target, event.occurred_at)
    outcome.order = order
    lifecycle = known_lifecycle or await lifecycles.lifecycle_for_order(
        session, order, event.occurred_at
    )
    before = (lifecycle.stage, lifecycle.closed_at)
    if not created:
        lifecycles.sync_with_order(lifecycle, order, event.occurred_at)
    if created:
        outcome.changes.append(f"lifecycle {lifecycle.id} at stage {lifecycle.stage.value}")
    elif (lifecycle.stage, lifecycle.closed_at) != before:
        outcome.changes.append(
            f"lifecycle {lifecycle.id}: {before[0].value} → {lifecycle.stage.value}"
        )
    outcome.lifecycle = lifecycle
    if first_purchase and target is not OrderStatus.cancelled:
        await _schedule(session, lifecycle, surveys.TRIGGER_FIRST_ORDER, outcome)
    if moved and target is OrderStatus.delivered:
        await _schedule(session, lifecycle, surveys.TRIGGER_ORDER_DELIVERED, outcome)


def _new_order(customer: Customer, data: OrderData, status: OrderStatus, at: datetime) -> Order:
    items = [
        OrderItem(sku=i.sku, name=i.name, quantity=i.qty, unit_price=i.price) for i in data.items
    ]
    total = (
        data.total
        if data.total is not None
        else sum((i.price * i.qty for i in data.items), Decimal(0))
    )
    return Order(
        number=data.number,
        customer_id=customer.id,
        status=status,
        total=total,
        currency=data.currency or "EUR",
        shipping_address=data.shipping_address or "",
        carrier=data.carrier,
        tracking_number=data.tracking_number,
        # A late order.placed moves placed_at earlier (see _update_order).
        placed_at=data.placed_at or at,
        estimated_delivery=data.estimated_delivery,
        items=items,
    )


def _update_order(order: Order, data: OrderData, event: EventData) -> None:
    """Fill in details the shop sends later; never erase what is known."""
    for attr in ("shipping_address", "carrier", "tracking_number", "estimated_delivery"):
        value = getattr(data, attr)
        if value is not None:
            setattr(order, attr, value)
    if data.total is not None:
        order.total = data.total
    placed_at = data.placed_at or (event.occurred_at if event.type == "order.placed" else None)
    if placed_at is not None and placed_at < order.placed_at:
        order.placed_at = placed_at


def _stamp(order: Order, status: OrderStatus, at: datetime) -> None:
    """The time the order reached `status`: the earliest event saying so."""
    attr = STATUS_TIME_FIELD.get(status)
    if attr is None:
        return
    current: datetime | None = getattr(order, attr)
    if current is None or at < current:
        setattr(order, attr, at)


# ---- subscriptions -----------------------------------------------------------------------------


async def _subscription_event(
    session: AsyncSession,
    event: EventData,
    data: SubscriptionData,
    customer: Customer,
    outcome: Outcome,
) -> None:
    first_purchase = False
    sub = await session.scalar(
        select(Subscription).where(Subscription.external_id == data.id).with_for_update()
    )
    if sub is None:
        first_purchase = not await _has_purchases(session, customer, outcome)
        sub = _new_subscription(customer, data, event)
        session.add(sub)
        await session.flush()
        outcome.changes.append(f"subscription {data.id} created")
    elif sub.customer_id != customer.id:
        raise invalid_event("subscription.id", "belongs to another customer")
    else:
        _update_subscription(sub, data)
    outcome.subscription = sub
    handler = {
        "subscription.started": _started,
        "subscription.renewed": _renewed,
        "subscription.paused": _paused,
        "subscription.cancelled": _cancelled,
    }[event.type]
    await handler(session, event, data, sub, outcome)
    if (
        first_purchase
        and outcome.lifecycle is not None
        and sub.status is not SubscriptionStatus.cancelled
    ):
        await _schedule(session, outcome.lifecycle, surveys.TRIGGER_FIRST_ORDER, outcome)


def _new_subscription(customer: Customer, data: SubscriptionData, event: EventData) -> Subscription:
    if data.plan is None:
        raise invalid_event("subscription.plan", "is required for a subscription not seen before")
    if data.price is None:
        raise invalid_event("subscription.price", "is required for a subscription not seen before")
    if data.period_start is None or data.period_end is None:
        raise invalid_event(
            "subscription.period_start", "is required for a subscription not seen before"
        )
    status = {
        "subscription.paused": SubscriptionStatus.paused,
        "subscription.cancelled": SubscriptionStatus.cancelled,
    }.get(event.type, SubscriptionStatus.active)
    return Subscription(
        customer_id=customer.id,
        external_id=data.id,
        plan=data.plan,
        price=data.price,
        currency=data.currency or "EUR",
        status=status,
        started_at=data.period_start,
        current_period_start=data.period_start,
        current_period_end=data.period_end,
        status_changed_at=event.occurred_at,
        paused_at=event.occurred_at if status is SubscriptionStatus.paused else None,
        cancelled_at=event.occurred_at if status is SubscriptionStatus.cancelled else None,
    )


def _update_subscription(sub: Subscription, data: SubscriptionData) -> None:
    if data.plan is not None:
        sub.plan = data.plan
    if data.price is not None:
        sub.price = data.price
    if data.currency is not None:
        sub.currency = data.currency


def _newer(sub: Subscription, at: datetime) -> bool:
    """Whether an event at `at` may set the status (not older than the last change)."""
    return sub.status_changed_at is None or at >= sub.status_changed_at


def _set_status(
    sub: Subscription, status: SubscriptionStatus, at: datetime, outcome: Outcome
) -> None:
    if sub.status is not status:
        outcome.changes.append(
            f"subscription {sub.external_id}: {sub.status.value} → {status.value}"
        )
        sub.status = status
        sub.resume_on = None  # a date the customer gave in chat ended with that pause
    sub.status_changed_at = at


async def _period_lifecycle(
    session: AsyncSession, sub: Subscription, period_start: datetime
) -> tuple[Lifecycle, bool]:
    """The lifecycle of one billing period (at least in purchase); created when missing."""
    lifecycle = await session.scalar(
        select(Lifecycle).where(
            Lifecycle.subscription_id == sub.id, Lifecycle.period_start == period_start
        )
    )
    if lifecycle is not None:
        return lifecycle, False
    # The customer's journey before subscribing (discovery/research) becomes period one's.
    adopted = await session.scalar(
        select(Lifecycle)
        .where(
            Lifecycle.customer_id == sub.customer_id,
            Lifecycle.closed_at.is_(None),
            Lifecycle.order_id.is_(None),
            Lifecycle.subscription_id.is_(None),
            Lifecycle.stage.in_([Stage.discovery, Stage.research]),
            Lifecycle.opened_at <= period_start,
        )
        .order_by(Lifecycle.opened_at.desc())
        .limit(1)
    )
    customer = await session.get(Customer, sub.customer_id)
    lifecycle = adopted or Lifecycle(
        customer_id=sub.customer_id,
        stage=Stage.discovery,
        opened_at=period_start,
        acquisition_channel=customer.acquisition_source if customer else None,
    )
    lifecycle.kind = LifecycleKind.subscription_period
    lifecycle.subscription_id = sub.id
    lifecycle.period_start = period_start
    lifecycles.advance(lifecycle, Stage.purchase)
    session.add(lifecycle)
    await session.flush()
    return lifecycle, True


async def _open_periods(session: AsyncSession, sub: Subscription) -> list[Lifecycle]:
    rows = await session.scalars(
        select(Lifecycle)
        .where(Lifecycle.subscription_id == sub.id, Lifecycle.closed_at.is_(None))
        .order_by(Lifecycle.period_start)
    )
    return list(rows.all())


async def _started(
    session: AsyncSession,
    event: EventData,
    data: SubscriptionData,
    sub: Subscription,
    outcome: Outcome,
) -> None:
    if sub.status is SubscriptionStatus.cancelled:
        outcome.ignored = "subscription is cancelled"
        return
    if _newer(sub, event.occurred_at):  # a start after a pause resumes it
        _set_status(sub, SubscriptionStatus.active, event.occurred_at, outcome)
    assert data.period_start is not None
    if data.period_start < sub.started_at:
        sub.started_at = data.period_start
    lifecycle, created = await _period_lifecycle(session, sub, data.period_start)
    if created:
        outcome.changes.append(
            f"lifecycle {lifecycle.id} opened (period {data.period_start.date()})"
        )
        if data.period_start < sub.current_period_start:
            # A late start of a period that a renewal already ended.
            lifecycles.advance(lifecycle, Stage.use)
            lifecycles.close(lifecycle, "period_ended", sub.current_period_start)
    outcome.lifecycle = lifecycle


async def _renewed(
    session: AsyncSession,
    event: EventData,
    data: SubscriptionData,
    sub: Subscription,
    outcome: Outcome,
) -> None:
    assert data.period_start is not None and data.period_end is not None
    if sub.status is SubscriptionStatus.cancelled:
        outcome.ignored = "subscription is cancelled"
        return
    new_start = data.period_start
    known = await session.scalar(
        select(Lifecycle.id).where(
            Lifecycle.subscription_id == sub.id, Lifecycle.period_start == new_start
        )
    )
    if known is not None or new_start < sub.current_period_start:
        outcome.ignored = "this period is already known"
        outcome.lifecycle, _ = await _period_lifecycle(session, sub, sub.current_period_start)
        return
    ended = [
        lc
        for lc in await _open_periods(session, sub)
        if lc.period_start and lc.period_start < new_start
    ]
    for lifecycle in ended:
        # They had the subscription for a whole period: it was in use.
        lifecycles.advance(lifecycle, Stage.use)
        lifecycles.close(lifecycle, "period_ended", event.occurred_at)
        outcome.changes.append(f"lifecycle {lifecycle.id} closed (period ended)")
    sub.current_period_start, sub.current_period_end = new_start, data.period_end
    if _newer(sub, event.occurred_at):
        _set_status(sub, SubscriptionStatus.active, event.occurred_at, outcome)
    lifecycle, _ = await _period_lifecycle(session, sub, new_start)
    # A renewal is a repeat purchase of something already in use.
    lifecycles.advance(lifecycle, Stage.use)
    outcome.changes.append(f"lifecycle {lifecycle.id} opened (period {new_start.date()})")
    outcome.lifecycle = lifecycle
    if ended:
        # NPS about the period that ended, on that period's lifecycle.
        await _schedule(session, ended[-1], surveys.TRIGGER_SUBSCRIPTION_RENEWED, outcome)


async def _paused(
    session: AsyncSession,
    event: EventData,
    data: SubscriptionData,
    sub: Subscription,
    outcome: Outcome,
) -> None:
    outcome.lifecycle, _ = await _period_lifecycle(session, sub, sub.current_period_start)
    if sub.status is SubscriptionStatus.cancelled:
        outcome.ignored = "subscription is cancelled"
    elif not _newer(sub, event.occurred_at):
        outcome.ignored = "a newer status change is known"
    else:
        _set_status(sub, SubscriptionStatus.paused, event.occurred_at, outcome)
        sub.paused_at = event.occurred_at


async def _cancelled(
    session: AsyncSession,
    event: EventData,
    data: SubscriptionData,
    sub: Subscription,
    outcome: Outcome,
) -> None:
    current, _ = await _period_lifecycle(session, sub, sub.current_period_start)
    outcome.lifecycle = current
    if sub.cancelled_at is not None and outcome.changes == []:
        outcome.ignored = "subscription is already cancelled"
        return
    _set_status(sub, SubscriptionStatus.cancelled, event.occurred_at, outcome)
    sub.cancelled_at = event.occurred_at
    for lifecycle in await _open_periods(session, sub):
        lifecycles.close(lifecycle, "cancelled", event.occurred_at)
        outcome.changes.append(f"lifecycle {lifecycle.id} closed (cancelled)")
    await _schedule(session, current, surveys.TRIGGER_SUBSCRIPTION_CANCELLED, outcome)
