"""JSON shapes shared by the console, the chat and the console inbox: a message as the
widget and the console show it, an escalation in the queue, staff display names.

Its own module so that bot/domain/handoff.py (the escalation workflow) and
bot/domain/inbox.py (unread counts, history search) can both use them without importing
each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.enums import EscalationStatus
from bot.storage.models import Escalation, Message, StaffUser


def priority_label(priority: int) -> str:
    """The word agents see for a priority (escalations.PRIORITY, +1 when overdue):
    a customer's request is "normal", negative feedback "high", overdue feedback "urgent"."""
    if priority >= 4:
        return "urgent"
    return "high" if priority == 3 else "normal"


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def staff_names(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(select(StaffUser.id, StaffUser.display_name))
    return {row.id: row.display_name for row in rows}


def escalation_json(escalation: Escalation, names: dict[int, str]) -> dict[str, Any]:
    claimed = escalation.claimed_by_id
    return {
        "id": escalation.id,
        "conversation_id": escalation.conversation_id,
        "reason": escalation.reason.value,
        "priority": escalation.priority,
        "priority_label": priority_label(escalation.priority),
        "status": escalation.status.value,
        "claimed_by": {"id": claimed, "display_name": names.get(claimed, "")} if claimed else None,
        "created_at": iso(escalation.created_at),
        "resolved_at": iso(escalation.resolved_at),
        # Closed-loop follow-ups (feedback from other channels) have no conversation.
        "due_at": iso(escalation.due_at),
        "summary": escalation.summary if escalation.conversation_id is None else None,
        # Still queued while the customer talks to the bot again (issue #17): a claim hands
        # the chat over and tells the customer a person joined.
        "back_with_bot": escalation.status is EscalationStatus.waiting
        and escalation.back_with_bot_at is not None,
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "sender": message.sender.value,
        "text": message.text,
        "buttons": message.buttons or [],
        # Order cards (bot/domain/order_cards.py); `text` is their plain-text fallback.
        "cards": message.cards or [],
        "time": iso(message.created_at),
        "author": message.author,
        # A photo the customer attached (issue #19): its id, for /console/api/photos/{id}.
        **({"photo": message.photo_id} if message.photo_id is not None else {}),
    }
