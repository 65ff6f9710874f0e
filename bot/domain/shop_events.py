"""The shop's events (SPEC §6): validate, apply once, move lifecycles, schedule surveys.

Payload (documented in docs/events.md):

    {"id": "evt_1", "type": "order.delivered", "occurred_at": "2026-11-26T10:00:00Z",
     "customer": {"external_id": "C1001", "email": "...", "name": "..."},
     "order": {"number": "A10023", "items": [{"sku", "name", "qty", "price"}], "total": "59.90",
               "currency": "EUR", "placed_at", "shipping_address", "carrier", "tracking_number",
               "estimated_delivery"}}
    subscription events carry "subscription": {"id", "plan", "price", "currency",
               "period_start", "period_end"} instead of "order".

* Accepted, then applied (the queue): `accept_on` stores validated events as `pending` in
  `shop_events` (idempotent by `id`: a replay changes nothing and gets the stored state);
  `apply_pending` applies a batch of pending events in one transaction, each customer's in
  the order received, and stores each result (or the refusal, as `failed`). `receive`
  does both at once (tests, scripts).
* Out of order: an order's status only moves up its rank (placed < shipped < delivered /
  cancelled < returned < refunded), so a late `shipped` after `delivered` only fills in
  `shipped_at`. A subscription's pause/resume older than its last status change is ignored;
  cancelled is final. Every event still records its timestamps.
* The customer row is locked in the apply transaction (PostgreSQL) as a second guard.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, Table, bindparam, exists, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

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
    ShopEventStatus,
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
# Signatures (docs/events.md): `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
# "<t>.<raw body>">`. The timestamp is signed, so a captured request cannot be replayed
# after the tolerance, whatever its `occurred_at` says.
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_SIGNATURE_HEADER_CHARS = 1024

logger = logging.getLogger(__name__)


# ---- signatures --------------------------------------------------------------------------


class SignatureProblem(str, enum.Enum):
    malformed = "malformed"  # missing, or not `t=<digits>,v1=<64 hex>`
    wrong = "wrong"  # no v1 value matches
    stale = "stale"  # right, but its timestamp is outside the tolerance


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Signature` value for a raw body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<body>">`, timestamped now unless `timestamp` is given. Sign the exact bytes sent,
    and sign again (a new `t`) for every delivery, retries included."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


sign = signature_header  # the name used before issue #16 (same arguments)


def _parse_header(header: str | None) -> tuple[int, list[str]] | None:
    if not header or len(header) > MAX_SIGNATURE_HEADER_CHARS:
        return None
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if (
                timestamp is not None
                or not (value.isascii() and value.isdigit())
                or len(value) > 12
            ):
                return None
            timestamp = int(value)
        elif key == "v1":
            if len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
                return None
            signatures.append(value)
        # other schemes (v0, a future v2) are ignored, as payment providers do
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def check_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> SignatureProblem | None:
    """None when `header` signs `body` with `secret` and its timestamp lies within
    `tolerance_seconds` of `now` (past or future); otherwise what is wrong. The HMAC is
    compared in constant time; any one of several `v1` values may match (secret rotation).
    Only the signature's timestamp is checked, never the event's `occurred_at`."""
    parsed = _parse_header(header)
    if parsed is None:
        return SignatureProblem.malformed
    timestamp, signatures = parsed
    expected = _digest(secret, timestamp, body).encode()
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        return SignatureProblem.wrong
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return SignatureProblem.stale
    return None


def signature_ok(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    return (
        check_signature(secret, body, header, tolerance_seconds=tolerance_seconds, now=now) is None
    )


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


# ---- the stored form of a validated event --------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def event_to_json(event: EventData) -> dict[str, Any]:
    """The validated event as JSON for `shop_events.payload` (read back by `event_from_json`
    without validating again)."""
    order, sub = event.order, event.subscription
    return {
        "id": event.id, "type": event.type, "occurred_at": _iso(event.occurred_at),
        "customer": {"external_id": event.customer.external_id, "email": event.customer.email,
                     "name": event.customer.name},
        "order": None if order is None else {
            "number": order.number,
            "items": [[i.sku, i.name, i.qty, str(i.price)] for i in order.items],
            "total": _money(order.total), "currency": order.currency,
            "placed_at": _iso(order.placed_at), "shipping_address": order.shipping_address,
            "carrier": order.carrier, "tracking_number": order.tracking_number,
            "estimated_delivery": _iso(order.estimated_delivery),
        },
        "subscription": None if sub is None else {
            "id": sub.id, "plan": sub.plan, "price": _money(sub.price), "currency": sub.currency,
            "period_start": _iso(sub.period_start), "period_end": _iso(sub.period_end),
        },
    }  # fmt: skip


def event_from_json(data: dict[str, Any]) -> EventData:
    order, sub = data["order"], data["subscription"]
    return EventData(
        id=data["id"], type=data["type"], occurred_at=datetime.fromisoformat(data["occurred_at"]),
        customer=CustomerData(**data["customer"]),
        order=None if order is None else OrderData(
            number=order["number"],
            items=tuple(ItemData(sku, name, qty, Decimal(price))
                        for sku, name, qty, price in order["items"]),
            total=_decimal(order["total"]), currency=order["currency"],
            placed_at=_when(order["placed_at"]), shipping_address=order["shipping_address"],
            carrier=order["carrier"], tracking_number=order["tracking_number"],
            estimated_delivery=_when(order["estimated_delivery"]),
        ),
        subscription=None if sub is None else SubscriptionData(
            id=sub["id"], plan=sub["plan"], price=_decimal(sub["price"]),
            currency=sub["currency"], period_start=_when(sub["period_start"]),
            period_end=_when(sub["period_end"]),
        ),
    )  # fmt: skip


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


# ---- the queue: accept now, apply in the background ------------------------------------------

# Events per claimed batch. Batches of several workers are applied in parallel: the batch
# apply refreshes the lifecycles roll-ups once, at its end, in key order (migration 0030;
# before it, two concurrent apply transactions deadlocked on the journey roll-up's day rows
# and only one batch at a time was applied across all workers).
QUEUE_BATCH = 128


@dataclass(frozen=True)
class Accepted:
    """The answer to one POSTed event: new (pending) or a replay with the stored state."""

    id: str
    replayed: bool
    status: ShopEventStatus
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Applied:
    """An event the worker finished: applied (its result) or failed (the error)."""

    id: str
    customer: str
    status: ShopEventStatus
    result: dict[str, Any]
    received_at: datetime | None = None  # when it was accepted (the apply lag's start)


@dataclass(frozen=True)
class Receipt:
    result: dict[str, Any]
    replayed: bool


async def accept(
    sessions: async_sessionmaker[AsyncSession],
    events: Sequence[EventData],
    now: datetime | None = None,
) -> list[Accepted]:
    """`accept_on` in a transaction of its own."""
    async with sessions() as session, session.begin():
        return await accept_on(await session.connection(), events, now)


async def accept_on(
    connection: AsyncConnection, events: Sequence[EventData], now: datetime | None = None
) -> list[Accepted]:
    """Store new events as pending with one `INSERT … ON CONFLICT DO NOTHING`; an id
    already stored (or earlier in `events`) is a replay, changes nothing and is answered
    with its stored state (one SELECT). One answer per event, in order. The web's ingest
    runs it on an autocommit connection: the INSERT is its own transaction."""
    now = now or utcnow()
    first: dict[str, EventData] = {}
    for event in events:
        first.setdefault(event.id, event)
    rows = [
        {"id": e.id, "type": e.type, "occurred_at": e.occurred_at,
         # A microsecond apart: the batch's arrival order is the order they are applied in.
         "received_at": now + timedelta(microseconds=n), "status": ShopEventStatus.pending,
         "payload": event_to_json(e), "customer_ref": e.customer.external_id,
         "subject_ref": subject_ref(e), "attempts": 0}
        for n, e in enumerate(first.values())
    ]  # fmt: skip
    table = ShopEvent.__table__
    assert isinstance(table, Table)
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table).on_conflict_do_nothing(index_elements=["id"])
    inserted = set((await connection.execute(statement.returning(table.c.id), rows)).scalars())
    known = [event_id for event_id in first if event_id not in inserted]
    stored: dict[str, tuple[ShopEventStatus, dict[str, Any] | None]] = {}
    if known:
        found = await connection.execute(
            select(table.c.id, table.c.status, table.c.result).where(table.c.id.in_(known))
        )
        stored = {row.id: (row.status, row.result) for row in found}
    answers = []
    for event in events:
        if event.id in inserted:
            inserted.discard(event.id)  # a second copy in the same batch is a replay
            answers.append(Accepted(event.id, False, ShopEventStatus.pending, None))
        else:
            status, result = stored.get(event.id, (ShopEventStatus.pending, None))
            answers.append(Accepted(event.id, True, status, result))
    return answers


# PostgreSQL's "try the transaction again" errors: deadlock, serialization failure.
RETRY_SQLSTATES = ("40P01", "40001")


def is_conflict(exc: BaseException) -> bool:
    """A conflict with concurrent writers (the rows stay pending; try again shortly)."""
    if isinstance(exc, (IntegrityError, OperationalError)):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES


class _Refused(Exception):
    """Raised inside the batch's transaction to roll it back for one event."""

    def __init__(self, event_id: str, customer: str, error: Exception) -> None:
        super().__init__(event_id)
        self.event_id = event_id
        self.customer = customer
        self.error = error


