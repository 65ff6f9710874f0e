"""The shop events' batch apply (issue #25 item 3): the same rows and results as applying the
events one at a time by the ORM path, on SQLite and PostgreSQL; parallel appliers on
PostgreSQL without deadlocks and with exact roll-ups."""

from __future__ import annotations

import asyncio
import collections
import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain import lifecycle as lifecycles
from bot.domain import shop_events
from bot.domain.enums import AcquisitionSource, ShopEventStatus
from bot.domain.shop_events import queue
from bot.storage import rollup_journey, rollup_loyalty
from bot.storage.models import Base, Customer, ShopEvent, utcnow
from bot.web.app import create_app
from bot.web.events_worker import drain
from tests.conftest import _pg_empty_tables
from tests.test_shop_events import ITEMS, T0, at

Sessions = async_sessionmaker[AsyncSession]


def _order(
    event_id: str,
    kind: str,
    hours: float,
    number: str,
    customer: str,
    base: datetime,
    items: bool = True,
) -> dict[str, Any]:
    order: dict[str, Any] = {"number": number, "total": "25.00"}
    if items:
        order["items"] = [dict(i) for i in ITEMS]
    return {
        "id": event_id,
        "type": f"order.{kind}",
        "occurred_at": at(hours, base),
        "customer": {"external_id": customer, "email": f"{customer}@example.com"},
        "order": order,
    }


def _sub(
    event_id: str,
    kind: str,
    hours: float,
    sub: str,
    customer: str,
    base: datetime,
    period: int,
    plan: bool = True,
) -> dict[str, Any]:
    start = base + timedelta(days=3 * period)
    data: dict[str, Any] = {
        "id": sub,
        "period_start": start.isoformat(),
        "period_end": (start + timedelta(days=3)).isoformat(),
    }
    if plan:
        data.update(plan="Coffee", price="19.00", currency="EUR")
    return {
        "id": event_id,
        "type": f"subscription.{kind}",
        "occurred_at": at(hours, base),
        "customer": {"external_id": customer},
        "subscription": data,
    }


def scenario(recent: datetime) -> list[dict[str, Any]]:
    """Events in the order the shop sends them: the common flows, and around them every case
    the batch apply hands to the ORM path."""
    old = T0  # months ago: no surveys (older than their expiry)
    e: list[dict[str, Any]] = []
    for c, base in (("K1", recent), ("K2", old), ("K3", recent), ("K4", recent)):
        number = f"N-{c}"
        e += [
            _order(f"{c}-p", "placed", 0, number, c, base),
            _order(f"{c}-s", "shipped", 1, number, c, base, items=False),
            _order(f"{c}-d", "delivered", 3, number, c, base, items=False),
        ]
    e += [
        # Out of order: delivered before shipped, then a late placed with items (slow).
        _order("K5-d", "delivered", 3, "N-K5", "K5", recent, items=False),
        _order("K5-s", "shipped", 1, "N-K5", "K5", recent, items=False),
        _order("K5-p", "placed", 0, "N-K5", "K5", recent),
        # A second order of a customer with a purchase: no first-order survey.
        _order("K1-p2", "placed", 5, "N-K1b", "K1", recent),
        # A customer with an open discovery journey (and a source) buys.
        _order("K6-p", "placed", 2, "N-K6", "K6", recent),
        # Returned then refunded, cancelled (slow types).
        _order("K3-r", "returned", 8, "N-K3", "K3", recent, items=False),
        _order("K3-f", "refunded", 9, "N-K3", "K3", recent, items=False),
        _order("K7-p", "placed", 0, "N-K7", "K7", recent),
        _order("K7-c", "cancelled", 1, "N-K7", "K7", recent, items=False),
        # Two customers name one order number: the second is refused (failed).
        _order("K8-p", "placed", 0, "N-SHARED", "K8", recent),
        _order("K9-p", "placed", 0, "N-SHARED", "K9", recent),
        # Subscriptions: started, renewed twice; a late start of period 0 after a renewal;
        # a renewal already known; pause and cancel; a new one without a plan (refused).
        _sub("S1-0", "started", 0, "SUB-1", "K10", recent, 0),
        _sub("S1-1", "renewed", 72, "SUB-1", "K10", recent, 1),
        _sub("S1-2", "renewed", 144, "SUB-1", "K10", recent, 2),
        _sub("S1-2x", "renewed", 145, "SUB-1", "K10", recent, 2),
        _sub("S2-1", "renewed", 72, "SUB-2", "K11", recent, 1),
        _sub("S2-0", "started", 73, "SUB-2", "K11", recent, 0),
        _sub("S2-p", "paused", 80, "SUB-2", "K11", recent, 1),
        _sub("S2-s", "started", 90, "SUB-2", "K11", recent, 1),
        _sub("S3-0", "started", 0, "SUB-3", "K6", old, 0),
        _sub("S3-1", "renewed", 72, "SUB-3", "K6", old, 1),
        _sub("S3-c", "cancelled", 80, "SUB-3", "K6", old, 1),
        _sub("S3-r", "renewed", 150, "SUB-3", "K6", old, 2),
        _sub("S4-0", "started", 0, "SUB-4", "K12", recent, 0, plan=False),
        _sub("S5-0", "started", 0, "SUB-5", "K1", recent, 0),
        _sub("S5-1", "renewed", 72, "SUB-5", "K1", recent, 1),
    ]
    return e


