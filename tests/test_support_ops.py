"""Support operations (issue #21) on tests/support_ops_data.py: exact figures, both databases."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import support_ops
from bot.domain.feedback_query import DateRange
from bot.domain.surveys import TRIGGER_ESCALATION_RESOLVED
from bot.storage.models import SUPPORT_CHAT_SURVEYS, SurveyDispatch
from tests.support_ops_data import NOW, seed_support_ops

MARCH = DateRange(date(2026, 3, 1), date(2026, 3, 31))
RULES = support_ops.SlaRules(first_reply_minutes=15, resolution_hours=24)


async def _found(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    await seed_support_ops(session_factory)
    async with session_factory() as db:
        found = await support_ops.support_operations(db, MARCH, NOW, RULES)
    return found.as_json(min_answers=2)


async def test_totals_first_reply_resolution_and_breaches(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    body = await _found(session_factory)
    assert body["sla"] == {"first_reply_minutes": 15, "resolution_hours": 24}
    assert body["total"] == {
        "escalations": 5,
        # E1 5 min, E2 30 min, E3 10 min (its 07:00 message came before it); E4 none yet.
        "first_reply": {
            "chats": 4,
            "replied": 3,
            "mean_minutes": 15.0,
            "within_sla": 2,
            "within_sla_percent": 66.7,
            "within_sla_interval": [20.8, 93.9],
        },
        # E1 2 h, E2 48 h, E3 1 h, E5 29 h.
        "resolution": {
            "resolved": 4,
            "mean_hours": 20.0,
            "within_sla": 2,
            "within_sla_percent": 50.0,
            "within_sla_interval": [15.0, 85.0],
        },
        # Late reply E2 + E4 unanswered for 60 min; late resolutions E2, E5 (E4: 1 h open).
        "sla_breaches": {"first_reply": 2, "resolution": 2},
    }


async def test_by_reason_and_priority(session_factory: async_sessionmaker[AsyncSession]) -> None:
    body = await _found(session_factory)
    reasons = {
        r["reason"]: (
            r["escalations"],
            r["first_reply"]["mean_minutes"],
            r["resolution"]["mean_hours"],
        )
        for r in body["by_reason"]
    }
    assert reasons == {
        "customer_request": (2, 5.0, 2.0),
        "negative_feedback": (2, 30.0, 38.5),
        "fallback": (1, 10.0, 1.0),
    }
    assert [(p["priority"], p["escalations"], p["sla_breaches"]) for p in body["by_priority"]] == [
        (3, 2, {"first_reply": 1, "resolution": 2}),
        (2, 2, {"first_reply": 1, "resolution": 0}),
        (1, 1, {"first_reply": 0, "resolution": 0}),
    ]


async def test_per_agent_times_and_survey_scores(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    body = await _found(session_factory)
    got = [
        (
            a["name"],
            a["escalations"],
            a["first_reply"]["mean_minutes"],
            a["resolution"]["mean_hours"],
            a["csat"]["percent"],
            a["csat"]["responses"],
            a["csat"]["too_few"],
            a["ces"]["mean"],
            a["ces"]["responses"],
        )
        for a in body["agents"]
    ]
    # conv-a's survey follows E1 (Alice), resolved after E6 (Bob, February).
    assert got == [
        ("Alice", 2, 7.5, 1.5, 100.0, 2, False, 2.0, 1),
        ("Bob", 2, 30.0, 38.5, 0.0, 1, True, 6.0, 1),
    ]
    assert body["agents"][1]["sla_breaches"] == {"first_reply": 1, "resolution": 2}


async def test_range_in_another_time_zone_and_an_empty_range(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    from zoneinfo import ZoneInfo

    await seed_support_ops(session_factory)
    # Berlin's March starts at 02-28 23:00 UTC and ends at 03-31 22:00 UTC: E4 (23:00 UTC)
    # is April there.
    berlin = DateRange(date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Europe/Berlin"))
    async with session_factory() as db:
        found = await support_ops.support_operations(db, berlin, NOW, RULES)
        empty = await support_ops.support_operations(
            db, DateRange(date(2025, 1, 1), date(2025, 1, 31)), NOW, RULES
        )
    assert (found.total.escalations, found.total.chats, found.total.reply_breaches) == (4, 3, 1)
    assert empty.as_json(10)["total"]["first_reply"]["mean_minutes"] is None
    assert empty.agents == [] and empty.by_reason == {}


async def test_support_api_over_http(
    client: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    from bot.domain.enums import StaffRole
    from tests.staff_helpers import create_staff, sign_in

    await create_staff(session_factory)
    await seed_support_ops(session_factory)
    await sign_in(client, StaffRole.cx_manager)
    response = await client.get("/api/support?from=2026-03-01&to=2026-03-31")
    assert response.status == 200, await response.text()
    body = await response.json()
    # Defaults: ESCALATION_AGING_MINUTES 15, SUPPORT_SLA_RESOLUTION_HOURS 24, now = today,
    # so E4 (open since March 31st) is a late resolution too.
    assert body["sla"] == {"first_reply_minutes": 15, "resolution_hours": 24}
    assert body["min_answers"] == 10
    assert body["total"]["sla_breaches"] == {"first_reply": 2, "resolution": 3}
    assert [(a["name"], a["csat"]["too_few"]) for a in body["agents"]] == [
        ("Alice", True),
        ("Bob", True),
    ]
    bad = await client.get("/api/support?from=2026-03-01&stage=use")
    assert bad.status == 422
    assert "'stage'" in (await bad.json())["error"]["message"]


async def test_report_section_markdown_and_csv(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    from bot.cli import report_support
    from bot.config import Settings

    await seed_support_ops(session_factory)
    async with session_factory() as db:
        md = await report_support.section(db, MARCH, "md", Settings(), NOW)
        rows = await report_support.section(db, MARCH, "csv", Settings(), NOW)
    assert "## Support operations" in md
    assert "| all escalations | 5 | 15.0 | 3 | 66.7 | 20.0 | 4 | 50.0 | 2 | 2 | – | – |" in md
    assert "| agent: Alice | 2 | 7.5 | 2 | 100.0 | 1.5 | 2 | 100.0 | 0 | 0 | 100.0 | 2.0 |" in md
    assert (
        "| reason: Bot did not understand | 1 | 10.0 | 1 | 100.0 | 1.0 | 1 | 100.0 | 0 | 0 |" in md
    )
    lines = rows.splitlines()
    assert lines[1] == "support_total,all escalations,5,15.0,3,66.7,20.0,4,50.0,2,2,,"
    assert lines[-1] == "support_agent,Bob,2,30.0,1,0.0,38.5,2,0.0,1,2,0.0,6.0"


async def test_support_surveys_of_chats_are_read_through_their_partial_index(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The per-agent answers start from the support surveys of chats: the partial index
    ix_survey_dispatches_support_chats (migration 0032) answers that list on both databases
    (before it, every dispatch was read: 30 ms of the endpoint's 37 ms at 1 M rows)."""
    assert f"trigger = '{TRIGGER_ESCALATION_RESOLVED}'" in SUPPORT_CHAT_SURVEYS
    statement = select(SurveyDispatch.id).where(*support_ops.support_chat_surveys())
    async with session_factory() as db:
        dialect = db.get_bind().dialect
        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "postgresql":
            await db.execute(text("SET LOCAL enable_seqscan = off"))  # tiny tables: no shortcut
            plan = " ".join(str(r[0]) for r in await db.execute(text("EXPLAIN " + sql)))
        else:
            plan = " ".join(str(r[-1]) for r in await db.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert "ix_survey_dispatches_support_chats" in plan, plan
