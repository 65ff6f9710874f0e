"""In-chat surveys: dispatch with a fatigue limit, answers, declines, low-score rules."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.analysis import NEGATIVE
from bot.storage.models import (
    Conversation,
    FeedbackKind,
    Lifecycle,
    SurveyDispatch,
    utcnow,
)

# The survey questions and their buttons are responses in domain.yml
# (utter_ask_survey_score / utter_ask_survey_comment, varied by the survey_kind slot).


def is_low_score(kind: FeedbackKind, score: int, comment_sentiment: float | None = None) -> bool:
    """SPEC §5: CSAT ≤ 2, CES ≥ 6, or NPS ≤ 6 together with a complaint (a negative comment)."""
    if kind is FeedbackKind.csat:
        return score <= 2
    if kind is FeedbackKind.ces:
        return score >= 6
    if kind is FeedbackKind.nps:
        return score <= 6 and comment_sentiment is not None and comment_sentiment <= NEGATIVE
    return False


async def start_in_chat(
    session: AsyncSession,
    conversation: Conversation,
    lifecycle: Lifecycle,
    kind: FeedbackKind,
    trigger: str,
    fatigue_days: int,
) -> SurveyDispatch | None:
    """A dispatch for a survey asked now, or None when the customer was asked recently."""
    since = utcnow() - timedelta(days=fatigue_days)
    recent = await session.scalar(
        select(SurveyDispatch.id)
        .where(
            SurveyDispatch.customer_id == lifecycle.customer_id,
            SurveyDispatch.sent_at >= since,
        )
        .limit(1)
    )
    if recent is not None and kind is not FeedbackKind.churn_reason:
        return None
    now = utcnow()
    dispatch = SurveyDispatch(
        customer_id=lifecycle.customer_id,
        lifecycle_id=lifecycle.id,
        conversation_id=conversation.id,
        trigger=trigger,
        survey_kind=kind,
        created_at=now,
        sent_at=now,
    )
    session.add(dispatch)
    await session.flush()
    return dispatch


def mark_answered(dispatch: SurveyDispatch) -> None:
    if dispatch.answered_at is None:
        dispatch.answered_at = utcnow()


def mark_declined(dispatch: SurveyDispatch) -> None:
    if dispatch.answered_at is None and dispatch.declined_at is None:
        dispatch.declined_at = utcnow()
