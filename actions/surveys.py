"""In-chat surveys: ask, validate and record each answer as it is given."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from sqlalchemy.ext.asyncio import AsyncSession

from actions.services import (
    STORAGE_ERRORS,
    DomainAction,
    get_services,
    latest_text,
    put_back,
    put_back_as,
    unavailable,
)
from bot.domain import chat, fallback, proactive, scores, surveys, understanding
from bot.domain.enums import FeedbackKind
from bot.storage.models import SurveyDispatch

DomainDict = dict[str, Any]
# NLU read the answer to a score question as an opinion: a comment, not an unclear score.
OPINION_INTENTS = frozenset({"complain", "praise"})
# Never an answer, however unclear: their own rules end or interrupt the survey ("that's
# not what i asked" is about the bot's answer, not the shop: fb12).
PLEASANTRIES = frozenset({"greet", "goodbye", "thank", "bot_misunderstood"})


def _latest_intent(tracker: Tracker) -> str | None:
    intent = (tracker.latest_message or {}).get("intent") or {}
    name = intent.get("name")
    return name if isinstance(name, str) else None


def _blank(value: Any) -> bool:
    """Slots reset to None by the action that starts a survey are also sent for validation
    when the form activates; they are not answers."""
    return value is None or not str(value).strip()


def _excluded_intents(domain: DomainDict, slot: str) -> set[str]:
    mappings = (domain.get("slots") or {}).get(slot, {}).get("mappings") or []
    return {intent for mapping in mappings for intent in mapping.get("not_intent") or []}


def _answer_despite_intent(
    tracker: Tracker, domain: DomainDict, slot: str, free_text: bool
) -> dict[str, Any]:
    if tracker.get_slot("requested_slot") != slot:
        return {}
    latest = tracker.latest_message or {}
    intent = _latest_intent(tracker) or ""
    if intent.startswith("EXTERNAL_"):
        return {}  # the web service's trigger, never an answer (it has no intent ranking)
    if intent not in _excluded_intents(domain, slot) - PLEASANTRIES:
        return {}  # the mapping took it already, or a pleasantry (data/rules/surveys.yml)
    settings = get_services().settings
    text = str(latest.get("text") or "")
    if not text.strip() or not understanding.survey_answer_despite_intent(
        text,
        latest.get("intent_ranking") or [],
        settings.intent_confidence_threshold,
        settings.intent_margin,
        free_text=free_text,
    ):
        return {}
    return {slot: text}


def _names_an_order(tracker: Tracker, value: Any) -> bool:
    """An order number or "the other one" typed at a survey question of a chat that was
    about an order (sv51): a request about an order, not an answer."""
    return (
        not _blank(value)
        and bool(tracker.get_slot("support_request"))
        and understanding.names_an_order(str(value))
    )


_CHANGE_TO_UNDO = frozenset({"cancel_subscription", "pause_subscription"})


def _is_a_request(tracker: Tracker, value: Any, free_text: bool) -> bool:
    """Words at a survey question that ask for something rather than answer it: "oh no wait
    undo that, i pressed the wrong button" at the churn question right after a cancellation
    (tester 4, tw4_30: stored as the churn reason), or an ask the NLU could not place ("ok
    well can you reorder it for me then", tw4_05) at a score question. At a free-text
    question an unplaced ask may be the comment ("why does shipping take so long?")."""
    text = str(value or "")
    if tracker.get_slot("support_request") in _CHANGE_TO_UNDO and understanding.asks_undo(text):
        return True
    return (
        not free_text
        and understanding.reads_as_ask(text)
        and not scores.has_number(text)
        # "why do you care" asks about the question itself: answered there (tester 7, tw7_01)
        and not scores.asks_why(text)
    )


def _set_aside(slot: str) -> dict[str, Any]:
    """No question left (the form ends, kept as far as it was answered); ActionSubmitSurvey
    then serves the message as itself."""
    return {slot: None, **chat.SET_ASIDE}


class ValidateSurveyForm(FormValidationAction):  # type: ignore[misc]
    def name(self) -> str:
        return "validate_survey_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("survey_declined"):
            return []
        return surveys.questions(tracker.get_slot("survey_kind"))

    # A message the NLU read as a request is left out by these questions' from_text
    # mappings (not_intent), so the survey gives way to it; one that is no request after
    # all is taken as the answer here (issue #18, understanding.survey_answer_despite_intent).
    async def extract_survey_score(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer_despite_intent(tracker, domain, "survey_score", free_text=False)

    async def extract_survey_ces(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer_despite_intent(tracker, domain, "survey_ces", free_text=False)

    async def extract_survey_comment(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer_despite_intent(tracker, domain, "survey_comment", free_text=True)

    async def extract_survey_source(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A source named in words the NLU read as a request or a complaint ("got an email
        from you guys", complain 0.74: tester 7, tw7_13) is the answer."""
        if tracker.get_slot("requested_slot") != "survey_source":
            return {}
        intent = _latest_intent(tracker) or ""
        if intent.startswith("EXTERNAL_") or intent not in _excluded_intents(
            domain, "survey_source"
        ):
            return {}
        text = latest_text(tracker)
        if surveys.acquisition_source(text) is None or understanding.reads_as_ask(text):
            return {}
        return {"survey_source": text}

    async def validate_survey_score(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("survey_source") not in (None, "skipped") and not _blank(value):
            corrected = await self._answer(
                dispatcher,
                "survey_score",
                lambda session: proactive.correct_source(
                    session, tracker.get_slot("survey_dispatch_id"), str(value)
                ),
            )
            if corrected.get("survey_source"):  # the source put right; the score asked again
                return {**corrected, "survey_score": None}
        if _names_an_order(tracker, value) or _is_a_request(tracker, value, free_text=False):
            return _set_aside("survey_score")
        kind = surveys.FLOW_SCORE_KINDS.get(tracker.get_slot("survey_kind") or "")
        return await self._score(dispatcher, tracker, domain, value, "survey_score", kind=kind)

    async def validate_survey_source(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """ "How did you hear about us" (the first-order survey)."""
        if _blank(value):
            return {"survey_source": None}
        return await self._answer(
            dispatcher,
            "survey_source",
            lambda session: proactive.answer_source(
                session,
                tracker.sender_id,
                tracker.get_slot("survey_dispatch_id"),
                str(value),
                int(tracker.get_slot("survey_retries") or 0),
            ),
        )

    async def validate_survey_ces(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if _names_an_order(tracker, value):
            return _set_aside("survey_ces")
        return await self._score(
            dispatcher, tracker, domain, value, "survey_ces", kind=FeedbackKind.ces
        )

    async def _score(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        value: Any,
        slot: str,
        kind: FeedbackKind | None,
    ) -> dict[str, Any]:
        """A score question; `kind` None means the dispatch's own kind (CSAT, NPS, ...).
        Text the NLU read as an opinion, or as a request taken back as the answer
        (`extract_*`), is a comment when it holds no score."""
        intent = _latest_intent(tracker)
        opinion = intent in OPINION_INTENTS or intent in _excluded_intents(domain, slot)
        if _blank(value):
            return {slot: None}
        retries = int(tracker.get_slot("survey_retries") or 0)
        return await self._answer(
            dispatcher,
            slot,
            lambda session: chat.answer_score(
                session,
                tracker.sender_id,
                tracker.get_slot("survey_dispatch_id"),
                str(value),
                retries,
                kind=kind,
                slot=slot,
                opinion=opinion,
            ),
        )

    async def validate_survey_comment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if _blank(value):
            return {"survey_comment": None}
        if _names_an_order(tracker, value) or _is_a_request(tracker, value, free_text=True):
            return _set_aside("survey_comment")
        return await self._answer(
            dispatcher,
            "survey_comment",
            lambda session: chat.answer_comment(
                session,
                tracker.sender_id,
                tracker.get_slot("survey_dispatch_id"),
                str(value or ""),
                opinion=_latest_intent(tracker) in OPINION_INTENTS | {"give_feedback"},
            ),
        )

    async def _answer(
        self, dispatcher: CollectingDispatcher, slot: str, compute: Any
    ) -> dict[str, Any]:
        try:
            async with get_services().transaction() as session:
                turn: chat.Turn = await compute(session)
        except STORAGE_ERRORS as error:
            unavailable(dispatcher, error)
            return {slot: None}
        for text, buttons in turn.messages:
            dispatcher.utter_message(text=text, buttons=buttons or None)
        return turn.slots


class ActionSubmitSurvey(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_submit_survey"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        dispatch_id = tracker.get_slot("survey_dispatch_id")
        if _latest_intent(tracker) == "thank" and tracker.get_slot("survey_score") is None:
            await chat.score_said_with_thanks(
                session, tracker.sender_id, dispatch_id, latest_text(tracker)
            )
        return await chat.finish_survey(session, tracker.sender_id, dispatch_id)

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = await super().run(dispatcher, tracker, domain)
        if tracker.get_slot("survey_set_aside"):
            # answered with something else ("ok and the mugs?", "the other one"): that
            # message now, as if no survey had been open
            events += put_back(tracker)
        elif _latest_intent(tracker) == "goodbye" and fallback.asks_what_now(latest_text(tracker)):
            events += _what_now(tracker)  # "so what now" at a survey question (tester 3)
        return events


def _what_now(tracker: Tracker) -> list[EventType]:
    """ "ok so what now", read as a goodbye, is no goodbye (testers 2 and 3: "Have a lovely
    day!"): after a parcel's status, what happens next for that parcel; otherwise what the
    bot can do, a person on offer (the fallback's answer to it)."""
    about_a_parcel = tracker.get_slot("identity") == "verified" and tracker.get_slot(
        "support_request"
    ) in {"order_status", "delivery_problem"}
    return put_back_as(tracker, "delivery_problem" if about_a_parcel else "nlu_fallback")


class ActionStartFeedbackSurvey(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_start_feedback_survey"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.start_feedback_survey(
            session, get_services().settings, tracker.sender_id, latest_text(tracker)
        )


class ActionStartProactiveSurvey(DomainAction, Action):  # type: ignore[misc]
    """Triggered (EXTERNAL_proactive_survey) by the web service when a customer with a
    scheduled survey opens the chat, or is connected when one is scheduled."""

    def name(self) -> str:
        return "action_start_proactive_survey"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await proactive.start_survey(session, get_services().settings, tracker.sender_id)


def offer_just_made(tracker: Tracker) -> bool:
    """Whether the bot's turn right before the latest message offered a survey (the consent
    question): `awaiting` stays "survey_consent" while a request typed instead is served."""
    events = list(tracker.events)
    latest_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    for event in reversed(events[:latest_user]):
        if event.get("event") == "user":
            return False
        if event.get("event") == "slot" and event.get("name") == "awaiting":
            return bool(event.get("value") == "survey_consent")
    return False


class ActionAnswerSurveyConsent(DomainAction, Action):  # type: ignore[misc]
    """The customer's yes (start the survey) or "not now" to a proactive survey's offer."""

    def name(self) -> str:
        return "action_answer_survey_consent"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        accepted = _latest_intent(tracker) == "affirm"
        dispatch_id = tracker.get_slot("survey_dispatch_id")
        turn = await proactive.answer_consent(session, dispatch_id, accepted)
        rest = understanding.said_after_a_yes(latest_text(tracker)) if accepted else None
        if rest and turn.slots.get("next_step") == "survey":
            # "sure, found u on tiktok": the first question's answer came with the yes
            # (tester 8, tw8_02: asked anyway, and the next "5" taken for the source)
            early = await _first_answer(session, tracker, rest)
            if early is not None:
                turn.slots.update(early.slots)
                turn.messages.extend(early.messages)
        return turn


async def _first_answer(session: AsyncSession, tracker: Tracker, text: str) -> chat.Turn | None:
    """The survey's first question answered by `text`, or None when it is no such answer."""
    flow = tracker.get_slot("survey_kind")
    first = surveys.questions(flow)[0]
    dispatch_id = tracker.get_slot("survey_dispatch_id")
    if first == "survey_source":
        if surveys.acquisition_source(text) is None:
            return None
        return await proactive.answer_source(session, tracker.sender_id, dispatch_id, text)
    if first != "survey_score":
        return None
    kind = surveys.FLOW_SCORE_KINDS.get(flow or "")
    dispatch = await session.get(SurveyDispatch, int(dispatch_id)) if dispatch_id else None
    if dispatch is None:
        return None
    scale = (kind or dispatch.survey_kind).value
    if scale not in scores.SCALES:
        return None
    if scores.score_meant(text, scale) is None:
        return None
    answer = await chat.answer_score(
        session, tracker.sender_id, dispatch_id, text, 0, kind=kind, slot="survey_score"
    )
    return answer if answer.slots.get("survey_score") else None


class ActionBeforeYouGo(DomainAction, Action):  # type: ignore[misc]
    """Thanks or goodbye: "Before you go…" offers a survey that is still due."""

    def name(self) -> str:
        return "action_before_you_go"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if fallback.asks_what_now(latest_text(tracker)):
            return _what_now(tracker)
        if offer_just_made(tracker) and proactive.asks_for_the_survey(latest_text(tracker)):
            # "ok i have time now, ask your questions" (goodbye 0.74) right at the offer: a
            # yes (tester 7, tw7_07: taken as "not now" and a goodbye)
            return put_back_as(tracker, "affirm")
        events: list[EventType] = await super().run(dispatcher, tracker, domain)
        return events

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        if offer_just_made(tracker):
            # "later" (goodbye 0.97), "bye" or "thanks" right at "May we ask two quick
            # questions?": a not-now, never the same offer again as "Before you go…" (dev
            # chat ps08); after a request served instead it is the end of the chat (ps04)
            return await proactive.answer_consent(
                session, tracker.get_slot("survey_dispatch_id"), False
            )
        return await proactive.before_you_go(
            session,
            get_services().settings,
            tracker.sender_id,
            postponed_here=bool(tracker.get_slot("survey_postponed")),
        )


async def survey_asked_for(tracker: Tracker) -> list[EventType] | None:
    """ "ok ask ur question", "ok go on then", "i can do the questions now" while a survey's
    offer is open (a question was typed instead of an answer) or after "not now" in this or
    a later chat (testers tq39 and 8: tw8_03-06): the message put back as the offer's yes,
    with the consent slots of the postponed survey (the consent rule starts it). None when
    the message does not ask for the survey or none is waiting."""
    if not proactive.asks_for_the_survey(latest_text(tracker)):
        return None
    if tracker.get_slot("awaiting") == "survey_consent":
        return put_back_as(tracker, "affirm")
    try:
        async with get_services().transaction() as session:
            offer = await proactive.offer_postponed(
                session, get_services().settings, tracker.sender_id
            )
    except STORAGE_ERRORS:
        return None
    if offer.slots.get("awaiting") != "survey_consent":
        return None
    return [
        *(SlotSet(name, value) for name, value in offer.slots.items()),
        *put_back_as(tracker, "affirm"),
    ]
