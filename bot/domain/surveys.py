"""In-chat surveys: dispatch with a fatigue limit, answers, declines, low-score rules."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.analysis import NEGATIVE
from bot.storage.models import (
    AcquisitionSource,
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


# ---- proactive surveys (SPEC §6): scheduled by the shop's events, shown in the next chat ----

TRIGGER_FIRST_ORDER = "first_order"  # discovery source + purchase CSAT
TRIGGER_ORDER_DELIVERED = "order_delivered"  # delivery CSAT + comment
TRIGGER_ESCALATION_RESOLVED = "support_resolved"  # support CSAT + CES
TRIGGER_SUBSCRIPTION_RENEWED = "subscription_renewed"  # NPS + comment on the ended period
TRIGGER_SUBSCRIPTION_CANCELLED = "subscription_cancelled"  # churn reason
# The first question each trigger asks (the survey's kind on its dispatch row).
TRIGGER_KINDS = {
    TRIGGER_FIRST_ORDER: FeedbackKind.discovery_source,
    TRIGGER_ORDER_DELIVERED: FeedbackKind.csat,
    TRIGGER_ESCALATION_RESOLVED: FeedbackKind.csat,
    TRIGGER_SUBSCRIPTION_RENEWED: FeedbackKind.nps,
    TRIGGER_SUBSCRIPTION_CANCELLED: FeedbackKind.churn_reason,
}


async def schedule_proactive(
    session: AsyncSession, lifecycle: Lifecycle, trigger: str
) -> SurveyDispatch:
    """A survey waiting for the customer's next chat: a dispatch with `sent_at` still None.

    Fatigue and expiry are applied when it is delivered, not here, so the shop's events
    never fail because of them.
    """
    dispatch = SurveyDispatch(
        customer_id=lifecycle.customer_id,
        lifecycle_id=lifecycle.id,
        trigger=trigger,
        survey_kind=TRIGGER_KINDS[trigger],
        created_at=utcnow(),
    )
    session.add(dispatch)
    await session.flush()
    return dispatch


# ---- how each proactive survey runs in the chat ----
# The survey_kind slot value each trigger runs; domain.yml words the questions by it.
FLOW_FIRST_ORDER = "first_order"
FLOW_DELIVERY = "delivery"
FLOW_SUPPORT = "support"
FLOW_NPS = "nps"
FLOW_CHURN = "churn_reason"
TRIGGER_FLOWS = {
    TRIGGER_FIRST_ORDER: FLOW_FIRST_ORDER,
    TRIGGER_ORDER_DELIVERED: FLOW_DELIVERY,
    TRIGGER_ESCALATION_RESOLVED: FLOW_SUPPORT,
    TRIGGER_SUBSCRIPTION_RENEWED: FLOW_NPS,
    TRIGGER_SUBSCRIPTION_CANCELLED: FLOW_CHURN,
}
# The survey form's questions (slots) per flow, in order; a score and a comment otherwise.
FLOW_QUESTIONS: dict[str, tuple[str, ...]] = {
    FLOW_FIRST_ORDER: ("survey_source", "survey_score"),
    FLOW_SUPPORT: ("survey_score", "survey_ces"),
    FLOW_CHURN: ("survey_comment",),
}
DEFAULT_QUESTIONS = ("survey_score", "survey_comment")
# The score question's kind where it is not the dispatch's own (first order: discovery first).
FLOW_SCORE_KINDS = {FLOW_FIRST_ORDER: FeedbackKind.csat}


def questions(flow: str | None) -> list[str]:
    return list(FLOW_QUESTIONS.get(flow or "", DEFAULT_QUESTIONS))


def is_proactive(dispatch: SurveyDispatch) -> bool:
    """Scheduled by a shop event (feedback source proactive_survey), not started in the chat."""
    return dispatch.trigger in TRIGGER_KINDS


def _keywords(words: str) -> frozenset[str]:
    return frozenset(words.split())


# "How did you hear about us": buttons send these values; free text is mapped by keywords,
# checked in this order (an "Instagram ad" is an ad, a "friend on Facebook" a friend).
ACQUISITION_KEYWORDS: tuple[tuple[AcquisitionSource, frozenset[str]], ...] = (
    (AcquisitionSource.affiliate, _keywords(
        "affiliate blog blogger influencer podcast review reviews comparison cashback voucher "
        "vouchers coupon article magazine")),
    (AcquisitionSource.friend, _keywords(
        "friend friends family colleague colleagues mouth recommended recommendation mum mom "
        "dad sister brother partner wife husband neighbour neighbor")),
    (AcquisitionSource.ad, _keywords(
        "ad ads advert adverts advertisement advertising sponsored banner commercial billboard "
        "poster tv radio")),
    (AcquisitionSource.marketing_email, _keywords(
        "newsletter newsletters email emails e-mail mail mailing marketing_email")),
    (AcquisitionSource.social, _keywords(
        "social instagram insta facebook fb tiktok twitter pinterest youtube reddit linkedin "
        "snapchat threads")),
    (AcquisitionSource.search, _keywords(
        "search searched searching google googled bing duckduckgo ecosia yahoo")),
)  # fmt: skip
_WORDS = re.compile(r"[a-z][a-z_-]*")


def acquisition_source(text: str) -> AcquisitionSource:
    """Map a "how did you hear about us" answer to a source; anything unrecognised is other."""
    words = set(_WORDS.findall(text.lower()))
    for source, keywords in ACQUISITION_KEYWORDS:
        if words & keywords:
            return source
    return AcquisitionSource.other
