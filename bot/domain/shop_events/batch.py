"""The shop events' batch apply (issue #25 item 3): a claimed batch in a few set-based
statements instead of 8-12 ORM statements per event.

A claimed batch holds at most one event per customer (`queue._claimable`), so its
events are independent of each other except through an order number or a subscription id
that two of them name. The common events (order placed / shipped / delivered, subscription
started / renewed in their usual states) are applied here with SQLAlchemy Core, for the
whole batch at once:

1. the batch's customers: one multi-row upsert (in external id order);
2. PostgreSQL: their journey locks (`rollup_journey.LOCK_CLASS`, in id order), then
   `rollup.lifecycles_deferred` on for the transaction (the lifecycles roll-up triggers do
   nothing; step 6 refreshes them);
3. what the events need: their orders and subscriptions (row-locked) and the customers'
   lifecycles (one query each; the lifecycles are also the journey roll-up's "before");
4. the rules of `rules.py` (`_order_event`, `_started`, `_renewed`, `_schedule`),
   re-stated over plain rows in Python, event by event, in the order claimed;
5. the writes, one executemany per table and kind, in the order of the events (so every
   table's ids come out as the one-event-at-a-time apply gives them): subscriptions, orders,
   order items, lifecycles (inserted, then updated), survey dispatches;
6. PostgreSQL: the roll-ups of the lifecycles for all the batch's customers, one statement
   each, always in this order: lifecycle_loyalty, journey_fix, journey_links (its rows in key
   order). Two appliers lock the shared day rows of each roll-up in one statement, in key
   order, one roll-up after the other: they wait for each other but cannot deadlock.

Everything else (other event types, an order or subscription of another customer, an order
number or subscription id named twice in the batch, a placed event bringing items to a known
order, a cancelled subscription, a renewal already known, a subscription without plan or
price, an order without its lifecycle) goes through `rules.apply` (the ORM path, the
reference) in the same transaction, in its place: the fast events before it are written
first. Its rows are disjoint from theirs (another customer; an order or subscription no
other event of the batch names). The rows written and the results stored are the same as
that path's, ids included (tests/test_shop_events_batch.py compares both on SQLite and
PostgreSQL, the roll-ups too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import lifecycle as lifecycles
from bot.domain import surveys
from bot.domain.enums import LifecycleKind, OrderStatus, Stage, SubscriptionStatus
from bot.domain.shop_events.payload import ORDER_EVENTS, EventData, OrderData, SubscriptionData
from bot.domain.shop_events.rules import STATUS_RANK, STATUS_TIME_FIELD
from bot.storage import rollup_journey
from bot.storage.models import (
    Customer,
    Lifecycle,
    Order,
    OrderItem,
    Subscription,
    SurveyDispatch,
    utcnow,
)


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


CUSTOMERS = _table(Customer)
ORDERS = _table(Order)
ITEMS = _table(OrderItem)
LIFECYCLES = _table(Lifecycle)
SUBSCRIPTIONS = _table(Subscription)
DISPATCHES = _table(SurveyDispatch)

FAST_ORDER_TYPES = frozenset({"order.placed", "order.shipped", "order.delivered"})
FAST_SUBSCRIPTION_TYPES = frozenset({"subscription.started", "subscription.renewed"})
ORDER_UPDATE_COLUMNS = (
    "status",
    "total",
    "shipping_address",
    "carrier",
    "tracking_number",
    "estimated_delivery",
    "placed_at",
    "shipped_at",
    "delivered_at",
)
SUBSCRIPTION_UPDATE_COLUMNS = (
    "plan",
    "price",
    "currency",
    "status",
    "started_at",
    "current_period_start",
    "current_period_end",
    "status_changed_at",
    "resume_on",
)
# Never acquisition_channel or customer_id: an UPDATE naming them fires the source re-keying.
LIFECYCLE_UPDATE_COLUMNS = (
    "kind",
    "stage",
    "closed_at",
    "close_reason",
    "order_id",
    "subscription_id",
    "period_start",
)
LIFECYCLE_COLUMNS = (
    "customer_id",
    "kind",
    "stage",
    "opened_at",
    "closed_at",
    "close_reason",
    "order_id",
    "subscription_id",
    "period_start",
    "acquisition_channel",
)

Row = dict[str, Any]
SlowApply = Callable[[EventData, datetime], Awaitable[dict[str, Any]]]


@dataclass
class _Life:
    """A lifecycle row as the batch reads and changes it (`row["id"]` None until inserted)."""

    row: Row
    new: bool = False
    dirty: bool = False
    order: Row | None = None  # a new order whose id becomes order_id once inserted
    subscription: Row | None = None  # likewise for subscription_id

    def advance(self, target: Stage) -> None:
        if self.row["closed_at"] is None and lifecycles.can_move(self.row["stage"], target):
            self.row["stage"] = target
            self.dirty = True

    def close(self, reason: str, at: datetime) -> None:
        if self.row["closed_at"] is None:
            self.row["closed_at"], self.row["close_reason"] = at, reason
            self.dirty = True

    def as_json(self) -> dict[str, Any]:
        closed = self.row["closed_at"]
        return {
            "id": self.row["id"],
            "kind": self.row["kind"].value,
            "stage": self.row["stage"].value,
            "closed_at": closed.isoformat() if closed else None,
            "close_reason": self.row["close_reason"],
        }


@dataclass
class _Dispatch:
    row: Row
    life: _Life


# A change's text, or one that names a lifecycle id known only after the inserts.
Change = str | tuple[str, _Life, str]


@dataclass
class _Outcome:
    event_id: str
    event: EventData
    received_at: datetime
    changes: list[Change] = field(default_factory=list)
    order: Row | None = None
    subscription: Row | None = None
    life: _Life | None = None
    dispatches: list[_Dispatch] = field(default_factory=list)
    ignored: str | None = None

    def as_json(self) -> dict[str, Any]:
        """`rules.Outcome.as_json` of the same event."""
        changes = [
            c if isinstance(c, str) else f"{c[0]}{c[1].row['id']}{c[2]}" for c in self.changes
        ]
        order, sub = self.order, self.subscription
        return {
            "event_id": self.event.id,
            "type": self.event.type,
            "customer": self.event.customer.external_id,
            "applied": self.ignored is None,
            "ignored_reason": self.ignored,
            "changes": changes,
            "order": {"number": order["number"], "status": order["status"].value}
            if order
            else None,
            "subscription": {"id": sub["external_id"], "status": sub["status"].value}
            if sub
            else None,
            "lifecycle": self.life.as_json() if self.life else None,
            "surveys_scheduled": [
                {"id": d.row["id"], "trigger": d.row["trigger"]} for d in self.dispatches
            ],
        }


class _Slow(Exception):
    """This event goes through the ORM path (raised before anything of it is changed)."""


@dataclass
class _Batch:
    connection: AsyncConnection
    customers: dict[str, Row]  # by external id: id, created, acquisition_source
    orders: dict[str, Row]  # by number
    subscriptions: dict[str, Row]  # by external id
    lives: dict[int, list[_Life]]  # by customer id, in id order
    purchases: set[int]  # customers with an order or a subscription before the batch
    new_orders: list[Row] = field(default_factory=list)
    new_items: list[tuple[Row, list[Row]]] = field(default_factory=list)
    new_subscriptions: list[Row] = field(default_factory=list)
    dirty_orders: dict[int, Row] = field(default_factory=dict)
    dirty_subscriptions: dict[int, Row] = field(default_factory=dict)
    new_lives: list[_Life] = field(default_factory=list)
    dispatches: list[_Dispatch] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)  # customers whose lifecycles were written


async def apply_batch(
    connection: AsyncConnection,
    claimed: Sequence[tuple[str, EventData, datetime]],
    slow: SlowApply,
) -> list[dict[str, Any]]:
    """Apply the claimed events (id, event, received_at), in one transaction that the caller
    commits; returns each event's result, in order. `slow` applies one event by the ORM path
    (its exceptions propagate: the caller rolls the batch back)."""
    events = [event for _, event, _ in claimed]
    refs = [event.customer.external_id for event in events]
    if len(set(refs)) != len(refs):  # not a claimed batch: one event at a time
        return [await slow(event, received_at) for _, event, received_at in claimed]
    postgres = connection.dialect.name == "postgresql"
    customers = await _upsert_customers(connection, events)
    customer_ids = sorted(row["id"] for row in customers.values())
    if postgres:
        await connection.execute(
            text(
                "SELECT pg_advisory_xact_lock(:lock_class, c) "
                "FROM unnest(CAST(:customers AS integer[])) AS u(c) ORDER BY c"
            ),
            {"lock_class": rollup_journey.LOCK_CLASS, "customers": customer_ids},
        )
        await connection.execute(
            text(f"SELECT set_config('{rollup_journey.LIFECYCLES_DEFERRED}', 'on', true)")
        )
    batch = await _load(connection, events, customers)
    before = [dict(life.row) for lives in batch.lives.values() for life in lives]

    repeated = _repeated_keys(events)
    results: list[dict[str, Any] | None] = []
    written: list[tuple[int, _Outcome]] = []  # applied in memory, results once written
    for event_id, event, received_at in claimed:
        outcome = _Outcome(event_id, event, received_at)
        try:
            _fast(batch, event, outcome, repeated)
        except _Slow:
            # What the fast events before it did is written first: every table's ids come
            # out in the order of the events, as applying them one at a time gives them.
            await _write(batch)
            results.append(await slow(event, received_at))
            batch.changed.add(customers[event.customer.external_id]["id"])  # its lifecycles, maybe
            continue
        written.append((len(results), outcome))
        results.append(None)
    await _write(batch)
    for n, outcome in written:
        results[n] = outcome.as_json()
    if postgres and batch.changed:
        # Only customers whose lifecycles changed, as the triggers would (a shipped order
        # or an ignored event changes none).
        changed = sorted(batch.changed)
        old = [row for row in before if row["customer_id"] in batch.changed]
        await _refresh_rollups(connection, changed, old)
    return [result for result in results if result is not None]


def _repeated_keys(events: Sequence[EventData]) -> set[str]:
    """Order numbers and subscription ids named by more than one event of the batch."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for event in events:
        key = (
            f"o:{event.order.number}"
            if event.order
            else f"s:{event.subscription.id}"
            if event.subscription
            else ""
        )
        if key in seen:
            repeated.add(key)
        seen.add(key)
    return repeated


