"""Loyalty figures on the hand-made history of tests/loyalty_data.py (exact numbers)."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import loyalty
from bot.domain.feedback_query import DateRange
from tests.loyalty_data import AS_OF, seed_loyalty

Q1 = DateRange(date(2026, 1, 1), date(2026, 3, 31))
QUERY = loyalty.LoyaltyQuery(Q1, AS_OF, 90)
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def db(session_factory: Factory) -> Any:
    await seed_loyalty(session_factory)
    async with session_factory() as session:
        yield session


def _groups(groups: list[loyalty.ReturnGroup]) -> list[tuple[str, int, int, float | None]]:
    return [(g.key, g.lifecycles, g.returned, g.rate) for g in groups]


async def test_repeat_rate_counts_only_customers_old_enough_to_judge(db: AsyncSession) -> None:
    found = await loyalty.repeat_rate(db, QUERY)
    # A (50 days), H (31 days: a renewal is a lifecycle too), J (exactly 90 days) came back;
    # B, C (116 days), K (91 days), M did not; D bought after the cut-off: pending.
    assert (found.customers, found.repeaters, found.pending, found.rate) == (7, 3, 1, 42.9)


async def test_a_shorter_window_and_a_later_as_of(db: AsyncSession) -> None:
    short = await loyalty.repeat_rate(db, loyalty.LoyaltyQuery(Q1, AS_OF, 31))
    # 31 days: H (exactly 31 days) and D (16 days, now old enough to judge) came back.
    assert (short.customers, short.repeaters, short.pending) == (8, 2, 0)
    wide = await loyalty.repeat_rate(db, loyalty.LoyaltyQuery(Q1, AS_OF, 120))
    # 120 days: C (116) comes back too; first purchases after 2026-02-15 00:00 (M, K, D)
    # are pending.
    assert (wide.customers, wide.repeaters, wide.pending) == (5, 4, 3)


async def test_lifecycles_per_customer(db: AsyncSession) -> None:
    found = await loyalty.lifecycles_per_customer(db, QUERY)
    assert found.as_json() == {
        "customers": 9,
        "lifecycles": 12,
        "per_customer": 1.33,
        "new_customers": 8,
        "returning_customers": 1,
        "distribution": [
            {"lifecycles": "1", "customers": 7},
            {"lifecycles": "2", "customers": 1},
            {"lifecycles": "3", "customers": 1},
            {"lifecycles": "4+", "customers": 0},
        ],
    }


async def test_renewal_rate(db: AsyncSession) -> None:
    found = await loyalty.renewal_rate(db, QUERY)
    # H's periods closing 02-01 and 03-01 were renewed, M's closing 03-15 was not;
    # H's period closing 04-01 is outside the range.
    assert (found.periods, found.renewed, found.rate) == (3, 2, 66.7)


async def test_return_rate_by_the_experience_of_the_lifecycle_before(db: AsyncSession) -> None:
    found = await loyalty.return_rates(db, QUERY)
    assert (found.overall.lifecycles, found.overall.returned, found.overall.rate) == (11, 6, 54.5)
    assert found.pending == 1
    assert _groups(found.by_csat) == [
        ("satisfied", 2, 1, 50.0),  # A1 returned, K did not
        ("neutral", 2, 1, 50.0),  # A2 (mean 3.5) returned, C did not
        ("dissatisfied", 2, 1, 50.0),  # J returned, B did not
        ("no_answer", 5, 3, 60.0),  # E, M, H x3
    ]
    assert _groups(found.by_nps) == [
        ("promoter", 2, 2, 100.0),
        ("passive", 1, 0, 0.0),
        ("detractor", 1, 0, 0.0),
        ("no_answer", 7, 4, 57.1),
    ]
    assert _groups(found.by_support) == [
        ("none", 7, 5, 71.4),  # C's escalation was about another order: not counted
        ("support_contact", 1, 0, 0.0),  # E
        ("escalated", 3, 1, 33.3),  # B (feedback), J (chat about the order), K (time)
    ]
    assert _groups(found.by_acquisition) == [
        ("search", 3, 3, 100.0),
        ("social", 3, 3, 100.0),
        ("ad", 2, 0, 0.0),
        ("friend", 1, 0, 0.0),
        ("marketing_email", 1, 0, 0.0),  # the lifecycle's own channel wins
        ("unknown", 1, 0, 0.0),
    ]


async def test_cohort_retention_table(db: AsyncSession) -> None:
    table = await loyalty.cohorts(db, Q1, AS_OF, months=6)
    rows = [
        (c.month.isoformat(), c.customers, [None if x is None else x.customers for x in c.cells])
        for c in table.cohorts
    ]
    assert rows == [
        ("2026-01-01", 3, [3, 1, 2, 1, 1, 0]),  # A, B, H
        ("2026-02-01", 3, [3, 0, 0, 1, 1, None]),  # C, J, M; July has not started
        ("2026-03-01", 2, [2, 1, 0, 1, None, None]),  # D, K
    ]
    assert [c.percent for c in table.cohorts[0].cells if c] == [100.0, 33.3, 66.7, 33.3, 33.3, 0.0]
    assert [None if c is None else c.percent for c in table.average] == [
        100.0,
        25.0,
        25.0,
        37.5,
        33.3,
        0.0,
    ]
    assert table.as_json()["cohorts"][1]["month"] == "2026-02"


async def test_cohorts_use_the_months_of_the_time_zone(db: AsyncSession) -> None:
    berlin = DateRange(date(2026, 1, 1), date(2026, 3, 31), ZoneInfo("Europe/Berlin"))
    table = await loyalty.cohorts(db, berlin, AS_OF, months=2)
    # N's purchase at 2025-12-31 23:30 UTC is January 1st in Berlin.
    assert [(c.month.isoformat(), c.customers) for c in table.cohorts] == [
        ("2026-01-01", 4),
        ("2026-02-01", 3),
        ("2026-03-01", 2),
    ]


async def test_empty_database_gives_empty_figures(session: AsyncSession) -> None:
    found = await loyalty.overview(session, QUERY)
    assert found.repeat.rate is None and found.renewal.rate is None
    assert found.lifecycles.per_customer is None
    assert found.returns.overall.lifecycles == 0
    assert [g.lifecycles for g in found.returns.by_csat] == [0, 0, 0, 0]
    assert (await loyalty.cohorts(session, Q1, AS_OF)).cohorts == []


async def test_report_section_in_markdown(db: AsyncSession) -> None:
    from bot.cli import report_loyalty

    text = await report_loyalty.section(db, Q1, "md", now=AS_OF)
    lines = text.splitlines()
    assert "## Loyalty (first purchases in the range, 90-day window)" in lines
    assert "| repeat rate % | 42.9 | 3 of 7 customers; 1 too recent |" in lines
    assert "| subscription renewal % | 66.7 | 2 of 3 periods |" in lines
    assert "| escalated | 3 | 1 | 33.3 |" in lines
    empty = "  |" * 6  # July onwards has not started as of June 15th
    assert "| 2026-01 | 3 | 100.0 | 33.3 | 66.7 | 33.3 | 33.3 | 0.0 |" + empty in lines
    assert "| 2026-02 | 3 | 100.0 | 0.0 | 0.0 | 33.3 | 33.3 |" + "  |" * 7 in lines
    assert lines[-1] == "(no applied insight yet)"
