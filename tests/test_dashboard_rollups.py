"""The rollups of migration 0009 agree with the rows they summarise, after every kind of write:
survey dispatches per acquisition source (and the re-keying of feedback and dispatches when a
journey's or a customer's source changes), the journey links (PostgreSQL) and erasure."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import journey, metrics, privacy
from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    Stage,
)
from bot.domain.feedback_query import DateRange, FeedbackFilter
from bot.storage.models import Customer, Feedback, Lifecycle, Order, OrderItem, SurveyDispatch
from tests.dashboard_data import Seeded, at, seed

Factory = async_sessionmaker[AsyncSession]
WIDE = (date(2026, 1, 1), date(2026, 4, 30))
THRESHOLDS = journey.PitfallThresholds()
# Ranges across and inside months, single days, and wider than the data.
JOURNEY_RANGES = [
    WIDE,
    (date(2026, 3, 1), date(2026, 3, 31)),
    (date(2026, 3, 2), date(2026, 3, 2)),
    (date(2026, 3, 1), date(2026, 3, 1)),
    (date(2026, 2, 15), date(2026, 3, 10)),
    (date(2026, 1, 21), date(2026, 4, 9)),
    (date(2025, 12, 20), date(2026, 5, 3)),
]


def _pair(start: date, end: date) -> tuple[FeedbackFilter, FeedbackFilter]:
    """(from the rollups, from the rows): "Etc/UTC" is UTC too, but never the key "UTC"."""
    return (
        FeedbackFilter(DateRange(start, end)),
        FeedbackFilter(DateRange(start, end, ZoneInfo("Etc/UTC"))),
    )


def _groups(found: list[metrics.GroupMetrics]) -> list[tuple[Any, ...]]:
    return [(g.key, g.label, g.counts, g.previous) for g in found]


async def _sources(factory: Factory, start: date, end: date) -> list[tuple[Any, ...]]:
    """The acquisition-source breakdown, after checking the rollups agree with the rows."""
    rolled, raw = _pair(start, end)
    async with factory() as db:
        by_rollup = await metrics.breakdown(db, rolled, "acquisition_source")
        by_rows = await metrics.breakdown(db, raw, "acquisition_source")
        for dimension in metrics.DIMENSIONS:
            assert _groups(await metrics.breakdown(db, rolled, dimension)) == _groups(
                await metrics.breakdown(db, raw, dimension)
            ), dimension
        narrowed = [
            await metrics.metric_counts(db, flt)
            for flt in (
                FeedbackFilter(rolled.range, acquisition="search"),
                FeedbackFilter(raw.range, acquisition="search"),
            )
        ]
    assert _groups(by_rollup) == _groups(by_rows)
    assert narrowed[0] == narrowed[1]
    for other in JOURNEY_RANGES:  # whole months from the monthly rows, the rest daily
        rolled_other, raw_other = _pair(*other)
        async with factory() as db:
            for dimension in ("product", "trigger", "acquisition_source"):
                assert _groups(await metrics.breakdown(db, rolled_other, dimension)) == _groups(
                    await metrics.breakdown(db, raw_other, dimension)
                ), (other, dimension)
    return [
        (g.key, g.counts.volume, g.counts.dispatches_sent, g.counts.dispatches_answered)
        for g in by_rollup
    ]


async def _journeys_agree(factory: Factory) -> dict[str, int]:
    """Journey maps from the links and from the journeys agree on every range; returns the
    customers per stage of the wide range."""
    for start, end in JOURNEY_RANGES:
        rolled, raw = _pair(start, end)
        async with factory() as db:
            links = await journey.link_counts(db, rolled)
            assert (links is not None) == (db.get_bind().dialect.name == "postgresql")
            a = (await journey.journey_map(db, rolled, THRESHOLDS)).as_json()
            b = (await journey.journey_map(db, raw, THRESHOLDS)).as_json()
        assert a == b, (start, end)
    async with factory() as db:
        found = await journey.journey_map(db, _pair(*WIDE)[0], THRESHOLDS)
    return {s.stage: s.customers for s in found.stages}


@pytest.fixture
async def seeded(session_factory: Factory) -> Seeded:
    return await seed(session_factory)


async def test_sources_follow_journey_and_customer_source_changes(
    session_factory: Factory, seeded: Seeded
) -> None:
    factory, c1, c2, c3 = session_factory, *seeded.customers.values()
    assert await _sources(factory, *WIDE) == [
        ("search", 9, 2, 2),
        ("ad", 7, 2, 1),
        ("unknown", 2, 0, 0),
    ]
    async with factory() as db, db.begin():
        # A journey gets its own source; a customer's source changes for the journeys
        # without one (c1's February journey) but not for those with one (c2's).
        await db.execute(
            update(Lifecycle)
            .where(Lifecycle.customer_id == c3)
            .values(acquisition_channel=AcquisitionSource.friend)
        )
        await db.execute(
            update(Customer)
            .where(Customer.id.in_([c1, c2]))
            .values(acquisition_source=AcquisitionSource.social)
        )
    assert await _sources(factory, *WIDE) == [
        ("ad", 7, 2, 1),
        ("search", 7, 1, 1),
        ("friend", 2, 0, 0),
        ("social", 2, 1, 1),
    ]
    async with factory() as db, db.begin():
        # "How did you hear about us": the answer is written, then both sources are set.
        journey_id = await db.scalar(select(Lifecycle.id).where(Lifecycle.customer_id == c3))
        assert journey_id is not None
        db.add(_feedback(c3, journey_id, "2026-03-20T10:00:00", FeedbackKind.discovery_source))
        await db.flush()
        lifecycle = await db.get(Lifecycle, journey_id)
        customer = await db.get(Customer, c3)
        assert lifecycle is not None and customer is not None
        lifecycle.acquisition_channel = AcquisitionSource.ad
        customer.acquisition_source = AcquisitionSource.ad
        db.add(_dispatch(c3, journey_id, "2026-03-21T10:00:00", answered=True))
    assert await _sources(factory, *WIDE) == [
        ("ad", 10, 3, 2),
        ("search", 7, 1, 1),
        ("social", 2, 1, 1),
    ]
    async with factory() as db, db.begin():
        # A journey moved to another customer takes that customer's source (c1's February
        # journey has none of its own: from c1's social to c2's, also social, then search).
        await db.execute(
            update(Lifecycle)
            .where(Lifecycle.opened_at < at("2026-03-01T00:00:00"))
            .values(customer_id=c2)
        )
        await db.execute(
            update(Customer)
            .where(Customer.id == c2)
            .values(acquisition_source=AcquisitionSource.search)
        )
        await db.execute(
            update(SurveyDispatch)
            .where(SurveyDispatch.trigger == "order_delivered")
            .values(answered_at=None)
        )
        await db.execute(
            delete(SurveyDispatch).where(
                SurveyDispatch.trigger == "order_delivered", SurveyDispatch.customer_id == c2
            )
        )
        await db.execute(delete(Feedback).where(Feedback.kind == FeedbackKind.nps))
    assert await _sources(factory, *WIDE) == [
        ("search", 7, 2, 1),
        ("ad", 6, 2, 2),
    ]
    assert await _sources(factory, date(2026, 3, 1), date(2026, 3, 31)) == [
        ("ad", 6, 2, 2),
        ("search", 4, 1, 0),
    ]


async def _products(factory: Factory) -> list[tuple[str, str, int]]:
    for start, end in JOURNEY_RANGES:
        rolled, raw = _pair(start, end)
        async with factory() as db:
            assert _groups(await metrics.breakdown(db, rolled, "product")) == _groups(
                await metrics.breakdown(db, raw, "product")
            ), (start, end)
    async with factory() as db:
        found = await metrics.breakdown(
            db, _pair(date(2026, 3, 1), date(2026, 3, 31))[0], "product"
        )
    return [(g.key, g.label, g.counts.volume) for g in found]


async def test_products_follow_items_added_moved_and_removed_after_the_feedback(
    session_factory: Factory, seeded: Seeded
) -> None:
    factory = session_factory
    assert await _products(factory) == [("SKU-A", "Alpha mug", 6), ("SKU-B", "Beta jug", 3)]
    async with factory() as db, db.begin():
        o1, o2 = (await db.scalars(select(Order.id).order_by(Order.number))).all()
        # Late items, twice the same product in one statement: its feedback counts once.
        item = {"quantity": 1, "unit_price": Decimal("1.00"), "name": "Gamma cup"}
        await db.execute(insert(OrderItem).values([{**item, "order_id": o2, "sku": "SKU-C"}] * 2))
    assert await _products(factory) == [
        ("SKU-A", "Alpha mug", 6),
        ("SKU-B", "Beta jug", 3),
        ("SKU-C", "Gamma cup", 3),
    ]
    async with factory() as db, db.begin():
        one = await db.scalar(select(func.min(OrderItem.id)).where(OrderItem.sku == "SKU-C"))
        await db.execute(delete(OrderItem).where(OrderItem.id == one))  # the other stays
    assert await _products(factory) == [
        ("SKU-A", "Alpha mug", 6),
        ("SKU-B", "Beta jug", 3),
        ("SKU-C", "Gamma cup", 3),
    ]
    async with factory() as db, db.begin():
        await db.execute(
            update(OrderItem).where(OrderItem.sku == "SKU-B").values(sku="SKU-C", name="Gamma cup")
        )
    assert await _products(factory) == [("SKU-A", "Alpha mug", 6), ("SKU-C", "Gamma cup", 6)]
    async with factory() as db, db.begin():
        await db.execute(delete(OrderItem).where(OrderItem.order_id == o2))
    assert await _products(factory) == [("SKU-A", "Alpha mug", 3), ("SKU-C", "Gamma cup", 3)]
    assert o1 != o2


async def test_erasure_keeps_every_rollup_equal_to_the_rows(
    session_factory: Factory, seeded: Seeded
) -> None:
    before = await _sources(session_factory, *WIDE)
    reached = await _journeys_agree(session_factory)
    async with session_factory() as db, db.begin():
        erased = await privacy.erase_customer(db, seeded.customers["C2"])
    assert erased.counts["feedback_texts"] == 1
    assert await _sources(session_factory, *WIDE) == before  # metrics are kept
    assert await _journeys_agree(session_factory) == reached


async def test_journey_links_follow_inserts_updates_moves_and_deletes(
    session_factory: Factory, seeded: Seeded
) -> None:
    factory, c1, c2, c3 = session_factory, *seeded.customers.values()
    assert await _journeys_agree(factory) == {
        "discovery": 3,
        "research": 2,
        "purchase": 2,
        "use": 2,
        "support": 1,
    }
    async with factory() as db, db.begin():
        # Same day as an existing journey, other months, one statement for several.
        db.add_all(
            [
                _journey(c1, "2026-03-01T08:00:00", Stage.discovery, None),
                _journey(c1, "2026-04-02T08:00:00", Stage.research, AcquisitionSource.friend),
                _journey(c2, "2026-04-10T08:00:00", Stage.research, AcquisitionSource.friend),
                _journey(c3, "2026-01-20T08:00:00", Stage.support, None),
                _journey(c3, "2026-02-20T08:00:00", Stage.purchase, AcquisitionSource.ad),
            ]
        )
    assert await _journeys_agree(factory) == {
        "discovery": 3,
        "research": 3,
        "purchase": 3,
        "use": 3,
        "support": 2,
    }
    async with factory() as db, db.begin():
        # Several journeys of one customer in one statement (the chains must not be
        # recomputed row by row), moved across months, to another customer, re-sourced.
        await db.execute(
            update(Lifecycle).where(Lifecycle.customer_id == c1).values(stage=Stage.use)
        )
        for moved in (await db.scalars(select(Lifecycle).where(Lifecycle.customer_id == c2))).all():
            moved.opened_at += timedelta(days=20)  # across a month end
        await db.flush()
        await db.execute(
            update(Lifecycle)
            .where(Lifecycle.opened_at == at("2026-01-20T08:00:00"))
            .values(customer_id=c1, acquisition_channel=AcquisitionSource.other)
        )
    assert await _journeys_agree(factory) == {
        "discovery": 3,
        "research": 3,
        "purchase": 3,
        "use": 2,
        "support": 2,
    }
    async with factory() as db, db.begin():
        await db.execute(delete(Lifecycle).where(Lifecycle.opened_at >= at("2026-04-01T00:00:00")))
        await db.execute(text("UPDATE lifecycles SET stage = 'support' WHERE stage = 'use'"))
    assert await _journeys_agree(factory) == {
        "discovery": 3,
        "research": 3,
        "purchase": 3,
        "use": 2,
        "support": 2,
    }


def _journey(
    customer_id: int, opened: str, stage: Stage, source: AcquisitionSource | None
) -> Lifecycle:
    return Lifecycle(
        customer_id=customer_id,
        kind=LifecycleKind.one_time,
        stage=stage,
        opened_at=at(opened),
        acquisition_channel=source,
    )


def _feedback(customer_id: int, lifecycle_id: int, created: str, kind: FeedbackKind) -> Feedback:
    return Feedback(
        idempotency_key=f"x-{customer_id}-{created}",
        customer_id=customer_id,
        lifecycle_id=lifecycle_id,
        stage=Stage.discovery,
        channel=Channel.website_chat,
        source=FeedbackSource.chat_survey,
        kind=kind,
        text="a friend told me",
        created_at=at(created),
    )


def _dispatch(customer_id: int, lifecycle_id: int, sent: str, *, answered: bool) -> SurveyDispatch:
    moment = at(sent)
    return SurveyDispatch(
        customer_id=customer_id,
        lifecycle_id=lifecycle_id,
        trigger="discovery",
        survey_kind=FeedbackKind.discovery_source,
        created_at=moment,
        sent_at=moment,
        answered_at=moment + timedelta(minutes=1) if answered else None,
    )


def test_month_split_reads_whole_months_from_the_monthly_rows() -> None:
    d = date
    assert metrics.month_split(d(2024, 11, 27), d(2026, 11, 26)) == (
        [(d(2024, 11, 27), d(2024, 11, 30)), (d(2026, 11, 1), d(2026, 11, 26))],
        (d(2024, 12, 1), d(2026, 11, 1)),
    )
    assert metrics.month_split(d(2026, 1, 1), d(2026, 4, 30)) == (
        [],
        (d(2026, 1, 1), d(2026, 5, 1)),
    )
    assert metrics.month_split(d(2026, 2, 15), d(2026, 3, 10)) == (
        [(d(2026, 2, 15), d(2026, 3, 10))],
        None,
    )
    assert metrics.month_split(d(2026, 1, 31), d(2026, 3, 31)) == (
        [(d(2026, 1, 31), d(2026, 1, 31))],
        (d(2026, 2, 1), d(2026, 4, 1)),
    )
    assert metrics.month_split(d(2025, 12, 1), d(2025, 12, 31)) == (
        [],
        (d(2025, 12, 1), d(2026, 1, 1)),
    )


async def test_concurrent_journeys_of_one_customer_are_linked_once(
    session_factory: Factory, seeded: Seeded
) -> None:
    """Two transactions add a journey for the same customer at once: the second one's
    trigger waits for the first to commit and then sees its journey (PostgreSQL)."""
    import asyncio

    if session_factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("journey links are kept on PostgreSQL only")
    c1 = seeded.customers["C1"]
    async with session_factory() as first, session_factory() as second:
        async with first.begin():
            first.add(_journey(c1, "2026-03-05T08:00:00", Stage.research, None))
            await first.flush()
            await second.begin()
            second.add(_journey(c1, "2026-03-06T08:00:00", Stage.research, None))
            waiting = asyncio.create_task(second.flush())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # blocked by the first transaction's customer lock
        await waiting
        await second.commit()
    assert await _journeys_agree(session_factory) == {
        "discovery": 3,
        "research": 2,
        "purchase": 2,
        "use": 2,
        "support": 1,
    }