# ---- reading ------------------------------------------------------------------------------


_UPSERT_TAIL = (
    " ON CONFLICT (external_id) DO UPDATE SET email = coalesce(excluded.email, customers.email), "
    "name = coalesce(excluded.name, customers.name) "
    "RETURNING id, external_id, created_at, acquisition_source"
)
_UPSERT_COLUMNS = (
    CUSTOMERS.c.id,
    CUSTOMERS.c.external_id,
    CUSTOMERS.c.created_at,
    CUSTOMERS.c.acquisition_source,
)
# Text statements, compiled once: a multi-row insert().values() was compiled anew for every
# batch (~20 ms of Python per batch of 64, a third of the batch's CPU). PostgreSQL: the rows
# as arrays, in external id order (the order their rows are locked in).
_UPSERT_MANY = (
    text(
        "INSERT INTO customers (external_id, email, name, is_anonymous, created_at) "
        "SELECT u.external_id, u.email, u.name, false, :now FROM unnest("
        "CAST(:external_ids AS varchar[]), CAST(:emails AS varchar[]), "
        "CAST(:names AS varchar[])) AS u(external_id, email, name) ORDER BY u.external_id"
        + _UPSERT_TAIL
    )
    .bindparams(bindparam("now", type_=CUSTOMERS.c.created_at.type))
    .columns(*_UPSERT_COLUMNS)
)
_UPSERT_ONE = (
    text(
        "INSERT INTO customers (external_id, email, name, is_anonymous, created_at) "
        "VALUES (:external_id, :email, :name, false, :now)" + _UPSERT_TAIL
    )
    .bindparams(bindparam("now", type_=CUSTOMERS.c.created_at.type))
    .columns(*_UPSERT_COLUMNS)
)