class _FastFailed(Exception):
    """The batch apply failed in a way no one event can be blamed for (a constraint conflict,
    a bug): the batch is applied again one event at a time by the ORM path, which does."""


async def apply_pending(
    sessions: async_sessionmaker[AsyncSession], limit: int = QUEUE_BATCH, *, fast: bool = True
) -> list[Applied]:
    """Claim up to `limit` pending events (oldest first) and apply them in one transaction;
    [] when nothing is left that this worker may take.

    A customer's events are applied in the order they were received: a claim only takes
    an event that is its customer's oldest pending one (so one event per customer per
    batch). Several workers (web replicas, or several appliers in one process) apply
    batches in parallel: on PostgreSQL rows another transaction holds are skipped (`FOR
    UPDATE SKIP LOCKED`), so their customers' later events wait for them; on SQLite the
    claim is a write, so claims are serialised by SQLite's single writer. A crash loses
    nothing: the rows stay pending and the next claim takes them.

    The batch is applied by `shop_events_batch.apply_batch` (set-based statements for the
    common events, this module's `apply` for the others, in the same transaction); with
    `fast=False`, or when that failed without an event to blame, by `apply` one event at a
    time. An event refused by a rule that needs the database (e.g. an order number of
    another customer) rolls the batch back and is stored as failed in its own transaction;
    the rest of the batch is claimed again; so is an unexpected error or a constraint
    conflict (IntegrityError), failed after MAX_ATTEMPTS. Other database errors (a busy
    SQLite, a deadlock, a lost connection) roll back and propagate for the caller to retry.
    """
    from bot.domain import shop_events_batch  # it imports this module

    try:
        async with sessions() as session, session.begin():
            claimed = await _claim(session, limit)
            parsed: list[tuple[str, EventData, datetime]] = []
            for event_id, payload, received_at in claimed:
                try:
                    parsed.append((event_id, event_from_json(payload), received_at))
                except Exception as exc:
                    raise _Refused(event_id, "", exc) from exc

            async def slow(event: EventData, received_at: datetime) -> dict[str, Any]:
                try:
                    return await apply(session, event, received_at)
                except DBAPIError as exc:
                    if not isinstance(exc, IntegrityError):
                        raise  # busy, deadlock, connection lost: the caller retries
                    raise _Refused(event.id, event.customer.external_id, exc) from exc
                except Exception as exc:
                    raise _Refused(event.id, event.customer.external_id, exc) from exc

            if fast and parsed:
                try:
                    results = await shop_events_batch.apply_batch(
                        await session.connection(), parsed, slow
                    )
                except _Refused:
                    raise
                except DBAPIError as exc:
                    if not isinstance(exc, IntegrityError):
                        raise
                    raise _FastFailed from exc
                except Exception as exc:
                    raise _FastFailed from exc
            else:
                results = [await slow(event, received_at) for _, event, received_at in parsed]
            done = [
                Applied(event_id, event.customer.external_id, ShopEventStatus.applied, result,
                        received_at)
                for (event_id, event, received_at), result in zip(parsed, results, strict=True)
            ]  # fmt: skip
            if done:
                await _finish(session, done)
        return done
    except _Refused as refused:
        failed = await _refuse(sessions, refused)
        return [failed] if failed is not None else []
    except _FastFailed as exc:
        logger.warning("shop events: batch apply failed (%r); one event at a time", exc.__cause__)
        return await apply_pending(sessions, limit, fast=False)


