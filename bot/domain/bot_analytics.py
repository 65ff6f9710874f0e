"""Bot analytics from Rasa's tracker events: turns, fallbacks, handoffs, containment.

Rasa publishes every tracker event to the event broker (production profile); the
analytics consumer (`bot/analytics_consumer.py`) turns the ones that count into rows here.
A broker may deliver a message twice: each row's key is unique in the database.

* turn: a customer message (`user` event);
* fallback: a message the bot did not understand (intent `nlu_fallback`) or a turn where
  no dialogue rule applied (`action_default_fallback`);
* handoff: the conversation was handed to a person (Rasa's `pause` event, sent by the
  escalating action);
* containment rate: of the conversations with at least one customer message in the
  period, the share that were never handed to a person in that period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import BotEvent, BotEventKind

IGNORED_SENDER_PREFIXES = ("preflight-",)  # the launcher's and /readyz's probes
FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTION = "action_default_fallback"
MAX_CONVERSATION_ID = 100


@dataclass(frozen=True)
class CountedEvent:
    key: str
    conversation_id: str
    kind: BotEventKind
    occurred_at: dt.datetime


def counted_events(event: dict[str, Any]) -> list[CountedEvent]:
    """The analytics rows one Rasa broker event stands for (usually none or one)."""
    sender = event.get("sender_id")
    name = event.get("event")
    timestamp = event.get("timestamp")
    if (
        not isinstance(sender, str)
        or not sender
        or len(sender) > MAX_CONVERSATION_ID
        or sender.startswith(IGNORED_SENDER_PREFIXES)
        or not isinstance(timestamp, int | float)
    ):
        return []
    at = dt.datetime.fromtimestamp(float(timestamp), dt.timezone.utc)
    kinds: list[BotEventKind] = []
    if name == "user":
        kinds.append(BotEventKind.user_turn)
        intent = (event.get("parse_data") or {}).get("intent") or {}
        if isinstance(intent, dict) and intent.get("name") == FALLBACK_INTENT:
            kinds.append(BotEventKind.fallback)
    elif name == "action" and event.get("name") == FALLBACK_ACTION:
        kinds.append(BotEventKind.fallback)
    elif name == "pause":
        kinds.append(BotEventKind.handoff)
    # Rasa's timestamp (microseconds) identifies the event within its conversation.
    return [
        CountedEvent(f"{sender}:{kind.value}:{float(timestamp):.6f}", sender, kind, at)
        for kind in kinds
    ]


async def record(session: AsyncSession, events: list[CountedEvent]) -> int:
    """Store the events not stored yet; returns how many were new."""
    if not events:
        return 0
    keys = [e.key for e in events]
    known = set(
        await session.scalars(select(BotEvent.event_key).where(BotEvent.event_key.in_(keys)))
    )
    new = 0
    for event in events:
        if event.key in known:
            continue
        try:
            async with session.begin_nested():
                session.add(
                    BotEvent(
                        event_key=event.key, conversation_id=event.conversation_id,
                        kind=event.kind, occurred_at=event.occurred_at,
                    )
                )  # fmt: skip
        except IntegrityError:  # a concurrent consumer stored it a moment earlier
            continue
        known.add(event.key)
        new += 1
    return new


@dataclass(frozen=True)
class Containment:
    conversations: int  # with at least one customer message in the period
    turns: int
    fallbacks: int
    handoffs: int  # conversations handed to a person in the period
    rate: float | None  # (conversations - handoffs) / conversations; None without any

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.turns if self.turns else None


async def containment(session: AsyncSession, since: dt.datetime, until: dt.datetime) -> Containment:
    """Turns, fallbacks, handoffs and the containment rate for [since, until)."""
    in_period = (BotEvent.occurred_at >= since) & (BotEvent.occurred_at < until)
    counts = dict(
        (kind, count)
        for kind, count in (
            await session.execute(
                select(BotEvent.kind, func.count()).where(in_period).group_by(BotEvent.kind)
            )
        ).all()
    )
    conversations = await session.scalar(
        select(func.count(distinct(BotEvent.conversation_id))).where(
            in_period, BotEvent.kind == BotEventKind.user_turn
        )
    )
    handed_off = await session.scalar(
        select(func.count(distinct(BotEvent.conversation_id))).where(
            in_period,
            BotEvent.kind == BotEventKind.handoff,
            BotEvent.conversation_id.in_(
                select(BotEvent.conversation_id).where(
                    in_period, BotEvent.kind == BotEventKind.user_turn
                )
            ),
        )
    )
    total, handoffs = int(conversations or 0), int(handed_off or 0)
    return Containment(
        conversations=total,
        turns=int(counts.get(BotEventKind.user_turn, 0)),
        fallbacks=int(counts.get(BotEventKind.fallback, 0)),
        handoffs=handoffs,
        rate=(total - handoffs) / total if total else None,
    )