async def _upsert_customers(
    connection: AsyncConnection, events: Sequence[EventData]
) -> dict[str, Row]:
    """The batch's customers created or updated (as `rules._customer`), row-locked, in
    external id order; by external id: id, created (by this batch), acquisition_source."""
    now = utcnow()
    customers = sorted((e.customer for e in events), key=lambda c: c.external_id)
    if connection.dialect.name == "postgresql":
        found = list(
            await connection.execute(
                _UPSERT_MANY,
                {
                    "now": now,
                    "external_ids": [c.external_id for c in customers],
                    "emails": [c.email for c in customers],
                    "names": [c.name for c in customers],
                },
            )
        )
    else:  # SQLite: in-process, one statement per customer costs little
        found = [
            (
                await connection.execute(
                    _UPSERT_ONE,
                    {"now": now, "external_id": c.external_id, "email": c.email, "name": c.name},
                )
            ).one()
            for c in customers
        ]
    return {
        row.external_id: {
            "id": row.id,
            "created": row.created_at == now,
            "acquisition_source": row.acquisition_source,
        }
        for row in found
    }


async def _load(
    connection: AsyncConnection, events: Sequence[EventData], customers: dict[str, Row]
) -> _Batch:
    numbers = sorted({e.order.number for e in events if e.order and e.type in FAST_ORDER_TYPES})
    sub_ids = sorted(
        {e.subscription.id for e in events if e.subscription and e.type in FAST_SUBSCRIPTION_TYPES}
    )
    ids = sorted(row["id"] for row in customers.values())
    orders: dict[str, Row] = {}
    if numbers:
        found = await connection.execute(
            select(ORDERS)
            .where(ORDERS.c.number.in_(numbers))
            .order_by(ORDERS.c.id)
            .with_for_update()
        )
        orders = {row.number: dict(row._mapping) for row in found}
    subscriptions: dict[str, Row] = {}
    if sub_ids:
        found = await connection.execute(
            select(SUBSCRIPTIONS)
            .where(SUBSCRIPTIONS.c.external_id.in_(sub_ids))
            .order_by(SUBSCRIPTIONS.c.id)
            .with_for_update()
        )
        subscriptions = {row.external_id: dict(row._mapping) for row in found}
    lives: dict[int, list[_Life]] = {}
    found = await connection.execute(
        select(LIFECYCLES).where(LIFECYCLES.c.customer_id.in_(ids)).order_by(LIFECYCLES.c.id)
    )
    for row in found:
        lives.setdefault(row.customer_id, []).append(_Life(dict(row._mapping)))
    old = [i for i in ids if i not in {r["id"] for r in customers.values() if r["created"]}]
    purchases: set[int] = set()
    if old:
        found = await connection.execute(
            select(ORDERS.c.customer_id)
            .where(ORDERS.c.customer_id.in_(old))
            .union(select(SUBSCRIPTIONS.c.customer_id).where(SUBSCRIPTIONS.c.customer_id.in_(old)))
        )
        purchases = set(found.scalars())
    return _Batch(connection, customers, orders, subscriptions, lives, purchases)


