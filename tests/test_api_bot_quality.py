"""How well the bot understands (bot/domain/bot_analytics.py, /api/bot-quality):
containment, fallback rate, misunderstanding hand-over rate, rephrase rate and flagged
turns per 100 conversations, "did this help?" ratings, overall, by week and by intent, and
before/after a change of model (/api/bot-quality/retrainings), exact on seeded data (SQLite
and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import answer_ratings, bot_analytics, review_inbox
from bot.domain.enums import EscalationReason, MessageSender, StaffRole
from bot.domain.errors import InvalidInput, NotFound
from bot.storage.models import AnswerRating, Conversation, Escalation, Message
from tests.staff_helpers import bearer, create_api_token

Sessions = async_sessionmaker[AsyncSession]
MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc)  # week of 2026-11-23
NEXT_WEEK = MONDAY + dt.timedelta(days=7)


def _nlu(
    intent: str, confidence: float = 0.95, runner_up: str = "out_of_scope", second: float = 0.02
) -> dict[str, Any]:
    return {
        "intent": intent,
        "confidence": confidence,
        "runner_up": runner_up,
        "runner_up_confidence": second,
        "entities": [],
        "steps": [],
    }


async def _seed(sessions: Sessions) -> None:
    """Four conversations:
    c1 (week 1): order_status understood; contained.
    c2 (week 1): nlu_fallback, the same again (a rephrase), then a person asked for (after a
        misunderstanding) and handed over.
    c3 (week 2): order_status, then an angry message; escalated by the customer's request.
    c4 (week 2): return_item at low confidence; the bot handed over itself (bot_failure)."""
    plan = [
        ("c1", MONDAY, [("where is my order", _nlu("order_status"))], None),
        (
            "c2",
            MONDAY,
            [
                ("my thingy", _nlu("nlu_fallback", 0.45, "delivery_problem", 0.3)),
                ("my thingy!!", _nlu("nlu_fallback", 0.45, "delivery_problem", 0.3)),
                ("human please", _nlu("request_human")),
            ],
            EscalationReason.customer_request,
        ),
        (
            "c3",
            NEXT_WEEK,
            [
                ("where is my order", _nlu("order_status")),
                ("this is awful, I hate this useless shop", _nlu("complain")),
            ],
            EscalationReason.customer_request,
        ),
        (
            "c4",
            NEXT_WEEK,
            [("i wanna send it back maybe", _nlu("return_item", 0.3, "damaged_item", 0.25))],
            EscalationReason.bot_failure,
        ),
    ]
    async with sessions() as db, db.begin():
        for conversation_id, at, turns, escalation in plan:
            db.add(Conversation(id=conversation_id, created_at=at))
            await db.flush()
            for minute, (text, nlu) in enumerate(turns):
                when = at + dt.timedelta(minutes=minute)
                message = Message(
                    conversation_id=conversation_id,
                    sender=MessageSender.customer,
                    text=text,
                    created_at=when,
                )
                db.add(message)
                await db.flush()
                await review_inbox.record_turn(db, message, nlu)
                db.add(
                    Message(
                        conversation_id=conversation_id,
                        sender=MessageSender.bot,
                        text="OK.",
                        created_at=when,
                    )
                )
                await db.flush()
            if escalation is not None:
                db.add(
                    Escalation(
                        conversation_id=conversation_id,
                        reason=escalation,
                        priority=1,
                        created_at=at + dt.timedelta(minutes=10),
                    )
                )


def _figures(
    conversations: int,
    turns: int,
    contained: int,
    fallbacks: int,
    handovers: int,
    rephrases: int,
    flagged: int,
    rated: int = 0,
    helpful: int = 0,
) -> dict[str, Any]:
    def rate(part: int, whole: int, scale: float = 1.0) -> float | None:
        return round(part * scale / whole, 4) if whole else None

    return {
        "conversations": conversations,
        "turns": turns,
        "contained": contained,
        "containment": rate(contained, conversations),
        "fallbacks": fallbacks,
        "fallback_rate": rate(fallbacks, turns),
        "misunderstanding_handovers": handovers,
        "misunderstanding_handover_rate": rate(handovers, conversations),
        "rephrases": rephrases,
        "rephrase_rate": rate(rephrases, turns),
        "flagged_turns": flagged,
        "flagged_rate": rate(flagged, turns),
        "flagged_per_100_conversations": rate(flagged, conversations, 100.0),
        "answers_rated": rated,
        "helpful": helpful,
        "helpful_rate": rate(helpful, rated),
    }


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
        "overall": _figures(0, 0, 0, 0, 0, 0, 0),
        "by_week": [],
        "by_intent": [],
    }


async def test_the_api(
    client: TestClient[web.Request, web.Application], session_factory: Sessions
) -> None:
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


# ---- "did this help?" and before/after a retraining ------------------------------------

CHANGE = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)  # model m2's first turn
POLICY_STEPS = ("action_answer_policy_question",)


async def _turn(
    db: AsyncSession,
    chat: str,
    at: dt.datetime,
    text: str,
    intent: str,
    confidence: float,
    model: str | None,
    steps: tuple[str, ...] = (),
) -> int:
    """A customer message with its NLU result, and the bot's answer; the answer's id."""
    if await db.get(Conversation, chat) is None:
        db.add(Conversation(id=chat, created_at=at))
        await db.flush()
    message = Message(conversation_id=chat, sender=MessageSender.customer, text=text, created_at=at)
    db.add(message)
    await db.flush()
    nlu = {**_nlu(intent, confidence, "greet", 0.01), "steps": list(steps), "model_id": model}
    await review_inbox.record_turn(db, message, nlu)
    answer = Message(
        conversation_id=chat, sender=MessageSender.bot, text="Our policy…", created_at=at
    )
    db.add(answer)
    await db.flush()
    return answer.id


async def _seed_models(sessions: Sessions) -> dict[str, int]:
    """m1 from CHANGE - 2 days, m2 from CHANGE (ten days before `now`): with a 7-day window
    the windows are 2 days each (m1 ran only 2 days before the change). a0 (no model id, 3
    days before) and b3 (m2, 3 days after) are outside both."""
    async with sessions() as db, db.begin():
        answers = {
            "a0": await _turn(db, "a0", CHANGE - dt.timedelta(days=3), "old", "greet", 0.9, None),
            "a1": await _turn(
                db,
                "a1",
                CHANGE - dt.timedelta(days=2),
                "what is your returns policy",
                "policy_question",
                0.9,
                "m1",
                POLICY_STEPS,
            ),
            "a2": await _turn(
                db, "a2", CHANGE - dt.timedelta(days=1), "my thingy", "nlu_fallback", 0.3, "m1"
            ),
            "b1": await _turn(
                db,
                "b1",
                CHANGE,
                "how long do refunds take",
                "policy_question",
                0.9,
                "m2",
                POLICY_STEPS,
            ),
            "b2": await _turn(
                db,
                "b2",
                CHANGE + dt.timedelta(days=1),
                "where is my order",
                "order_status",
                0.9,
                "m2",
            ),
            "b3": await _turn(
                db, "b3", CHANGE + dt.timedelta(days=3), "the gizmo", "nlu_fallback", 0.2, "m2"
            ),
        }
        await answer_ratings.rate(db, "a1", answers["a1"], True)
        await answer_ratings.rate(db, "a1", answers["a1"], False)  # the last click counts
        await answer_ratings.rate(db, "b1", answers["b1"], True)
    return answers


async def test_answer_ratings_only_on_knowledge_answers_of_the_conversation(
    session_factory: Sessions,
) -> None:
    answers = await _seed_models(session_factory)
    async with session_factory() as db, db.begin():
        rows = {r.message_id: r for r in await db.scalars(select(AnswerRating))}
        assert {
            m: (r.conversation_id, r.helpful, r.intent, r.model_id) for m, r in rows.items()
        } == {
            answers["a1"]: ("a1", False, "policy_question", "m1"),
            answers["b1"]: ("b1", True, "policy_question", "m2"),
        }
        assert rows[answers["b1"]].answered_at == CHANGE
        with pytest.raises(InvalidInput):  # an answer to an order-status question
            await answer_ratings.rate(db, "b2", answers["b2"], True)
        with pytest.raises(NotFound):  # another conversation's answer
            await answer_ratings.rate(db, "a1", answers["b1"], True)
        customer = await db.scalar(
            select(Message.id).where(
                Message.conversation_id == "b1", Message.sender == MessageSender.customer
            )
        )
        with pytest.raises(NotFound):  # the customer's own message
            await answer_ratings.rate(db, "b1", int(customer or 0), True)
        # Erased with the transcript (bot/domain/privacy.py calls forget).
        await review_inbox.forget(db, select(Message.id).where(Message.conversation_id == "a1"))
        assert list(await db.scalars(select(AnswerRating.message_id))) == [answers["b1"]]


async def test_ratings_count_in_the_figures(session_factory: Sessions) -> None:
    await _seed_models(session_factory)
    async with session_factory() as db:
        report = await bot_analytics.understanding_quality(
            db, CHANGE - dt.timedelta(days=2), CHANGE + dt.timedelta(days=2)
        )
    # a1, a2, b1, b2: a2 is a fallback at low confidence; a1 rated no, b1 yes.
    assert report["overall"] == _figures(4, 4, 4, 1, 0, 0, 1, rated=2, helpful=1)
    assert report["by_intent"] == [
        {"intent": "policy_question", **_figures(2, 2, 2, 0, 0, 0, 0, rated=2, helpful=1)},
        {"intent": "nlu_fallback", **_figures(1, 1, 1, 1, 0, 0, 1)},
        {"intent": "order_status", **_figures(1, 1, 1, 0, 0, 0, 0)},
    ]
    assert [(w["week"], w["answers_rated"], w["helpful"]) for w in report["by_week"]] == [
        ("2026-11-16", 2, 1),
    ]


async def test_before_and_after_a_retraining(session_factory: Sessions) -> None:
    await _seed_models(session_factory)
    now = CHANGE + dt.timedelta(days=10)
    async with session_factory() as db:
        report = await bot_analytics.retrainings(db, now)
        short = await bot_analytics.retrainings(db, now, dt.timedelta(hours=12))
    two_days = CHANGE - dt.timedelta(days=2)
    assert report["window_days"] == 7
    assert report["models"] == [
        {
            "model_id": "m2",
            "first_seen": CHANGE.isoformat(),
            "last_seen": (CHANGE + dt.timedelta(days=3)).isoformat(),
            "turns": 3,
        },
        {
            "model_id": "m1",
            "first_seen": two_days.isoformat(),
            "last_seen": (CHANGE - dt.timedelta(days=1)).isoformat(),
            "turns": 2,
        },
    ]
    assert report["retrainings"] == [
        {
            "previous_model_id": "m1",
            "model_id": "m2",
            "changed_at": CHANGE.isoformat(),
            "window_days": 2.0,
            "before": {
                "from": two_days.isoformat(),
                "to": CHANGE.isoformat(),
                **_figures(2, 2, 2, 1, 0, 0, 1, rated=1, helpful=0),
            },
            "after": {
                "from": CHANGE.isoformat(),
                "to": (CHANGE + dt.timedelta(days=2)).isoformat(),
                **_figures(2, 2, 2, 0, 0, 0, 0, rated=1, helpful=1),
            },
        }
    ]
    # Half a day each side: nothing before (a2 was a day earlier), b1 after.
    [change] = short["retrainings"]
    assert change["window_days"] == 0.5
    assert change["before"]["turns"] == 0 and change["before"]["containment"] is None
    assert change["after"] == {
        "from": CHANGE.isoformat(),
        "to": (CHANGE + dt.timedelta(hours=12)).isoformat(),
        **_figures(1, 1, 1, 0, 0, 0, 0, rated=1, helpful=1),
    }


async def test_the_retrainings_api(
    client: TestClient[web.Request, web.Application], session_factory: Sessions
) -> None:
    await _seed_models(session_factory)
    token = await create_api_token(session_factory, StaffRole.cx_manager)
    response = await client.get(
        "/api/bot-quality/retrainings", params={"window_days": "30"}, headers=bearer(token)
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["window_days"] == 30
    assert [m["model_id"] for m in body["models"]] == ["m2", "m1"]
    [change] = body["retrainings"]
    # m1 ran two days before m2 took over: both windows are two days, whatever was asked.
    assert (change["model_id"], change["window_days"]) == ("m2", 2.0)
    assert (change["before"]["fallbacks"], change["after"]["fallbacks"]) == (1, 0)
    for bad in ({"window_days": "0"}, {"window_days": "91"}, {"window_days": "x"}, {"y": "1"}):
        refused = await client.get(
            "/api/bot-quality/retrainings", params=bad, headers=bearer(token)
        )
        assert refused.status == 422, bad
    agent = await create_api_token(session_factory, StaffRole.agent, "agent")
    assert (await client.get("/api/bot-quality/retrainings", headers=bearer(agent))).status == 403
