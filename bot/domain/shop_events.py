"""The shop's events (SPEC §6): validate, apply once, move lifecycles, schedule surveys.

Payload (documented in docs/events.md):

    {"id": "evt_1", "type": "order.delivered", "occurred_at": "2026-11-26T10:00:00Z",
     "customer": {"external_id": "C1001", "email": "...", "name": "..."},
     "order": {"number": "A10023", "items": [{"sku", "name", "qty", "price"}], "total": "59.90",
               "currency": "EUR", "placed_at", "shipping_address", "carrier", "tracking_number",
               "estimated_delivery"}}
    subscription events carry "subscription": {"id", "plan", "price", "currency",
               "period_start", "period_end"} instead of "order".

* Idempotent by `id`: each event is applied in one transaction that inserts its
  `shop_events` row (with the result) last, so a concurrent duplicate fails on that primary
  key, rolls back everything it did and answers with the stored result.
* Out of order: an order's status only moves up its rank (placed < shipped < delivered /
  cancelled < returned < refunded), so a late `shipped` after `delivered` only fills in
  `shipped_at`. A subscription's pause/resume older than its last status change is ignored;
  cancelled is final. Every event still records its timestamps.
* Events of one customer are serialised by locking the customer row (PostgreSQL); conflicts
  between concurrent transactions are retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import exists, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import lifecycle as lifecycles
from bot.domain import surveys
from bot.domain.errors import Conflict, InvalidInput
from bot.storage.models import (
    Customer,
    Lifecycle,
    LifecycleKind,
    Order,
    OrderItem,
    OrderStatus,
    ShopEvent,
    Stage,
    Subscription,
    SubscriptionStatus,
    utcnow,
)

ORDER_EVENTS = {
    "order.placed": OrderStatus.placed,
    "order.shipped": OrderStatus.shipped,
    "order.delivered": OrderStatus.delivered,
    "order.returned": OrderStatus.returned,
    "order.refunded": OrderStatus.refunded,
    "order.cancelled": OrderStatus.cancelled,
}
SUBSCRIPTION_EVENTS = (
    "subscription.started",
    "subscription.renewed",
    "subscription.paused",
    "subscription.cancelled",
)
EVENT_TYPES = (*ORDER_EVENTS, *SUBSCRIPTION_EVENTS)
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
MAX_ITEMS = 200
MAX_AMOUNT = Decimal("99999999.99")
FUTURE_TOLERANCE = timedelta(hours=1)
MAX_ATTEMPTS = 5
SIGNATURE_PREFIX = "sha256="


# ---- signatures --------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The `X-Signature` header value for a raw body: `sha256=<hex HMAC-SHA256>`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of an `X-Signature` header against the raw body."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


# ---- the payload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerData:
    external_id: str
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ItemData:
    sku: str
    name: str
    qty: int
    price: Decimal


@dataclass(frozen=True)
class OrderData:
    number: str
    items: tuple[ItemData, ...] = ()
    total: Decimal | None = None
    currency: str | None = None
    placed_at: datetime | None = None
    shipping_address: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    estimated_delivery: datetime | None = None


@dataclass(frozen=True)
class SubscriptionData:
    id: str
    plan: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True)
class EventData:
    id: str
    type: str
    occurred_at: datetime
    customer: CustomerData
    order: OrderData | None = None
    subscription: SubscriptionData | None = None


def _fail(path: str, problem: str) -> InvalidInput:
    return InvalidInput(f"'{path}' {problem}", code="invalid_event")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be an object")
    return value


def _text(
    obj: dict[str, Any], key: str, path: str, *, required: bool = False, max_len: int = 200
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _fail(f"{path}{key}", "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{path}{key}", "must be a non-empty string")
    if len(value) > max_len:
        raise _fail(f"{path}{key}", f"must be at most {max_len} characters")
    return value.strip()


def _required_text(obj: dict[str, Any], key: str, path: str, max_len: int = 200) -> str:
    value = _text(obj, key, path, required=True, max_len=max_len)
    assert value is not None
    return value


def parse_time(value: Any, path: str) -> datetime:
    """ISO 8601 with a time zone ('Z' or an offset), as UTC."""
    if not isinstance(value, str):
        raise _fail(path, "must be an ISO 8601 date-time string with a time zone")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise _fail(path, "must be an ISO 8601 date-time string with a time zone") from exc
    if parsed.tzinfo is None:
        raise _fail(path, "must include a time zone (e.g. 'Z' or '+01:00')")
    return parsed.astimezone(timezone.utc)


def _time(obj: dict[str, Any], key: str, path: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else parse_time(value, f"{path}{key}")


def _amount(obj: dict[str, Any], key: str, path: str) -> Decimal | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _fail(f"{path}{key}", 'must be a decimal amount like 59.90 or "59.90"')
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise _fail(f"{path}{key}", 'must be a decimal amount like 59.90 or "59.90"') from exc
    if not Decimal(0) <= amount <= MAX_AMOUNT:
        raise _fail(f"{path}{key}", f"must be between 0 and {MAX_AMOUNT}")
    return amount


def _currency(obj: dict[str, Any], path: str) -> str | None:
    value = _text(obj, "currency", path, max_len=3)
    if value is not None and not (len(value) == 3 and value.isalpha()):
        raise _fail(f"{path}currency", "must be a 3-letter ISO 4217 code")
    return value.upper() if value else None


def _item(value: Any, path: str) -> ItemData:
    obj = _object(value, path)
    qty = obj.get("qty")
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= 10_000:
        raise _fail(f"{path}.qty", "must be an integer between 1 and 10000")
    price = _amount(obj, "price", f"{path}.")
    if price is None:
        raise _fail(f"{path}.price", "is required")
    return ItemData(
        sku=_required_text(obj, "sku", f"{path}.", 32),
        name=_required_text(obj, "name", f"{path}."),
        qty=qty,
        price=price,
    )


def _order(value: Any, event_type: str) -> OrderData:
    obj = _object(value, "order")
    items_raw = obj.get("items")
    if items_raw is None and event_type == "order.placed":
        raise _fail("order.items", "is required for order.placed")
    if items_raw is not None and (not isinstance(items_raw, list) or not items_raw):
        raise _fail("order.items", "must be a non-empty list")
    if items_raw is not None and len(items_raw) > MAX_ITEMS:
        raise _fail("order.items", f"may hold at most {MAX_ITEMS} items")
    return OrderData(
        number=_required_text(obj, "number", "order.", 32),
        items=tuple(_item(item, f"order.items[{i}]") for i, item in enumerate(items_raw or [])),
        total=_amount(obj, "total", "order."),
        currency=_currency(obj, "order."),
        placed_at=_time(obj, "placed_at", "order."),
        shipping_address=_text(obj, "shipping_address", "order.", max_len=1000),
        carrier=_text(obj, "carrier", "order.", max_len=50),
        tracking_number=_text(obj, "tracking_number", "order.", max_len=64),
        estimated_delivery=_time(obj, "estimated_delivery", "order."),
    )


def _subscription(value: Any, event_type: str) -> SubscriptionData:
    obj = _object(value, "subscription")
    data = SubscriptionData(
        id=_required_text(obj, "id", "subscription.", 64),
        plan=_text(obj, "plan", "subscription.", max_len=100),
        price=_amount(obj, "price", "subscription."),
        currency=_currency(obj, "subscription."),
        period_start=_time(obj, "period_start", "subscription."),
        period_end=_time(obj, "period_end", "subscription."),
    )
    if event_type in ("subscription.started", "subscription.renewed"):
        for key in ("period_start", "period_end"):
            if getattr(data, key) is None:
                raise _fail(f"subscription.{key}", f"is required for {event_type}")
    if data.period_start and data.period_end and data.period_end <= data.period_start:
        raise _fail("subscription.period_end", "must be after subscription.period_start")
    return data


def parse_event(payload: Any, now: datetime | None = None) -> EventData:
    """Validate a decoded JSON body; InvalidInput (422) names the first wrong field."""
    obj = _object(payload, "(body)")
    event_type = _required_text(obj, "type", "", 32)
    if event_type not in EVENT_TYPES:
        raise InvalidInput(
            f"Unknown event type '{event_type}'; expected one of {', '.join(EVENT_TYPES)}.",
            code="unknown_event_type",
        )
    occurred_at = obj.get("occurred_at")
    if occurred_at is None:
        raise _fail("occurred_at", "is required")
    occurred = parse_time(occurred_at, "occurred_at")
    if occurred > (now or utcnow()) + FUTURE_TOLERANCE:
        raise _fail("occurred_at", "lies in the future")
    customer = _object(obj.get("customer"), "customer")
    email = _text(customer, "email", "customer.", max_len=254)
    if email is not None and "@" not in email:
        raise _fail("customer.email", "must be an email address")
    is_order = event_type in ORDER_EVENTS
    return EventData(
        id=_required_text(obj, "id", "", 100),
        type=event_type,
        occurred_at=occurred,
        customer=CustomerData(
            external_id=_required_text(customer, "external_id", "customer.", 64),
            email=email,
            name=_text(customer, "name", "customer."),
        ),
        order=_order(obj.get("order"), event_type) if is_order else None,
        subscription=None if is_order else _subscription(obj.get("subscription"), event_type),
    )


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


@dataclass(frozen=True)
class Receipt:
    result: dict[str, Any]
    replayed: bool


async def receive(
    sessions: async_sessionmaker[AsyncSession], event: EventData, now: datetime | None = None
) -> Receipt:
    """Apply an event exactly once, in one transaction; a replay returns the first result."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            async with sessions() as session, session.begin():
                stored = (
                    await session.execute(select(ShopEvent.result).where(ShopEvent.id == event.id))
                ).first()
                if stored is not None:
                    return Receipt(stored[0], replayed=True)
                result = await apply(session, event)
                # Inserted last, in the same transaction: a concurrent duplicate fails on
                # this primary key, rolls back everything it did and retries as a replay
                # (one round trip fewer than claiming the id first). Core, not the ORM:
                # nothing reads the row back.
                await session.execute(
                    insert(ShopEvent).values(
                        id=event.id, type=event.type, occurred_at=event.occurred_at,
                        received_at=now or utcnow(), result=result,
                    )
                )  # fmt: skip
            return Receipt(result, replayed=False)
        except (IntegrityError, OperationalError):
            # A concurrent duplicate (or a concurrent event creating the same order) won,
            # or SQLite was busy; the next attempt sees the committed rows.
            await asyncio.sleep(0.01 * (attempt + 1))
    raise Conflict("The event conflicted with concurrent events; please retry.", code="busy")