async def _setup(sessions: Sessions, recent: datetime) -> None:
    """What the shop's events find: K6 chatting before buying, K4 with a known source."""
    async with sessions() as session, session.begin():
        k6 = Customer(external_id="K6", acquisition_source=AcquisitionSource.friend)
        k4 = Customer(external_id="K4", acquisition_source=AcquisitionSource.ad)
        session.add_all([k6, k4])
        await session.flush()
        await lifecycles.current_lifecycle(session, k6, recent - timedelta(days=1))
        await lifecycles.current_lifecycle(session, k4, T0 - timedelta(days=1))
        await session.execute(update(Customer).where(Customer.id == k6.id).values(name="Kai"))


async def _run(
    sessions: Sessions, fast: bool, payloads: list[dict[str, Any]], now: datetime
) -> None:
    await _setup(sessions, now - timedelta(days=12))
    for payload in payloads:  # one by one: the order received is the order sent
        await shop_events.accept(sessions, [shop_events.parse_event(payload)], now)
    for _ in range(200):
        if not await shop_events.apply_pending(sessions, fast=fast):
            pending = await _pending(sessions)
            if not pending:
                return
    raise AssertionError("the queue did not empty")


async def _pending(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(text("SELECT count(*) FROM shop_events WHERE status = 'pending'"))
            or 0
        )


DUMPS = {
    "customers": "SELECT id, external_id, email, name, acquisition_source FROM customers",
    "orders": "SELECT * FROM orders",
    "order_items": "SELECT * FROM order_items",
    "subscriptions": "SELECT * FROM subscriptions",
    "lifecycles": "SELECT * FROM lifecycles",
    "survey_dispatches": "SELECT * FROM survey_dispatches",
    "shop_events": "SELECT id, status, result, attempts, payload FROM shop_events",
}
PG_DUMPS = {
    "journey_links": "SELECT grain, m, a, b, key, n FROM journey_links WHERE n <> 0",
    "lifecycle_loyalty": "SELECT * FROM lifecycle_loyalty",
    "journey_fix": "SELECT * FROM journey_fix",
    "survey_dispatch_sources": "SELECT * FROM survey_dispatch_sources",
}


async def _dump(sessions: Sessions, postgres: bool) -> dict[str, list[Any]]:
    """Every row, customers named by their external id (the batch creates a batch's new
    customers in one statement, in external id order: their ids differ, nothing else)."""
    found: dict[str, list[Any]] = {}
    async with sessions() as session:
        found_names = await session.execute(text("SELECT id, external_id FROM customers"))
        names: dict[int, str] = {row.id: row.external_id for row in found_names}
        for name, query in {**DUMPS, **(PG_DUMPS if postgres else {})}.items():
            rows = []
            for row in (await session.execute(text(query))).mappings():
                values = dict(row)
                if "customer_id" in values:
                    values["customer_id"] = names.get(values["customer_id"])
                if name == "customers":
                    values.pop("id")
                rows.append(tuple(f"{k}={v}" for k, v in values.items()))
            found[name] = sorted(rows)
    return found


async def _fresh(engine: AsyncEngine, database_url: str) -> None:
    if engine.dialect.name == "postgresql":
        await _pg_empty_tables(engine, database_url)
        return
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)


