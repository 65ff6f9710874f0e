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

`understanding_quality` (issue #24, below) gives the same containment and more (fallback,
misunderstanding hand-over and rephrase rates, flagged turns) from the product's own
database, so also in the embedded default, by week and by intent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.enums import BotEventKind
from bot.storage.models import AnswerRating, BotEvent, Escalation, TurnFlag, TurnUnderstanding

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
                        event_key=event.key,
                        conversation_id=event.conversation_id,
                        kind=event.kind,
                        occurred_at=event.occurred_at,
                    )
                )
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


# ---- how well the bot understands (issue #24) ----------------------------------------------
#
# From the product's database, so in the embedded default as in the production profile: the
# NLU result of every customer turn and its flags (bot/domain/review_inbox.py) and the
# escalations. Over the conversations with at least one customer turn in the period:
#
# * containment: the share with no escalation in the period (the bot finished without a
#   person);
# * fallback rate: turns flagged `fallback` / turns;
# * misunderstanding hand-over rate: the share of conversations where the customer asked
#   for a person right after a misunderstanding (flag `human_after_misunderstanding`) or the
#   bot handed over because it failed (escalation reason `fallback` or `bot_failure`);
# * rephrase rate: turns flagged `rephrase` / turns;
# * flagged per 100 conversations: turns with any flag × 100 / conversations.
#
# * answers rated / helpful / helpful rate: the customers' "did this help?" on the bot's
#   knowledge answers (bot/domain/answer_ratings.py), counted at the answered turn;
#
# By ISO week (Monday, in UTC) of the turn, and by the intent the NLU predicted (a
# conversation counts for every intent it had). Every figure comes with its n.
#
# Around a retraining (`retrainings`): each turn records the id of the model that read it
# (turn_understandings.model_id); a change of model is the first turn with a new id. The
# figures of two equal windows, before and after that moment: `window` each, shortened to
# the shorter of the time the previous model ran before it and the time the new one ran
# after it (until the next change or now), so that both windows are as long and each has
# one model.

MISUNDERSTANDING_ESCALATIONS = frozenset({"fallback", "bot_failure"})


@dataclass(frozen=True)
class TurnRow:
    conversation_id: str
    intent: str | None
    at: dt.datetime
    reasons: frozenset[str]


@dataclass(frozen=True)
class EscalationRow:
    conversation_id: str
    reason: str
    at: dt.datetime


@dataclass(frozen=True)
class RatingRow:
    intent: str | None
    at: dt.datetime  # when the answered turn happened
    helpful: bool


def _rate(part: int, whole: int, scale: float = 1.0) -> float | None:
    return round(part * scale / whole, 4) if whole else None


def quality_figures(
    turns: list[TurnRow],
    escalations: list[EscalationRow],
    ratings: list[RatingRow] | None = None,
) -> dict[str, Any]:
    """The figures of a set of turns (one period, week or intent), the escalations of
    their conversations in the same period and the ratings of the answers to them."""
    conversations = {t.conversation_id for t in turns}
    escalated = {e.conversation_id for e in escalations if e.conversation_id in conversations}
    misunderstood = {
        t.conversation_id for t in turns if "human_after_misunderstanding" in t.reasons
    } | {
        e.conversation_id
        for e in escalations
        if e.conversation_id in conversations and e.reason in MISUNDERSTANDING_ESCALATIONS
    }
    n_conv, n_turns = len(conversations), len(turns)
    fallbacks = sum("fallback" in t.reasons for t in turns)
    rephrases = sum("rephrase" in t.reasons for t in turns)
    flagged = sum(bool(t.reasons) for t in turns)
    rated = ratings or []
    helpful = sum(r.helpful for r in rated)
    return {
        "conversations": n_conv,
        "turns": n_turns,
        "contained": n_conv - len(escalated),
        "containment": _rate(n_conv - len(escalated), n_conv),
        "fallbacks": fallbacks,
        "fallback_rate": _rate(fallbacks, n_turns),
        "misunderstanding_handovers": len(misunderstood),
        "misunderstanding_handover_rate": _rate(len(misunderstood), n_conv),
        "rephrases": rephrases,
        "rephrase_rate": _rate(rephrases, n_turns),
        "flagged_turns": flagged,
        "flagged_rate": _rate(flagged, n_turns),
        "flagged_per_100_conversations": _rate(flagged, n_conv, 100.0),
        "answers_rated": len(rated),
        "helpful": helpful,
        "helpful_rate": _rate(helpful, len(rated)),
    }


def week_of(at: dt.datetime) -> dt.date:
    day = at.astimezone(dt.timezone.utc).date()
    return day - dt.timedelta(days=day.weekday())


def quality_report(
    turns: list[TurnRow],
    escalations: list[EscalationRow],
    ratings: list[RatingRow] | None = None,
) -> dict[str, Any]:
    """Overall, by week and by intent."""
    rated = ratings or []
    weeks: dict[dt.date, list[TurnRow]] = {}
    intents: dict[str, list[TurnRow]] = {}
    for turn in turns:
        weeks.setdefault(week_of(turn.at), []).append(turn)
        intents.setdefault(turn.intent or "(none)", []).append(turn)
    by_week = []
    for week, rows in sorted(weeks.items()):
        end = week + dt.timedelta(days=7)
        in_week = [e for e in escalations if week <= e.at.astimezone(dt.timezone.utc).date() < end]
        week_ratings = [r for r in rated if week_of(r.at) == week]
        by_week.append({"week": week.isoformat(), **quality_figures(rows, in_week, week_ratings)})
    by_intent = [
        {
            "intent": intent,
            **quality_figures(
                rows, escalations, [r for r in rated if (r.intent or "(none)") == intent]
            ),
        }
        for intent, rows in sorted(intents.items(), key=lambda item: (-len(item[1]), item[0]))
    ]
    return {
        "overall": quality_figures(turns, escalations, rated),
        "by_week": by_week,
        "by_intent": by_intent,
    }


