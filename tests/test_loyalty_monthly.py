"""The monthly loyalty roll-up (bot/storage/rollup_loyalty_monthly.py, PostgreSQL) stays equal
to a recomputation from the per-lifecycle summary, and that summary to the raw rows, after
inserts, moves, erasure, the bulk path and concurrent purchases; the overview read from
the months equals the one computed from the raw rows and the 0033 scan of the summary
(issue #25 item 4)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import loyalty
from bot.domain.enums import FeedbackKind
from bot.domain.feedback_query import DateRange
from bot.storage import rollup_loyalty_monthly
from bot.storage.models import Feedback
from tests import test_loyalty_summary as summary_tests
from tests.loyalty_data import AS_OF, seed_loyalty

Factory = async_sessionmaker[AsyncSession]
COLUMNS = ", ".join(rollup_loyalty_monthly.COLUMNS)
BERLIN = ZoneInfo("Europe/Berlin")
# Ranges that end after every purchase (the monthly path), starting mid-month and on a
# month's first day, in UTC and Berlin, with windows from 1 day to the largest.
QUERIES = [
    loyalty.LoyaltyQuery(DateRange(date(2024, 6, 15), date(2026, 6, 14)), AS_OF, 90),
    loyalty.LoyaltyQuery(DateRange(date(2024, 6, 15), date(2026, 6, 14)), AS_OF, 730),
    loyalty.LoyaltyQuery(DateRange(date(2026, 1, 12), date(2026, 6, 14)), AS_OF, 31),
    loyalty.LoyaltyQuery(DateRange(date(2026, 2, 1), date(2026, 6, 20)), AS_OF, 1),
    loyalty.LoyaltyQuery(DateRange(date(2026, 1, 1), date(2026, 6, 14), BERLIN), AS_OF, 90),
    loyalty.LoyaltyQuery(DateRange(date(2025, 12, 20), date(2026, 7, 1)), AS_OF, 120),
    loyalty.LoyaltyQuery(
        DateRange(date(2026, 3, 17), date(2026, 6, 14)), datetime(2026, 6, 30, tzinfo=timezone.utc)
    ),
]


@pytest.fixture
async def ids(session_factory: Factory) -> dict[str, int]:
    if session_factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the loyalty roll-ups are kept on PostgreSQL only")
    return await seed_loyalty(session_factory)


async def _assert_monthly_exact(factory: Factory) -> None:
    async with factory() as db:
        kept = (await db.execute(text(rollup_loyalty_monthly.kept_select()))).all()
        state = rollup_loyalty_monthly.state_select()
        fresh = (await db.execute(text(f"SELECT {COLUMNS} FROM ({state}) AS s"))).all()
        assert sorted(kept) == sorted(fresh)
        last = await db.scalar(text("SELECT max(opened_at) FROM lifecycle_loyalty WHERE purchase"))
        for query in QUERIES:
            rows = (await loyalty.overview(db, query, from_rows=True)).as_json()
            assert (await loyalty.overview(db, query)).as_json() == rows, query
            if last is None or last < query.range.end_utc:  # the months answer this one
                monthly = await loyalty._monthly_figures(db, query)
                assert monthly == await loyalty.scan_figures(db, query)


async def test_seeded_history(session_factory: Factory, ids: Any) -> None:
    await _assert_monthly_exact(session_factory)
    async with session_factory() as db:
        months = await db.scalar(text("SELECT count(*) FROM lifecycle_loyalty_monthly"))
        storage = await db.scalar(
            text(
                "SELECT CAST(attstorage AS text) FROM pg_attribute WHERE attname = 'returned' "
                "AND attrelid = 'lifecycle_loyalty_monthly'::regclass"
            )
        )
    assert months and months > 10
    assert storage == "p"  # in the row, uncompressed (rollup_loyalty_monthly.storage_ddl)


async def test_inserts(session_factory: Factory, ids: Any) -> None:
    await summary_tests.test_inserts_keep_the_summary_exact(session_factory, ids)
    await _assert_monthly_exact(session_factory)


async def test_moves(session_factory: Factory, ids: Any) -> None:
    await summary_tests.test_moves_keep_the_summary_exact(session_factory, ids)
    await _assert_monthly_exact(session_factory)


async def test_deletes_and_erasure(session_factory: Factory, ids: Any) -> None:
    await summary_tests.test_deletes_and_erasure_keep_the_summary_exact(session_factory, ids)
    await _assert_monthly_exact(session_factory)


async def test_bulk_feedback(session_factory: Factory, ids: Any) -> None:
    await summary_tests.test_bulk_feedback_deferred_to_the_set_based_delta(session_factory, ids)
    await _assert_monthly_exact(session_factory)


async def test_concurrent_purchases(session_factory: Factory, ids: Any) -> None:
    await summary_tests.test_concurrent_purchases_of_one_customer(session_factory, ids)
    await _assert_monthly_exact(session_factory)


async def test_many_purchases_across_months_and_a_band_change(
    session_factory: Factory, ids: Any
) -> None:
    """Five purchases of one customer over five months (4+ in the distribution, the
    previous-purchase counts across the start's month), then a score that changes a band
    and one that does not (no write)."""
    async with session_factory() as db, db.begin():
        made = [
            await summary_tests._lifecycle(db, ids["G"], f"2026-0{m}-1{m}T10:00:00")
            for m in range(1, 6)
        ]
        await summary_tests._score(db, made[0], FeedbackKind.csat, 5)
    await _assert_monthly_exact(session_factory)
    async with session_factory() as db, db.begin():
        await db.execute(
            update(Feedback).where(Feedback.lifecycle_id == made[0].id).values(score=1)
        )
        await summary_tests._score(db, made[1], FeedbackKind.nps, 9)
    await _assert_monthly_exact(session_factory)
    rows = "SELECT count(*), max(id) FROM lifecycle_loyalty_monthly"
    async with session_factory() as db:
        before = (await db.execute(text(rows))).one()
    async with session_factory() as db, db.begin():
        await summary_tests._score(db, made[1], FeedbackKind.nps, 10)  # still a promoter
    async with session_factory() as db:
        assert (await db.execute(text(rows))).one() == before
    await _assert_monthly_exact(session_factory)


async def test_deltas_are_compacted(session_factory: Factory, ids: Any) -> None:
    """Scores that move one lifecycle between bands again and again: each change appends
    delta rows, the keys are added up into one row now and then."""
    async with session_factory() as db, db.begin():
        made = await summary_tests._lifecycle(db, ids["G"], "2026-05-20T10:00:00")
    for score in (1, 5, 1, 5, 1, 5, 1, 5, 1):
        async with session_factory() as db, db.begin():
            await db.execute(text("DELETE FROM feedback WHERE lifecycle_id = :id"), {"id": made.id})
            await summary_tests._score(db, made, FeedbackKind.csat, score)
    async with session_factory() as db:
        most = await db.scalar(
            text(
                "SELECT max(c) FROM (SELECT count(*) AS c FROM lifecycle_loyalty_monthly "
                f"GROUP BY {', '.join(rollup_loyalty_monthly.KEYS)}) AS k"
            )
        )
    # 18 deltas for its key (each change removes the lifecycle from one band, adds it to
    # the other); compacted by about one statement in COMPACT_EVERY once COMPACT_AT are there.
    limit = rollup_loyalty_monthly.COMPACT_AT + rollup_loyalty_monthly.COMPACT_EVERY
    assert most is not None and most < limit
    await _assert_monthly_exact(session_factory)


async def test_writers_of_one_month_do_not_wait_for_each_other(
    session_factory: Factory, ids: Any
) -> None:
    """Two open transactions add purchases of two customers in the same month with the
    same key of the monthly roll-up (June, no scores, no support, source search, not a
    first purchase): the second is not held up by the first."""
    async with session_factory() as first, session_factory() as second, first.begin():
        await summary_tests._lifecycle(first, ids["A"], "2026-06-10T10:00:00")
        await second.begin()
        await asyncio.wait_for(summary_tests._lifecycle(second, ids["D"], "2026-06-11T10:00:00"), 2)
        await second.commit()
    await _assert_monthly_exact(session_factory)


async def test_a_purchase_after_the_range_end_falls_back_to_the_scan(
    session_factory: Factory, ids: Any
) -> None:
    """Something opened at or after the range's end: the customer counts would need it, so
    the overview scans the summary (still equal to the raw rows)."""
    async with session_factory() as db, db.begin():
        await summary_tests._lifecycle(db, ids["K"], "2026-07-02T10:00:00")
    async with session_factory() as db:
        query = loyalty.LoyaltyQuery(DateRange(date(2025, 7, 1), date(2026, 6, 30)), AS_OF, 90)
        rows = (await loyalty.overview(db, query, from_rows=True)).as_json()
        assert (await loyalty.overview(db, query)).as_json() == rows
        # The months alone would count K's customer as having a purchase after the range.
        assert await loyalty._monthly_figures(db, query) != await loyalty.scan_figures(db, query)


_KEY = "0, DATE '2026-06-01', 3, 3, 0, 'search', false"  # June, no scores, search, not first
_COMPACT = (
    "SELECT lifecycle_loyalty_monthly_compact(ARRAY[0]::smallint[], ARRAY[DATE '2026-06-01'], "
    "ARRAY[3]::smallint[], ARRAY[3]::smallint[], ARRAY[0]::smallint[], "
    "ARRAY['search']::varchar(32)[], ARRAY[false])"
)
_ROWS = (
    "SELECT count(*) FROM lifecycle_loyalty_monthly WHERE (basis, month, csat_band, "
    f"nps_band, support, source, first) = ({_KEY})"
)


async def test_compaction_beside_open_writers(session_factory: Factory, ids: Any) -> None:
    """A compaction while another transaction has added rows to the same key and not
    committed: those rows are not touched and count once after both commit; a second
    compaction of the key while the first is open skips it at once (try-lock)."""
    async with session_factory() as db, db.begin():
        await summary_tests._lifecycle(db, ids["D"], "2026-06-11T10:00:00")  # key _KEY
        # Delta rows that cancel out, so that the key has enough rows to be compacted.
        columns = "basis, month, csat_band, nps_band, support, source, first, n, next_null, "
        for sign in (1, -1, 1, -1):
            await db.execute(
                text(
                    f"INSERT INTO lifecycle_loyalty_monthly ({columns}next2_null, next3_null) "
                    f"VALUES ({_KEY}, {sign}, {sign}, {sign}, {sign})"
                )
            )
    async with session_factory() as writer, session_factory() as first, session_factory() as second:
        async with writer.begin():
            await summary_tests._lifecycle(writer, ids["A"], "2026-06-12T10:00:00")
            before = await first.scalar(text(_ROWS))
            assert before is not None and before >= rollup_loyalty_monthly.COMPACT_AT
            await first.commit()
            async with first.begin():
                await first.execute(text(_COMPACT))
                assert await first.scalar(text(_ROWS)) == 1
                async with second.begin():
                    await asyncio.wait_for(second.execute(text(_COMPACT)), 2)  # skipped
                    assert await second.scalar(text(_ROWS)) == before
        async with writer.begin():
            assert await writer.scalar(text(_ROWS)) == 2  # the sum and the writer's row
    await _assert_monthly_exact(session_factory)
