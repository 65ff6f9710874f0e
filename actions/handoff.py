"""Escalation to a person on request; the fallback when the bot did not understand."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.ext.asyncio import AsyncSession

from actions.services import (
    STORAGE_ERRORS,
    DomainAction,
    emit,
    get_services,
    latest_intent,
    latest_text,
    put_back_as,
    unavailable,
)
from actions.surveys import survey_asked_for
from bot.domain import (
    chat,
    escalations,
    fallback,
    knowledge,
    proactive,
    refusals,
    scores,
    support,
    surveys,
    texts,
    understanding,
)
from bot.domain.enums import EscalationReason


class ActionEscalate(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_escalate"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        about_the_shop = chat.about_the_shop(latest_text(tracker), get_services().settings)
        if about_the_shop is not None:
            # "whats your phone number" (request_human 0.71): how to reach the team, a person
            # offered, nothing queued yet (tester 5, tw5_20)
            return about_the_shop
        return await chat.request_human(
            session,
            tracker.sender_id,
            EscalationReason.customer_request,
            get_services().settings.support_hours,
        )


class ActionGreet(Action):  # type: ignore[misc]
    """The greeting; to a customer queued for a person who asks whether anyone is there,
    that they are queued (the greeting introduced the bot again: tester 5, tw5_29)."""

    def name(self) -> str:
        return "action_greet"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text, settings = latest_text(tracker), get_services().settings
        about_the_shop = chat.about_the_shop(text, settings)
        if about_the_shop is not None:
            # "hey whats ur phone number" read as a greeting (a chat in Chromium, 19:01)
            return emit(dispatcher, about_the_shop, tracker)
        resumed = await survey_asked_for(tracker)
        if resumed is not None:  # "hi, ok i can do the questions now" (tester 8, tw8_06)
            return resumed
        if fallback.asks_for_the_person(text) and await _queued(tracker):
            hours = settings.support_hours
            dispatcher.utter_message(text=texts.render("utter_handoff_already_queued", hours=hours))
        else:
            dispatcher.utter_message(response="utter_greet")
        return []


def _survey_question_open(tracker: Tracker) -> bool:
    loop = (tracker.active_loop or {}).get("name")
    return loop == "survey_form" and bool(tracker.get_slot("requested_slot"))


class ActionHandleFallback(Action):  # type: ignore[misc]
    """Not understood: the likeliest meanings as buttons plus "something else"; after that
    fails again a person is offered (issue #17). Nothing is escalated here: only the
    customer's own request_human (a click on "Talk to a person") opens an escalation."""

    def name(self) -> str:
        return "action_handle_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text, intent = latest_text(tracker), latest_intent(tracker)
        ranking = tracker.latest_message.get("intent_ranking") or []
        if _survey_question_open(tracker) and (
            scores.asks_why(text) or not understanding.reads_as_ask(text)
        ):
            # "why do you care", "cant remember tbh", "ok. i found you on pinterest" at a
            # survey question (tester 7): the question's own validation tells an answer, a
            # why or a remark apart; a menu of meanings helps nobody here. An ask ("can i
            # talk to someone") is served below as before: put back as an answer, it lost
            # its request (a held-out conversation's hand-over never opened)
            return put_back_as(tracker, "inform")
        resumed = await survey_asked_for(tracker)
        if resumed is not None:  # "ok ask ur question" after "Not now" or at the offer
            return resumed
        if (
            tracker.get_slot("survey_dispatch_id")
            and surveys.acquisition_source(text) is not None
            and not understanding.reads_as_ask(text)
        ):
            # "ok. i found you on pinterest" once the source question gave way to a question
            # (tester 7, tw7_15): the survey's late answer (actions/support.py takes it)
            return put_back_as(tracker, "inform")
        if tracker.get_slot("awaiting") == "survey_consent":
            if fallback.is_approving_emoji(text):
                return put_back_as(tracker, "affirm")
            if refusals.declines_offer(text) or refusals.puts_off(text):
                # "no stop asking me stuff": a no, whatever else it says (dev chat ds06);
                # answered here, as a deny put back would come back to this action ("none of
                # the meanings the fallback offered", data/rules/handoff.yml)
                return await _not_now(dispatcher, tracker)
            if scores.asks_why(text):
                # "why?" at "May we ask two quick questions?": what for, and the offer stands
                dispatcher.utter_message(
                    text=texts.render("utter_survey_offer_why"), buttons=proactive.CONSENT_BUTTONS
                )
                return []
        if refusals.is_no_comment(text) and tracker.get_slot("awaiting") in (None, "nothing"):
            # "thats it", "ok thats all" with nothing asked (tester tr27): a goodbye
            return put_back_as(tracker, "goodbye")
        if await _follows_up_on_an_order(tracker, text):
            # "and the jumper?" after a request about an order, which the NLU could not place
            # (tester tr28): data about the request, served as such (the inform rule)
            return put_back_as(tracker, "inform")
        meant = _request_meant(tracker, text)
        if meant is not None:
            return put_back_as(tracker, meant)
        if await _names_only_the_subscription(tracker, text):
            # "and the coffee?" after another request (tester 4, tw4_07: the coffee dripper's
            # product page): the subscription's state, as "where is my coffee box" gets it
            return put_back_as(tracker, "order_status")
        if fallback.asks_for_the_person(text) and await _queued(tracker):
            # "is anyone there??" while the request waits in the queue (tester tq38)
            dispatcher.utter_message(
                text=texts.render(
                    "utter_handoff_already_queued", hours=get_services().settings.support_hours
                )
            )
            return []
        about_the_shop = chat.about_the_shop(text, get_services().settings)
        if about_the_shop is not None:  # "GDPR deletion request" (tester 4, tw4_38)
            return emit(dispatcher, about_the_shop, tracker)
        if fallback.asks_what_now(text):
            # "so what can u do" at "…Shall I get one?" (action_drop_pending put it back):
            # the offer again; "ok so what now" anywhere else: what the bot can do, a person
            # on offer (testers 2 and 3: it got "Have a lovely day!")
            offer = (
                fallback.UTTER_OFFER_AGAIN
                if _offered_a_person(tracker)
                else fallback.UTTER_WHAT_NOW
            )
            dispatcher.utter_message(text=texts.render(offer), buttons=support.YES_NO)
            return [SlotSet("awaiting", "confirmation"), SlotSet("pending_action", "offer_human")]
        focus = tracker.get_slot(knowledge.FOCUS_SLOT)
        if fallback.may_be_a_knowledge_question(text, intent) or (
            focus and understanding.reads_as_ask(text)
        ):
            # (right after a knowledge answer, any ask not understood is tried on the
            # knowledge base: 'how heavy is it', 'ok and do u ship to belgium')
            known = await _knowledge_answer(dispatcher, text, focus)
            if known is not None:
                return known
        answer = fallback.reply(text, intent, ranking, fallback.streak(tracker.events))
        dispatcher.utter_message(response=answer.response, buttons=answer.buttons)
        return []


async def _not_now(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    try:
        async with get_services().transaction() as session:
            turn = await proactive.answer_consent(
                session, tracker.get_slot("survey_dispatch_id"), False
            )
    except STORAGE_ERRORS as error:
        return unavailable(dispatcher, error)
    return emit(dispatcher, turn, tracker)


async def _follows_up_on_an_order(tracker: Tracker, text: str) -> bool:
    """A short message naming another of the customer's orders or its items, after a
    request about an order, with no question open (actions/support.py does the rest)."""
    if (
        tracker.get_slot("identity") != "verified"
        or tracker.get_slot("awaiting") not in (None, "nothing")
        or tracker.get_slot("support_request") not in support.ORDER_FLOWS
        or not fallback.has_words(text)
    ):
        return False
    try:
        async with get_services().transaction() as session:
            return await chat.names_their_order(session, tracker.sender_id, text)
    except STORAGE_ERRORS:
        return False


def _request_meant(tracker: Tracker, text: str) -> str | None:
    """A request whose words say what it is though the NLU could not place it: "hmm wait
    what does it cost again" at a subscription's change (its price: tester 3, tw3_13), "the
    jumper i just ordered, can i get it in L instead" (a size change: tw3_10), "so how long
    then?" after a charge was questioned."""
    if understanding.mentions_discount_code(text):
        # "my promo code WELCOME10 isnt working" (nlu_fallback with the model of 2026-12-07
        # night; tester 6, tw6_07): the help centre's answer on codes
        return "policy_question"
    if tracker.get_slot("identity") != "verified":
        return None
    if (
        support.asks_price(text)
        and tracker.get_slot("support_request") in support.SUBSCRIPTION_FLOWS
    ):
        return "policy_question"
    if chat.asks_size_change(text):
        return "return_item"
    if understanding.asks_for_exception(text) and tracker.get_slot("support_request") in (
        chat.RETURN_FLOWS
    ):
        return "return_item"  # "cant you make an exception?" after the window's answer
    if understanding.asks_why_cancelled(text):
        # "why was A45039 cancelled?? i didnt cancel it" (nlu_fallback, cancel_order 0.51):
        # that order's state, the way the cancellation reading serves it (tw3_09)
        return "cancel_order"
    if understanding.says_not_here(text) and understanding.mentions_delivery(text):
        # "my order is a week late, just cancel it and refund me" (nlu_fallback 0.45,
        # delivery_problem 0.38): the late parcel's options (tester 6, tw6_01)
        return "delivery_problem"
    if understanding.asks_redirect(text) and tracker.get_slot("support_request") is not None:
        # "can i get it delivered to a packstation instead" after an order's status (tq36)
        return "change_address"
    if support.asks_how_long(text) and tracker.get_slot("support_request") == "billing_issue":
        # "so how long then?" after the double-charge answer (tester 5, tw5_30: delivery
        # times from the help centre): when the held amount goes back
        return "refund_status"
    return None


async def _names_only_the_subscription(tracker: Tracker, text: str) -> bool:
    if tracker.get_slot("identity") != "verified" or tracker.get_slot("awaiting") not in (
        None,
        "nothing",
    ):
        return False
    try:
        async with get_services().transaction() as session:
            return await chat.refers_to_the_subscription(session, tracker.sender_id, text)
    except STORAGE_ERRORS:
        return False


async def _queued(tracker: Tracker) -> bool:
    try:
        async with get_services().transaction() as session:
            return await escalations.queued_while_offline(session, tracker.sender_id)
    except STORAGE_ERRORS:
        return False


def _offered_a_person(tracker: Tracker) -> bool:
    """Whether a person was on offer (a yes/no) when the customer's latest message came;
    action_drop_pending has cleared the offer and put the message back by then."""
    pending: Any = None
    messages: list[tuple[Any, Any]] = []  # (text, the offer pending when it came)
    for event in tracker.events:
        if event.get("event") == "slot" and event.get("name") == "pending_action":
            pending = event.get("value")
        elif event.get("event") == "slot" and event.get("name") == "awaiting":
            pending = pending if event.get("value") == "confirmation" else None
        elif event.get("event") == "user":
            messages.append((event.get("text"), pending))
    if len(messages) >= 2 and messages[-1][0] == messages[-2][0]:
        return bool(messages[-2][1] == "offer_human")  # as first received, before put back
    return bool(messages and messages[-1][1] == "offer_human")


class ActionOutOfScope(Action):  # type: ignore[misc]
    """Out of scope: what the bot is for; but right after a knowledge answer, a follow-up
    that points back at it ('what if its over 50 euros') is answered if the knowledge base
    is sure of it."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text = latest_text(tracker)
        resumed = await survey_asked_for(tracker)
        if resumed is not None:
            return resumed
        focus = tracker.get_slot(knowledge.FOCUS_SLOT)
        if focus and knowledge.refers_back(text):
            known = await _knowledge_answer(dispatcher, text, focus)
            if known is not None:
                return known
        dispatcher.utter_message(response="utter_out_of_scope")
        return []


async def _knowledge_answer(
    dispatcher: CollectingDispatcher, text: str, focus: str | None
) -> list[EventType] | None:
    known = await _confident_answer(text, focus)
    if known is None:
        return None
    for said in (known.text, *known.more):
        dispatcher.utter_message(text=said)
    return [SlotSet(name, value) for name, value in known.slots.items()]


async def _confident_answer(question: str, focus: str | None) -> knowledge.Reply | None:
    """The knowledge base's answer if it is sure of one; a storage error is no answer (the
    usual fallback follows)."""
    try:
        async with get_services().transaction() as session:
            return await knowledge.confident_answer(
                session, knowledge.shared_retriever(), question, focus
            )
    except STORAGE_ERRORS:
        return None


class ActionStartSupportSurvey(DomainAction, Action):  # type: ignore[misc]
    """Triggered (EXTERNAL_support_resolved) when an agent hands the chat back."""

    def name(self) -> str:
        return "action_start_support_survey"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.start_support_survey(session, get_services().settings, tracker.sender_id)