def subject_ref(event: EventData) -> str:
    """What the event is about besides its customer: its order or its subscription."""
    if event.order is not None:
        return f"o:{event.order.number}"
    assert event.subscription is not None
    return f"s:{event.subscription.id}"


def _claimable(limit: int) -> Select[tuple[str]]:
    """The oldest pending events that are their customer's oldest pending one, and the
    oldest pending one naming their order or subscription: a later event of a customer (or
    another customer's event naming the same order, which one of them is refused for) waits
    until the earlier one is applied (by whichever worker)."""

    def earlier_pending(column: str) -> Any:
        earlier = aliased(ShopEvent)
        return (
            select(earlier.id)
            .where(
                earlier.status == ShopEventStatus.pending,
                getattr(earlier, column) == getattr(ShopEvent, column),
                tuple_(earlier.received_at, earlier.id)
                < tuple_(ShopEvent.received_at, ShopEvent.id),
            )
            .exists()
        )

    return (
        select(ShopEvent.id)
        .where(
            ShopEvent.status == ShopEventStatus.pending,
            ShopEvent.payload.is_not(None),
            ~earlier_pending("customer_ref"),
            ~earlier_pending("subject_ref"),
        )
        .order_by(ShopEvent.received_at, ShopEvent.id)
        .limit(limit)
    )


