"""Insight board domain: creation from a theme / pitfall / picked rows, status flow, audit,
before/after on the hand-made data of tests/insight_data.py, and telling customers once."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import insights
from bot.domain.enums import InsightStatus, MessageSender
from bot.domain.errors import Conflict, InvalidInput
from bot.domain.identity import issue_token
from bot.storage.models import AuditLog, Conversation, Insight, InsightNotice, Message, utcnow
from bot.web.insight_notices import deliver_insight_notices
from tests.insight_data import APPLIED, NOW, InsightData, seed_insight_data

Factory = async_sessionmaker[AsyncSession]
ACTOR = "staff:1"
SECRET = "dev-widget-secret-change-me-in-production"
MESSAGE = "You told us parcels came late; we changed our courier to one that delivers on time."
APRIL = {"from": "2026-04-01", "to": "2026-04-30"}


@pytest.fixture
async def data(session_factory: Factory) -> InsightData:
    return await seed_insight_data(session_factory)


async def _create(factory: Factory, body: dict[str, Any]) -> Insight:
    async with factory() as db, db.begin():
        return await insights.create(db, insights.parse_draft(body), ACTOR, NOW)


def theme_body(**extra: Any) -> dict[str, Any]:
    return {
        "title": "Late parcels",
        "owner_team": "logistics",
        "origin": "theme",
        "theme": "delivery",
        **APRIL,
        **extra,
    }


async def _walk_to_applied(factory: Factory, insight_id: int, *, notify: bool) -> Insight:
    async with factory() as db, db.begin():
        await insights.move(db, insight_id, InsightStatus.accepted, ACTOR, NOW)
        await insights.move(db, insight_id, InsightStatus.in_progress, ACTOR, NOW)
        return await insights.move(
            db, insight_id, InsightStatus.applied, ACTOR, NOW, applied_at=APPLIED, notify=notify
        )


async def test_theme_insight_links_its_negative_comments(
    data: InsightData, session_factory: Factory
) -> None:
    insight = await _create(session_factory, theme_body())
    assert (insight.status, insight.criteria) == (InsightStatus.new, {"theme": "delivery"})
    async with session_factory() as db:
        stats = (await insights.link_stats(db, [insight.id]))[insight.id]
        total, rows = await insights.linked_feedback(db, insight.id)
    assert (stats.feedback, stats.customers, stats.reachable, stats.told) == (3, 3, 2, 0)
    assert total == 3
    assert {r.customer_id for r in rows} == {data.customers[k] for k in "PQR"}


async def test_pitfall_and_picked_insights(data: InsightData, session_factory: Factory) -> None:
    pitfall = await _create(
        session_factory,
        {
            "title": "Use stage CSAT",
            "owner_team": "product",
            "origin": "pitfall",
            "pitfall": {"stage": "use", "channel": "website_chat", "metric": "csat"},
            **APRIL,
        },
    )
    # The pitfall's comments are its low CSATs (<= 3) in April: P 1, Q 2, P's 1 without survey.
    assert pitfall.criteria == {"channel": "website_chat", "stage": "use"}
    picked_ids = [data.comments["P-before"], data.comments["Q-before"]]
    picked = await _create(
        session_factory,
        {
            "title": "Couriers",
            "owner_team": "logistics",
            "origin": "feedback",
            "feedback_ids": picked_ids,
        },
    )
    # What the picked rows share: their stage, and the theme of both.
    assert picked.criteria == {"stage": "use", "theme": "delivery"}
    async with session_factory() as db:
        stats = await insights.link_stats(db, [pitfall.id, picked.id])
    assert (stats[pitfall.id].feedback, stats[pitfall.id].customers) == (3, 2)
    assert (stats[picked.id].feedback, stats[picked.id].customers) == (2, 2)

    with pytest.raises(InvalidInput, match="Unknown feedback ids: 99999"):
        await _create(
            session_factory,
            {"title": "x", "owner_team": "web", "origin": "feedback", "feedback_ids": [99999]},
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"owner_team": "web", "origin": "theme", "theme": "delivery"}, "'title'"),
        (
            {"title": "x", "owner_team": "legal", "origin": "theme", "theme": "delivery"},
            "'owner_team'",
        ),
        ({"title": "x", "owner_team": "web", "origin": "hunch"}, "'origin'"),
        ({"title": "x", "owner_team": "web", "origin": "theme", "theme": "weather"}, "'theme'"),
        (
            {
                "title": "x",
                "owner_team": "web",
                "origin": "pitfall",
                "pitfall": {"stage": "moon", "metric": "csat"},
            },
            "'pitfall'",
        ),
        (
            {"title": "x", "owner_team": "web", "origin": "feedback", "feedback_ids": []},
            "'feedback_ids'",
        ),
        (
            {
                "title": "x",
                "owner_team": "web",
                "origin": "theme",
                "theme": "price",
                "criteria": {"from": "2026-01-01"},
            },
            "'criteria' may only use",
        ),
        (
            {
                "title": "x",
                "owner_team": "web",
                "origin": "theme",
                "theme": "price",
                "criteria": {"stage": "moon"},
            },
            "'stage'",
        ),
        (
            {"title": "x" * 201, "owner_team": "web", "origin": "theme", "theme": "price"},
            "'title' is limited",
        ),
    ],
)
def test_drafts_are_validated(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        insights.parse_draft(body, today=date(2026, 5, 1))


async def test_status_flow_is_validated_and_audited(
    data: InsightData, session_factory: Factory
) -> None:
    insight = await _create(session_factory, theme_body())
    async with session_factory() as db:
        for target in (InsightStatus.in_progress, InsightStatus.applied, InsightStatus.new):
            with pytest.raises(Conflict, match=f"from new to {target.value}"):
                await insights.move(db, insight.id, target, ACTOR, NOW)
        with pytest.raises(InvalidInput, match="'applied_at' and 'notify'"):
            await insights.move(db, insight.id, InsightStatus.accepted, ACTOR, NOW, notify=True)
        await db.rollback()

    async with session_factory() as db, db.begin():
        await insights.move(db, insight.id, InsightStatus.wont_do, ACTOR, NOW)
        await insights.move(db, insight.id, InsightStatus.new, ACTOR, NOW)  # reopened
        await insights.move(db, insight.id, InsightStatus.accepted, ACTOR, NOW)
        await insights.move(db, insight.id, InsightStatus.in_progress, ACTOR, NOW)
        with pytest.raises(InvalidInput, match="cannot be in the future"):
            await insights.move(
                db,
                insight.id,
                InsightStatus.applied,
                ACTOR,
                NOW,
                applied_at=NOW + timedelta(seconds=1),
            )
        with pytest.raises(InvalidInput, match="Write the customer message"):
            await insights.move(db, insight.id, InsightStatus.applied, ACTOR, NOW, notify=True)
        done = await insights.move(
            db, insight.id, InsightStatus.applied, ACTOR, NOW, applied_at=APPLIED
        )
    assert (done.status, done.applied_at, done.notify_until) == (
        InsightStatus.applied,
        APPLIED,
        None,
    )
    async with session_factory() as db:
        with pytest.raises(Conflict, match="from applied to wont_do"):
            await insights.move(db, insight.id, InsightStatus.wont_do, ACTOR, NOW)
        with pytest.raises(Conflict, match="Only new or won't-do"):
            await insights.remove(db, insight.id, ACTOR)
        audit = (
            await db.scalars(
                select(AuditLog).where(AuditLog.target_type == "insight").order_by(AuditLog.id)
            )
        ).all()
    moves = [(a.details["from"], a.details["to"]) for a in audit if a.action == "insight_status"]
    assert moves == [
        ("new", "wont_do"),
        ("wont_do", "new"),
        ("new", "accepted"),
        ("accepted", "in_progress"),
        ("in_progress", "applied"),
    ]
    assert audit[0].action == "create_insight"
    assert {a.actor for a in audit} == {ACTOR}


async def test_before_after_comparison_exact_figures(
    data: InsightData, session_factory: Factory
) -> None:
    insight = await _create(session_factory, theme_body())
    async with session_factory() as db:
        assert await insights.compare(db, insight, NOW) is None  # not applied yet
    applied = await _walk_to_applied(session_factory, insight.id, notify=False)
    async with session_factory() as db:
        found = await insights.compare(db, applied, NOW)
    assert found is not None
    body = found.as_json()
    before, after = body["before"], body["after"]
    assert (before["from"], before["to"]) == ("2026-04-01T00:00:00+00:00", APPLIED.isoformat())
    assert after["to"] == NOW.isoformat()
    assert (before["volume"], after["volume"]) == (7, 7)
    assert (before["csat"]["percent"], after["csat"]["percent"]) == (33.3, 66.7)
    assert (before["csat"]["responses"], after["csat"]["responses"]) == (3, 3)
    assert (before["sentiment"]["mean"], after["sentiment"]["mean"]) == (-0.375, 0.275)
    assert before["negative"] == {"count": 5, "percent": 71.4}
    assert after["negative"] == {"count": 2, "percent": 28.6}
    assert body["change"] == {
        "csat_percent": 33.4,
        "nps": None,
        "ces": None,
        "sentiment": 0.65,
        "negative_percent": -42.8,
    }
    # 30 days on each side (>= 14): readable, but 3 CSAT answers a side are too few to call
    # (DASHBOARD_MIN_ANSWERS 10); the z-tests are still reported: CSAT 1/3 -> 2/3
    # (z 0.816, p 0.414), negative 5/7 -> 2/7 (z -1.604, p 0.109).
    assert (body["too_early"], body["window_days"], body["min_days"]) == (False, 30.0, 14)
    assert body["tests"] == {
        "csat": {
            "before_n": 3,
            "after_n": 3,
            "z": 0.816,
            "p_value": 0.4142,
            "verdict": "too_few_answers",
        },
        "nps": {
            "before_n": 0,
            "after_n": 0,
            "z": None,
            "p_value": None,
            "verdict": "too_few_answers",
        },
        "negative": {
            "before_n": 7,
            "after_n": 7,
            "z": -1.604,
            "p_value": 0.1088,
            "verdict": "too_few_answers",
        },
    }
    lenient = insights.CompareRules(min_days=14, min_answers=3)
    async with session_factory() as db:
        found = await insights.compare(db, applied, NOW, rules=lenient)
    assert found is not None
    assert {k: v["verdict"] for k, v in found.tests().items()} == {
        "csat": "no_clear_change",
        "nps": "too_few_answers",
        "negative": "no_clear_change",
    }

    # Ten days after applying the windows are ten days each, and it is too early to tell
    # (INSIGHT_MIN_WINDOW_DAYS 14): no change, no test, ready on May 15th.
    async with session_factory() as db:
        short = await insights.compare(db, applied, APPLIED + timedelta(days=10))
    assert short is not None
    # after [05-01, 05-11): S csat 5 + 0.8, Q csat 4 + 0.5, S 0.1 at 05-01 00:00;
    # before [04-21, 05-01): R's complaint only (P's csat 1 has no theme nor survey).
    assert (short.before.volume, short.after.volume) == (1, 5)
    assert (short.before_start.isoformat(), short.after.csat_percent) == (
        "2026-04-21T00:00:00+00:00",
        100.0,
    )
    short_body = short.as_json()
    assert (short_body["too_early"], short_body["ready_at"]) == (True, "2026-05-15T00:00:00+00:00")
    assert set(short_body["change"].values()) == {None}
    assert {v["verdict"] for v in short_body["tests"].values()} == {"too_early"}
    assert short_body["tests"]["csat"]["p_value"] is None

    # Asking for ten days a side when 30 have passed: still 14 days a side (the minimum).
    async with session_factory() as db:
        asked = await insights.compare(db, applied, NOW, days=10)
    assert asked is not None
    assert (asked.before_start.isoformat(), asked.after_end.isoformat()) == (
        "2026-04-17T00:00:00+00:00",
        "2026-05-15T00:00:00+00:00",
    )


def test_before_after_verdicts_need_significance() -> None:
    """better/worse only at p < 0.05 with enough answers on each side (no database)."""
    from bot.domain.metrics import MetricCounts

    before = MetricCounts(
        volume=60,
        csat_responses=50,
        csat_satisfied=20,
        nps_responses=50,
        nps_promoters=10,
        nps_detractors=20,
    )
    after = MetricCounts(
        volume=60,
        csat_responses=50,
        csat_satisfied=35,
        nps_responses=50,
        nps_promoters=25,
        nps_detractors=10,
    )
    found = insights.Comparison(
        APPLIED, APPLIED - timedelta(days=20), APPLIED + timedelta(days=20), before, after, 30, 15
    )
    assert found.tests() == {
        # 40 % -> 70 %: z = 0.3 / sqrt(0.55 x 0.45 x 2/50) = 3.015
        "csat": {"before_n": 50, "after_n": 50, "z": 3.015, "p_value": 0.0026, "verdict": "better"},
        # NPS -20 -> +30: z = 0.5 / sqrt(0.56/50 + 0.61/50) = 3.269
        "nps": {"before_n": 50, "after_n": 50, "z": 3.269, "p_value": 0.0011, "verdict": "better"},
        # negative 50 % -> 25 %: lower is better
        "negative": {
            "before_n": 60,
            "after_n": 60,
            "z": -2.828,
            "p_value": 0.0047,
            "verdict": "better",
        },
    }
    worse = insights.Comparison(
        APPLIED, APPLIED - timedelta(days=20), APPLIED + timedelta(days=20), after, before, 15, 30
    )
    assert {k: v["verdict"] for k, v in worse.tests().items()} == {
        "csat": "worse",
        "nps": "worse",
        "negative": "worse",
    }


async def test_trend_counts_matching_feedback_per_week(
    data: InsightData, session_factory: Factory
) -> None:
    insight = await _create(session_factory, theme_body())
    async with session_factory() as db:
        weeks = await insights.trend(db, insight, date(2026, 5, 31))
    assert len(weeks) == insights.TREND_WEEKS and weeks[-1].start == date(2026, 5, 25)
    by_week = {w.start.isoformat(): (w.volume, w.negative) for w in weeks if w.volume}
    assert by_week == {
        "2026-03-30": (3, 3),  # 03-31 comment -0.9; 04-05 P csat 1 + comment -0.6
        "2026-04-06": (2, 2),  # Q csat 2 + comment -0.4
        "2026-04-20": (3, 1),  # S csat 4 + comment 0.3; R's complaint -0.8
        "2026-04-27": (3, 0),  # S 05-01 00:00 comment 0.1; S 05-03 csat 5 + comment 0.8
        "2026-05-04": (2, 0),  # Q csat 4 + comment 0.5
        "2026-05-18": (2, 2),  # S csat 2 + comment -0.3
        "2026-05-25": (1, 1),  # S 05-31 00:00 comment -0.9 (today counts)
    }


# ---- telling the customers -------------------------------------------------------------------


async def _conversation(factory: Factory, customer_id: int, name: str) -> str:
    async with factory() as db, db.begin():
        db.add(Conversation(id=name, customer_id=customer_id, identified_by="token"))
    return name


async def _told(factory: Factory) -> list[tuple[str, str]]:
    async with factory() as db:
        rows = await db.execute(
            select(Message.conversation_id, Message.text)
            .where(Message.sender == MessageSender.bot)
            .order_by(Message.id)
        )
        return [(c, t) for c, t in rows.tuples()]


async def test_notice_is_recorded_once_per_customer_even_in_a_race(
    data: InsightData, session_factory: Factory
) -> None:
    insight = await _create(session_factory, theme_body(customer_message=MESSAGE))
    await _walk_to_applied(session_factory, insight.id, notify=True)
    p = data.customers["P"]
    first = await _conversation(session_factory, p, "conv-p1")
    second = await _conversation(session_factory, p, "conv-p2")
    async with session_factory() as db:
        pending = await insights.pending_notices(db, p, NOW)
        assert [i.id for i in pending] == [insight.id]
        assert await insights.pending_notices(db, data.customers["S"], NOW) == []
        # After NOTICE_DAYS nobody is told any more.
        late = NOW + timedelta(days=insights.NOTICE_DAYS + 1)
        assert await insights.pending_notices(db, p, late) == []

    async def deliver(conversation_id: str) -> bool:
        try:
            async with session_factory() as db, db.begin():
                await insights.record_notice(db, pending[0], p, conversation_id, NOW)
        except IntegrityError:
            return False
        return True

    # Two tabs / two replicas at once: the unique (insight, customer) key lets one win.
    results = await asyncio.gather(deliver(first), deliver(second))
    assert sorted(results) == [False, True]
    assert [t for _, t in await _told(session_factory)] == [MESSAGE]
    async with session_factory() as db:
        assert await insights.pending_notices(db, p, NOW) == []
        notices = (await db.scalars(select(InsightNotice))).all()
    assert [(n.customer_id, n.message_id is not None) for n in notices] == [(p, True)]


async def test_chat_tells_only_linked_identified_customers_once(
    data: InsightData, session_factory: Factory, client: TestClient[Any, Any]
) -> None:
    insight = await _create(session_factory, theme_body(customer_message=MESSAGE))
    async with session_factory() as db, db.begin():
        await insights.move(db, insight.id, InsightStatus.accepted, ACTOR, NOW)
        await insights.move(db, insight.id, InsightStatus.in_progress, ACTOR, NOW)
        # Applied now (the notices are valid for 90 days from now), went live on May 1st.
        await insights.move(
            db, insight.id, InsightStatus.applied, ACTOR, utcnow(), applied_at=APPLIED, notify=True
        )

    async def open_chat(letter: str) -> tuple[Any, list[dict[str, Any]]]:
        ws = await client.ws_connect("/ws")
        identity = issue_token(SECRET, data.external_ids[letter])
        await ws.send_json({"type": "hello", "token": None, "identity": identity})
        frames = [await ws.receive_json(timeout=5)]
        while frames[-1]["type"] != "session":
            frames.append(await ws.receive_json(timeout=5))
        return ws, frames

    async def next_message(ws: Any) -> dict[str, Any] | None:
        try:
            return dict(await ws.receive_json(timeout=0.5))
        except (asyncio.TimeoutError, TypeError):
            return None

    ws, _ = await open_chat("P")
    told = await next_message(ws)
    assert told is not None and (told["type"], told["sender"], told["text"]) == (
        "message",
        "bot",
        MESSAGE,
    )
    await ws.close()
    ws, _ = await open_chat("P")  # next visit: a new conversation, not told again
    assert await next_message(ws) is None
    await ws.close()
    ws, _ = await open_chat("S")  # S's feedback is not linked
    assert await next_message(ws) is None
    await ws.close()
    ws, _ = await open_chat("Q")
    told_q = await next_message(ws)
    assert told_q is not None and told_q["text"] == MESSAGE
    await ws.close()

    texts = [t for _, t in await _told(session_factory)]
    assert texts == [MESSAGE, MESSAGE]  # P once, Q once, nobody else
    async with session_factory() as db:
        notices = (await db.scalars(select(InsightNotice).order_by(InsightNotice.id))).all()
        stats = (await insights.link_stats(db, [insight.id]))[insight.id]
    assert [n.customer_id for n in notices] == [data.customers["P"], data.customers["Q"]]
    assert stats.told == 2


async def test_no_notice_without_notify_or_for_anonymous_chats(
    data: InsightData, session_factory: Factory, client: TestClient[Any, Any]
) -> None:
    insight = await _create(session_factory, theme_body(customer_message=MESSAGE))
    await _walk_to_applied(session_factory, insight.id, notify=False)
    conversation = await _conversation(session_factory, data.customers["P"], "conv-p")
    assert await deliver_insight_notices(client.app, conversation) == 0
    async with session_factory() as db, db.begin():
        db.add(Conversation(id="conv-anon"))
    assert await deliver_insight_notices(client.app, "conv-anon") == 0
    assert await _told(session_factory) == []


async def test_report_section_lists_applied_insights(
    data: InsightData, session_factory: Factory
) -> None:
    from bot.cli import report_loyalty
    from bot.domain.feedback_query import DateRange

    insight = await _create(session_factory, theme_body())
    await _walk_to_applied(session_factory, insight.id, notify=False)
    april = DateRange(date(2026, 4, 1), date(2026, 4, 30))
    async with session_factory() as db:
        md = await report_loyalty.section(db, april, "md", now=NOW)
        csv_rows = await report_loyalty.section(db, april, "csv", now=NOW)
    assert "new: 0, accepted: 0, in progress: 0, applied: 1, wont do: 0" in md
    assert "| Late parcels | logistics | 2026-05-01 | 33.3 | 66.7 | – | – | 71.4 | 28.6 | 0 |" in md
    assert csv_rows.splitlines() == [
        f"insight,{insight.id},Late parcels,before,7,33.3,3,,0,,,-0.375",
        f"insight,{insight.id},Late parcels,after,7,66.7,3,,0,,,0.275",
    ]
