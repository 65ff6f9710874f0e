"""The per-journey roll-up of "what to fix first" (migrations 0028-0029, rollup_fix.py)
agrees with the raw rows after every kind of write, on both databases: feedback inserted
(one and many per statement), changed, moved between journeys and deleted; journeys opened,
re-dated, moved to another customer and deleted; a customer erased. And the ranking read from
it equals the ranking read from the rows, for ranges and clocks that cut the data anywhere."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import fix_first, journey, privacy
from bot.domain.enums import (
    Channel,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    OrderStatus,
    Stage,
)
from bot.domain.feedback_query import DateRange, FeedbackFilter
from bot.storage import rollup_fix
from bot.storage.models import Feedback, Lifecycle, Order
from tests import fix_first_data as data

Factory = async_sessionmaker[AsyncSession]
COLUMNS = "lifecycle_id, key, day, returned, csat_n, csat_good, nps_n, nps_net"
SUMS = "journeys, returned, csat_n, csat_good, nps_n, nps_net"


async def _agrees(factory: Factory) -> int:
    """Both tables equal what the raw rows give now; returns journey_fix's row count."""
    async with factory() as db:
        dialect = db.get_bind().dialect.name
        truth = rollup_fix.recompute(dialect, None)
        kept = (await db.execute(text(f"SELECT {COLUMNS} FROM journey_fix ORDER BY 1, 2"))).all()
        fresh = (
            await db.execute(text(f"SELECT {COLUMNS} FROM ({truth}) AS t ORDER BY 1, 2"))
        ).all()
        assert [tuple(map(str, r)) for r in kept] == [tuple(map(str, r)) for r in fresh]
        daily = (
            await db.execute(
                text(
                    f"SELECT day, key, {SUMS} FROM journey_fix_daily WHERE journeys <> 0 ORDER BY 1, 2"
                )
            )
        ).all()
        summed = (
            await db.execute(
                text(
                    "SELECT day, key, COUNT(*), SUM(returned), SUM(csat_n), SUM(csat_good), "
                    f"SUM(nps_n), SUM(nps_net) FROM ({truth}) AS t GROUP BY day, key ORDER BY 1, 2"
                )
            )
        ).all()
        assert [tuple(map(str, r)) for r in daily] == [tuple(map(str, r)) for r in summed]
        # The month totals (migration 0029) are the daily rows' sums.
        month = (
            "date(day, 'start of month')"
            if dialect == "sqlite"
            else "date_trunc('month', day)::date"
        )
        monthly = (
            await db.execute(
                text(
                    f"SELECT month, key, {SUMS} FROM journey_fix_monthly WHERE journeys <> 0 ORDER BY 1, 2"
                )
            )
        ).all()
        by_month = (
            await db.execute(
                text(
                    f"SELECT {month} AS m, key, SUM(journeys), SUM(returned), SUM(csat_n), "
                    "SUM(csat_good), SUM(nps_n), SUM(nps_net) FROM journey_fix_daily "
                    f"GROUP BY {month}, key HAVING SUM(journeys) <> 0 ORDER BY 1, 2"
                )
            )
        ).all()
        assert [tuple(map(str, r)) for r in monthly] == [tuple(map(str, r)) for r in by_month]
        assert len(monthly) > 0
        # A day x key without journeys has nothing left in its sums.
        assert not (
            await db.execute(
                text(
                    "SELECT 1 FROM journey_fix_daily WHERE journeys = 0 AND (returned <> 0 OR "
                    "csat_n <> 0 OR csat_good <> 0 OR nps_n <> 0 OR nps_net <> 0)"
                )
            )
        ).all()
        return len(kept)


def _row(customer: int, lifecycle: int | None, at: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "idempotency_key": f"t:{customer}:{lifecycle}:{at.isoformat()}:{values}",
        "customer_id": customer,
        "lifecycle_id": lifecycle,
        "stage": Stage.use,
        "channel": Channel.email,
        "source": FeedbackSource.chat_survey,
        "kind": FeedbackKind.csat,
        "score": 2,
        "text": None,
        "sentiment": None,
        "themes": [],
        "created_at": at,
    }
    row.update(values)
    return row


