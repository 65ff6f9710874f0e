"""Loyalty figures at scale: python -m bench.loyalty [--database-url URL] [--calls 10] [--reuse]

Fills a dedicated PostgreSQL database (default `loyalty_bench`, dropped and created) with
100 000 customers, their purchase lifecycles over two years (one order each, 1-6 per
customer, about 350 000), 1 000 000 feedback rows on them (CSAT/NPS/comments) and 20 000
escalations, all with `generate_series` (seconds), then times the loyalty overview
(repeat rate, lifecycles per customer, renewals, return rates by experience) and the cohort
table for a 90-day and a 2-year range, with `SELECT count(*)` of the range's lifecycles as
the baseline of the same run. The load runs with the triggers off and then fills every
rollup from the rows (`rollup.all_backfill_ddl`). On PostgreSQL the overview reads the per-lifecycle summary
`lifecycle_loyalty` (issue #25 item 4); the same
figures computed from the raw rows (`from_rows=True`, the code before the summary) are timed
in the same run with `--raw-calls` calls (0 skips them), and the summary is checked equal
to the raw rows (`rollup_loyalty.state_select`). Since migration 0034 the overview reads the
monthly roll-up `lifecycle_loyalty_monthly` for the whole months of the range (filled by its
trigger from the summary's backfill, checked equal to `rollup_loyalty_monthly.state_select`);
the 0033 statement (one grouped scan of the summary) is timed in the same run as a
baseline. The summary's grouped statement as it was
before migration 0033 (bands as CASE over the sums, SUM(CASE) counts, the gap as an
interval) is timed in the same run as a second baseline. Prints a Markdown table and the
load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bench.stats import summary_ms
from bot.domain import loyalty
from bot.domain.feedback_query import DateRange
from bot.storage import rollup, rollup_loyalty, rollup_loyalty_monthly
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Base, Lifecycle, LifecycleLoyalty, utcnow

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench"

FILL = [
    """INSERT INTO customers (id, external_id, is_anonymous, acquisition_source, created_at)
       SELECT n, 'B' || n, false,
              (ARRAY['search','social','friend','ad','affiliate','marketing_email','other'])[1 + n % 7],
              now() - interval '730 days'
       FROM generate_series(1, 100000) AS n""",
    # 1-6 purchases per customer, spread over two years.
    """CREATE TEMP TABLE plan AS
       SELECT row_number() OVER () AS id, c AS customer_id,
              now() - (random() * 730) * interval '1 day' AS at
       FROM generate_series(1, 100000) AS c,
            generate_series(1, 1 + (c * 7919) % 6) AS k""",
    """INSERT INTO orders (id, number, customer_id, status, total, currency, shipping_address,
                          placed_at)
       SELECT id, 'O' || id, customer_id, 'delivered', 10, 'EUR', 'x', at FROM plan""",
    """INSERT INTO lifecycles (id, customer_id, kind, stage, opened_at, closed_at, order_id)
       SELECT id, customer_id, 'one_time',
              CASE WHEN id % 9 = 0 THEN 'support' ELSE 'use' END, at,
              CASE WHEN at < now() - interval '40 days' THEN at + interval '35 days' END, id
       FROM plan""",
    """INSERT INTO feedback (id, idempotency_key, customer_id, lifecycle_id, stage, channel,
                            source, kind, score, sentiment, themes, created_at)
       SELECT f, 'b' || f, p.customer_id, p.id, 'use', 'website_chat', 'chat_survey',
              (ARRAY['csat','nps','comment'])[1 + f % 3],
              CASE f % 3 WHEN 0 THEN 1 + f % 5 WHEN 1 THEN f % 11 END,
              CASE WHEN f % 3 = 2 THEN (f % 200) / 100.0 - 1 END, '[]',
              p.at + interval '3 days'
       FROM generate_series(1, 1000000) AS f
       JOIN plan p ON p.id = 1 + (f * 2654435761) % (SELECT count(*) FROM plan)""",
    """INSERT INTO escalations (id, customer_id, feedback_id, reason, priority, status,
                               created_at)
       SELECT e, f.customer_id, CASE WHEN e % 2 = 0 THEN f.id END, 'negative_feedback', 3,
              'resolved', f.created_at
       FROM generate_series(1, 20000) AS e JOIN feedback f ON f.id = e * 50""",
]


def _statement_0026(query: loyalty.LoyaltyQuery) -> Any:
    """bot.domain.loyalty.summary_statement before migration 0033 (commit 1344301)."""
    s = LifecycleLoyalty
    start, end = query.range.start_utc, query.range.end_utc

    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    returned = and_(
        s.next_opened_at.is_not(None),
        (s.next_opened_at - s.opened_at) <= timedelta(days=query.window_days),
    )
    mature = s.opened_at <= query.cutoff
    first = s.seq == 1
    first_in_range = or_(s.prev_opened_at.is_(None), s.prev_opened_at < start)
    csat = case(
        (s.csat_n == 0, 3),
        (s.csat_sum >= 4 * s.csat_n, 0),
        (s.csat_sum <= 2 * s.csat_n, 2),
        else_=1,
    )
    nps = case(
        (s.nps_n == 0, 3), (s.nps_sum >= 9 * s.nps_n, 0), (s.nps_sum >= 7 * s.nps_n, 1), else_=2
    )
    support = case((s.escalated, 2), (s.stage == "support", 1), else_=0)
    keys = (csat, nps, support, s.source, case((s.opened_at > query.cutoff, 1), else_=0))
    return (
        select(
            *keys,
            func.count(),
            count_if(returned),
            count_if(and_(first, mature)),
            count_if(and_(first, mature, returned)),
            count_if(and_(first, s.opened_at > query.cutoff)),
            count_if(first_in_range),
            count_if(and_(first_in_range, first)),
            count_if(and_(first_in_range, s.next_opened_at < end)),
            count_if(and_(first_in_range, s.next2_opened_at < end)),
            count_if(and_(first_in_range, s.next3_opened_at < end)),
        )
        .where(s.purchase, s.opened_at >= start, s.opened_at < end)
        .group_by(*keys)
    )


async def _admin(url: str, statement: str) -> None:
    engine = create_engine(url.rsplit("/", 1)[0] + "/postgres").execution_options(
        isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _fill(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    await _admin(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await _admin(url, f"CREATE DATABASE {name}")
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        # A bulk load: row and statement triggers off (the journey links' per-customer
        # advisory locks of 100 000 customers in one statement overflow the lock table),
        # then every rollup filled from the rows, as bench/dashboard/generate.py does.
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in FILL:
            await connection.execute(text(statement))
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))  # the backfill's plans need the sizes
    # The summary's backfill (a DELETE and an INSERT of every row) reaches the monthly
    # roll-up through its trigger, as any other write of the summary does.
    async with engine.begin() as connection:
        for statement in rollup.all_backfill_ddl("postgresql"):
            started = time.perf_counter()
            await connection.execute(text(statement))
            if statement.startswith("INSERT INTO lifecycle_loyalty "):
                print(f"summary backfill with its triggers: {time.perf_counter() - started:.1f} s")
    # VACUUM as autovacuum would after such a load: the visibility map lets the overview
    # read the covering index alone (index-only scan) instead of the heap.
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE"))
    await engine.dispose()


async def _time(calls: int, work: Any) -> dict[str, Any]:
    await work()  # warm-up
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await work()
        latencies.append(time.perf_counter() - started)
    return summary_ms(latencies)


async def _measure(url: str, calls: int, raw_calls: int) -> list[tuple[str, str, dict[str, Any]]]:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    today = date.today()
    results = []
    try:
        for label, days in (("90 days", 90), ("2 years", 730)):
            date_range = DateRange(today - timedelta(days=days - 1), today)
            query = loyalty.LoyaltyQuery(date_range, utcnow())

            async def baseline(date_range: DateRange = date_range) -> None:
                async with sessions() as db:
                    await db.scalar(
                        select(func.count())
                        .select_from(Lifecycle)
                        .where(Lifecycle.opened_at >= date_range.start_utc)
                    )

            async def overview(query: loyalty.LoyaltyQuery = query) -> None:
                async with sessions() as db:
                    await loyalty.overview(db, query)

            async def scan_0033(query: loyalty.LoyaltyQuery = query) -> None:
                async with sessions() as db:
                    await loyalty.scan_figures(db, query)
                    await loyalty.renewal_rate(db, query)

            async def before_0033(query: loyalty.LoyaltyQuery = query) -> None:
                async with sessions() as db:
                    await db.execute(text("SET LOCAL jit = off"))
                    await db.execute(text("SET LOCAL enable_sort = off"))
                    (await db.execute(_statement_0026(query))).all()
                    await loyalty.renewal_rate(db, query)

            async def raw(query: loyalty.LoyaltyQuery = query) -> None:
                async with sessions() as db:
                    summary = await loyalty.overview(db, query)
                    rows = await loyalty.overview(db, query, from_rows=True)
                    assert summary.as_json() == rows.as_json(), "summary differs from the rows"

            async def cohorts(date_range: DateRange = date_range) -> None:
                async with sessions() as db:
                    await loyalty.cohorts(db, date_range, utcnow())

            for name, work, n in (
                ("baseline count(*)", baseline, calls),
                ("loyalty overview", overview, calls),
                ("overview as 0033 (scan of the summary)", scan_0033, calls),
                ("overview as before migration 0033", before_0033, calls),
                ("overview from raw rows (+ summary, compared)", raw, raw_calls),
                ("cohorts", cohorts, calls),
            ):
                if n:
                    results.append((label, name, await _time(n, work)))
        async with sessions() as db:
            counts = await _counts(db)
            columns = ", ".join(rollup_loyalty.COLUMNS)
            state = rollup_loyalty.state_select("TRUE")
            differ = await db.scalar(
                text(
                    f"SELECT count(*) FROM ((SELECT {columns} FROM lifecycle_loyalty "
                    f"EXCEPT ALL SELECT {columns} FROM ({state}) AS a) UNION ALL "
                    f"(SELECT {columns} FROM ({state}) AS b "
                    f"EXCEPT ALL SELECT {columns} FROM lifecycle_loyalty)) AS d"
                )
            )
            counts["summary rows differing from the raw rows"] = int(differ or 0)
            kept = rollup_loyalty_monthly.kept_select()
            fresh = rollup_loyalty_monthly.state_select()
            monthly = ", ".join(rollup_loyalty_monthly.COLUMNS)
            differ = await db.scalar(
                text(
                    f"SELECT count(*) FROM ((SELECT {monthly} FROM ({kept}) AS k "
                    f"EXCEPT ALL SELECT {monthly} FROM ({fresh}) AS a) UNION ALL "
                    f"(SELECT {monthly} FROM ({fresh}) AS b "
                    f"EXCEPT ALL SELECT {monthly} FROM ({kept}) AS c)) AS d"
                )
            )
            counts["monthly roll-up keys differing from the summary"] = int(differ or 0)
    finally:
        await engine.dispose()
    print(counts)
    return results


async def _counts(db: AsyncSession) -> dict[str, int]:
    found = {}
    for table in (
        "customers",
        "lifecycles",
        "feedback",
        "escalations",
        "lifecycle_loyalty",
        "lifecycle_loyalty_monthly",
    ):
        found[table] = int(await db.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--raw-calls", type=int, default=2)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if not args.reuse:
        started = time.perf_counter()
        asyncio.run(_fill(args.database_url))
        print(f"filled in {time.perf_counter() - started:.1f} s")
    load_before = os.getloadavg()
    results = asyncio.run(_measure(args.database_url, args.calls, args.raw_calls))
    load_after = os.getloadavg()
    print(f"nproc={os.cpu_count()}, calls={args.calls}, raw calls={args.raw_calls}")
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min)")
    print("| range | what | p50 ms | p95 ms | max ms |")
    print("|---|---|---:|---:|---:|")
    for label, name, s in results:
        print(f"| {label} | {name} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['max_ms']:.0f} |")


if __name__ == "__main__":
    main()