# ---- the rules, over rows -------------------------------------------------------------------


def _fast(batch: _Batch, event: EventData, outcome: _Outcome, repeated: set[str]) -> None:
    """Apply one event to the batch's rows, or raise _Slow before changing anything."""
    customer = batch.customers[event.customer.external_id]
    if event.order is not None and event.type in FAST_ORDER_TYPES:
        if f"o:{event.order.number}" in repeated:
            raise _Slow
        _order_event(batch, event, event.order, customer, outcome)
    elif event.subscription is not None and event.type in FAST_SUBSCRIPTION_TYPES:
        if f"s:{event.subscription.id}" in repeated:
            raise _Slow
        _subscription_event(batch, event, event.subscription, customer, outcome)
    else:
        raise _Slow


def _has_purchases(batch: _Batch, customer: Row) -> bool:
    return not customer["created"] and customer["id"] in batch.purchases


def _schedule(batch: _Batch, life: _Life, trigger: str, outcome: _Outcome) -> None:
    """`rules._schedule`: a dispatch, unless the event is older than the expiry."""
    occurred_at = outcome.event.occurred_at
    if surveys.is_stale(occurred_at, outcome.received_at):
        outcome.changes.append(f"no {trigger} survey: the event is older than the survey expiry")
        return
    dispatch = _Dispatch(
        {
            "customer_id": life.row["customer_id"],
            "trigger": trigger,
            "survey_kind": surveys.TRIGGER_KINDS[trigger],
            "created_at": occurred_at,
        },
        life,
    )
    batch.dispatches.append(dispatch)
    outcome.dispatches.append(dispatch)