async def test_rollup_follows_every_write(session_factory: Factory) -> None:
    plans = data.generate(11, "use_email")
    await data.write(session_factory, plans)
    assert await _agrees(session_factory) > 400
    a, b, c = plans[0], plans[1], plans[2]
    ja, jb = a.journeys[0], b.journeys[0]
    async with session_factory() as db, db.begin():
        customers = dict(
            (await db.execute(select(Lifecycle.id, Lifecycle.customer_id))).tuples().all()
        )
    ca, cb, cc = (
        customers[ja.lifecycle_id],
        customers[jb.lifecycle_id],
        customers[c.journeys[0].lifecycle_id],
    )
    at = ja.opened_at + timedelta(days=2)
    # One row, then several in one statement (a new cell, a negative theme, an NPS answer).
    async with session_factory() as db, db.begin():
        await db.execute(insert(Feedback).values(_row(ca, ja.lifecycle_id, at)))
    async with session_factory() as db, db.begin():
        await db.execute(
            insert(Feedback),
            [
                _row(ca, ja.lifecycle_id, at, channel=Channel.social, score=5),
                _row(
                    ca,
                    ja.lifecycle_id,
                    at,
                    kind=FeedbackKind.comment,
                    score=None,
                    sentiment=-0.7,
                    themes=["billing", "delivery"],
                    text="bad",
                ),
                _row(cb, jb.lifecycle_id, at, kind=FeedbackKind.nps, score=10),
                _row(cb, None, at),  # no journey: not counted
            ],
        )
    await _agrees(session_factory)
    # Changed figures, then rows moved from one journey to another.
    async with session_factory() as db, db.begin():
        await db.execute(
            update(Feedback)
            .where(Feedback.lifecycle_id == ja.lifecycle_id, Feedback.kind == FeedbackKind.csat)
            .values(score=5)
        )
        await db.execute(
            update(Feedback)
            .where(Feedback.lifecycle_id == ja.lifecycle_id, Feedback.kind == FeedbackKind.comment)
            .values(sentiment=0.2)
        )
    await _agrees(session_factory)
    async with session_factory() as db, db.begin():
        await db.execute(
            update(Feedback)
            .where(Feedback.lifecycle_id == ja.lifecycle_id)
            .values(lifecycle_id=jb.lifecycle_id, customer_id=cb)
        )
    await _agrees(session_factory)
    # A text change alone (the erasure's) changes nothing.
    async with session_factory() as db, db.begin():
        await db.execute(update(Feedback).where(Feedback.customer_id == cb).values(text="[erased]"))
    await _agrees(session_factory)
    # A new purchase journey 10 days after one makes it "returned"; re-dated, moved, deleted.
    async with session_factory() as db, db.begin():
        order = Order(
            number="T-1",
            customer_id=cb,
            status=OrderStatus.delivered,
            total=Decimal("1.00"),
            shipping_address="x",
            placed_at=jb.opened_at + timedelta(days=10),
        )
        db.add(order)
        await db.flush()
        new = Lifecycle(
            customer_id=cb,
            kind=LifecycleKind.one_time,
            stage=Stage.purchase,
            opened_at=jb.opened_at + timedelta(days=10),
            order_id=order.id,
        )
        db.add(new)
        await db.flush()
        new_id = new.id
    await _agrees(session_factory)
    async with session_factory() as db:
        returned = await db.scalar(
            text("SELECT returned FROM journey_fix WHERE lifecycle_id = :j AND key = 'all'"),
            {"j": jb.lifecycle_id},
        )
    assert returned == 1
    async with session_factory() as db, db.begin():
        await db.execute(
            update(Lifecycle)
            .where(Lifecycle.id == new_id)
            .values(opened_at=jb.opened_at + timedelta(days=120))
        )
    await _agrees(session_factory)
    async with session_factory() as db, db.begin():
        await db.execute(
            update(Lifecycle).where(Lifecycle.id == jb.lifecycle_id).values(customer_id=cc)
        )
        await db.execute(
            update(Feedback).where(Feedback.lifecycle_id == jb.lifecycle_id).values(customer_id=cc)
        )
    await _agrees(session_factory)
    async with session_factory() as db, db.begin():
        await db.execute(delete(Feedback).where(Feedback.lifecycle_id == jb.lifecycle_id))
        await db.execute(delete(Lifecycle).where(Lifecycle.id == jb.lifecycle_id))
    await _agrees(session_factory)
    # Erasure keeps the anonymised metrics: the roll-up stays as the rows say.
    before = await _agrees(session_factory)
    async with session_factory() as db, db.begin():
        await privacy.erase_customer(db, ca)
        await privacy.erase_customer(db, cc)
    assert await _agrees(session_factory) == before


