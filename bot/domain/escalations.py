"""Escalations to a human: reasons, priorities and the conversation's hand-off status."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.enums import ConversationStatus, EscalationReason, MessageSender
from bot.domain.support import extract_email
from bot.storage import repositories
from bot.storage.models import Conversation, Escalation, Message, utcnow

FOLLOW_UP_REASONS = frozenset({EscalationReason.negative_feedback})

# Higher is more urgent: an unhappy customer outranks a question the bot could not parse.
PRIORITY = {
    EscalationReason.negative_feedback: 3,
    EscalationReason.customer_request: 2,
    EscalationReason.bot_failure: 2,
    EscalationReason.fallback: 1,
}


async def escalate(
    session: AsyncSession,
    conversation: Conversation,
    reason: EscalationReason,
    *,
    summary: str | None = None,
    feedback_id: int | None = None,
    hand_over_now: bool = True,
) -> tuple[Escalation, bool]:
    """Open (or reuse) the conversation's escalation; returns it and whether it is new.

    `hand_over_now` moves the conversation to waiting_for_agent; a follow-up for
    negative feedback may be queued while the customer keeps talking to the bot.
    """
    escalation = await repositories.open_escalation(session, conversation.id)
    created = escalation is None
    if escalation is None:
        escalation = Escalation(
            conversation_id=conversation.id,
            customer_id=conversation.customer_id,
            reason=reason,
            priority=PRIORITY[reason],
            summary=summary,
            feedback_id=feedback_id,
        )
        session.add(escalation)
    elif PRIORITY[reason] > escalation.priority:
        escalation.priority = PRIORITY[reason]
    if hand_over_now and conversation.status is ConversationStatus.bot:
        conversation.status = ConversationStatus.waiting_for_agent
        escalation.back_with_bot_at = None  # asked for a person again
    await session.flush()
    return escalation, created


async def mark_follow_ups(session: AsyncSession, items: list[dict[str, Any]]) -> None:
    """Mark the queue's rows that are a flag for follow-up, not a customer waiting for a
    person (tester 5): an unhappy complaint or low score opens its escalation while the
    customer goes on with the bot, and only their yes to the offered person (or their own
    request) hands the chat over. Such a row is waiting, its reason is a follow-up reason,
    the customer never went "back to the bot" from a request, and the chat is still the
    bot's. Sets `follow_up` on every item (a chat-less closed-loop follow-up is one too)."""
    ids = [item["conversation_id"] for item in items if item.get("conversation_id")]
    rows = await session.execute(
        select(Conversation.id, Conversation.status).where(Conversation.id.in_(ids))
    )
    statuses = dict(rows.tuples().all())
    for item in items:
        conversation_id = item.get("conversation_id")
        item["follow_up"] = item["status"] == "waiting" and (
            conversation_id is None
            or (
                EscalationReason(item["reason"]) in FOLLOW_UP_REASONS
                and not item.get("back_with_bot")
                and statuses.get(conversation_id) is ConversationStatus.bot
            )
        )


async def remember_contact_email(
    session: AsyncSession, conversation_id: str, text: str, *, queued_only: bool = False
) -> str | None:
    """An email typed while waiting for a person becomes the escalation's contact address;
    `queued_only`: only for a request queued while the bot keeps helping (issue #17)."""
    email = extract_email(text)
    escalation = await repositories.open_escalation(session, conversation_id)
    if email is None or escalation is None or escalation.contact_email:
        return None
    if queued_only and escalation.back_with_bot_at is None:
        return None
    escalation.contact_email = email
    await session.flush()
    return email


# "talk to the bot", "never mind, I'll use the bot", "back to the assistant" (issue #17).
_BOT = re.compile(r"\b(?:the |a )?(?:bot|chatbot|assistant)\b", re.IGNORECASE)
_VERB = re.compile(
    r"\b(?:talk|speak|chat|go|back|use|return|switch|continue|keep|carry on)\b", re.IGNORECASE
)
_NEVER_MIND = re.compile(r"\bnever ?mind\b", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(?:don'?t|do not|not|no|never|hate|stupid|useless|instead of)\b", re.IGNORECASE
)
BACK_TO_BOT_PAYLOAD = "talk to the bot"


def wants_the_bot(text: str) -> bool:
    """Whether a customer waiting for a person asks to go back to the bot."""
    text = _NEVER_MIND.sub(" ", text)
    return bool(_BOT.search(text) and _VERB.search(text) and not _REFUSAL.search(text))


async def back_to_bot(session: AsyncSession, conversation: Conversation) -> bool:
    """The customer waiting for a person goes back to the bot (SPEC §5): the chat is the
    bot's again, the escalation stays queued and is marked, so a claim hands it over again.
    False when nobody was waiting (a person has the chat already, or no hand-over)."""
    if conversation.status is not ConversationStatus.waiting_for_agent:
        return False
    conversation.status = ConversationStatus.bot
    escalation = await repositories.open_escalation(session, conversation.id)
    if escalation is not None:
        escalation.back_with_bot_at = utcnow()
    await session.flush()
    return True


async def queued_while_offline(session: AsyncSession, conversation_id: str) -> bool:
    """Whether the chat's request for a person waits in the queue while the bot keeps
    helping (nobody was online to take it)."""
    escalation = await repositories.open_escalation(session, conversation_id)
    return escalation is not None and escalation.back_with_bot_at is not None


async def waiting_note_due(session: AsyncSession, conversation_id: str, note: str) -> bool:
    """The note that a message waits for a person is said once (issue #17): not again until
    the bot has spoken since."""
    last_bot = (
        select(func.coalesce(func.max(Message.id), 0))
        .where(Message.conversation_id == conversation_id, Message.sender == MessageSender.bot)
        .scalar_subquery()
    )
    said = await session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            Message.sender == MessageSender.system,
            Message.text == note,
            Message.id > last_bot,
        )
        .limit(1)
    )
    return said is None