def _adoptable(batch: _Batch, customer_id: int, not_after: datetime | None) -> _Life | None:
    """The customer's newest open journey before a purchase (discovery/research), which the
    purchase's lifecycle takes over (`lifecycle_for_order`, `_period_lifecycle`)."""
    candidates = [
        life
        for life in batch.lives.get(customer_id, [])
        if life.row["closed_at"] is None
        and life.row["order_id"] is None
        and life.row["subscription_id"] is None
        and life.order is None
        and life.subscription is None
        and life.row["stage"] in (Stage.discovery, Stage.research)
        and (not_after is None or life.row["opened_at"] <= not_after)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda life: life.row["opened_at"])


def _new_life(batch: _Batch, customer: Row, opened_at: datetime) -> _Life:
    life = _Life(
        {
            "id": None,
            "customer_id": customer["id"],
            "kind": LifecycleKind.one_time,
            "stage": Stage.discovery,
            "opened_at": opened_at,
            "closed_at": None,
            "close_reason": None,
            "order_id": None,
            "subscription_id": None,
            "period_start": None,
            "acquisition_channel": customer["acquisition_source"],
        },
        new=True,
    )
    batch.new_lives.append(life)
    batch.lives.setdefault(customer["id"], []).append(life)
    return life


def _sync_with_order(life: _Life, order: Row, at: datetime) -> None:
    """`lifecycle.sync_with_order`."""
    for stage in lifecycles.STAGES_FOR_ORDER_STATUS[order["status"]]:
        life.advance(stage)
    if order["status"] in lifecycles.CLOSING_ORDER_STATUSES:
        life.close(order["status"].value, at)


def _order_event(
    batch: _Batch, event: EventData, data: OrderData, customer: Row, outcome: _Outcome
) -> None:
    """`rules._order_event` for placed / shipped / delivered."""
    target = ORDER_EVENTS[event.type]
    at = event.occurred_at
    order = batch.orders.get(data.number)
    created = order is None
    first_purchase = False
    if order is None:
        first_purchase = not _has_purchases(batch, customer)
        order = _new_order(customer, data, target, at)
        batch.orders[data.number] = order
        batch.new_orders.append(order)
        batch.new_items.append(
            (
                order,
                [
                    {"sku": i.sku, "name": i.name, "quantity": i.qty, "unit_price": i.price}
                    for i in data.items
                ],
            )
        )
        outcome.changes.append(f"order {data.number} created as {target.value}")
        moved = True
        life = _adoptable(batch, customer["id"], None)
        if life is None:
            life = _new_life(batch, customer, order["placed_at"])
        life.order = order
        life.row["kind"] = LifecycleKind.one_time
        life.dirty = True
        _sync_with_order(life, order, at)
        _stamp(order, target, at)
        outcome.changes.append(("lifecycle ", life, f" at stage {life.row['stage'].value}"))
    else:
        if order["customer_id"] != customer["id"]:
            raise _Slow  # refused there: "belongs to another customer"
        if data.items and event.type == "order.placed":
            raise _Slow  # items arriving late
        known = [
            life
            for life in batch.lives.get(customer["id"], [])
            if life.row["order_id"] == order["id"]
        ]
        if not known:
            raise _Slow
        life = known[0]
        _update_order(order, data, event)
        moved = STATUS_RANK[target] > STATUS_RANK[order["status"]]
        if moved:
            outcome.changes.append(
                f"order {order['number']}: {order['status'].value} → {target.value}"
            )
            order["status"] = target
        else:
            outcome.ignored = f"order is already {order['status'].value}"
        _stamp(order, target, at)
        batch.dirty_orders[order["id"]] = order
        before = (life.row["stage"], life.row["closed_at"])
        _sync_with_order(life, order, at)
        if (life.row["stage"], life.row["closed_at"]) != before:
            outcome.changes.append(
                f"lifecycle {life.row['id']}: {before[0].value} → {life.row['stage'].value}"
            )
    outcome.order = order
    outcome.life = life
    if first_purchase and target is not OrderStatus.cancelled:
        _schedule(batch, life, surveys.TRIGGER_FIRST_ORDER, outcome)
    if moved and target is OrderStatus.delivered:
        _schedule(batch, life, surveys.TRIGGER_ORDER_DELIVERED, outcome)
    assert created or not first_purchase