async def _both(db: AsyncSession, flt: FeedbackFilter, as_of: datetime) -> tuple[Any, Any]:
    """(from the roll-up, from the rows), every candidate, in key order."""
    pitfalls = await journey.scored_pitfalls(db, flt, journey.PitfallThresholds())
    rules = fix_first.FixRules(as_of=as_of)
    rolled = await fix_first._from_rollup(db, flt, pitfalls, rules)
    rows = await fix_first._from_rows(db, flt, pitfalls, rules)
    return (
        sorted((i.as_json() for i in rolled), key=lambda i: i["key"]),
        sorted((i.as_json() for i in rows), key=lambda i: i["key"]),
    )


async def test_rollup_ranking_equals_the_rows(session_factory: Factory) -> None:
    await data.write(session_factory, data.generate(29, "support_billing"))
    ranges = [
        (date(2025, 7, 1), date(2026, 3, 31)),
        (date(2025, 9, 14), date(2026, 1, 3)),
        (date(2025, 11, 1), date(2025, 11, 30)),
        (date(2025, 10, 26), date(2025, 10, 26)),  # one day (Berlin: 25 hours)
    ]
    # Clocks whose return cut-off (90 days before) falls before, inside and after the data,
    # also mid-day (the journeys of the cut-off day are split by time).
    clocks = [
        data.NOW,
        datetime(2025, 12, 20, 13, 30, tzinfo=timezone.utc),
        datetime(2026, 1, 24, 0, 0, tzinfo=timezone.utc),
        datetime(2025, 8, 1, tzinfo=timezone.utc),
    ]
    compared = 0
    async with session_factory() as db:
        for tz in ("UTC", "Europe/Berlin", "America/New_York", "Pacific/Kiritimati"):
            for start, end in ranges:
                flt = FeedbackFilter(DateRange(start, end, ZoneInfo(tz)))
                assert fix_first.rollup_answers(flt, fix_first.FixRules(as_of=data.NOW))
                for as_of in clocks:
                    rolled, rows = await _both(db, flt, as_of)
                    assert rolled == rows, (tz, start, end, as_of)
                    compared += len(rows)
        # Filters and other return windows read the rows.
        narrowed = FeedbackFilter(
            DateRange(date(2025, 7, 1), date(2026, 3, 31)), stages=(Stage.use,)
        )
        assert not fix_first.rollup_answers(narrowed, fix_first.FixRules(as_of=data.NOW))
        wider = fix_first.FixRules(as_of=data.NOW, window_days=60)
        assert not fix_first.rollup_answers(FeedbackFilter(narrowed.range), wider)
    assert compared > 100


async def test_scored_pitfalls_are_the_maps(session_factory: Factory) -> None:
    """The fix-first endpoint reads only the CSAT/NPS pitfalls: the same as the map's."""
    await data.write(session_factory, data.generate(11, "use_email"))
    thresholds = journey.PitfallThresholds()
    async with session_factory() as db:
        for start, end in [
            (date(2025, 7, 1), date(2026, 3, 31)),
            (date(2025, 10, 1), date(2025, 12, 31)),
        ]:
            for tz in ("UTC", "Europe/Berlin"):
                flt = FeedbackFilter(DateRange(start, end, ZoneInfo(tz)))
                found = await journey.journey_map(db, flt, thresholds)
                expected = [p for p in found.pitfalls if p.metric in ("csat", "nps")]
                scored = await journey.scored_pitfalls(db, flt, thresholds)
                assert sorted(map(repr, scored)) == sorted(map(repr, expected))
                assert expected