async def test_the_batch_apply_writes_what_one_event_at_a_time_writes(
    session_factory: Sessions, engine: AsyncEngine, database_url: str
) -> None:
    postgres = engine.dialect.name == "postgresql"
    now = utcnow().replace(microsecond=0)
    payloads = scenario(now - timedelta(days=9))
    await _run(session_factory, False, payloads, now)
    reference = await _dump(session_factory, postgres)
    await _fresh(engine, database_url)
    await _run(session_factory, True, payloads, now)
    batched = await _dump(session_factory, postgres)
    for table in reference:
        assert batched[table] == reference[table], table
    # The scenario reached what it is about.
    status = {
        row[0].removeprefix("id="): row[1].removeprefix("status=")
        for row in reference["shop_events"]
    }
    assert len(status) == len(payloads)
    assert {k for k, v in status.items() if v != "applied"} == {"K9-p", "S4-0"}
    results = " ".join(row[2] for row in reference["shop_events"])
    for seen in (
        "no order_delivered survey",
        "order is already delivered",
        "period ended",
        "this period is already known",
        "subscription is cancelled",
        "subscription SUB-2: paused",
    ):
        assert seen in results, seen
    assert len(reference["survey_dispatches"]) >= 8


async def test_a_batch_of_many_customers_is_applied_in_a_few_statements(
    session_factory: Sessions, engine: AsyncEngine
) -> None:
    recent = utcnow().replace(microsecond=0) - timedelta(days=5)
    payloads = [_order(f"M{i}-p", "placed", 0, f"N-M{i}", f"M{i}", recent) for i in range(40)] + [
        _sub(f"MS{i}-0", "started", 0, f"SUB-M{i}", f"MS{i}", recent, 0) for i in range(20)
    ]
    await shop_events.accept(session_factory, [shop_events.parse_event(p) for p in payloads])
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    from sqlalchemy import event

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        done = await shop_events.apply_pending(session_factory, limit=64)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(done) == 60
    assert all(a.status.value == "applied" for a in done)
    # Claim, upsert, loads, inserts, roll-ups, results: not 8-12 per event (480-720).
    kinds = collections.Counter(" ".join(s.split()[:3]) for s in statements)
    if engine.dialect.name == "sqlite":
        # SQLAlchemy inserts row by row there to keep RETURNING in order (in-process, cheap).
        inserts = sum(n for kind, n in kinds.items() if kind.startswith("INSERT INTO"))
        assert len(statements) - inserts <= 20, kinds
    else:
        assert len(statements) <= 25, kinds


# ---- parallel appliers on PostgreSQL ----------------------------------------------------


def _flows(count: int, recent: datetime) -> list[list[dict[str, Any]]]:
    flows = []
    for i in range(count):
        customer = f"P{i % (count // 2):04d}"  # two flows per customer, running at once
        if i % 5:
            number = f"N-P{i:05d}"
            flows.append(
                [
                    _order(f"P{i}-p", "placed", 0, number, customer, recent),
                    _order(f"P{i}-s", "shipped", 1, number, customer, recent, items=False),
                    _order(f"P{i}-d", "delivered", 3, number, customer, recent, items=False),
                ]
            )
        else:
            flows.append(
                [
                    _sub(f"P{i}-{k}", kind, 72 * k, f"SUB-P{i}", customer, recent, k)
                    for k, kind in enumerate(("started", "renewed", "renewed"))
                ]
            )
    return flows


