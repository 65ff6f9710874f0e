"""Metric definitions on the hand-made data set of tests/dashboard_data.py (exact numbers)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import feedback_query, journey, metrics
from bot.domain.errors import InvalidInput
from bot.domain.feedback_query import DateRange, FeedbackFilter
from tests.dashboard_data import seed

MARCH = DateRange(date(2026, 3, 1), date(2026, 3, 31))
MARCH_BERLIN = DateRange(date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Europe/Berlin"))

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def factory(session_factory: Factory) -> Factory:
    await seed(session_factory)
    return session_factory


def test_date_range_bounds_previous_period_and_dst() -> None:
    assert MARCH.start_utc == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert MARCH.end_utc == datetime(2026, 4, 1, tzinfo=timezone.utc)
    assert (MARCH.previous().start, MARCH.previous().end) == (date(2026, 1, 29), date(2026, 2, 28))
    # Berlin: UTC+1 on March 1st, UTC+2 from March 29th (summer time).
    assert MARCH_BERLIN.start_utc == datetime(2026, 2, 28, 23, tzinfo=timezone.utc)
    assert MARCH_BERLIN.end_utc == datetime(2026, 3, 31, 22, tzinfo=timezone.utc)
    segments = metrics.offset_segments(
        ZoneInfo("Europe/Berlin"), MARCH_BERLIN.start_utc, MARCH_BERLIN.end_utc
    )
    assert segments == [
        (datetime(2026, 3, 29, 1, tzinfo=timezone.utc), 3600),
        (MARCH_BERLIN.end_utc, 7200),
    ]


async def test_totals_csat_nps_with_passives_ces_response_rate(factory: Factory) -> None:
    async with factory() as db:
        counts = await metrics.metric_counts(db, FeedbackFilter(MARCH))
    # 95 % intervals: Wilson for 2 of 4 satisfied; NPS over the +1/0/-1 scores of
    # 3 promoters, 1 passive, 2 detractors (docs/dashboard.md).
    assert counts.as_json() == {
        "volume": 15,
        "csat": {"percent": 50.0, "responses": 4, "satisfied": 2, "interval": [15.0, 85.0]},
        "nps": {
            "score": 16.7,
            "responses": 6,
            "promoters": 3,
            "passives": 1,
            "detractors": 2,
            "interval": [-55.1, 88.5],
        },
        "ces": {"mean": 3.5, "responses": 2},
        "response_rate": {"percent": 66.7, "sent": 3, "answered": 2},
        "sentiment": {"mean": 0.15, "count": 2},
    }
    flagged = counts.as_json(min_answers=5)
    assert (flagged["csat"]["too_few"], flagged["nps"]["too_few"], flagged["ces"]["too_few"]) == (
        True,
        False,
        True,
    )


async def test_previous_period_and_range_edges(factory: Factory) -> None:
    async with factory() as db:
        overview = await metrics.overview(db, FeedbackFilter(MARCH), None)
    previous = overview.previous
    assert (previous.volume, previous.csat_percent, previous.csat_responses) == (2, 100.0, 2)
    assert (previous.dispatches_sent, previous.response_rate) == (1, 100.0)
    assert overview.trend == []


async def test_time_zone_moves_rows_across_the_range_edges(factory: Factory) -> None:
    async with factory() as db:
        counts = await metrics.metric_counts(db, FeedbackFilter(MARCH_BERLIN))
    # In: 02-28 23:30 UTC (csat 4); out: 03-31 23:59:59 UTC (csat 1).
    assert (counts.volume, counts.csat_satisfied, counts.csat_responses) == (15, 3, 4)
    assert counts.csat_percent == 75.0


async def test_weekly_trend_with_empty_buckets_and_dispatches(factory: Factory) -> None:
    async with factory() as db:
        points = await metrics.trend(db, FeedbackFilter(MARCH), "week")
    got = [(p.start.isoformat(), p.counts.volume, p.counts.dispatches_sent) for p in points]
    assert got == [
        ("2026-02-23", 1, 0),
        ("2026-03-02", 0, 3),
        ("2026-03-09", 10, 0),
        ("2026-03-16", 2, 0),
        ("2026-03-23", 1, 0),
        ("2026-03-30", 1, 0),
    ]
    assert points[1].counts.response_rate == 66.7
    assert points[2].counts.nps == 16.7


async def test_daily_trend_is_local_to_the_time_zone_across_dst(factory: Factory) -> None:
    async with factory() as db:
        berlin = await metrics.trend(db, FeedbackFilter(MARCH_BERLIN), "day")
        utc = await metrics.trend(db, FeedbackFilter(MARCH), "day")
    berlin_days = {p.start.isoformat(): p.counts.volume for p in berlin if p.counts.volume}
    utc_days = {p.start.isoformat(): p.counts.volume for p in utc if p.counts.volume}
    assert len(berlin) == 31 and len(utc) == 31
    assert berlin_days["2026-03-01"] == 2 and utc_days["2026-03-01"] == 1
    assert "2026-03-30" in berlin_days and "2026-03-29" not in berlin_days
    assert utc_days["2026-03-29"] == 1 and utc_days["2026-03-31"] == 1
    assert sum(berlin_days.values()) == 15


async def test_trend_marks_partial_buckets_on_a_fixed_clock(factory: Factory) -> None:
    # March 4th..20th by week, "today" Wednesday March 18th: the first week starts before
    # the range (Monday March 2nd), the third is not over, the last is cut by the range
    # and not over either (not over wins: it would change anyway).
    flt = FeedbackFilter(DateRange(date(2026, 3, 4), date(2026, 3, 20)))
    async with factory() as db:
        weeks = await metrics.trend(db, flt, "week", today=date(2026, 3, 18))
        later = await metrics.trend(db, flt, "week", today=date(2026, 4, 1))
        months = await metrics.trend(
            db,
            FeedbackFilter(DateRange(date(2026, 2, 1), date(2026, 3, 31))),
            "month",
            today=date(2026, 3, 31),
        )
    assert [(p.start.isoformat(), p.partial) for p in weeks] == [
        ("2026-03-02", "starts_before_range"),
        ("2026-03-09", None),
        ("2026-03-16", "not_over"),
    ]
    assert [p.partial for p in later] == ["starts_before_range", None, "ends_after_range"]
    # The last day of March is today: March is not over until it has passed.
    assert [(p.start.isoformat(), p.partial) for p in months] == [
        ("2026-02-01", None),
        ("2026-03-01", "not_over"),
    ]
    point = weeks[1].as_json(min_answers=10)
    assert (point["partial"], point["volume"], point["nps"]["responses"]) == (None, 10, 6)
    assert (point["nps"]["too_few"], point["nps"]["interval"]) == (True, [-55.1, 88.5])


async def test_monthly_trend(factory: Factory) -> None:
    flt = FeedbackFilter(DateRange(date(2026, 2, 1), date(2026, 4, 30)))
    async with factory() as db:
        points = await metrics.trend(db, flt, "month")
    assert [(p.start.isoformat(), p.counts.volume) for p in points] == [
        ("2026-02-01", 2),
        ("2026-03-01", 15),
        ("2026-04-01", 1),
    ]


def _by_key(groups: list[metrics.GroupMetrics]) -> dict[str, Any]:
    return {g.key: g for g in groups}


async def test_breakdown_by_stage(factory: Factory) -> None:
    async with factory() as db:
        groups = await metrics.breakdown(db, FeedbackFilter(MARCH), "stage")
    assert [g.key for g in groups] == ["discovery", "use", "support"]
    discovery, use, support = groups
    assert (discovery.counts.volume, discovery.counts.nps) == (2, -100.0)
    assert (use.counts.volume, use.counts.csat_percent, use.counts.nps) == (6, 100.0, 100.0)
    assert (support.counts.volume, support.counts.csat_percent, support.counts.nps) == (
        7,
        0.0,
        50.0,
    )
    assert (support.counts.ces, support.counts.sentiment) == (3.5, -0.5)
    assert support.counts.response_rate is None  # dispatches have no stage


async def test_breakdown_by_product_counts_each_product_of_an_order(factory: Factory) -> None:
    async with factory() as db:
        groups = await metrics.breakdown(db, FeedbackFilter(MARCH), "product")
    assert [(g.key, g.label, g.counts.volume, g.counts.csat_percent) for g in groups] == [
        ("SKU-A", "Alpha mug", 6, 50.0),
        ("SKU-B", "Beta jug", 3, 100.0),
    ]


async def test_breakdown_by_trigger_and_acquisition_with_response_rates(factory: Factory) -> None:
    async with factory() as db:
        triggers = _by_key(await metrics.breakdown(db, FeedbackFilter(MARCH), "trigger"))
        sources = _by_key(await metrics.breakdown(db, FeedbackFilter(MARCH), "acquisition_source"))
    assert {k: (g.counts.volume, g.counts.response_rate) for k, g in triggers.items()} == {
        "unsolicited": (13, None),
        "order_delivered": (1, 50.0),
        "support_resolved": (1, 100.0),
    }
    assert triggers["order_delivered"].previous.volume == 0
    assert {k: (g.counts.volume, g.counts.response_rate) for k, g in sources.items()} == {
        "search": (6, 100.0),
        "ad": (7, 50.0),
        "unknown": (2, None),
    }


async def test_breakdown_by_channel_with_previous_period(factory: Factory) -> None:
    async with factory() as db:
        channels = _by_key(await metrics.breakdown(db, FeedbackFilter(MARCH), "channel"))
    assert {k: g.counts.volume for k, g in channels.items()} == {
        "website_chat": 5,
        "email": 3,
        "call_center": 1,
        "support": 3,
        "social": 2,
        "storefront": 1,
    }
    assert channels["website_chat"].previous.volume == 2


async def test_breakdown_reads_the_previous_period_on_its_own_session_alike(
    factory: Factory,
) -> None:
    """GET /api/metrics reads the previous period on a second connection at the same time
    (issue #21 latency): the same groups, order and figures as on one session."""
    flt = FeedbackFilter(MARCH)
    for dimension in metrics.DIMENSIONS:
        async with factory() as db:
            alone = await metrics.breakdown(db, flt, dimension)
        async with factory() as db, factory() as previous_db:
            paired = await metrics.breakdown(db, flt, dimension, previous_db)
        assert paired == alone, dimension
        if dimension == "channel":
            assert _by_key(paired)["website_chat"].previous.volume == 2


async def test_free_text_count_plans_at_ssd_costs_for_its_transaction_only(
    factory: Factory,
) -> None:
    """The free-text total sets its plan settings with one statement (set_config, local to
    the transaction): the page after it runs with them, the next transaction without."""
    flt = FeedbackFilter(MARCH, q="late parcel")
    settings = text(
        "SELECT current_setting('random_page_cost'), current_setting('plan_cache_mode')"
    )
    async with factory() as db:
        postgresql = db.get_bind().dialect.name == "postgresql"
        server_wide = tuple((await db.execute(settings)).one()) if postgresql else ()
        await db.commit()
        found = await feedback_query.feedback_page(db, flt)
        assert (found.total, found.exact, len(found.rows)) == (1, True, 1)
        if postgresql:
            assert tuple((await db.execute(settings)).one()) == ("1.1", "force_custom_plan")
            await db.commit()
            assert tuple((await db.execute(settings)).one()) == server_wide


async def test_filters_narrow_the_metrics(factory: Factory) -> None:
    query = {"from": "2026-03-01", "to": "2026-03-31", "stage": "support,use", "kind": "csat"}
    async with factory() as db:
        counts = await metrics.metric_counts(db, feedback_query.parse_filter(query))
        by_product = await metrics.metric_counts(
            db, feedback_query.parse_filter({**query, "product": "SKU-B"})
        )
        by_theme = await metrics.metric_counts(
            db,
            feedback_query.parse_filter(
                {"from": "2026-03-01", "to": "2026-03-31", "theme": "delivery"}
            ),
        )
    assert (counts.volume, counts.csat_percent, counts.response_rate) == (4, 50.0, None)
    assert (by_product.volume, by_product.csat_percent) == (2, 100.0)
    assert by_theme.volume == 1


async def test_journey_map_reach_dropoff_themes_and_pitfalls(factory: Factory) -> None:
    thresholds = journey.PitfallThresholds(
        csat_below=60, nps_below=0, dropoff_above=30, min_responses=2
    )
    async with factory() as db:
        found = await journey.journey_map(db, FeedbackFilter(MARCH), thresholds)
    stages = {s.stage: s for s in found.stages}
    assert [s.stage for s in found.stages] == [
        "discovery",
        "research",
        "purchase",
        "use",
        "support",
    ]
    assert {k: s.customers for k, s in stages.items()} == {
        "discovery": 3,
        "research": 2,
        "purchase": 2,
        "use": 2,
        "support": 1,
    }
    assert [(s.moved_on_percent, s.dropoff_percent) for s in found.stages] == [
        (66.7, 33.3),
        (100.0, 0.0),
        (100.0, 0.0),
        (50.0, None),
        (None, None),
    ]
    assert stages["support"].negative_themes == [("delivery", 1)]
    assert stages["support"].counts.volume == 7
    assert [(c.channel, c.counts.volume) for c in stages["use"].channels] == [
        ("website_chat", 4),
        ("email", 1),
        ("storefront", 1),
    ]
    got = [(p.stage, p.channel, p.metric, p.value) for p in found.pitfalls]
    assert got == [
        ("discovery", None, "nps", -100.0),
        ("discovery", None, "dropoff", 33.3),
        ("discovery", "social", "nps", -100.0),
        ("support", None, "csat", 0.0),
    ]
    assert found.pitfalls[3].filter() == {"stage": "support", "kind": "csat", "score_max": "3"}
    assert [(s.source, s.customers, s.share_percent) for s in found.sources] == [
        ("ad", 1, 33.3),
        ("search", 1, 33.3),
        ("unknown", 1, 33.3),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-3-1"}, "'from'"),
        ({"to": "yesterday"}, "'to'"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "'from'"),
        ({"tz": "Mars/Olympus"}, "'tz'"),
        ({"stage": "checkout"}, "'stage'"),
        ({"score_min": "11"}, "'score_min'"),
        ({"score_min": "5", "score_max": "2"}, "'score_min'"),
        ({"sentiment": "angry"}, "'sentiment'"),
        ({"theme": "weather"}, "'theme'"),
        ({"product": "a b"}, "'product'"),
        ({"q": "x" * 201}, "'q'"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "'from'..'to'"),
    ],
)
def test_parse_filter_names_the_bad_parameter(query: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        feedback_query.parse_filter(query)
    assert field in caught.value.message


def test_parse_filter_defaults_to_the_last_90_days_in_the_time_zone() -> None:
    flt = feedback_query.parse_filter({"tz": "Asia/Tokyo"}, today=date(2026, 3, 31))
    assert (flt.range.start, flt.range.end, flt.range.tz.key) == (
        date(2026, 1, 1),
        date(2026, 3, 31),
        "Asia/Tokyo",
    )


async def test_daily_rollups_follow_inserts_updates_and_deletes(factory: Factory) -> None:
    from sqlalchemy import delete, func, select, update

    from bot.storage.models import Feedback, FeedbackDaily, SurveyDispatch, SurveyDispatchDaily

    # "Etc/UTC" is UTC too but not the key "UTC": it is always answered from the rows.
    raw = FeedbackFilter(DateRange(date(2026, 1, 1), date(2026, 4, 30), ZoneInfo("Etc/UTC")))
    rolled = FeedbackFilter(DateRange(date(2026, 1, 1), date(2026, 4, 30)))
    assert feedback_query.rollup_applies(rolled) and not feedback_query.rollup_applies(raw)

    async def same() -> metrics.MetricCounts:
        async with factory() as db:
            from_rows = await metrics.metric_counts(db, raw)
            from_rollup = await metrics.metric_counts(db, rolled)
            weekly_rows = await metrics.trend(db, raw, "week")
            weekly_rollup = await metrics.trend(db, rolled, "week")
            groups = {
                d: (await metrics.breakdown(db, raw, d), await metrics.breakdown(db, rolled, d))
                for d in metrics.DIMENSIONS
            }
        assert from_rollup == from_rows
        assert [p.counts for p in weekly_rollup] == [p.counts for p in weekly_rows]
        for dimension, (by_rows, by_rollup) in groups.items():
            assert [(g.key, g.label, g.counts) for g in by_rollup] == [
                (g.key, g.label, g.counts) for g in by_rows
            ], dimension
        return from_rollup

    before = await same()
    assert (before.volume, before.csat_responses, before.dispatches_sent) == (18, 7, 4)
    async with factory() as db, db.begin():
        await db.execute(update(Feedback).where(Feedback.score == 10).values(score=3))
        await db.execute(delete(Feedback).where(Feedback.kind == "ces"))
        await db.execute(update(SurveyDispatch).values(answered_at=None))
    after = await same()
    assert (after.volume, after.nps_promoters, after.nps_detractors, after.ces_responses) == (
        16,
        2,
        3,
        0,
    )
    assert (after.dispatches_sent, after.dispatches_answered) == (4, 0)
    async with factory() as db:
        assert await db.scalar(select(func.sum(FeedbackDaily.volume))) == 16
        assert await db.scalar(select(func.sum(SurveyDispatchDaily.answered))) == 0