def _new_order(customer: Row, data: OrderData, status: OrderStatus, at: datetime) -> Row:
    total = (
        data.total
        if data.total is not None
        else sum((i.price * i.qty for i in data.items), Decimal(0))
    )
    return {
        "id": None,
        "number": data.number,
        "customer_id": customer["id"],
        "subscription_id": None,
        "status": status,
        "total": total,
        "currency": data.currency or "EUR",
        "shipping_address": data.shipping_address or "",
        "carrier": data.carrier,
        "tracking_number": data.tracking_number,
        "placed_at": data.placed_at or at,
        "estimated_delivery": data.estimated_delivery,
        "shipped_at": None,
        "delivered_at": None,
        "return_requested_at": None,
        "refunded_at": None,
        "cancelled_at": None,
    }


def _update_order(order: Row, data: OrderData, event: EventData) -> None:
    """`rules._update_order`."""
    for attr in ("shipping_address", "carrier", "tracking_number", "estimated_delivery"):
        value = getattr(data, attr)
        if value is not None:
            order[attr] = value
    if data.total is not None:
        order["total"] = data.total
    placed_at = data.placed_at or (event.occurred_at if event.type == "order.placed" else None)
    if placed_at is not None and placed_at < order["placed_at"]:
        order["placed_at"] = placed_at


def _stamp(order: Row, status: OrderStatus, at: datetime) -> None:
    attr = STATUS_TIME_FIELD.get(status)
    if attr is not None and (order[attr] is None or at < order[attr]):
        order[attr] = at


def _subscription_event(
    batch: _Batch, event: EventData, data: SubscriptionData, customer: Row, outcome: _Outcome
) -> None:
    """`rules._subscription_event` for started / renewed (not cancelled, not known)."""
    sub = batch.subscriptions.get(data.id)
    at = event.occurred_at
    first_purchase = False
    if sub is None:
        if data.plan is None or data.price is None:
            raise _Slow  # refused there
        assert data.period_start is not None and data.period_end is not None
        first_purchase = not _has_purchases(batch, customer)
        sub = {
            "id": None,
            "customer_id": customer["id"],
            "external_id": data.id,
            "plan": data.plan,
            "price": data.price,
            "currency": data.currency or "EUR",
            "status": SubscriptionStatus.active,
            "started_at": data.period_start,
            "current_period_start": data.period_start,
            "current_period_end": data.period_end,
            "status_changed_at": at,
            "paused_at": None,
            "cancelled_at": None,
            "resume_on": None,
        }
        created = True
    else:
        if sub["customer_id"] != customer["id"] or sub["status"] is SubscriptionStatus.cancelled:
            raise _Slow
        created = False
    assert data.period_start is not None and data.period_end is not None
    periods = [
        life
        for life in batch.lives.get(customer["id"], [])
        if not created and life.row["subscription_id"] == sub["id"]
    ]
    if event.type == "subscription.renewed" and (
        any(life.row["period_start"] == data.period_start for life in periods)
        or data.period_start < sub["current_period_start"]
    ):
        raise _Slow  # a period already known: ignored there
    # From here on nothing refuses the event.
    if created:
        batch.subscriptions[data.id] = sub
        batch.new_subscriptions.append(sub)
        outcome.changes.append(f"subscription {data.id} created")
    else:
        for attr in ("plan", "price", "currency"):
            value = getattr(data, attr)
            if value is not None:
                sub[attr] = value
        batch.dirty_subscriptions[sub["id"]] = sub
    outcome.subscription = sub
    if event.type == "subscription.started":
        _started(batch, event, data, sub, customer, periods, outcome)
    else:
        _renewed(batch, event, data, sub, customer, periods, outcome)
    if first_purchase and outcome.life is not None:
        _schedule(batch, outcome.life, surveys.TRIGGER_FIRST_ORDER, outcome)


