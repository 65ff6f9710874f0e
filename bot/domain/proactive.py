"""Proactive surveys in the chat (SPEC §6): a survey scheduled by a shop event is offered
the next time the customer opens the chat.

Consent first: the bot asks "May we ask two quick questions?" (Sure / Not now) and the
survey starts only on a yes. A customer who ignores the offer (types a request instead) is
offered it once more when they say thanks or goodbye ("Before you go…"); one who says "not
now" is offered it once more at the end of a later chat; a "no" to that second offer
declines it. A survey counts as sent (offered) when its consent question was shown.

Which dispatch: the customer's oldest one still waiting. Dispatches are expired
`surveys.EXPIRY` after the event that scheduled them (its `occurred_at`), a dispatch that
the chat already covered is dropped, and the fatigue limit holds a dispatch back (it stays
waiting) while another survey was shown to the customer in the last `fatigue_days`.
Every function takes `now`, so fatigue and expiry are testable with a fixed clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import chat, feedback, surveys, texts, understanding
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import FeedbackKind, OrderStatus
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.refusals import is_decline
from bot.domain.scores import asks_why
from bot.storage import repositories
from bot.storage.models import (
    Conversation,
    Customer,
    Feedback,
    Lifecycle,
    Order,
    Subscription,
    SurveyDispatch,
    utcnow,
)

EXPIRY = surveys.EXPIRY
# An offer answered "not now" or ignored is made once more, at the end of a chat ("Before you
# go…"): of this chat if it was ignored, or of a later one (SPEC §6) — a conversation that
# began after the first offer was shown, however soon (a second tab already open is not a
# later chat).
MAX_OFFERS = 2
CONSENT_YES = "Sure"
CONSENT_NOT_NOW = "Not now"
CONSENT_BUTTONS = [
    {"title": CONSENT_YES, "payload": "sure"},
    {"title": CONSENT_NOT_NOW, "payload": "not now"},
]


def postponed_reply() -> str:
    """The answer to "not now" (the offer is made once more, in a later chat)."""
    return texts.render("utter_proactive_postponed")


def declined_for_good_reply() -> str:
    """The answer to "not now" to the second offer (the survey is declined)."""
    return texts.render("utter_proactive_declined_for_good")


def _open() -> ColumnElement[bool]:
    """Neither answered, declined nor expired."""
    return and_(
        SurveyDispatch.answered_at.is_(None),
        SurveyDispatch.declined_at.is_(None),
        SurveyDispatch.expired_at.is_(None),
    )


async def expire_stale(session: AsyncSession, now: datetime, customer_id: int | None = None) -> int:
    """Expire dispatches neither answered nor declined `EXPIRY` after they became due (the
    event's `occurred_at`; for a survey started in the chat, when it was asked);
    `expired_at` is the moment they ran out."""
    cutoff = now - EXPIRY
    query = select(SurveyDispatch).where(_open(), SurveyDispatch.created_at <= cutoff)
    if customer_id is not None:
        query = query.where(SurveyDispatch.customer_id == customer_id)
    stale = (await session.scalars(query)).all()
    for dispatch in stale:
        dispatch.expired_at = dispatch.created_at + EXPIRY
    await session.flush()
    return len(stale)


@dataclass(frozen=True)
class Moment:
    """When a survey may be offered: as a chat opens (only surveys never offered), or as it
    ends — the customer says thanks or goodbye — "Before you go…": also a survey offered
    before and left unanswered, once more (issue #18)."""

    at_end: bool = False
    # The customer said "not now" earlier in this conversation: not asked again in it.
    postponed_here: bool = False


AT_START = Moment()


async def _waiting(
    session: AsyncSession,
    customer_id: int,
    conversation_id: str | None,
    now: datetime,
    moment: Moment,
) -> Sequence[SurveyDispatch]:
    """The customer's scheduled dispatches to offer now, oldest first: never offered; at the
    end of a chat also those offered once without a yes — in a chat before this one began
    ("not now" or ignored), or ignored earlier in this one."""
    offerable: ColumnElement[bool] = SurveyDispatch.sent_at.is_(None)
    if moment.at_end:
        this_chat_began = (
            select(Conversation.created_at)
            .where(Conversation.id == conversation_id)
            .scalar_subquery()
        )
        earlier_chat = and_(
            SurveyDispatch.conversation_id.is_distinct_from(conversation_id),
            SurveyDispatch.sent_at <= this_chat_began,
        )
        again = and_(
            SurveyDispatch.offer_count < MAX_OFFERS,
            SurveyDispatch.accepted_at.is_(None),
            earlier_chat
            if moment.postponed_here
            else or_(earlier_chat, SurveyDispatch.conversation_id == conversation_id),
        )
        offerable = or_(offerable, again)
    return (
        await session.scalars(
            select(SurveyDispatch)
            .where(
                SurveyDispatch.customer_id == customer_id,
                offerable,
                SurveyDispatch.trigger.in_(list(surveys.TRIGGER_KINDS)),
                _open(),
            )
            .order_by(SurveyDispatch.created_at, SurveyDispatch.id)
        )
    ).all()


def _same_question(dispatch: SurveyDispatch) -> ColumnElement[bool]:
    """Dispatches that asked what this one would ask: the chat's own churn question after a
    cancellation, its support survey after a hand-back, or this trigger on this lifecycle."""
    if dispatch.trigger == surveys.TRIGGER_SUBSCRIPTION_CANCELLED:
        return SurveyDispatch.survey_kind == FeedbackKind.churn_reason
    if dispatch.trigger == surveys.TRIGGER_ESCALATION_RESOLVED:
        return SurveyDispatch.trigger == dispatch.trigger
    return and_(
        SurveyDispatch.trigger == dispatch.trigger,
        SurveyDispatch.lifecycle_id == dispatch.lifecycle_id,
    )


async def _already_asked(session: AsyncSession, dispatch: SurveyDispatch) -> bool:
    asked = await session.scalar(
        select(SurveyDispatch.id)
        .where(
            SurveyDispatch.customer_id == dispatch.customer_id,
            SurveyDispatch.id != dispatch.id,
            SurveyDispatch.sent_at >= dispatch.created_at,
            _same_question(dispatch),
        )
        .limit(1)
    )
    return asked is not None


async def _fatigued(
    session: AsyncSession, dispatch: SurveyDispatch, fatigue_days: int, now: datetime
) -> bool:
    """Another survey was shown to this customer in the last `fatigue_days` (this one's own
    first offer does not hold back its second)."""
    recent = await session.scalar(
        select(func.count(SurveyDispatch.id)).where(
            SurveyDispatch.customer_id == dispatch.customer_id,
            SurveyDispatch.id != dispatch.id,
            SurveyDispatch.sent_at > now - timedelta(days=fatigue_days),
        )
    )
    return bool(recent)


async def pending_dispatch(
    session: AsyncSession,
    customer_id: int,
    fatigue_days: int,
    now: datetime,
    conversation_id: str | None = None,
    moment: Moment = AT_START,
) -> SurveyDispatch | None:
    """The dispatch to offer this customer now in `conversation_id`, if any (expires and
    drops stale ones on the way).

    The churn question ignores fatigue, like the chat's own one (docs/decisions.md).
    """
    await expire_stale(session, now, customer_id)
    for dispatch in await _waiting(session, customer_id, conversation_id, now, moment):
        if dispatch.sent_at is None and await _already_asked(session, dispatch):
            dispatch.expired_at = now  # covered by the chat already: never asked twice
            continue
        if dispatch.trigger == surveys.TRIGGER_SUBSCRIPTION_CANCELLED:
            return dispatch
        if not await _fatigued(session, dispatch, fatigue_days, now):
            return dispatch
    await session.flush()
    return None


async def has_pending(
    session: AsyncSession,
    customer_id: int | None,
    fatigue_days: int,
    now: datetime,
    conversation_id: str | None = None,
) -> bool:
    """Cheap check for the web service: is there a survey to offer this customer now?"""
    if customer_id is None:
        return False
    found = await pending_dispatch(session, customer_id, fatigue_days, now, conversation_id)
    return found is not None


@dataclass(frozen=True)
class Offer:
    dispatch: SurveyDispatch
    flow: str  # the survey_kind slot value (surveys.TRIGGER_FLOWS)
    intro: str


async def deliver(
    session: AsyncSession,
    conversation: Conversation,
    fatigue_days: int,
    now: datetime,
    moment: Moment = AT_START,
) -> Offer | None:
    """Mark the customer's pending dispatch as offered in this conversation and word its
    intro (the consent question).

    The conditional update makes two tabs opening at once offer it only once.
    """
    customer = (
        await session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    )
    if customer is None or customer.is_anonymous:
        return None
    dispatch = await pending_dispatch(
        session, customer.id, fatigue_days, now, conversation.id, moment
    )
    if dispatch is None:
        return None
    result = await session.execute(
        update(SurveyDispatch)
        .where(
            SurveyDispatch.id == dispatch.id,
            SurveyDispatch.offer_count == dispatch.offer_count,
        )
        .values(
            sent_at=func.coalesce(SurveyDispatch.sent_at, now),
            offer_count=SurveyDispatch.offer_count + 1,
            conversation_id=conversation.id,
        )
        .execution_options(synchronize_session=False)
    )
    await session.refresh(dispatch)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Offer(dispatch, surveys.TRIGGER_FLOWS[dispatch.trigger], await intro(session, dispatch))


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


async def intro(session: AsyncSession, dispatch: SurveyDispatch) -> str:
    """A short, friendly opening naming the order or the subscription period."""
    lifecycle = await session.get(Lifecycle, dispatch.lifecycle_id)
    assert lifecycle is not None
    order = await session.get(Order, lifecycle.order_id) if lifecycle.order_id else None
    subscription_id = lifecycle.subscription_id or (order.subscription_id if order else None)
    subscription = await session.get(Subscription, subscription_id) if subscription_id else None
    plan = (
        texts.render("utter_proactive_plan", plan=subscription.plan)
        if subscription
        else texts.render("utter_proactive_plan_unknown")
    )
    if dispatch.trigger in _ORDER_INTROS:
        with_number, without = _ORDER_INTROS[dispatch.trigger]
        return texts.render(with_number, order=order.number) if order else texts.render(without)
    if dispatch.trigger == surveys.TRIGGER_SUBSCRIPTION_RENEWED:
        start = _day(lifecycle.period_start or lifecycle.opened_at)
        period = (
            texts.render("utter_proactive_period", start=start, end=_day(lifecycle.closed_at))
            if lifecycle.closed_at
            else texts.render("utter_proactive_period_open", start=start)
        )
        return texts.render("utter_proactive_renewed", plan=plan, period=period)
    return texts.render("utter_proactive_ended", plan=plan)


# The consent question of the surveys about an order: naming it, or not (no order known).
_ORDER_INTROS = {
    surveys.TRIGGER_FIRST_ORDER: (
        "utter_proactive_first_order",
        "utter_proactive_first_order_no_number",
    ),
    surveys.TRIGGER_ORDER_DELIVERED: (
        "utter_proactive_delivered",
        "utter_proactive_delivered_no_number",
    ),
    surveys.TRIGGER_ESCALATION_RESOLVED: (
        "utter_proactive_helped",
        "utter_proactive_helped_no_order",
    ),
}


# --- the chat turns (called by actions/surveys.py) ------------------------------------------


async def start_survey(
    session: AsyncSession,
    settings: Settings,
    conversation_id: str,
    now: datetime | None = None,
    moment: Moment = AT_START,
) -> chat.Turn:
    """Offer the customer's pending survey (EXTERNAL_proactive_survey, or "Before you go…"
    at the end of a chat): its consent question, answered by `answer_consent`. Does nothing
    when none is due."""
    context = await chat.load_context(session, conversation_id)
    offer = await deliver(
        session, context.conversation, settings.survey_fatigue_days, now or utcnow(), moment
    )
    if offer is None:
        return chat.Turn(slots={"next_step": "done"})
    slots: dict[str, Any] = {
        "next_step": "consent",
        "awaiting": "survey_consent",
        "pending_action": None,
        "survey_kind": offer.flow,
        "survey_dispatch_id": float(offer.dispatch.id),
        "survey_source": None,
        "survey_score": None,
        "survey_ces": None,
        "survey_comment": None,
        "survey_retries": 0.0,
        "survey_declined": False,
    }
    intro = (
        texts.render("utter_proactive_before_you_go", offer=offer.intro)
        if moment.at_end
        else offer.intro
    )
    return chat.Turn(slots=slots).say(intro, CONSENT_BUTTONS)


# "ok you can ask your questions now" after "not now" (tester tq39): the survey, at once.
_ASKS_FOR_THE_SURVEY = re.compile(
    r"\b(?:(?:you|u) can (?:ask|start)|go ahead (?:and ask|with (?:the|your|ur) (?:questions?|"
    r"survey))|ask (?:me )?(?:your|ur|the|those|them|that)\s*(?:two |2 |quick )*(?:questions?|"
    r"survey)?\b(?: now)?|(?:start|do) the survey|i'?m ready for (?:the|your) (?:questions?|survey)|"
    # "ok i have time now" (tester 7, tw7_07)
    r"i (?:have|'ve got|got) (?:some |the )?time(?: now)?\b(?! for)|"
    # "ok go on then", "ok go ahead", "i can do the questions now" (tester 8)
    r"^\W*(?:(?:ok(?:ay)?|fine|alright|sure|actually|hmm|then)\W+)*go (?:on|ahead)\b|"
    r"i (?:can|could|will) (?:do|answer) (?:the|your|ur) (?:questions?|survey)|"
    r"let'?s do (?:it|the (?:questions?|survey)))",
    re.IGNORECASE,
)


def asks_for_the_survey(text: str) -> bool:
    return bool(_ASKS_FOR_THE_SURVEY.search(text or ""))


async def offer_postponed(
    session: AsyncSession, settings: Settings, conversation_id: str, now: datetime | None = None
) -> chat.Turn:
    """The survey the customer put off in this chat, when they ask for it after all: its
    consent question's slots (the caller takes the request as the yes); nothing when none
    is due."""
    return await start_survey(session, settings, conversation_id, now, Moment(at_end=True))


async def answer_consent(
    session: AsyncSession, dispatch_id: float | None, accepted: bool, now: datetime | None = None
) -> chat.Turn:
    """Yes to the consent question starts the survey; "not now" leaves it for a later chat,
    a second "not now" (on the second offer) declines it."""
    now = now or utcnow()
    dispatch = await session.get(SurveyDispatch, int(dispatch_id)) if dispatch_id else None
    closed = {"awaiting": "nothing", "next_step": "done", "survey_dispatch_id": None}
    if dispatch is None or dispatch.declined_at or dispatch.answered_at or dispatch.expired_at:
        return chat.Turn(slots=closed)
    if accepted:
        dispatch.accepted_at = now
        return chat.Turn(slots={"awaiting": "nothing", "next_step": "survey"})
    if dispatch.offer_count >= MAX_OFFERS:
        surveys.mark_declined(dispatch)
        return chat.Turn(slots=closed).say(declined_for_good_reply())
    return chat.Turn(slots={**closed, "survey_postponed": True}).say(postponed_reply())


async def answer_source(
    session: AsyncSession,
    conversation_id: str,
    dispatch_id: float | None,
    text: str,
    retries: int = 0,
) -> chat.Turn:
    """ "How did you hear about us": recorded at once, and stored on the customer and on
    the lifecycle of the first order. An answer that names no source is asked once more,
    then the question is skipped; nothing else is stored as a source (issue #18)."""
    dispatch = await session.get(SurveyDispatch, int(dispatch_id)) if dispatch_id else None
    if dispatch is None:
        return chat.Turn(slots={"survey_declined": True, "survey_source": None})
    if is_decline(text):
        surveys.mark_declined(dispatch)
        return chat.Turn(slots={"survey_declined": True, "survey_source": None}).say(
            texts.render("utter_survey_skipped")
        )
    source = surveys.acquisition_source(text)
    if source is None and asks_why(text):
        return chat.Turn(slots={"survey_source": None}).say(texts.render("utter_survey_why"))
    if source is None:
        if retries >= 1:
            return chat.Turn(slots={"survey_source": "skipped", "survey_retries": 0.0}).say(
                texts.render("utter_survey_skip_question")
            )
        # "cant remember tbh" names no source either and is asked once more (the spec's
        # rule), but as a memory to jog, not as an answer not understood (tester 7, tw7_11)
        unclear = (
            "utter_survey_source_forgotten"
            if surveys.forgets_the_source(text)
            else "utter_survey_source_unclear"
        )
        return chat.Turn(slots={"survey_source": None, "survey_retries": 1.0}).say(
            texts.render(unclear)
        )
    await chat.record_survey_answer(
        session,
        conversation_id,
        dispatch,
        FeedbackKind.discovery_source,
        score=None,
        text=text.strip()[: feedback.MAX_FEEDBACK_CHARS],
    )
    lifecycle = await session.get(Lifecycle, dispatch.lifecycle_id)
    customer = await session.get(Customer, dispatch.customer_id)
    assert lifecycle is not None and customer is not None
    # The customer's own answer beats what the shop inferred (e.g. from a campaign link).
    lifecycle.acquisition_channel = source
    customer.acquisition_source = source
    return chat.Turn(slots={"survey_source": source.value, "survey_retries": 0.0})


# "no wait it was a tiktok ad" right after the source was given (tester 7, tw7_14: stored
# as a comment, the source stayed "search").
_TAKES_BACK = re.compile(
    r"^\W*(?:no+|oh|oops|sorry|wait|actually|hm+|correction)\b|\bi meant\b|\bnot \w+,? (?:it|but)\b",
    re.IGNORECASE,
)


async def correct_source(session: AsyncSession, dispatch_id: float | None, text: str) -> chat.Turn:
    """The source answer of this survey corrected ("no wait it was a tiktok ad"): the stored
    answer, the customer's and the lifecycle's source changed; an empty turn when the text
    is no such correction or no source was given yet."""
    nothing = chat.Turn()
    source = surveys.acquisition_source(text)
    if source is None or not _TAKES_BACK.search(text or "") or not dispatch_id:
        return nothing
    row = await session.scalar(
        select(Feedback).where(
            Feedback.survey_dispatch_id == int(dispatch_id),
            Feedback.kind == FeedbackKind.discovery_source,
        )
    )
    dispatch = await session.get(SurveyDispatch, int(dispatch_id))
    if row is None or dispatch is None:
        return nothing
    row.text = text.strip()[: feedback.MAX_FEEDBACK_CHARS]
    lifecycle = await session.get(Lifecycle, dispatch.lifecycle_id)
    customer = await session.get(Customer, dispatch.customer_id)
    if lifecycle is not None:
        lifecycle.acquisition_channel = source
    if customer is not None:
        customer.acquisition_source = source
    await session.flush()
    return chat.Turn(slots={"survey_source": source.value}).say(
        texts.render("utter_survey_source_corrected")
    )


LATE_SOURCE_HOURS = 2


async def late_source(session: AsyncSession, conversation_id: str, text: str) -> chat.Turn | None:
    """ "ok. i found you on pinterest" after the "how did you hear about us" question of this
    chat gave way to a question (tester 7, tw7_15: "Okay. Anything else?"): that survey's
    answer. None when the text names no source, asks something, or no such question is open."""
    source = surveys.acquisition_source(text)
    if source is None or understanding.reads_as_ask(text):
        return None
    dispatch = await surveys.latest_accepted(
        session,
        conversation_id,
        LATE_SOURCE_HOURS,
        SurveyDispatch.trigger == surveys.TRIGGER_FIRST_ORDER,
    )
    if dispatch is None:
        return None
    answered = await session.scalar(
        select(Feedback.id).where(
            Feedback.survey_dispatch_id == dispatch.id,
            Feedback.kind == FeedbackKind.discovery_source,
        )
    )
    if answered is not None:
        return None
    await answer_source(session, conversation_id, float(dispatch.id), text)
    return chat.Turn(slots={"next_step": "done"}).say(texts.render("utter_survey_late_source"))


# --- response-rate facts (SPEC §7: answered dispatches / sent dispatches) --------------------


@dataclass(frozen=True)
class ResponseStats:
    scheduled: int
    sent: int
    answered: int
    declined: int
    expired: int

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None


async def response_stats(
    session: AsyncSession, since: datetime | None = None, until: datetime | None = None
) -> ResponseStats:
    """Counts over the proactive dispatches created in [since, until)."""
    conditions: list[ColumnElement[bool]] = [
        SurveyDispatch.trigger.in_(list(surveys.TRIGGER_KINDS))
    ]
    if since is not None:
        conditions.append(SurveyDispatch.created_at >= since)
    if until is not None:
        conditions.append(SurveyDispatch.created_at < until)
    row = (
        await session.execute(
            select(
                func.count(SurveyDispatch.id),
                func.count(SurveyDispatch.sent_at),
                func.count(SurveyDispatch.answered_at),
                func.count(SurveyDispatch.declined_at),
                func.count(SurveyDispatch.expired_at),
            ).where(*conditions)
        )
    ).one()
    return ResponseStats(*(int(value) for value in row))


# --- trying it out: `python -m bot survey-demo` ----------------------------------------------

SUBSCRIPTION_TRIGGERS = frozenset(
    {surveys.TRIGGER_SUBSCRIPTION_RENEWED, surveys.TRIGGER_SUBSCRIPTION_CANCELLED}
)


async def schedule_for_customer(
    session: AsyncSession, external_id: str, trigger: str, order_number: str | None = None
) -> SurveyDispatch:
    """Schedule a survey as the shop's event would: on the named order's lifecycle (default:
    the latest order), or the latest subscription period for the subscription triggers."""
    if trigger not in surveys.TRIGGER_KINDS:
        raise InvalidInput(
            f"unknown trigger {trigger!r}; one of {', '.join(surveys.TRIGGER_KINDS)}"
        )
    customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
    if customer is None:
        raise NotFound(f"no customer {external_id}")
    if trigger in SUBSCRIPTION_TRIGGERS:
        periods = select(Lifecycle).where(
            Lifecycle.customer_id == customer.id, Lifecycle.subscription_id.is_not(None)
        )
        if trigger == surveys.TRIGGER_SUBSCRIPTION_RENEWED:
            # A renewal asks about the period that ended: the newest closed one if any.
            periods = periods.order_by(Lifecycle.closed_at.is_(None))
        lifecycle = await session.scalar(
            periods.order_by(Lifecycle.opened_at.desc(), Lifecycle.id.desc()).limit(1)
        )
        if lifecycle is None:
            raise NotFound(f"customer {external_id} has no subscription period")
    else:
        order = (
            await repositories.order_by_number(session, order_number)
            if order_number
            else await _latest_order(session, customer.id, trigger)
        )
        if order is None or order.customer_id != customer.id:
            raise NotFound(f"no order {order_number or ''} of customer {external_id}".strip())
        lifecycle = await lifecycles.lifecycle_for_order(session, order)
    return await surveys.schedule_proactive(session, lifecycle, trigger)


async def _latest_order(session: AsyncSession, customer_id: int, trigger: str) -> Order | None:
    """The latest order; for a delivery survey the latest delivered one."""
    query = select(Order).where(Order.customer_id == customer_id)
    if trigger == surveys.TRIGGER_ORDER_DELIVERED:
        query = query.where(Order.status == OrderStatus.delivered)
    order: Order | None = await session.scalar(
        query.order_by(Order.placed_at.desc(), Order.id.desc()).limit(1)
    )
    return order


async def before_you_go(
    session: AsyncSession,
    settings: Settings,
    conversation_id: str,
    postponed_here: bool,
    now: datetime | None = None,
) -> chat.Turn:
    """The customer says thanks or goodbye: offer a survey that is due (its second offer, or
    a first one), else nothing (the rules then answer the thanks or goodbye)."""
    moment = Moment(at_end=True, postponed_here=postponed_here)
    return await start_survey(session, settings, conversation_id, now, moment)
