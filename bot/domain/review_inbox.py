"""The review inbox (issue #24): what the NLU made of every customer turn, stored with the
message; the turns flagged by bot/domain/turn_review.py; a reviewer's verdict.

* `record_turn` runs after each bot turn (bot/web/chat.py) with the NLU result Rasa's
  channel returned with the replies (rasa_ext/channels.py), in the embedded default and
  the production profile alike (it is the product's database, not Rasa's).
* `flagged_turns` lists flagged turns with three customer turns of context before and
  after (and the bot's replies between them), filtered by reason, intent and date.
* `review` records a verdict: confirm the predicted intent, correct it (and the entities),
  or dismiss the turn as "not a real request". Audited.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import PROJECT_ROOT
from bot.domain import analysis, audit, intents
from bot.domain.enums import MessageSender, ReviewStatus
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.turn_review import (
    CHOICE_STEPS,
    SOMETHING_ELSE_PAYLOADS,
    Reason,
    Rules,
    Turn,
    no_request,
    own_reasons,
    question,
    rephrased,
    understood_intent,
)
from bot.storage.models import AnswerRating, Message, StaffUser, TurnFlag, TurnUnderstanding, utcnow

# The intents a reviewer may pick: SPEC §4's and `inform` (an order number, an email, a
# score given on its own); the web service's EXTERNAL_* triggers are never typed.
# tests/test_turn_review.py checks they are domain.yml's.
INTENTS = (
    "greet",
    "goodbye",
    "thank",
    "affirm",
    "deny",
    "bot_challenge",
    "bot_misunderstood",
    "request_human",
    *intents.SUPPORT_REQUESTS,
    "product_question",
    "policy_question",
    "give_feedback",
    "complain",
    "praise",
    "inform",
    "out_of_scope",
)
ENTITIES = ("order_number", "email", "score")
CONTEXT_TURNS = 3
MAX_PAGE = 100
_ENTITY_MARKUP = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_WORDS = re.compile(r"[^\W_]+")


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _str(value: Any, limit: int = 64) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _entities(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [
        {k: e[k] for k in ("entity", "value", "start", "end") if k in e}
        for e in value
        if isinstance(e, dict) and isinstance(e.get("entity"), str)
    ]


def turn_of(
    row: TurnUnderstanding,
    text: str,
    offered_choices: bool = False,
    asked: str | None = None,
    no_request: bool = False,
    after_choices: bool = False,
) -> Turn:
    return Turn(
        text=text,
        intent=row.intent,
        confidence=row.confidence,
        runner_up_intent=row.runner_up_intent,
        runner_up_confidence=row.runner_up_confidence,
        steps=tuple(row.bot_steps or ()),
        offered_choices=offered_choices,
        after_bot_reply=row.sentiment is not None,
        sentiment=row.sentiment,
        asked=asked,
        no_request=no_request,
        after_choices=after_choices,
    )


@functools.cache
def vocabulary() -> frozenset[str]:
    """The words the bot was trained on (data/nlu/*.yml examples, without entity markup),
    and those of its own responses (domain.yml; the app image has no data/ directory):
    a chat's opening message with none of them is gibberish (turn_review.no_request)."""
    texts: list[str] = []
    for path in sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        for item in document.get("nlu") or []:
            if isinstance(item, dict) and isinstance(item.get("examples"), str):
                texts.append(_ENTITY_MARKUP.sub(r"\1", item["examples"]))
    try:
        domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        domain = {}
    for variations in (domain.get("responses") or {}).values():
        for variation in variations or []:
            if isinstance(variation, dict) and isinstance(variation.get("text"), str):
                texts.append(variation["text"])
    return frozenset(w for text in texts for w in _WORDS.findall(text.lower()))


async def _reasons(session: AsyncSession, message_id: int) -> set[Reason]:
    rows = await session.scalars(select(TurnFlag.reason).where(TurnFlag.message_id == message_id))
    return {Reason(r) for r in rows if r in Reason._value2member_map_}


async def record_turn(
    session: AsyncSession,
    message: Message,
    nlu: dict[str, Any],
    replies: Sequence[Sequence[dict[str, str]]] = (),
    rules: Rules | None = None,
) -> frozenset[Reason]:
    """Store the NLU result of a customer message and its flags; flag the customer's
    previous turn as rephrased when this one says it again. `replies`: the buttons of each
    bot reply to it. Returns this turn's reasons."""
    before = (
        await session.execute(
            select(Message.sender)
            .where(Message.conversation_id == message.conversation_id, Message.id < message.id)
            .order_by(Message.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    after_bot = before is MessageSender.bot
    steps = nlu.get("steps")
    row = TurnUnderstanding(
        message_id=message.id,
        conversation_id=message.conversation_id,
        intent=_str(nlu.get("intent")),
        confidence=_float(nlu.get("confidence")),
        runner_up_intent=_str(nlu.get("runner_up")),
        runner_up_confidence=_float(nlu.get("runner_up_confidence")),
        entities=_entities(nlu.get("entities")),
        bot_steps=[s[:64] for s in steps if isinstance(s, str)][:20]
        if isinstance(steps, list)
        else [],
        sentiment=analysis.sentiment(message.text) if after_bot else None,
        created_at=message.created_at or utcnow(),
        model_id=_str(nlu.get("model_id")),
    )
    session.add(row)
    await session.flush()
    return await _flag(session, row, message.text, replies, rules or Rules())


async def _flag(
    session: AsyncSession,
    row: TurnUnderstanding,
    text: str,
    replies: Sequence[Sequence[dict[str, str]]],
    rules: Rules,
) -> frozenset[Reason]:
    """The flags of a stored turn (and the rephrase flag of the customer's previous one),
    from the turns before it in the chat."""
    offered = any(
        button.get("payload") in SOMETHING_ELSE_PAYLOADS
        for buttons in replies
        for button in buttons
    )
    earlier = (
        await session.execute(
            select(TurnUnderstanding, Message.text)
            .join(Message, Message.id == TurnUnderstanding.message_id)
            .where(
                TurnUnderstanding.conversation_id == row.conversation_id,
                TurnUnderstanding.message_id < row.message_id,
            )
            .order_by(TurnUnderstanding.message_id.desc())
            .limit(2)
        )
    ).all()
    said_before = (
        await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == row.conversation_id,
                Message.id < row.message_id,
                Message.sender.in_((MessageSender.customer, MessageSender.bot)),
            )
        )
        or 0
    )
    before = tuple(earlier[0][0].bot_steps or ()) if earlier else ()
    current = turn_of(
        row,
        text,
        offered,
        asked=question(before),
        no_request=no_request(text, said_before == 0, vocabulary()),
        after_choices=bool(CHOICE_STEPS.intersection(before)),
    )
    previous_reasons: set[Reason] = set()
    if earlier:
        previous_row, previous_text = earlier[0]
        asked_before = question(earlier[1][0].bot_steps or ()) if len(earlier) > 1 else None
        previous_reasons = await _reasons(session, previous_row.message_id)
        if Reason.rephrase not in previous_reasons and rephrased(
            turn_of(previous_row, previous_text, asked=asked_before), current, rules
        ):
            session.add(TurnFlag(message_id=previous_row.message_id, reason=Reason.rephrase.value))
            previous_reasons.add(Reason.rephrase)
    reasons = own_reasons(current, previous_reasons, rules)
    for reason in sorted(reasons, key=lambda r: r.value):
        session.add(TurnFlag(message_id=row.message_id, reason=reason.value))
    await session.flush()
    return reasons


async def reflag(session: AsyncSession, rules: Rules | None = None) -> int:
    """Apply the rules again to every stored turn (after a rule change: the flags are
    otherwise those of the rules at the time of each turn): the unreviewed turns' flags are
    recomputed, in chat order, from the stored NLU results and the bot's reply buttons.
    Reviewed turns keep theirs. Returns the number of flagged turns."""
    rules = rules or Rules()
    reviewed = select(TurnUnderstanding.message_id).where(
        TurnUnderstanding.review_status.is_not(None)
    )
    await session.execute(
        delete(TurnFlag)
        .where(TurnFlag.message_id.not_in(reviewed))
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    rows = (
        await session.execute(
            select(TurnUnderstanding, Message)
            .join(Message, Message.id == TurnUnderstanding.message_id)
            .order_by(TurnUnderstanding.conversation_id, TurnUnderstanding.message_id)
        )
    ).all()
    for row, message in rows:
        if row.review_status is not None:
            continue
        next_customer = select(func.min(Message.id)).where(
            Message.conversation_id == row.conversation_id,
            Message.id > row.message_id,
            Message.sender == MessageSender.customer,
        )
        upper = await session.scalar(next_customer)
        query = select(Message.buttons).where(
            Message.conversation_id == row.conversation_id,
            Message.id > row.message_id,
            Message.sender == MessageSender.bot,
        )
        if upper is not None:
            query = query.where(Message.id < upper)
        replies = [list(b) for b in await session.scalars(query) if isinstance(b, list)]
        await _flag(session, row, message.text, replies, rules)
    return int(await session.scalar(select(func.count(func.distinct(TurnFlag.message_id)))) or 0)


# ---- the inbox ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    reason: Reason | None = None
    intent: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    state: str = "open"  # open (not reviewed), reviewed, all
    limit: int = 50
    offset: int = 0


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "sender": message.sender.value,
        "text": message.text,
        "created_at": message.created_at.isoformat(),
    }


async def _context(
    session: AsyncSession, conversation_id: str, message_id: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages of up to three customer turns before and after (bot replies included)."""
    customer_ids = list(
        await session.scalars(
            select(Message.id)
            .where(
                Message.conversation_id == conversation_id, Message.sender == MessageSender.customer
            )
            .order_by(Message.id)
        )
    )
    at = customer_ids.index(message_id) if message_id in customer_ids else 0
    first = customer_ids[max(0, at - CONTEXT_TURNS)] if customer_ids else message_id
    stop = (
        customer_ids[at + CONTEXT_TURNS + 1] if at + CONTEXT_TURNS + 1 < len(customer_ids) else None
    )
    query = select(Message).where(Message.conversation_id == conversation_id, Message.id >= first)
    if stop is not None:
        query = query.where(Message.id < stop)
    messages = list(await session.scalars(query.order_by(Message.id)))
    before = [_message_json(m) for m in messages if m.id < message_id]
    after = [_message_json(m) for m in messages if m.id > message_id]
    return before, after


def _filters(inbox: InboxFilter) -> list[Any]:
    conditions: list[Any] = [
        TurnUnderstanding.message_id.in_(select(TurnFlag.message_id).distinct())
    ]
    if inbox.reason is not None:
        conditions.append(
            TurnUnderstanding.message_id.in_(
                select(TurnFlag.message_id).where(TurnFlag.reason == inbox.reason.value)
            )
        )
    if inbox.intent:
        conditions.append(TurnUnderstanding.intent == inbox.intent)
    if inbox.since is not None:
        conditions.append(TurnUnderstanding.created_at >= inbox.since)
    if inbox.until is not None:
        conditions.append(TurnUnderstanding.created_at < inbox.until)
    if inbox.state == "open":
        conditions.append(TurnUnderstanding.review_status.is_(None))
    elif inbox.state == "reviewed":
        conditions.append(TurnUnderstanding.review_status.is_not(None))
    return conditions


async def flagged_turns(session: AsyncSession, inbox: InboxFilter) -> dict[str, Any]:
    """A page of flagged turns, newest first, each with its context; and the total."""
    conditions = and_(*_filters(inbox))
    total = int(
        await session.scalar(select(func.count()).select_from(TurnUnderstanding).where(conditions))
        or 0
    )
    rows = (
        await session.execute(
            select(TurnUnderstanding, Message)
            .join(Message, Message.id == TurnUnderstanding.message_id)
            .where(conditions)
            .order_by(TurnUnderstanding.message_id.desc())
            .limit(max(1, min(inbox.limit, MAX_PAGE)))
            .offset(max(0, inbox.offset))
        )
    ).all()
    items = []
    for row, message in rows:
        before, after = await _context(session, row.conversation_id, row.message_id)
        items.append(
            {
                **turn_json(row, message),
                "reasons": sorted(r.value for r in await _reasons(session, row.message_id)),
                "before": before,
                "after": after,
            }
        )
    return {"total": total, "items": items}


def turn_json(row: TurnUnderstanding, message: Message) -> dict[str, Any]:
    return {
        "message_id": row.message_id,
        "conversation_id": row.conversation_id,
        "text": message.text,
        "created_at": row.created_at.isoformat(),
        "intent": row.intent,
        "confidence": row.confidence,
        "runner_up_intent": row.runner_up_intent,
        "runner_up_confidence": row.runner_up_confidence,
        # What to offer for "confirm": behind nlu_fallback, the intent the NLU leaned to.
        "suggested_intent": understood_intent(turn_of(row, message.text)),
        "entities": row.entities or [],
        "bot_steps": row.bot_steps or [],
        "sentiment": row.sentiment,
        "review_status": row.review_status.value if row.review_status else None,
        "reviewed_intent": row.reviewed_intent,
        "reviewed_entities": row.reviewed_entities,
        "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
    }


def _reviewed_entities(text: str, value: Any) -> list[dict[str, Any]]:
    """Entities a reviewer marked: each an entity name of the contract and a value that
    occurs in the text (its position is found here)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("entities must be a list")
    marked = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidInput("each entity must be an object")
        entity, found = item.get("entity"), item.get("value")
        if entity not in ENTITIES:
            raise InvalidInput(f"unknown entity {entity!r}")
        if not isinstance(found, str) or not found or found not in text:
            raise InvalidInput(f"the value of {entity} must be words of the message")
        start = text.index(found)
        marked.append({"entity": entity, "value": found, "start": start, "end": start + len(found)})
    return marked


async def review(
    session: AsyncSession,
    message_id: int,
    user: StaffUser,
    verdict: str,
    intent: str | None = None,
    entities: Any = None,
) -> dict[str, Any]:
    """`verdict`: confirm (the suggested intent), correct (`intent`), dismiss."""
    found = (
        await session.execute(
            select(TurnUnderstanding, Message)
            .join(Message, Message.id == TurnUnderstanding.message_id)
            .where(TurnUnderstanding.message_id == message_id)
        )
    ).first()
    if found is None:
        raise NotFound("No such turn.")
    row, message = found
    if verdict == "confirm":
        chosen = understood_intent(turn_of(row, message.text))
        if chosen is None or chosen not in INTENTS:
            raise InvalidInput("There is no predicted intent to confirm; pick one.")
        status = ReviewStatus.confirmed
    elif verdict == "correct":
        if intent not in INTENTS:
            raise InvalidInput("Pick one of the bot's intents.")
        chosen, status = intent, ReviewStatus.corrected
    elif verdict == "dismiss":
        chosen, status = None, ReviewStatus.dismissed
    else:
        raise InvalidInput("verdict must be confirm, correct or dismiss")
    row.review_status = status
    row.reviewed_intent = chosen
    row.reviewed_entities = (
        None if status is ReviewStatus.dismissed else _reviewed_entities(message.text, entities)
    )
    row.reviewed_by_id = user.id
    row.reviewed_at = utcnow()
    session.add(
        audit.by_staff(
            user.id,
            "review_turn",
            "message",
            message_id,
            {"verdict": status.value, "intent": chosen},
        )
    )
    await session.flush()
    return turn_json(row, message)


async def forget(session: AsyncSession, message_ids: Any) -> int:
    """Delete the NLU results (and flags, verdicts) of these messages (a select of ids),
    and the "did this help?" ratings of those that are bot answers."""
    await session.execute(
        delete(AnswerRating)
        .where(AnswerRating.message_id.in_(message_ids))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(TurnFlag)
        .where(TurnFlag.message_id.in_(message_ids))
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        delete(TurnUnderstanding)
        .where(TurnUnderstanding.message_id.in_(message_ids))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