def _set_active(sub: Row, at: datetime, outcome: _Outcome) -> None:
    """`rules._set_status(active)` when the event is not older than the last change."""
    if sub["status_changed_at"] is not None and at < sub["status_changed_at"]:
        return
    if sub["status"] is not SubscriptionStatus.active:
        outcome.changes.append(f"subscription {sub['external_id']}: {sub['status'].value} → active")
        sub["status"] = SubscriptionStatus.active
        sub["resume_on"] = None
    sub["status_changed_at"] = at


def _period_life(
    batch: _Batch, sub: Row, customer: Row, periods: list[_Life], start: datetime
) -> tuple[_Life, bool]:
    """`rules._period_lifecycle`: the period's lifecycle, created when missing."""
    for life in periods:
        if life.row["period_start"] == start:
            return life, False
    life = _adoptable(batch, customer["id"], start) or _new_life(batch, customer, start)
    life.row["kind"] = LifecycleKind.subscription_period
    life.subscription = sub
    life.row["period_start"] = start
    life.dirty = True
    life.advance(Stage.purchase)
    periods.append(life)
    return life, True


def _started(
    batch: _Batch,
    event: EventData,
    data: SubscriptionData,
    sub: Row,
    customer: Row,
    periods: list[_Life],
    outcome: _Outcome,
) -> None:
    assert data.period_start is not None
    _set_active(sub, event.occurred_at, outcome)
    if data.period_start < sub["started_at"]:
        sub["started_at"] = data.period_start
    life, created = _period_life(batch, sub, customer, periods, data.period_start)
    if created:
        outcome.changes.append(("lifecycle ", life, f" opened (period {data.period_start.date()})"))
        if data.period_start < sub["current_period_start"]:
            life.advance(Stage.use)
            life.close("period_ended", sub["current_period_start"])
    outcome.life = life


def _renewed(
    batch: _Batch,
    event: EventData,
    data: SubscriptionData,
    sub: Row,
    customer: Row,
    periods: list[_Life],
    outcome: _Outcome,
) -> None:
    assert data.period_start is not None and data.period_end is not None
    new_start = data.period_start
    ended = sorted(
        (
            life
            for life in periods
            if life.row["closed_at"] is None
            and life.row["period_start"] is not None
            and life.row["period_start"] < new_start
        ),
        key=lambda life: life.row["period_start"],
    )
    for life in ended:
        life.advance(Stage.use)
        life.close("period_ended", event.occurred_at)
        outcome.changes.append(f"lifecycle {life.row['id']} closed (period ended)")
    sub["current_period_start"], sub["current_period_end"] = new_start, data.period_end
    _set_active(sub, event.occurred_at, outcome)
    life, _ = _period_life(batch, sub, customer, periods, new_start)
    life.advance(Stage.use)
    outcome.changes.append(("lifecycle ", life, f" opened (period {new_start.date()})"))
    outcome.life = life
    if ended:
        _schedule(batch, ended[-1], surveys.TRIGGER_SUBSCRIPTION_RENEWED, outcome)


# ---- writing ----------------------------------------------------------------------------------


