"""Issue #24: how well the bot understands (bot/domain/bot_analytics.py, /api/bot-quality):
containment, fallback rate, misunderstanding hand-over rate, rephrase rate and flagged
turns per 100 conversations, overall, by week and by intent, exact on seeded data (SQLite
and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import bot_analytics, review_inbox
from bot.storage.models import (
    Conversation,
    Escalation,
    EscalationReason,
    Message,
    MessageSender,
    StaffRole,
)
from tests.staff_helpers import bearer, create_api_token

Sessions = async_sessionmaker[AsyncSession]
MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc)  # week of 2026-11-23
NEXT_WEEK = MONDAY + dt.timedelta(days=7)


def _nlu(intent: str, confidence: float = 0.95, runner_up: str = "out_of_scope", second: float = 0.02) -> dict[str, Any]:  # fmt: skip
    return {"intent": intent, "confidence": confidence, "runner_up": runner_up,
            "runner_up_confidence": second, "entities": [], "steps": []}  # fmt: skip


async def _seed(sessions: Sessions) -> None:
    """Four conversations:
    c1 (week 1): order_status understood; contained.
    c2 (week 1): nlu_fallback, the same again (a rephrase), then a person asked for (after a
        misunderstanding) and handed over.
    c3 (week 2): order_status, then an angry message; escalated by the customer's request.
    c4 (week 2): return_item at low confidence; the bot handed over itself (bot_failure)."""
    plan = [
        ("c1", MONDAY, [("where is my order", _nlu("order_status"))], None),
        ("c2", MONDAY, [
            ("my thingy", _nlu("nlu_fallback", 0.45, "delivery_problem", 0.3)),
            ("my thingy!!", _nlu("nlu_fallback", 0.45, "delivery_problem", 0.3)),
            ("human please", _nlu("request_human")),
        ], EscalationReason.customer_request),
        ("c3", NEXT_WEEK, [
            ("where is my order", _nlu("order_status")),
            ("this is awful, I hate this useless shop", _nlu("complain")),
        ], EscalationReason.customer_request),
        ("c4", NEXT_WEEK, [("i wanna send it back maybe", _nlu("return_item", 0.3, "damaged_item", 0.25))],
         EscalationReason.bot_failure),
    ]  # fmt: skip
    async with sessions() as db, db.begin():
        for conversation_id, at, turns, escalation in plan:
            db.add(Conversation(id=conversation_id, created_at=at))
            await db.flush()
            for minute, (text, nlu) in enumerate(turns):
                when = at + dt.timedelta(minutes=minute)
                message = Message(conversation_id=conversation_id, sender=MessageSender.customer,
                                  text=text, created_at=when)  # fmt: skip
                db.add(message)
                await db.flush()
                await review_inbox.record_turn(db, message, nlu)
                db.add(Message(conversation_id=conversation_id, sender=MessageSender.bot,
                               text="OK.", created_at=when))  # fmt: skip
                await db.flush()
            if escalation is not None:
                db.add(Escalation(conversation_id=conversation_id, reason=escalation, priority=1,
                                  created_at=at + dt.timedelta(minutes=10)))  # fmt: skip


def _figures(conversations: int, turns: int, contained: int, fallbacks: int, handovers: int,
             rephrases: int, flagged: int) -> dict[str, Any]:  # fmt: skip
    def rate(part: int, whole: int, scale: float = 1.0) -> float | None:
        return round(part * scale / whole, 4) if whole else None

    return {
        "conversations": conversations, "turns": turns,
        "contained": contained, "containment": rate(contained, conversations),
        "fallbacks": fallbacks, "fallback_rate": rate(fallbacks, turns),
        "misunderstanding_handovers": handovers,
        "misunderstanding_handover_rate": rate(handovers, conversations),
        "rephrases": rephrases, "rephrase_rate": rate(rephrases, turns),
        "flagged_turns": flagged,
        "flagged_per_100_conversations": rate(flagged, conversations, 100.0),
    }  # fmt: skip


async def test_the_figures_are_exact_on_seeded_data(session_factory: Sessions) -> None:
    await _seed(session_factory)
    async with session_factory() as db:
        report = await bot_analytics.understanding_quality(
            db, MONDAY - dt.timedelta(days=1), NEXT_WEEK + dt.timedelta(days=1)
        )
        only_week_2 = await bot_analytics.understanding_quality(
            db, NEXT_WEEK - dt.timedelta(hours=1), NEXT_WEEK + dt.timedelta(days=1)
        )
    # Flagged: c2's three turns (fallback+low conf+rephrase, fallback+low conf, person after
    # a misunderstanding), c3's angry message, c4's low-confidence one: 5 of 7 turns.
    assert report["overall"] == _figures(4, 7, 1, 2, 2, 1, 5)
    assert report["by_week"] == [
        {"week": "2026-11-23", **_figures(2, 4, 1, 2, 1, 1, 3)},
        {"week": "2026-11-30", **_figures(2, 3, 0, 0, 1, 0, 2)},
    ]
    assert report["by_intent"] == [
        {"intent": "nlu_fallback", **_figures(1, 2, 0, 2, 0, 1, 2)},
        {"intent": "order_status", **_figures(2, 2, 1, 0, 0, 0, 0)},
        {"intent": "complain", **_figures(1, 1, 0, 0, 0, 0, 1)},
        {"intent": "request_human", **_figures(1, 1, 0, 0, 1, 0, 1)},
        {"intent": "return_item", **_figures(1, 1, 0, 0, 1, 0, 1)},
    ]
    assert only_week_2["overall"] == _figures(2, 3, 0, 0, 1, 0, 2)


def test_no_turns_no_rates() -> None:
    assert bot_analytics.quality_report([], []) == {
        "overall": _figures(0, 0, 0, 0, 0, 0, 0), "by_week": [], "by_intent": [],
    }  # fmt: skip


async def test_the_api(client: TestClient, session_factory: Sessions) -> None:
    await _seed(session_factory)
    token = await create_api_token(session_factory, StaffRole.bot_trainer)
    response = await client.get(
        "/api/bot-quality", params={"from": "2026-11-23", "to": "2026-11-29"}, headers=bearer(token)
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["range"] == {"from": "2026-11-23", "to": "2026-11-29", "tz": "UTC"}
    assert body["overall"] == _figures(2, 4, 1, 2, 1, 1, 3)
    refused = await client.get("/api/bot-quality", params={"x": "1"}, headers=bearer(token))
    assert refused.status == 422
    agent = await create_api_token(session_factory, StaffRole.agent, "agent")
    assert (await client.get("/api/bot-quality", headers=bearer(agent))).status == 403
