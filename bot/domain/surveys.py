"""In-chat surveys: dispatch with a fatigue limit, answers, declines, low-score rules."""

from __future__ import annotations

import difflib
import functools
import re
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.analysis import NEGATIVE
from bot.domain.enums import AcquisitionSource, FeedbackKind
from bot.storage.models import Conversation, Lifecycle, SurveyDispatch, utcnow

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


async def surveyed_recently(
    session: AsyncSession,
    customer_id: int,
    conversation_id: str,
    quiet_hours: int,
    now: datetime | None = None,
) -> bool:
    """The transactional rule of SPEC §6: the customer answered or declined a survey in this
    conversation, or anywhere in the last `quiet_hours`; or was asked one in this
    conversation and set it aside to go on with their request (no CSAT after every answer
    of a chat: tester, 2026-12-07). Offered and ignored ones elsewhere don't count."""
    since = (now or utcnow()) - timedelta(hours=quiet_hours)
    found = await session.scalar(
        select(SurveyDispatch.id)
        .where(
            SurveyDispatch.customer_id == customer_id,
            or_(
                and_(
                    SurveyDispatch.conversation_id == conversation_id,
                    or_(
                        SurveyDispatch.answered_at.is_not(None),
                        SurveyDispatch.declined_at.is_not(None),
                        SurveyDispatch.accepted_at.is_not(None),  # its questions were asked
                    ),
                ),
                SurveyDispatch.answered_at >= since,
                SurveyDispatch.declined_at >= since,
            ),
        )
        .limit(1)
    )
    return found is not None


async def start_in_chat(
    session: AsyncSession,
    conversation: Conversation,
    lifecycle: Lifecycle,
    kind: FeedbackKind,
    trigger: str,
    quiet_hours: int | None,
) -> SurveyDispatch | None:
    """A dispatch for a survey asked now, or None when the transactional rule holds it back:
    a survey answered or declined in this conversation, or in the last `quiet_hours` (0: this
    conversation only). `quiet_hours` None: always asked, as when the customer asked to
    leave feedback; so is the churn question after a cancellation."""
    now = utcnow()
    if (
        quiet_hours is not None
        and kind is not FeedbackKind.churn_reason
        and await surveyed_recently(
            session, lifecycle.customer_id, conversation.id, quiet_hours, now
        )
    ):
        return None
    dispatch = SurveyDispatch(
        customer_id=lifecycle.customer_id,
        lifecycle_id=lifecycle.id,
        conversation_id=conversation.id,
        trigger=trigger,
        survey_kind=kind,
        created_at=now,
        sent_at=now,
        offer_count=1,
        accepted_at=now,
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


# A proactive survey is due for this long after the event that scheduled it (SPEC §6).
EXPIRY = timedelta(days=14)


def is_stale(occurred_at: datetime, now: datetime) -> bool:
    """An event older than the expiry schedules nothing (a shop back-filling its history)."""
    return occurred_at <= now - EXPIRY


async def schedule_proactive(
    session: AsyncSession,
    lifecycle: Lifecycle,
    trigger: str,
    occurred_at: datetime | None = None,
) -> SurveyDispatch:
    """A survey waiting for the customer's next chat: a dispatch with `sent_at` still None.

    `created_at` is the moment the survey became due: the event's `occurred_at` when an event
    scheduled it, so expiry runs from the event, not from when the shop reported it (callers
    check `is_stale` first). Fatigue is applied when it is delivered, not here, so the shop's
    events never fail because of it.
    """
    dispatch = SurveyDispatch(
        customer_id=lifecycle.customer_id,
        lifecycle_id=lifecycle.id,
        trigger=trigger,
        survey_kind=TRIGGER_KINDS[trigger],
        created_at=occurred_at or utcnow(),
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


async def latest_accepted(
    session: AsyncSession, conversation_id: str, hours: int, *conditions: ColumnElement[bool]
) -> SurveyDispatch | None:
    """The survey of this chat accepted last within `hours` and not declined (meeting
    `conditions`): the one a late answer typed after its question gave way belongs to."""
    since = utcnow() - timedelta(hours=hours)
    dispatch: SurveyDispatch | None = await session.scalar(
        select(SurveyDispatch)
        .where(
            SurveyDispatch.conversation_id == conversation_id,
            SurveyDispatch.accepted_at >= since,
            SurveyDispatch.declined_at.is_(None),
            *conditions,
        )
        .order_by(SurveyDispatch.accepted_at.desc())
        .limit(1)
    )
    return dispatch


def is_proactive(dispatch: SurveyDispatch) -> bool:
    """Scheduled by a shop event (feedback source proactive_survey), not started in the chat."""
    return dispatch.trigger in TRIGGER_KINDS


SOURCES_FILE = Path(__file__).with_name("data") / "acquisition_sources.yml"


@functools.cache
def _source_phrases() -> tuple[tuple[AcquisitionSource, re.Pattern[str]], ...]:
    """The data file's phrases as one whole-word pattern per source, in the file's order."""
    raw = yaml.safe_load(SOURCES_FILE.read_text(encoding="utf-8"))
    return tuple(
        (
            AcquisitionSource(name),
            re.compile(
                r"(?<![\w-])(" + "|".join(re.escape(str(p)) for p in phrases) + r")(?![\w-])"
            ),
        )
        for name, phrases in raw.items()
    )


def acquisition_source(text: str) -> AcquisitionSource | None:
    """Map a "how did you hear about us" answer to a source (the buttons send the values
    themselves); None when it names none (data/acquisition_sources.yml). A long word typed
    one letter off counts ("instagramm", "pintrest": tester 7, tw7_12)."""
    lowered = " ".join(text.lower().replace("’", "'").split())
    for source, pattern in _source_phrases():
        if pattern.search(lowered):
            return source
    for word in re.findall(rf"[a-z]{{{_MIN_TYPO_LETTERS},}}", lowered):
        close = difflib.get_close_matches(word, _source_words(), n=1, cutoff=_TYPO_SIMILARITY)
        if close:
            return _source_words()[close[0]]
    return None


# Only words of five letters or more are matched with a typo ("sistr": tester 8, tw8_19):
# "add" is no "ad"; "search" and "starch" are not alike enough.
_MIN_TYPO_LETTERS = 5
_TYPO_SIMILARITY = 0.85


@functools.lru_cache(maxsize=1)
def _source_words() -> dict[str, AcquisitionSource]:
    raw = yaml.safe_load(SOURCES_FILE.read_text(encoding="utf-8"))
    return {
        str(phrase): AcquisitionSource(name)
        for name, phrases in raw.items()
        for phrase in phrases
        if " " not in str(phrase) and len(str(phrase)) >= _MIN_TYPO_LETTERS
    }


# "cant remember tbh", "no idea", "dunno": no source; asked once more with the list, to jog
# the memory (tester 7, tw7_11).
_FORGOT = re.compile(
    r"\b(?:(?:can'?t|cannot|don'?t|do not|dont|cant) (?:really )?(?:remember|recall|know|say)|"
    r"no idea|not sure|forgot|forget|dunno|idk|no clue|who knows|no recollection)\b",
    re.IGNORECASE,
)


def forgets_the_source(text: str) -> bool:
    return bool(_FORGOT.search(text or ""))