async def _insert(connection: AsyncConnection, table: Table, rows: list[Row]) -> None:
    """Insert the rows (executemany, batched into multi-row INSERTs) and set their ids, in
    the order given (ids are assigned in that order)."""
    if not rows:
        return
    columns = [c.name for c in table.columns if c.name != "id"]
    params = [{c: row[c] for c in columns if c in row} for row in rows]
    found = await connection.execute(
        table.insert().returning(table.c.id, sort_by_parameter_order=True), params
    )
    for row, new_id in zip(rows, found.scalars(), strict=True):
        row["id"] = new_id


async def _update(
    connection: AsyncConnection, table: Table, columns: Sequence[str], rows: list[Row]
) -> None:
    if not rows:
        return
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values({c: bindparam(f"new_{c}") for c in columns})
    )
    params = [{"row_id": row["id"], **{f"new_{c}": row[c] for c in columns}} for row in rows]
    await connection.execute(statement, params)


async def _write(batch: _Batch) -> None:
    connection = batch.connection
    await _insert(connection, SUBSCRIPTIONS, batch.new_subscriptions)
    new_ids = {id(sub) for sub in batch.new_subscriptions}
    await _update(
        connection,
        SUBSCRIPTIONS,
        SUBSCRIPTION_UPDATE_COLUMNS,
        [s for s in batch.dirty_subscriptions.values() if id(s) not in new_ids],
    )
    await _insert(connection, ORDERS, batch.new_orders)
    items = [
        {**item, "order_id": order["id"]}
        for order, order_items in batch.new_items
        for item in order_items
    ]
    if items:
        await connection.execute(ITEMS.insert(), items)
    await _update(connection, ORDERS, ORDER_UPDATE_COLUMNS, list(batch.dirty_orders.values()))
    for lives in batch.lives.values():
        for life in lives:
            if life.order is not None:
                life.row["order_id"] = life.order["id"]
            if life.subscription is not None:
                life.row["subscription_id"] = life.subscription["id"]
    await _insert(connection, LIFECYCLES, [life.row for life in batch.new_lives])
    changed = [
        life.row for lives in batch.lives.values() for life in lives if life.dirty and not life.new
    ]
    changed.sort(key=lambda row: row["id"])
    await _update(connection, LIFECYCLES, LIFECYCLE_UPDATE_COLUMNS, changed)
    for dispatch in batch.dispatches:
        dispatch.row["lifecycle_id"] = dispatch.life.row["id"]
    await _insert(connection, DISPATCHES, [d.row for d in batch.dispatches])
    # Written: what comes next (the events after a slow one) starts from here.
    for lives in batch.lives.values():
        for life in lives:
            if life.new or life.dirty:
                batch.changed.add(life.row["customer_id"])
            life.new = life.dirty = False
    for pending in (
        batch.new_orders,
        batch.new_items,
        batch.new_subscriptions,
        batch.new_lives,
        batch.dispatches,
    ):
        pending.clear()
    batch.dirty_orders.clear()
    batch.dirty_subscriptions.clear()


async def _refresh_rollups(
    connection: AsyncConnection, customer_ids: list[int], before: list[Row]
) -> None:
    """PostgreSQL: what the deferred lifecycles triggers would have done, for the batch's
    customers, one statement per roll-up, in a fixed order (see the module docstring)."""
    await connection.execute(
        text("SELECT lifecycle_loyalty_refresh(CAST(:customers AS integer[]))"),
        {"customers": customer_ids},
    )
    await connection.execute(
        text(
            "SELECT journey_fix_refresh(ARRAY(SELECT id FROM lifecycles WHERE customer_id = "
            "ANY(CAST(:customers AS integer[])) ORDER BY id), CAST(:customers AS integer[]))"
        ),
        {"customers": customer_ids},
    )
    await connection.execute(
        text(rollup_journey.deferred_refresh_sql()),
        {
            "customers": customer_ids,
            "before_id": [r["id"] for r in before],
            "before_customer": [r["customer_id"] for r in before],
            "before_opened": [r["opened_at"] for r in before],
            "before_stage": [r["stage"].value for r in before],
            "before_channel": [
                r["acquisition_channel"].value if r["acquisition_channel"] else None for r in before
            ],
        },
    )
