"""Closed loop on detractors from any channel: a follow-up escalation with a due time and the
support survey after it is resolved (the shop is notified by bot/domain/outbox.py).

Chat detractors are escalated by the chat flow itself (with their conversation); this
module handles feedback that arrives without a conversation (API, CSV import), so its
escalations have `conversation_id` None and are followed up by phone or email.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import surveys
from bot.domain.analysis import STRONGLY_NEGATIVE
from bot.domain.enums import EscalationReason, FeedbackKind
from bot.domain.escalations import PRIORITY
from bot.storage.models import Escalation, Feedback, Lifecycle, utcnow

SCORE_KINDS = frozenset({FeedbackKind.csat, FeedbackKind.ces, FeedbackKind.nps})
MAX_SUMMARY_CHARS = 300


def is_detractor(kind: FeedbackKind, score: int | None, sentiment: float | None) -> bool:
    """SPEC §5: CSAT ≤ 2, CES ≥ 6, NPS ≤ 6 with a negative comment, or a complaint with
    strongly negative sentiment. `sentiment` is the sentiment of the text given with it."""
    if kind in SCORE_KINDS and score is not None:
        return surveys.is_low_score(kind, score, sentiment)
    if kind is FeedbackKind.complaint:
        return sentiment is not None and sentiment <= STRONGLY_NEGATIVE
    return False


def _summary(feedback: Feedback, comment: str | None) -> str:
    head = f"{feedback.channel.value.replace('_', ' ')}: {feedback.kind.value}"
    if feedback.score is not None:
        head += f" {feedback.score}"
    text = feedback.text or comment
    if text:
        head += f" — {text}"
    return head[:MAX_SUMMARY_CHARS]


async def open_follow_up(
    session: AsyncSession,
    feedback: Feedback,
    *,
    due_hours: int,
    comment: str | None = None,
    now: datetime | None = None,
) -> Escalation:
    """A negative_feedback escalation without a conversation, due `due_hours` from now.

    The shop hears about it through the outgoing webhook (bot/domain/outbox.py), which
    picks up every new negative_feedback escalation, chat ones included.
    """
    escalation = follow_up(feedback, due_hours=due_hours, comment=comment, now=now)
    session.add(escalation)
    await session.flush()
    return escalation


def follow_up(
    feedback: Feedback, *, due_hours: int, comment: str | None = None, now: datetime | None = None
) -> Escalation:
    """The follow-up escalation of `open_follow_up`, not added to a session (bulk imports
    add many at once)."""
    created = now or utcnow()
    return Escalation(
        conversation_id=None,
        customer_id=feedback.customer_id,
        feedback_id=feedback.id,
        reason=EscalationReason.negative_feedback,
        priority=PRIORITY[EscalationReason.negative_feedback],
        summary=_summary(feedback, comment),
        created_at=created,
        due_at=created + timedelta(hours=due_hours),
    )


async def after_resolve(session: AsyncSession, escalation: Escalation) -> int | None:
    """Schedule the support CSAT + CES survey for a resolved follow-up without a chat.

    A chat escalation asks its post-support survey in the chat right away (handoff
    resolve → Rasa), so only conversation-less follow-ups get a proactive dispatch, on the
    lifecycle of the feedback behind them. Returns the dispatch id, if any.
    """
    if escalation.conversation_id is not None or escalation.feedback_id is None:
        return None
    lifecycle = await session.scalar(
        select(Lifecycle)
        .join(Feedback, Feedback.lifecycle_id == Lifecycle.id)
        .where(Feedback.id == escalation.feedback_id)
    )
    if lifecycle is None:
        return None
    dispatch = await surveys.schedule_proactive(
        session, lifecycle, surveys.TRIGGER_ESCALATION_RESOLVED
    )
    return dispatch.id
