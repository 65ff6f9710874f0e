"""The demo shop loader: idempotent, all-or-nothing, and the README customers as documented."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import demo
from bot.domain import feedback as feedback_domain
from bot.domain import insights, support_ops, surveys
from bot.domain.enums import (
    Channel,
    FeedbackKind,
    InsightStatus,
    OrderStatus,
    Stage,
    SubscriptionStatus,
)
from bot.domain.feedback import NewFeedback
from bot.domain.feedback_query import DateRange
from bot.domain.scores import SCALES
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import (
    Base,
    Customer,
    Escalation,
    Feedback,
    Insight,
    Lifecycle,
    Order,
    OrderItem,
    Subscription,
    SurveyDispatch,
)

K = TypeVar("K")
V = TypeVar("V")
NOW = datetime(2025, 6, 15, 10, 30, tzinfo=timezone.utc)
README_ORDERS = {
    "A10001": (OrderStatus.delivered, "jane.doe@example.com"),
    "A10002": (OrderStatus.placed, "jane.doe@example.com"),
    "A10003": (OrderStatus.shipped, "tom.becker@example.com"),
    "A10004": (OrderStatus.cancelled, "tom.becker@example.com"),
    "A10005": (OrderStatus.refunded, "priya.shah@example.com"),
    "A10006": (OrderStatus.delivered, "priya.shah@example.com"),
}
TABLES = (
    Customer,
    Order,
    OrderItem,
    Subscription,
    Lifecycle,
    Feedback,
    SurveyDispatch,
    Escalation,
    Insight,
)


async def _engine(path: Path) -> AsyncEngine:
    engine = create_engine("sqlite+aiosqlite:///" + str(path))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, demo.DemoSummary]:
    """One demo database for the read-only tests (loading takes a few seconds)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"

    async def build() -> demo.DemoSummary:
        engine = await _engine(path)
        try:
            return await demo.load_demo_data(create_session_factory(engine), now=NOW)
        finally:
            await engine.dispose()

    return path, asyncio.run(build())


@pytest.fixture
async def factory(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = await _engine(tmp_path / "empty.db")
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def loaded(
    demo_db: tuple[Path, demo.DemoSummary],
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], demo.DemoSummary]]:
    path, summary = demo_db
    engine = create_engine("sqlite+aiosqlite:///" + str(path))
    yield create_session_factory(engine), summary
    await engine.dispose()


async def _pairs(session: AsyncSession, query: Select[tuple[K, V]]) -> dict[K, V]:
    return {key: value for key, value in (await session.execute(query)).tuples()}


