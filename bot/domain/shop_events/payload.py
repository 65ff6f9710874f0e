"""A shop event's payload (docs/events.md): `parse_event` validates the JSON the shop sends
into `EventData` (or raises InvalidInput naming the field); `event_to_json` /
`event_from_json` are its stored form in `shop_events.payload` while it waits in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.domain.enums import OrderStatus
from bot.domain.errors import InvalidInput
from bot.storage.models import utcnow

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
MAX_ITEMS = 200
MAX_AMOUNT = Decimal("99999999.99")
FUTURE_TOLERANCE = timedelta(hours=1)


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


def invalid_event(path: str, problem: str) -> InvalidInput:
    return InvalidInput(f"'{path}' {problem}", code="invalid_event")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_event(path, "must be an object")
    return value


def _text(
    obj: dict[str, Any], key: str, path: str, *, required: bool = False, max_len: int = 200
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise invalid_event(f"{path}{key}", "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid_event(f"{path}{key}", "must be a non-empty string")
    if len(value) > max_len:
        raise invalid_event(f"{path}{key}", f"must be at most {max_len} characters")
    return value.strip()


def _required_text(obj: dict[str, Any], key: str, path: str, max_len: int = 200) -> str:
    value = _text(obj, key, path, required=True, max_len=max_len)
    assert value is not None
    return value


def parse_time(value: Any, path: str) -> datetime:
    """ISO 8601 with a time zone ('Z' or an offset), as UTC."""
    if not isinstance(value, str):
        raise invalid_event(path, "must be an ISO 8601 date-time string with a time zone")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise invalid_event(path, "must be an ISO 8601 date-time string with a time zone") from exc
    if parsed.tzinfo is None:
        raise invalid_event(path, "must include a time zone (e.g. 'Z' or '+01:00')")
    return parsed.astimezone(timezone.utc)


def _time(obj: dict[str, Any], key: str, path: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else parse_time(value, f"{path}{key}")


def _amount(obj: dict[str, Any], key: str, path: str) -> Decimal | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise invalid_event(f"{path}{key}", 'must be a decimal amount like 59.90 or "59.90"')
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise invalid_event(
            f"{path}{key}", 'must be a decimal amount like 59.90 or "59.90"'
        ) from exc
    if not Decimal(0) <= amount <= MAX_AMOUNT:
        raise invalid_event(f"{path}{key}", f"must be between 0 and {MAX_AMOUNT}")
    return amount


def _currency(obj: dict[str, Any], path: str) -> str | None:
    value = _text(obj, "currency", path, max_len=3)
    if value is not None and not (len(value) == 3 and value.isalpha()):
        raise invalid_event(f"{path}currency", "must be a 3-letter ISO 4217 code")
    return value.upper() if value else None


def _item(value: Any, path: str) -> ItemData:
    obj = _object(value, path)
    qty = obj.get("qty")
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= 10_000:
        raise invalid_event(f"{path}.qty", "must be an integer between 1 and 10000")
    price = _amount(obj, "price", f"{path}.")
    if price is None:
        raise invalid_event(f"{path}.price", "is required")
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
        raise invalid_event("order.items", "is required for order.placed")
    if items_raw is not None and (not isinstance(items_raw, list) or not items_raw):
        raise invalid_event("order.items", "must be a non-empty list")
    if items_raw is not None and len(items_raw) > MAX_ITEMS:
        raise invalid_event("order.items", f"may hold at most {MAX_ITEMS} items")
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
                raise invalid_event(f"subscription.{key}", f"is required for {event_type}")
    if data.period_start and data.period_end and data.period_end <= data.period_start:
        raise invalid_event("subscription.period_end", "must be after subscription.period_start")
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
        raise invalid_event("occurred_at", "is required")
    occurred = parse_time(occurred_at, "occurred_at")
    if occurred > (now or utcnow()) + FUTURE_TOLERANCE:
        raise invalid_event("occurred_at", "lies in the future")
    customer = _object(obj.get("customer"), "customer")
    email = _text(customer, "email", "customer.", max_len=254)
    if email is not None and "@" not in email:
        raise invalid_event("customer.email", "must be an email address")
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
        "id": event.id,
        "type": event.type,
        "occurred_at": _iso(event.occurred_at),
        "customer": {
            "external_id": event.customer.external_id,
            "email": event.customer.email,
            "name": event.customer.name,
        },
        "order": None
        if order is None
        else {
            "number": order.number,
            "items": [[i.sku, i.name, i.qty, str(i.price)] for i in order.items],
            "total": _money(order.total),
            "currency": order.currency,
            "placed_at": _iso(order.placed_at),
            "shipping_address": order.shipping_address,
            "carrier": order.carrier,
            "tracking_number": order.tracking_number,
            "estimated_delivery": _iso(order.estimated_delivery),
        },
        "subscription": None
        if sub is None
        else {
            "id": sub.id,
            "plan": sub.plan,
            "price": _money(sub.price),
            "currency": sub.currency,
            "period_start": _iso(sub.period_start),
            "period_end": _iso(sub.period_end),
        },
    }


def event_from_json(data: dict[str, Any]) -> EventData:
    order, sub = data["order"], data["subscription"]
    return EventData(
        id=data["id"],
        type=data["type"],
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
        customer=CustomerData(**data["customer"]),
        order=None
        if order is None
        else OrderData(
            number=order["number"],
            items=tuple(
                ItemData(sku, name, qty, Decimal(price)) for sku, name, qty, price in order["items"]
            ),
            total=_decimal(order["total"]),
            currency=order["currency"],
            placed_at=_when(order["placed_at"]),
            shipping_address=order["shipping_address"],
            carrier=order["carrier"],
            tracking_number=order["tracking_number"],
            estimated_delivery=_when(order["estimated_delivery"]),
        ),
        subscription=None
        if sub is None
        else SubscriptionData(
            id=sub["id"],
            plan=sub["plan"],
            price=_decimal(sub["price"]),
            currency=sub["currency"],
            period_start=_when(sub["period_start"]),
            period_end=_when(sub["period_end"]),
        ),
    )