async def apply(session: AsyncSession, event: EventData) -> dict[str, Any]:
    customer, created = await _customer(session, event.customer)
    outcome = Outcome(event, new_customer=created)
    if event.order is not None:
        await _order_event(session, event, event.order, customer, outcome)
    else:
        assert event.subscription is not None
        await _subscription_event(session, event, event.subscription, customer, outcome)
    await session.flush()
    return outcome.as_json()


async def _customer(session: AsyncSession, data: CustomerData) -> tuple[Customer, bool]:
    """The customer by the shop's id, created or updated and row-locked in one upsert;
    and whether this call created them.

    The lock (ON CONFLICT DO UPDATE locks the row on PostgreSQL) serialises the events of
    one customer, so "first purchase" and the order's status are decided one at a time.
    """
    dialect_insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    now = utcnow()
    statement = dialect_insert(Customer).values(
        external_id=data.external_id, email=data.email, name=data.name,
        is_anonymous=False, created_at=now,
    )  # fmt: skip
    statement = statement.on_conflict_do_update(
        index_elements=[Customer.external_id],
        set_={
            "email": func.coalesce(statement.excluded.email, Customer.email),
            "name": func.coalesce(statement.excluded.name, Customer.name),
        },
    )
    customer: Customer | None = await session.scalar(
        select(Customer)
        .from_statement(statement.returning(Customer))
        .execution_options(populate_existing=True)
    )
    assert customer is not None
    return customer, customer.created_at == now


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None
    return bind.dialect.name


