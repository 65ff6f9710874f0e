"""Bot analytics from Rasa's broker events: what counts, exactly once, containment."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.analytics_consumer import handle
from bot.domain import bot_analytics
from bot.domain.enums import BotEventKind
from bot.storage.models import BotEvent

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)


def _user(sender: str, at: float, intent: str = "order_status") -> dict[str, Any]:
    return {
        "sender_id": sender,
        "event": "user",
        "timestamp": at,
        "text": "x",
        "parse_data": {"intent": {"name": intent, "confidence": 0.9}},
    }


def _ts(minutes: float) -> float:
    return (T0 + dt.timedelta(minutes=minutes)).timestamp()


def test_counted_events() -> None:
    assert [e.kind for e in bot_analytics.counted_events(_user("c1", _ts(0)))] == [
        BotEventKind.user_turn
    ]
    fallback = bot_analytics.counted_events(_user("c1", _ts(1), "nlu_fallback"))
    assert [e.kind for e in fallback] == [BotEventKind.user_turn, BotEventKind.fallback]
    assert [
        e.kind
        for e in bot_analytics.counted_events(
            {
                "sender_id": "c1",
                "event": "action",
                "name": "action_default_fallback",
                "timestamp": _ts(2),
            }
        )
    ] == [BotEventKind.fallback]
    assert [
        e.kind
        for e in bot_analytics.counted_events(
            {"sender_id": "c1", "event": "pause", "timestamp": _ts(3)}
        )
    ] == [BotEventKind.handoff]
    for ignored in (
        {"sender_id": "c1", "event": "bot", "timestamp": _ts(4), "text": "hi"},
        {"sender_id": "c1", "event": "action", "name": "action_listen", "timestamp": _ts(4)},
        _user("preflight-readyz", _ts(4)),  # the launcher's and /readyz's probes
        {"event": "user", "timestamp": _ts(4)},  # no sender
        {"sender_id": "c1", "event": "user"},  # no timestamp
    ):
        assert bot_analytics.counted_events(ignored) == []
    assert fallback[0].occurred_at == T0 + dt.timedelta(minutes=1)


async def test_a_redelivered_broker_message_is_counted_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    body = json.dumps(_user("c1", _ts(0), "nlu_fallback")).encode()
    assert await handle(session_factory, body) == 2
    assert await handle(session_factory, body) == 0
    assert await handle(session_factory, b"not json") == 0
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(BotEvent)) == 2


async def test_containment_over_a_period(session: AsyncSession) -> None:
    events = [
        _user("contained", _ts(0)),
        _user("contained", _ts(1), "nlu_fallback"),
        _user("handed", _ts(2)),
        {"sender_id": "handed", "event": "pause", "timestamp": _ts(3)},
        _user("contained-2", _ts(4)),
        _user("earlier", _ts(-120)),  # outside the period
        {"sender_id": "no-turn", "event": "pause", "timestamp": _ts(5)},  # no customer turn
    ]
    for event in events:
        await bot_analytics.record(session, bot_analytics.counted_events(event))
    await session.commit()

    figures = await bot_analytics.containment(
        session, T0 - dt.timedelta(minutes=5), T0 + dt.timedelta(hours=1)
    )

    assert figures == bot_analytics.Containment(
        conversations=3, turns=4, fallbacks=1, handoffs=1, rate=2 / 3
    )
    assert figures.fallback_rate == 0.25
    empty = await bot_analytics.containment(
        session, T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=2)
    )
    assert empty.rate is None and empty.conversations == 0


async def test_a_batch_message_counts_as_its_events_each_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """rasa_ext.event_broker publishes a turn's events as one JSON array: the same rows as
    one message per event, each once, also when the batch is redelivered or overlaps."""
    events = [
        {"sender_id": "c2", "event": "action", "name": "action_listen", "timestamp": _ts(0)},
        _user("c2", _ts(1)),
        {"sender_id": "c2", "event": "bot", "timestamp": _ts(2), "text": "hi"},
        _user("c2", _ts(3), "nlu_fallback"),
        "not an event",
    ]
    assert await handle(session_factory, json.dumps(events).encode()) == 3
    assert await handle(session_factory, json.dumps(events).encode()) == 0
    assert await handle(session_factory, json.dumps(events[3]).encode()) == 0
    async with session_factory() as session:
        kinds = await session.scalars(
            select(BotEvent.kind).where(BotEvent.conversation_id == "c2").order_by(BotEvent.id)
        )
        assert list(kinds) == [
            BotEventKind.user_turn,
            BotEventKind.user_turn,
            BotEventKind.fallback,
        ]