async def _rows(
    session: AsyncSession, since: dt.datetime, until: dt.datetime
) -> tuple[list[TurnRow], list[EscalationRow], list[RatingRow]]:
    """The customer turns, escalations and answer ratings of [since, until)."""
    rows = (
        await session.execute(
            select(
                TurnUnderstanding.message_id,
                TurnUnderstanding.conversation_id,
                TurnUnderstanding.intent,
                TurnUnderstanding.created_at,
            ).where(TurnUnderstanding.created_at >= since, TurnUnderstanding.created_at < until)
        )
    ).all()
    flags: dict[int, set[str]] = {}
    for message_id, reason in (
        await session.execute(
            select(TurnFlag.message_id, TurnFlag.reason)
            .join(TurnUnderstanding, TurnUnderstanding.message_id == TurnFlag.message_id)
            .where(TurnUnderstanding.created_at >= since, TurnUnderstanding.created_at < until)
        )
    ).all():
        flags.setdefault(message_id, set()).add(reason)
    turns = [
        TurnRow(conversation_id, intent, at, frozenset(flags.get(message_id, ())))
        for message_id, conversation_id, intent, at in rows
    ]
    escalations = [
        EscalationRow(str(conversation_id), reason.value, at)
        for conversation_id, reason, at in (
            await session.execute(
                select(Escalation.conversation_id, Escalation.reason, Escalation.created_at).where(
                    Escalation.conversation_id.is_not(None),
                    Escalation.created_at >= since,
                    Escalation.created_at < until,
                )
            )
        ).all()
    ]
    ratings = [
        RatingRow(intent, at, bool(helpful))
        for intent, at, helpful in (
            await session.execute(
                select(AnswerRating.intent, AnswerRating.answered_at, AnswerRating.helpful).where(
                    AnswerRating.answered_at >= since, AnswerRating.answered_at < until
                )
            )
        ).all()
    ]
    return turns, escalations, ratings


async def understanding_quality(
    session: AsyncSession, since: dt.datetime, until: dt.datetime
) -> dict[str, Any]:
    """`quality_report` of the customer turns in [since, until)."""
    return quality_report(*await _rows(session, since, until))


# ---- before and after a retraining -------------------------------------------------------

DEFAULT_WINDOW = dt.timedelta(days=7)
MAX_RETRAININGS = 10


@dataclass(frozen=True)
class ModelRun:
    model_id: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    turns: int


async def model_runs(session: AsyncSession) -> list[ModelRun]:
    """Every model that read customer turns, in the order it first did."""
    rows = (
        await session.execute(
            select(
                TurnUnderstanding.model_id,
                func.min(TurnUnderstanding.created_at),
                func.max(TurnUnderstanding.created_at),
                func.count(),
            )
            .where(TurnUnderstanding.model_id.is_not(None))
            .group_by(TurnUnderstanding.model_id)
        )
    ).all()
    runs = [ModelRun(str(m), _utc(first), _utc(last), int(n)) for m, first, last, n in rows]
    return sorted(runs, key=lambda run: (run.first_seen, run.model_id))


def _utc(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.timezone.utc)


def retraining_windows(
    runs: list[ModelRun], now: dt.datetime, window: dt.timedelta = DEFAULT_WINDOW
) -> list[tuple[ModelRun, ModelRun, dt.datetime, dt.timedelta]]:
    """(previous, new, changed_at, length) of every change of model, newest first: equal
    windows [changed_at - length, changed_at) and [changed_at, changed_at + length)."""
    changes = []
    for i in range(1, len(runs)):
        previous, new = runs[i - 1], runs[i]
        changed_at = new.first_seen
        after_end = runs[i + 1].first_seen if i + 1 < len(runs) else now
        length = min(window, changed_at - previous.first_seen, after_end - changed_at)
        changes.append((previous, new, changed_at, max(length, dt.timedelta(0))))
    return list(reversed(changes))


async def retrainings(
    session: AsyncSession,
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    limit: int = MAX_RETRAININGS,
) -> dict[str, Any]:
    """The figures before and after each of the latest `limit` changes of model."""
    runs = await model_runs(session)
    items = []
    for previous, new, changed_at, length in retraining_windows(runs, now, window)[:limit]:
        start, end = changed_at - length, changed_at + length
        before = quality_figures(*await _rows(session, start, changed_at))
        after = quality_figures(*await _rows(session, changed_at, end))
        items.append(
            {
                "previous_model_id": previous.model_id,
                "model_id": new.model_id,
                "changed_at": changed_at.isoformat(),
                "window_days": round(length / dt.timedelta(days=1), 2),
                "before": {"from": start.isoformat(), "to": changed_at.isoformat(), **before},
                "after": {"from": changed_at.isoformat(), "to": end.isoformat(), **after},
            }
        )
    return {
        "window_days": round(window / dt.timedelta(days=1), 2),
        "models": [
            {
                "model_id": run.model_id,
                "first_seen": run.first_seen.isoformat(),
                "last_seen": run.last_seen.isoformat(),
                "turns": run.turns,
            }
            for run in reversed(runs)
        ],
        "retrainings": items,
    }
