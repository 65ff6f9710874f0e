"""Outgoing webhook outbox: which detractor notifications to send, and their retry schedule.

Every new `negative_feedback` escalation (from the chat, the API or a CSV import) becomes
one outbox row (unique per escalation), picked up from the escalations table by the web
service's background task, so neither the chat nor an import ever waits for the shop's
server. Delivery is at least once: the payload's `id` lets the receiver drop repeats.
Retries back off exponentially (2 s, 4 s, 8 s, ... capped at one hour) and stop after
MAX_ATTEMPTS, leaving the row with `failed_at` for inspection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.enums import EscalationReason
from bot.storage.models import Customer, Escalation, Feedback, WebhookOutbox, utcnow

DETRACTOR_EVENT = "detractor.escalated"
MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(hours=1)
# When the outbox is empty (webhook just enabled), older escalations are not sent.
FIRST_RUN_LOOKBACK = timedelta(days=1)
MAX_ERROR_CHARS = 500
# A claimed row is not offered again for this long (longer than one POST's timeout).
LEASE = timedelta(seconds=60)


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed ones (1 → 2 s, 2 → 4 s, ...)."""
    delay: timedelta = BASE_DELAY * 2 ** max(attempts - 1, 0)
    return min(delay, MAX_DELAY)


def detractor_payload(
    escalation: Escalation, feedback: Feedback | None, customer: Customer | None
) -> dict[str, Any]:
    """What the shop is told: enough to follow up with the customer."""
    return {
        "id": f"escalation-{escalation.id}",
        "type": DETRACTOR_EVENT,
        "occurred_at": escalation.created_at.isoformat(),
        "escalation": {
            "id": escalation.id,
            "reason": escalation.reason.value,
            "summary": escalation.summary,
            "due_at": escalation.due_at.isoformat() if escalation.due_at else None,
            "in_chat": escalation.conversation_id is not None,
        },
        "customer": {
            "external_id": customer.external_id if customer else None,
            "email": customer.email if customer else None,
            "name": customer.name if customer else None,
        }
        if customer is not None and not customer.is_anonymous
        else None,
        "feedback": {
            "channel": feedback.channel.value,
            "kind": feedback.kind.value,
            "score": feedback.score,
            "text": feedback.text,
            "stage": feedback.stage.value if feedback.stage else None,
            "at": feedback.created_at.isoformat(),
        }
        if feedback is not None
        else None,
    }


async def enqueue_new_detractors(
    session: AsyncSession, now: datetime | None = None, limit: int = 100
) -> int:
    """Outbox rows for negative_feedback escalations not queued yet; returns how many."""
    last = await session.scalar(select(func.max(WebhookOutbox.escalation_id)))
    query = select(Escalation).where(Escalation.reason == EscalationReason.negative_feedback)
    if last is None:
        query = query.where(Escalation.created_at >= (now or utcnow()) - FIRST_RUN_LOOKBACK)
    else:
        query = query.where(Escalation.id > last)
    escalations = (await session.scalars(query.order_by(Escalation.id).limit(limit))).all()
    for escalation in escalations:
        feedback = (
            await session.get(Feedback, escalation.feedback_id) if escalation.feedback_id else None
        )
        customer = (
            await session.get(Customer, escalation.customer_id) if escalation.customer_id else None
        )
        session.add(
            WebhookOutbox(
                event_type=DETRACTOR_EVENT,
                escalation_id=escalation.id,
                payload=detractor_payload(escalation, feedback, customer),
                created_at=now or utcnow(),
                next_attempt_at=now or utcnow(),
            )
        )
    await session.flush()
    return len(escalations)


@dataclass(frozen=True)
class Claimed:
    id: int
    event_type: str
    payload: dict[str, Any]


async def claim(
    session: AsyncSession, now: datetime, limit: int = 20, lease: timedelta = LEASE
) -> list[Claimed]:
    """Rows due now, leased to the caller: their next try moves `lease` ahead with a
    conditional UPDATE, so another replica skips them; nothing stays locked while the
    caller talks to the shop. A crashed sender's rows come back after the lease."""
    rows = (
        await session.scalars(
            select(WebhookOutbox)
            .where(
                WebhookOutbox.delivered_at.is_(None),
                WebhookOutbox.failed_at.is_(None),
                WebhookOutbox.next_attempt_at <= now,
            )
            .order_by(WebhookOutbox.next_attempt_at, WebhookOutbox.id)
            .limit(limit)
        )
    ).all()
    claimed = []
    for row in rows:
        result = await session.execute(
            update(WebhookOutbox)
            .where(WebhookOutbox.id == row.id, WebhookOutbox.next_attempt_at == row.next_attempt_at)
            .values(next_attempt_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(Claimed(row.id, row.event_type, row.payload))
    return claimed


async def finish(session: AsyncSession, outbox_id: int, error: str | None, now: datetime) -> None:
    """Record one delivery attempt: delivered, or failed with the next try backed off."""
    row = await session.get(WebhookOutbox, outbox_id)
    if row is None:
        return
    row.attempts += 1
    if error is None:
        row.delivered_at = now
        row.last_error = None
        return
    row.last_error = error[:MAX_ERROR_CHARS]
    if row.attempts >= MAX_ATTEMPTS:
        row.failed_at = now
    else:
        row.next_attempt_at = now + backoff(row.attempts)