async def _has_purchases(session: AsyncSession, customer: Customer, outcome: Outcome) -> bool:
    if outcome.new_customer:
        return False
    orders = exists().where(Order.customer_id == customer.id)
    subscriptions = exists().where(Subscription.customer_id == customer.id)
    return bool(await session.scalar(select(orders | subscriptions)))


async def _schedule(
    session: AsyncSession, lifecycle: Lifecycle, trigger: str, outcome: Outcome
) -> None:
    dispatch = await surveys.schedule_proactive(session, lifecycle, trigger)
    outcome.surveys.append({"id": dispatch.id, "trigger": trigger})


# ---- orders ----------------------------------------------------------------------------------


async def _order_event(
    session: AsyncSession, event: EventData, data: OrderData, customer: Customer, outcome: Outcome
) -> None:
    target = ORDER_EVENTS[event.type]
    order = await session.scalar(select(Order).where(Order.number == data.number).with_for_update())
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
            raise _fail("order.number", "belongs to another customer")
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
    lifecycle = await lifecycles.lifecycle_for_order(session, order, event.occurred_at)
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
        raise _fail("subscription.id", "belongs to another customer")
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
        raise _fail("subscription.plan", "is required for a subscription not seen before")
    if data.price is None:
        raise _fail("subscription.price", "is required for a subscription not seen before")
    if data.period_start is None or data.period_end is None:
        raise _fail("subscription.period_start", "is required for a subscription not seen before")
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
