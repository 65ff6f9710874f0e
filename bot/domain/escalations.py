"""Escalations to a human: reasons, priorities and the conversation's hand-off status."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.support import extract_email
from bot.storage import repositories
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Escalation,
    EscalationReason,
)

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
    await session.flush()
    return escalation, created


async def remember_contact_email(
    session: AsyncSession, conversation_id: str, text: str
) -> str | None:
    """An email typed while waiting for a person becomes the escalation's contact address."""
    email = extract_email(text)
    escalation = await repositories.open_escalation(session, conversation_id)
    if email is None or escalation is None or escalation.contact_email:
        return None
    escalation.contact_email = email
    await session.flush()
    return email