async def _claim(session: AsyncSession, limit: int) -> list[tuple[str, dict[str, Any], datetime]]:
    if _dialect(session) == "postgresql":
        # Plan this transaction's statements for the table as it is now. A connection keeps
        # its prepared statements, and PostgreSQL switches one to a generic plan after five
        # runs: planned while the queue was short (a quiet start), the claim kept a nested
        # loop over every pending row and took seconds once thousands were pending.
        await session.execute(
            text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
        )
        # Rows another worker holds are skipped; so are their customers' later events,
        # which are not their customer's oldest pending one while the holder works.
        query = (
            _claimable(limit)
            .add_columns(ShopEvent.payload, ShopEvent.received_at)
            .with_for_update(skip_locked=True, of=ShopEvent)
        )
        return [(row.id, row.payload, row.received_at) for row in await session.execute(query)]
    # SQLite: a write first, so this transaction holds the database's write lock from the
    # claim on and no other applier reads the same rows as pending meanwhile; but only
    # when something is pending (the idle poll takes no write lock).
    if await session.scalar(_claimable(1)) is None:
        return []
    claim = (
        update(ShopEvent)
        .where(ShopEvent.id.in_(_claimable(limit).scalar_subquery()))
        .values(status=ShopEvent.status)
        .returning(ShopEvent.id, ShopEvent.payload, ShopEvent.received_at)
        .execution_options(synchronize_session=False)
    )
    rows = sorted((await session.execute(claim)).all(), key=lambda r: (r.received_at, r.id))
    return [(row.id, row.payload, row.received_at) for row in rows]