async def _counts(factory: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with factory() as session:
        return {
            model.__tablename__: int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in TABLES
        }


async def test_second_load_writes_nothing(
    loaded: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, first = loaded
    assert first.created
    before = await _counts(factory)
    assert before["customers"] == first.customers
    assert before["orders"] == first.orders
    assert before["subscriptions"] == first.subscriptions
    assert before["lifecycles"] == first.lifecycles
    assert before["feedback"] == first.feedback
    assert before["survey_dispatches"] == first.dispatches

    second = await demo.load_demo_data(factory, now=NOW + timedelta(days=3), seed=99)
    assert not second.created
    assert await _counts(factory) == before
    assert (second.customers, second.orders, second.feedback) == (
        first.customers,
        first.orders,
        first.feedback,
    )


async def test_volumes_and_coverage(
    loaded: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, summary = loaded
    assert summary.customers >= 64
    assert summary.subscriptions >= 10
    assert 250 <= summary.feedback <= 1000
    async with factory() as session:
        statuses = set(await session.scalars(select(Order.status).distinct()))
        assert statuses == set(OrderStatus)
        channels = set(await session.scalars(select(Feedback.channel).distinct()))
        assert channels == set(Channel)
        kinds = set(await session.scalars(select(Feedback.kind).distinct()))
        assert kinds == set(FeedbackKind)
        stages = set(await session.scalars(select(Feedback.stage).distinct()))
        assert stages == set(Stage)
        sub_statuses = set(await session.scalars(select(Subscription.status).distinct()))
        assert sub_statuses == set(SubscriptionStatus)
        emails = list(await session.scalars(select(Customer.email)))
        assert len(set(emails)) == len(emails)
        assert all(
            e and e.rsplit("@", 1)[1] in {"example.com", "example.org", "example.net"}
            for e in emails
        )
        recent = await session.scalar(
            select(func.count())
            .select_from(Order)
            .where(
                Order.status == OrderStatus.delivered,
                Order.delivered_at >= NOW - timedelta(days=10),
            )
        )
        assert recent and recent >= 2
        months = {f.created_at.strftime("%Y-%m") for f in await session.scalars(select(Feedback))}
        assert len(months) >= 20
        browsing = await session.scalar(
            select(func.count())
            .select_from(Lifecycle)
            .where(
                Lifecycle.order_id.is_(None),
                Lifecycle.closed_at.is_(None),
                Lifecycle.stage.in_([Stage.discovery, Stage.research]),
            )
        )
        assert browsing and browsing >= 3


async def test_readme_orders_exactly_as_documented(
    loaded: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, _ = loaded
    async with factory() as session:
        rows = (
            await session.execute(
                select(Order, Customer)
                .join(Customer, Customer.id == Order.customer_id)
                .where(Order.number.in_(README_ORDERS))
            )
        ).all()
        orders = {order.number: (order, customer) for order, customer in rows}
        assert {n: (o.status, c.email) for n, (o, c) in orders.items()} == README_ORDERS
        names = {c.email: (c.external_id, c.name) for _, c in orders.values()}
        assert names == {
            "jane.doe@example.com": ("C1001", "Jane Doe"),
            "tom.becker@example.com": ("C1002", "Tom Becker"),
            "priya.shah@example.com": ("C1003", "Priya Shah"),
        }

        a1 = orders["A10001"][0]  # delivered 3 days ago: inside the 30-day return window
        assert a1.delivered_at is not None
        assert timedelta(days=2) < NOW - a1.delivered_at < timedelta(days=4)
        assert a1.tracking_number and a1.return_requested_at is None
        a2 = orders["A10002"][0]  # placed, not shipped: can be cancelled or re-addressed
        assert a2.shipped_at is None and a2.tracking_number is None and a2.cancelled_at is None
        a3 = orders["A10003"][0]  # shipped and late
        assert a3.delivered_at is None and a3.tracking_number
        assert a3.estimated_delivery is not None and a3.estimated_delivery < NOW
        a4 = orders["A10004"][0]
        assert a4.cancelled_at is not None and a4.shipped_at is None
        a5 = orders["A10005"][0]
        assert a5.refunded_at is not None and a5.return_requested_at is not None
        a6 = orders["A10006"][0]  # delivered 90 days ago: outside the return window
        assert a6.delivered_at is not None
        assert timedelta(days=89) < NOW - a6.delivered_at < timedelta(days=91)

        jane = orders["A10001"][1]
        jane_sub = await session.scalar(
            select(Subscription).where(Subscription.customer_id == jane.id)
        )
        assert jane_sub is not None and jane_sub.status is SubscriptionStatus.active
        assert jane_sub.current_period_start <= NOW < jane_sub.current_period_end
        latest = await session.scalar(
            select(Order.number)
            .where(Order.customer_id == jane.id)
            .order_by(Order.placed_at.desc())
            .limit(1)
        )
        assert latest == "A10002"

        stages = await _pairs(
            session,
            select(Order.number, Lifecycle.stage)
            .join(Lifecycle, Lifecycle.order_id == Order.id)
            .where(Order.number.in_(README_ORDERS)),
        )
        assert stages["A10001"] is Stage.use and stages["A10002"] is Stage.purchase
        assert stages["A10005"] is Stage.support


async def test_each_order_has_one_lifecycle_and_consistent_times(
    loaded: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, _ = loaded
    async with factory() as session:
        orders = list(await session.scalars(select(Order)))
        lifecycles = list(await session.scalars(select(Lifecycle)))
        by_order: dict[int, list[Lifecycle]] = {}
        for lifecycle in lifecycles:
            if lifecycle.order_id is not None:
                by_order.setdefault(lifecycle.order_id, []).append(lifecycle)
        for order in orders:
            assert len(by_order.get(order.id, [])) == 1, order.number
            lifecycle = by_order[order.id][0]
            assert lifecycle.opened_at <= order.placed_at
            assert order.placed_at <= NOW
            if order.subscription_id is not None:
                assert lifecycle.subscription_id == order.subscription_id
            if order.shipped_at is not None:
                assert order.placed_at < order.shipped_at <= NOW
                assert order.carrier in {"DHL", "DPD", "UPS", "PostNL", "GLS"}
                assert order.tracking_number and order.estimated_delivery is not None
            if order.delivered_at is not None:
                assert order.shipped_at is not None and order.shipped_at < order.delivered_at
                assert order.delivered_at <= NOW
            if order.status in (OrderStatus.returned, OrderStatus.refunded):
                assert order.return_requested_at is not None
                assert lifecycle.closed_at is not None
            if order.status is OrderStatus.refunded:
                assert order.refunded_at is not None
            if order.status is OrderStatus.cancelled:
                assert order.cancelled_at is not None and order.shipped_at is None
                assert lifecycle.close_reason == "cancelled"
            if order.status in (OrderStatus.placed, OrderStatus.shipped):
                assert order.delivered_at is None and lifecycle.closed_at is None
        items = await session.scalar(
            select(func.count(func.distinct(OrderItem.order_id))).select_from(OrderItem)
        )
        assert items == len(orders)


async def test_feedback_scores_and_times(
    loaded: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, _ = loaded
    async with factory() as session:
        opened = await _pairs(session, select(Lifecycle.id, Lifecycle.opened_at))
        for row in await session.scalars(select(Feedback)):
            scale = SCALES.get(row.kind.value)
            if scale is not None:
                assert row.score is not None and scale[0] <= row.score <= scale[1], row.id
            else:
                assert row.score is None and row.text
            assert row.lifecycle_id is not None  # every demo row is a known customer's
            assert opened[row.lifecycle_id] < row.created_at <= NOW
            assert row.idempotency_key.startswith("demo:")
            if row.text:
                assert row.sentiment is not None
        for dispatch in await session.scalars(select(SurveyDispatch)):
            assert dispatch.sent_at is not None and dispatch.sent_at <= NOW
            if dispatch.expired_at is not None:
                assert dispatch.answered_at is None and dispatch.expired_at <= NOW


async def test_no_recent_survey_for_readme_customers(
    loaded: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, _ = loaded
    async with factory() as session:
        recent = await session.scalar(
            select(func.count())
            .select_from(SurveyDispatch)
            .join(Customer, Customer.id == SurveyDispatch.customer_id)
            .where(
                Customer.external_id.in_(["C1001", "C1002", "C1003"]),
                SurveyDispatch.sent_at >= NOW - timedelta(days=14),
            )
        )
        assert recent == 0


async def test_built_in_pitfalls(
    loaded: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, _ = loaded
    async with factory() as session:
        csat_by_stage = await _pairs(
            session,
            select(Feedback.stage, func.avg(Feedback.score))
            .where(Feedback.kind == FeedbackKind.csat)
            .group_by(Feedback.stage),
        )
        assert csat_by_stage[Stage.support] < csat_by_stage[Stage.purchase] - 0.5
        by_carrier = await _pairs(
            session,
            select(Order.carrier, func.avg(Feedback.score))
            .join(Order, Order.id == Feedback.order_id)
            .join(SurveyDispatch, SurveyDispatch.id == Feedback.survey_dispatch_id)
            .where(
                Feedback.kind == FeedbackKind.csat,
                SurveyDispatch.trigger == surveys.TRIGGER_ORDER_DELIVERED,
            )
            .group_by(Order.carrier),
        )
        others = [score for carrier, score in by_carrier.items() if carrier != "DPD"]
        assert by_carrier["DPD"] < min(others)


async def test_default_now_is_the_current_time(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    assert (await demo.load_demo_data(factory)).created
    async with factory() as session:
        delivered = await session.scalar(select(Order.delivered_at).where(Order.number == "A10001"))
    assert delivered is not None
    assert timedelta(days=2) < datetime.now(timezone.utc) - delivered < timedelta(days=4)


async def test_all_or_nothing(
    factory: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = feedback_domain.record

    async def failing_record(session: AsyncSession, new: NewFeedback) -> object:
        nonlocal calls
        calls += 1
        if calls == 50:
            raise RuntimeError("disk full")
        return await original(session, new)

    monkeypatch.setattr(feedback_domain, "record", failing_record)
    with pytest.raises(RuntimeError):
        await demo.load_demo_data(factory, now=NOW)
    assert calls == 50
    assert set((await _counts(factory)).values()) == {0}


# --- the crowd: a year of a real shop in bulk (issue #21, bot/demo/crowd.py) ---------------

CROWD = 2000


@pytest.fixture(scope="module")
def crowd_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, demo.DemoSummary]:
    path = tmp_path_factory.mktemp("crowd") / "crowd.db"

    async def build() -> demo.DemoSummary:
        engine = await _engine(path)
        try:
            return await demo.load_demo_data(create_session_factory(engine), now=NOW, crowd=CROWD)
        finally:
            await engine.dispose()

    return path, asyncio.run(build())


@pytest.fixture
async def crowd(
    crowd_db: tuple[Path, demo.DemoSummary],
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], demo.DemoSummary]]:
    path, summary = crowd_db
    engine = create_engine("sqlite+aiosqlite:///" + str(path))
    yield create_session_factory(engine), summary
    await engine.dispose()


async def test_crowd_volumes_and_the_same_rules(
    crowd: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    factory, summary = crowd
    assert summary.created
    assert summary.customers >= 2000 and summary.feedback >= 8000
    counts = await _counts(factory)
    assert counts["customers"] == summary.customers
    assert counts["feedback"] == summary.feedback
    assert counts["survey_dispatches"] == summary.dispatches
    assert counts["lifecycles"] == summary.lifecycles
    # Every rule the hand-made history keeps holds for the crowd too.
    await test_each_order_has_one_lifecycle_and_consistent_times(crowd)
    await test_feedback_scores_and_times(crowd)
    await test_no_recent_survey_for_readme_customers(crowd)
    await test_readme_orders_exactly_as_documented(crowd)
    async with factory() as session:
        emails = list(await session.scalars(select(Customer.email)))
        assert len(set(emails)) == len(emails)
        in_year = await session.scalar(
            select(func.count())
            .select_from(Feedback)
            .where(Feedback.created_at >= NOW - timedelta(days=365))
        )
        assert in_year is not None and in_year >= 8000


async def test_crowd_seasonality_pitfall_and_emerging_theme(
    crowd: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    from bot.domain import fix_first, journey
    from bot.domain.feedback_query import DateRange, FeedbackFilter

    factory, _ = crowd
    async with factory() as session:
        placed = list(
            await session.scalars(select(Order.placed_at).where(Order.number >= "A30001"))
        )
        by_month: dict[int, int] = {}
        for at in placed:
            by_month[at.month] = by_month.get(at.month, 0) + 1
        # NOW is mid-June 2025: November 2024 (Black Friday) against February 2025.
        assert by_month[11] > 1.8 * by_month[2]

        flt = FeedbackFilter(DateRange((NOW - timedelta(days=364)).date(), NOW.date()))
        found = await journey.journey_map(session, flt, journey.PitfallThresholds())
        email = [
            p
            for p in found.pitfalls
            if (p.stage, p.channel, p.metric) == ("support", "email", "csat")
        ]
        assert email and email[0].value < 20
        items = await fix_first.fix_first(session, flt, found, fix_first.FixRules(as_of=NOW))
        assert "pitfall:support:email" in [i.key for i in items[:2]]

        async def website(weeks_ago: int) -> int:
            end = NOW - timedelta(weeks=weeks_ago)
            n = await session.scalar(
                select(func.count())
                .select_from(Feedback)
                .where(
                    Feedback.created_at >= end - timedelta(weeks=2),
                    Feedback.created_at < end,
                    Feedback.sentiment < -0.05,
                    cast(Feedback.themes, Text).like('%"website"%'),
                )
            )
            return int(n or 0)

        recent, before = await website(0), await website(8)
        assert recent >= 10 and recent > 4 * max(before, 1)


async def test_crowd_support_operations_and_insights(
    crowd: tuple[async_sessionmaker[AsyncSession], demo.DemoSummary],
) -> None:
    """Escalations handled by the demo agents (bot/demo/support.py): the Support operations
    figures come out of the real tables, per agent with support CSAT; two applied insights
    with at least 14 days of data on each side."""
    factory, _summary = crowd
    date_range = DateRange((NOW - timedelta(days=365)).date(), NOW.date(), ZoneInfo("UTC"))
    async with factory() as session:
        ops = await support_ops.support_operations(session, date_range, NOW)
        found = ops.as_json(10)
        board = list(await session.scalars(select(Insight).order_by(Insight.id)))
        compared = [await insights.compare(session, i, NOW) for i in board]
    total = found["total"]
    assert total["escalations"] == 566
    assert total["first_reply"] == {
        "chats": 482,
        "replied": 482,
        "mean_minutes": 7.9,
        "within_sla": 430,
        "within_sla_percent": 89.2,
        "within_sla_interval": [86.1, 91.7],
    }
    assert total["resolution"]["resolved"] == 566
    assert total["resolution"]["mean_hours"] == 5.7
    assert total["sla_breaches"] == {"first_reply": 52, "resolution": 15}
    assert {r["reason"]: r["escalations"] for r in found["by_reason"]} == {
        "customer_request": 482,
        "negative_feedback": 84,
    }
    assert [
        (a["name"], a["escalations"], a["csat"]["responses"], a["csat"]["percent"])
        for a in found["agents"]
    ] == [
        ("Sam (support)", 313, 170, 70.0),
        ("Alex (support)", 253, 123, 66.7),
    ]
    assert [i.status for i in board] == [InsightStatus.applied] * 2
    for comparison in compared:
        assert comparison is not None and not comparison.too_early
        assert comparison.before.csat_responses >= 10 and comparison.after.csat_responses >= 10
