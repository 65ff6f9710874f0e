"""The customer's "did this help?" on the bot's knowledge answers (issue #24).

After a turn in which the bot answered a question from its knowledge (a shop-policy or a
product question: `KNOWLEDGE_STEPS` among the turn's bot steps), the web service asks the
customer's tabs to offer yes/no under the turn's last reply (a `ask_helpful` frame, after
the turn's NLU result was stored); the customer's click is stored here, one rating per
answer (a second click replaces the first). Counted in the bot figures
(bot/domain/bot_analytics.py) by the week and intent of the turn it answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.enums import MessageSender
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.review_inbox import turn_of
from bot.domain.turn_review import understood_intent
from bot.storage.models import AnswerRating, Message, TurnUnderstanding, utcnow

KNOWLEDGE_STEPS = frozenset({"action_answer_policy_question", "action_answer_product_question"})


def is_knowledge_answer(steps: Iterable[str]) -> bool:
    return not KNOWLEDGE_STEPS.isdisjoint(steps)


async def _answered_turn(
    session: AsyncSession, conversation_id: str, message: Message
) -> TurnUnderstanding | None:
    """The customer turn the bot message answers, when it was a knowledge answer: the
    latest customer message before it (with no other customer message in between)."""
    customer = (
        await session.execute(
            select(Message.id)
            .where(
                Message.conversation_id == conversation_id,
                Message.sender == MessageSender.customer,
                Message.id < message.id,
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if customer is None:
        return None
    turn = await session.get(TurnUnderstanding, customer)
    if turn is None or not is_knowledge_answer(turn.bot_steps or ()):
        return None
    return turn


async def rate(
    session: AsyncSession, conversation_id: str, message_id: int, helpful: bool
) -> AnswerRating:
    """Store the customer's yes/no on a bot answer of their conversation."""
    if not isinstance(helpful, bool):
        raise InvalidInput("helpful must be true or false")
    message = await session.get(Message, message_id)
    if (
        message is None
        or message.conversation_id != conversation_id
        or message.sender is not MessageSender.bot
    ):
        raise NotFound("No such answer in this conversation.")
    turn = await _answered_turn(session, conversation_id, message)
    if turn is None:
        raise InvalidInput("Only the bot's answers to a question can be rated.")
    rating = await session.get(AnswerRating, message_id)
    if rating is None:
        rating = AnswerRating(
            message_id=message_id,
            conversation_id=conversation_id,
            helpful=helpful,
            intent=understood_intent_of(turn),
            model_id=turn.model_id,
            answered_at=turn.created_at,
            rated_at=utcnow(),
        )
        session.add(rating)
    else:
        rating.helpful = helpful
        rating.rated_at = utcnow()
    await session.flush()
    return rating


def understood_intent_of(turn: TurnUnderstanding) -> str | None:
    return understood_intent(turn_of(turn, ""))


async def ratings_between(
    session: AsyncSession, since: dt.datetime, until: dt.datetime
) -> list[AnswerRating]:
    """The ratings of answers to turns in [since, until)."""
    return list(
        await session.scalars(
            select(AnswerRating).where(
                AnswerRating.answered_at >= since, AnswerRating.answered_at < until
            )
        )
    )
