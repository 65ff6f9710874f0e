"""The per-lifecycle loyalty summary (bot/storage/rollup_loyalty.py, PostgreSQL) stays equal to
the raw rows after inserts, moves and erasure, and the figures read from it equal the ones
computed from the raw rows (issue #25 item 4)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import delete, insert, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import loyalty, privacy
from bot.domain.enums import (
    AcquisitionSource,
    EscalationReason,
    FeedbackKind,
    LifecycleKind,
    OrderStatus,
    Stage,
)
from bot.domain.feedback_query import DateRange
from bot.storage import rollup_loyalty
from bot.storage.models import Conversation, Customer, Escalation, Feedback, Lifecycle, Order
from tests.loyalty_data import AS_OF, at, seed_loyalty

Factory = async_sessionmaker[AsyncSession]
COLUMNS = ", ".join(rollup_loyalty.COLUMNS)
QUERIES = [
    loyalty.LoyaltyQuery(DateRange(date(2026, 1, 1), date(2026, 3, 31)), AS_OF, 90),
    loyalty.LoyaltyQuery(DateRange(date(2026, 1, 1), date(2026, 3, 31)), AS_OF, 31),
    loyalty.LoyaltyQuery(DateRange(date(2026, 2, 1), date(2026, 2, 28)), AS_OF, 120),
    loyalty.LoyaltyQuery(DateRange(date(2024, 6, 15), date(2026, 6, 14)), AS_OF, 90),
]


@pytest.fixture
async def ids(session_factory: Factory) -> dict[str, int]:
    if session_factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the loyalty summary is kept on PostgreSQL only")
    return await seed_loyalty(session_factory)


async def _assert_exact(factory: Factory) -> None:
    """Table == the same columns computed from the raw rows; figures from it == from rows."""
    async with factory() as db:
        kept = (await db.execute(text(f"SELECT {COLUMNS} FROM lifecycle_loyalty"))).all()
        state = rollup_loyalty.state_select("TRUE")
        fresh = (await db.execute(text(f"SELECT {COLUMNS} FROM ({state}) AS s"))).all()
        assert sorted(kept) == sorted(fresh)
        lifecycles = await db.scalar(select(Lifecycle.id).order_by(Lifecycle.id.desc()).limit(1))
        assert len(kept) == len((await db.scalars(select(Lifecycle.id))).all()), (
            f"one row per lifecycle (last {lifecycles})"
        )
        for query in QUERIES:
            summary = await loyalty.overview(db, query)
            rows = await loyalty.overview(db, query, from_rows=True)
            assert summary.as_json() == rows.as_json()
        await _assert_scan_columns(db)


def _band(n: int, total: int, bounds: tuple[tuple[int, int], ...], below: int) -> int:
    """Index of the band of the mean total / n (3: no answer), compared as a fraction."""
    if n == 0:
        return 3
    mean = Fraction(total, n)
    return next((band for bound, band in bounds if mean >= bound), below)


async def _assert_scan_columns(db: AsyncSession) -> None:
    """The generated columns of migration 0033 (bands, support, gap to the next purchase)
    equal the same figures computed here from the raw rows' values, in Python."""
    state = rollup_loyalty.state_select("TRUE")
    fresh = (
        await db.execute(
            text(
                "SELECT lifecycle_id, csat_n, csat_sum, nps_n, nps_sum, escalated, stage, "
                f"opened_at, next_opened_at FROM ({state}) AS s"
            )
        )
    ).all()
    expected = {}
    for row in fresh:
        csat = 2 if row.csat_n and Fraction(row.csat_sum, row.csat_n) <= 2 else 1
        gap = None
        if row.next_opened_at is not None:
            micros = (row.next_opened_at - row.opened_at) // timedelta(microseconds=1)
            gap = -(-micros // (86_400 * 10**6))  # whole days, rounded up
        expected[row.lifecycle_id] = (
            _band(row.csat_n, row.csat_sum, ((4, 0),), csat),
            _band(row.nps_n, row.nps_sum, ((9, 0), (7, 1)), 2),
            2 if row.escalated else 1 if row.stage == Stage.support.value else 0,
            gap,
        )
    kept = (
        await db.execute(
            text(
                "SELECT lifecycle_id, csat_band, nps_band, support, gap_days FROM lifecycle_loyalty"
            )
        )
    ).all()
    assert {r[0]: tuple(r[1:]) for r in kept} == expected


async def _order(db: AsyncSession, customer: int, opened: str) -> Order:
    number = f"S{customer}-{opened[:10]}"
    order = Order(
        number=number,
        customer_id=customer,
        status=OrderStatus.delivered,
        total=10,
        currency="EUR",
        shipping_address="x",
        placed_at=at(opened),
    )
    db.add(order)
    await db.flush()
    return order


async def _lifecycle(db: AsyncSession, customer: int, opened: str, **kw: Any) -> Lifecycle:
    order = await _order(db, customer, opened)
    row = Lifecycle(
        customer_id=customer,
        kind=LifecycleKind.one_time,
        stage=kw.pop("stage", Stage.use),
        opened_at=at(opened),
        order_id=order.id,
        **kw,
    )
    db.add(row)
    await db.flush()
    return row


async def _score(db: AsyncSession, lifecycle: Lifecycle, kind: FeedbackKind, score: int) -> int:
    row = Feedback(
        idempotency_key=f"t-{lifecycle.id}-{kind.value}-{score}",
        customer_id=lifecycle.customer_id,
        lifecycle_id=lifecycle.id,
        stage=lifecycle.stage,
        channel="website_chat",
        source="chat_survey",
        kind=kind,
        score=score,
        created_at=lifecycle.opened_at,
    )
    db.add(row)
    await db.flush()
    return row.id


async def test_seeded_history_is_summarised_exactly(session_factory: Factory, ids: Any) -> None:
    await _assert_exact(session_factory)
    async with session_factory() as db:
        rows = (await db.execute(text("SELECT count(*) FROM lifecycle_loyalty"))).scalar()
    assert rows == 21  # every lifecycle, the discovery journey of G included


async def test_inserts_keep_the_summary_exact(session_factory: Factory, ids: Any) -> None:
    async with session_factory() as db, db.begin():
        # A purchase between A's first two: every later position of A moves.
        middle = await _lifecycle(db, ids["A"], "2026-02-01T10:00:00")
        await _score(db, middle, FeedbackKind.csat, 2)
        await _score(db, middle, FeedbackKind.nps, 8)
        # Several lifecycles of several customers in one statement.
        await db.execute(
            insert(Lifecycle),
            [
                {
                    "customer_id": ids["G"],
                    "kind": "one_time",
                    "stage": "research",
                    "opened_at": at("2026-02-20T10:00:00"),
                },
                {
                    "customer_id": ids["D"],
                    "kind": "one_time",
                    "stage": "discovery",
                    "opened_at": at("2026-02-21T10:00:00"),
                },
            ],
        )
        # An escalation by customer and time lands in A's new lifecycle.
        db.add(
            Escalation(
                customer_id=ids["A"],
                reason=EscalationReason.fallback,
                priority=1,
                created_at=at("2026-02-03T10:00:00"),
            )
        )
    await _assert_exact(session_factory)


async def test_moves_keep_the_summary_exact(session_factory: Factory, ids: Any) -> None:
    async with session_factory() as db, db.begin():
        a_first = await db.scalar(
            select(Lifecycle).where(Lifecycle.customer_id == ids["A"]).order_by(Lifecycle.id)
        )
        assert a_first is not None
        # A lifecycle moves to another customer (a merge of two accounts).
        await db.execute(
            update(Lifecycle).where(Lifecycle.id == a_first.id).values(customer_id=ids["D"])
        )
    await _assert_exact(session_factory)
    async with session_factory() as db, db.begin():
        # Feedback moves to another lifecycle; the low CSAT of B carries its escalation.
        b1 = await db.scalar(select(Lifecycle.id).where(Lifecycle.customer_id == ids["B"]))
        k1 = await db.scalar(
            select(Lifecycle.id).where(Lifecycle.customer_id == ids["K"]).order_by(Lifecycle.id)
        )
        await db.execute(
            update(Feedback).where(Feedback.lifecycle_id == b1).values(lifecycle_id=k1)
        )
        # A score changed, a kind changed.
        await db.execute(
            update(Feedback)
            .where(Feedback.customer_id == ids["C"], Feedback.kind == FeedbackKind.nps)
            .values(score=10)
        )
        # Sources, stage, opening time, closing time, purchase status.
        await db.execute(
            update(Customer)
            .where(Customer.id == ids["E"])
            .values(acquisition_source=AcquisitionSource.friend)
        )
        await db.execute(
            update(Lifecycle)
            .where(Lifecycle.customer_id == ids["J"])
            .values(
                stage=Stage.support,
                opened_at=Lifecycle.opened_at + literal_column("interval '1 day'"),
            )
        )
        await db.execute(
            update(Lifecycle)
            .where(Lifecycle.customer_id == ids["M"])
            .values(closed_at=at("2026-03-20T10:00:00"))
        )
        g = await db.scalar(select(Lifecycle.id).where(Lifecycle.customer_id == ids["G"]))
        await db.execute(
            update(Lifecycle)
            .where(Lifecycle.id == g)
            .values(order_id=(await _order(db, ids["G"], "2026-02-02T10:00:00")).id)
        )
    async with session_factory() as db, db.begin():
        # J's chat moves to another order: the escalation follows it.
        c1 = await db.scalar(
            select(Lifecycle.order_id)
            .where(Lifecycle.customer_id == ids["C"])
            .order_by(Lifecycle.id)
        )
        await db.execute(
            update(Conversation).where(Conversation.id == "conv-j").values(order_id=c1)
        )
        # An escalation moves to another customer; another is removed.
        await db.execute(
            update(Escalation)
            .where(Escalation.customer_id == ids["K"])
            .values(customer_id=ids["E"])
        )
        await db.execute(delete(Escalation).where(Escalation.conversation_id == "conv-c"))
    await _assert_exact(session_factory)


async def test_deletes_and_erasure_keep_the_summary_exact(
    session_factory: Factory, ids: Any
) -> None:
    async with session_factory() as db, db.begin():
        await privacy.erase_customer(db, ids["C"])
        await privacy.erase_customer(db, ids["B"])
    await _assert_exact(session_factory)
    async with session_factory() as db, db.begin():
        a = (
            await db.scalars(
                select(Lifecycle.id).where(Lifecycle.customer_id == ids["A"]).order_by(Lifecycle.id)
            )
        ).all()
        await db.execute(delete(Feedback).where(Feedback.lifecycle_id == a[1]))
        await db.execute(delete(Lifecycle).where(Lifecycle.id == a[1]))
        await db.execute(delete(Feedback).where(Feedback.customer_id == ids["E"]))
    await _assert_exact(session_factory)


async def test_bulk_feedback_deferred_to_the_set_based_delta(
    session_factory: Factory, ids: Any
) -> None:
    """The web-review import's path: row triggers skip the INSERTs, delta_ddl adds them."""
    from bot.storage import rollup

    async with session_factory() as db, db.begin():
        d = (await db.scalars(select(Lifecycle).where(Lifecycle.customer_id == ids["D"]))).all()
        connection = await db.connection()
        await connection.execute(text(f"SET LOCAL {rollup.DEFERRED_SETTING} = 'on'"))
        new = [await _score(db, lc, FeedbackKind.csat, 5) for lc in d]
        new.append(await _score(db, d[0], FeedbackKind.nps, 3))
        await connection.execute(text(f"SET LOCAL {rollup.DEFERRED_SETTING} = 'off'"))
        for statement in rollup.delta_ddl("postgresql"):
            await connection.execute(text(statement), {"ids": new})
    await _assert_exact(session_factory)


async def test_concurrent_purchases_of_one_customer(session_factory: Factory, ids: Any) -> None:
    """Two transactions add a purchase for the same customer at once: the second waits
    for the first (advisory lock) and then sees it, so the positions are right."""
    async with session_factory() as first, session_factory() as second:
        async with first.begin():
            await _lifecycle(first, ids["K"], "2026-04-01T10:00:00")
            await second.begin()
            waiting = asyncio.create_task(_lifecycle(second, ids["K"], "2026-04-02T10:00:00"))
            await asyncio.sleep(0.3)
            assert not waiting.done()
        await waiting
        await second.commit()
    await _assert_exact(session_factory)


async def test_gap_days_at_the_window_boundary(session_factory: Factory, ids: Any) -> None:
    """A next purchase 90 days and 1 µs later is 91 days away (not returned within 90
    days, returned within 91), one exactly 90 days later (J) is 90 days away: the stored
    gap equals the raw rows' comparison to the microsecond."""
    async with session_factory() as db, db.begin():
        first = await _lifecycle(db, ids["G"], "2026-01-05T10:00:00")
        await _lifecycle(db, ids["G"], "2026-04-05T10:00:00.000001")
    await _assert_exact(session_factory)
    async with session_factory() as db:
        gap = "SELECT gap_days FROM lifecycle_loyalty WHERE lifecycle_id = :id"
        assert await db.scalar(text(gap), {"id": first.id}) == 91
        j_first = await db.scalar(
            select(Lifecycle.id)
            .where(Lifecycle.customer_id == ids["J"])
            .order_by(Lifecycle.opened_at)
        )
        assert await db.scalar(text(gap), {"id": j_first}) == 90
        for window, returned in ((90, 0), (91, 1)):
            query = loyalty.LoyaltyQuery(
                DateRange(date(2026, 1, 5), date(2026, 1, 5)), AS_OF, window
            )
            summary = await loyalty.overview(db, query)
            assert (
                summary.as_json() == (await loyalty.overview(db, query, from_rows=True)).as_json()
            )
            assert (summary.returns.overall.lifecycles, summary.returns.overall.returned) == (
                1,
                returned,
            )