async def _finish(session: AsyncSession, done: list[Applied]) -> None:
    """Store every result of the batch with one executemany UPDATE."""
    now = utcnow()
    statement = (
        update(ShopEvent.__table__)  # type: ignore[arg-type]
        .where(ShopEvent.__table__.c.id == bindparam("event_id"))
        .values(
            status=bindparam("new_status"), result=bindparam("new_result"), applied_at=now,
            payload=None, customer_ref=None, subject_ref=None,
        )
    )  # fmt: skip
    params = [
        {"event_id": a.id, "new_status": a.status.value, "new_result": a.result} for a in done
    ]
    await (await session.connection()).execute(statement, params)


async def _refuse(sessions: async_sessionmaker[AsyncSession], refused: _Refused) -> Applied | None:
    """Store a refused event as failed (a rule refused it), or count one more attempt for
    an unexpected error and fail it after MAX_ATTEMPTS; None while it stays pending."""
    error = refused.error
    async with sessions() as session, session.begin():
        row = await session.get(ShopEvent, refused.event_id, with_for_update=True)
        if row is None or row.status is not ShopEventStatus.pending:
            return None
        row.attempts += 1
        if isinstance(error, InvalidInput):
            body = {"code": error.code, "message": error.message}
        elif row.attempts >= MAX_ATTEMPTS:
            body = {"code": "not_applied", "message": f"The event could not be applied "
                    f"({type(error).__name__}); it was tried {row.attempts} times."}  # fmt: skip
        else:
            logger.warning("shop event %s not applied: %r", row.id, error)
            return None
        row.status, row.result, row.applied_at = ShopEventStatus.failed, {"error": body}, utcnow()
        row.payload, row.customer_ref, row.subject_ref = None, None, None
        return Applied(
            row.id, refused.customer, ShopEventStatus.failed, {"error": body}, row.received_at
        )


async def drain(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Apply pending events until none is left that this caller may take (tests, `receive`);
    retries conflicts. Returns how many events were finished."""
    finished = 0
    for attempt in range(100 * MAX_ATTEMPTS):
        try:
            batch = await apply_pending(sessions)
        except DBAPIError as exc:
            if not is_conflict(exc):
                raise
            await asyncio.sleep(0.01 * min(attempt + 1, 10))
            continue
        if not batch:
            return finished
        finished += len(batch)
    raise Conflict("The events kept conflicting with concurrent writers.", code="busy")


async def stored_state(
    sessions: async_sessionmaker[AsyncSession], event_id: str
) -> tuple[ShopEventStatus, dict[str, Any] | None] | None:
    async with sessions() as session:
        row = (
            await session.execute(
                select(ShopEvent.status, ShopEvent.result).where(ShopEvent.id == event_id)
            )
        ).first()
    return None if row is None else (row.status, row.result)


async def receive(
    sessions: async_sessionmaker[AsyncSession], event: EventData, now: datetime | None = None
) -> Receipt:
    """Accept an event and apply the queue now: the synchronous path (tests, scripts). A
    replay returns the first result; an event refused when applied raises InvalidInput."""
    [accepted] = await accept(sessions, [event], now)
    await drain(sessions)
    state = await stored_state(sessions, event.id)
    while state is not None and state[0] is ShopEventStatus.pending:
        # Another worker holds this customer's events: it finishes them shortly.
        await asyncio.sleep(0.01)
        await drain(sessions)
        state = await stored_state(sessions, event.id)
    assert state is not None
    status, result = state
    assert result is not None
    if status is ShopEventStatus.failed:
        error = result["error"]
        raise InvalidInput(error["message"], code=error["code"])
    return Receipt(result, replayed=accepted.replayed)


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