async def test_parallel_appliers_apply_everything_once_without_deadlocks(
    session_factory: Sessions, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer")
    recent = utcnow().replace(microsecond=0) - timedelta(days=9)
    flows = _flows(120, recent)
    # Received interleaved: the flows' first events, then their second ones, ...
    for step in range(3):
        await shop_events.accept(
            session_factory, [shop_events.parse_event(flow[step]) for flow in flows]
        )
    conflicts: list[str] = []
    applied: list[str] = []

    async def applier() -> None:
        idle = 0
        while idle < 3:
            try:
                batch = await shop_events.apply_pending(session_factory, limit=16)
            except DBAPIError as exc:
                conflicts.append(str(getattr(exc.orig, "sqlstate", exc)))
                await asyncio.sleep(0.01)
                continue
            applied.extend(a.id for a in batch)
            idle = 0 if batch else idle + 1
            await asyncio.sleep(0 if batch else 0.02)

    await asyncio.gather(*(applier() for _ in range(4)))
    assert conflicts == []  # no deadlock (40P01) nor any other conflict
    assert sorted(applied) == sorted(p["id"] for flow in flows for p in flow)
    async with session_factory() as db:
        statuses = (
            await db.execute(text("SELECT status, count(*) FROM shop_events GROUP BY 1"))
        ).all()
        assert [tuple(r) for r in statuses] == [("applied", 360)]
        # Each customer's events in order: every order delivered, every event moved it on.
        orders = (await db.execute(text("SELECT status, count(*) FROM orders GROUP BY 1"))).all()
        assert [tuple(r) for r in orders] == [("delivered", 96)]
        results = (await db.execute(text("SELECT result FROM shop_events"))).scalars().all()
        assert not [r for r in results if not r["applied"]]
        lifecycles_count = await db.scalar(text("SELECT count(*) FROM lifecycles"))
        assert lifecycles_count == 96 + 24 * 3
        # The roll-ups refreshed at the end of each batch are exact.
        kept = (await db.execute(text(PG_DUMPS["journey_links"]))).all()
        fresh = (
            await db.execute(
                text(
                    "SELECT grain, m, a, b, key, SUM(n) FROM ("
                    + rollup_journey.contributions(
                        "SELECT id, customer_id, opened_at, stage, acquisition_channel "
                        "FROM lifecycles",
                        1,
                    )
                    + ") AS c GROUP BY grain, m, a, b, key HAVING SUM(n) <> 0"
                )
            )
        ).all()
        assert sorted(map(tuple, kept)) == sorted(map(tuple, fresh))
        columns = ", ".join(rollup_loyalty.POSITION_COLUMNS)
        kept = (await db.execute(text(f"SELECT {columns} FROM lifecycle_loyalty"))).all()
        state = rollup_loyalty.state_select("TRUE")
        fresh = (await db.execute(text(f"SELECT {columns} FROM ({state}) AS s"))).all()
        assert sorted(map(tuple, kept)) == sorted(map(tuple, fresh))


# ---- /metrics ------------------------------------------------------------------------------


async def test_metrics_show_the_queue_depth_the_apply_lag_and_what_was_applied(
    settings: Settings, session_factory: Sessions
) -> None:
    from tests.test_api_events import post
    from tests.test_shop_events import order_event, recently

    token = "metrics-" + "m" * 32
    app = create_app(replace(settings, metrics_token=token))
    bearer = {"Authorization": f"Bearer {token}"}
    async with TestClient(TestServer(app)) as client:
        body = json.dumps(order_event("evt-1", "placed", 0, base=recently())).encode()
        assert (await post(client, body)).status == 202
        await drain(client.app)
        metrics = await (await client.get("/metrics", headers=bearer)).text()
        assert "shopbot_events_queue_depth 0.0" in metrics
        assert "shopbot_events_apply_lag_seconds 0.0" in metrics
        assert 'shopbot_events_applied_total{status="applied"} 1.0' in metrics
        assert "shopbot_events_applied_lag_seconds_count 1.0" in metrics
        # Two events waiting, the older one for a minute (rows no worker can take: without
        # a payload, so that the live worker leaves them pending).
        async with session_factory() as session, session.begin():
            for n, age in enumerate((60, 5)):
                session.add(
                    ShopEvent(
                        id=f"stuck-{n}",
                        type="order.placed",
                        occurred_at=utcnow(),
                        received_at=utcnow() - timedelta(seconds=age),
                        status=ShopEventStatus.pending,
                        payload=None,
                    )
                )
        metrics = await (await client.get("/metrics", headers=bearer)).text()
    assert "shopbot_events_queue_depth 2.0" in metrics
    [lag] = [
        line
        for line in metrics.splitlines()
        if line.startswith("shopbot_events_apply_lag_seconds ")
    ]
    assert 60 <= float(lag.split()[1]) < 120


async def test_two_customers_naming_one_order_are_applied_in_the_order_received(
    session_factory: Sessions, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer")
    recent = utcnow().replace(microsecond=0) - timedelta(days=1)
    first = _order("c1-p", "placed", 0, "N-1", "C1", recent)
    second = _order("c2-s", "shipped", 1, "N-1", "C2", recent, items=False)
    for payload in (first, second):
        await shop_events.accept(session_factory, [shop_events.parse_event(payload)])
    async with session_factory() as holder:
        await holder.begin()
        assert [i for i, _, _ in await queue._claim(holder, 1)] == ["c1-p"]
        # Another applier meanwhile: C2's event names the order of a pending earlier event,
        # so it waits (it used to race: whichever created the order first refused the other).
        assert await shop_events.apply_pending(session_factory) == []
        await holder.rollback()
    assert await shop_events.drain(session_factory) == 2
    async with session_factory() as db:
        rows = (await db.execute(text("SELECT id, status FROM shop_events ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [("c1-p", "applied"), ("c2-s", "failed")]
