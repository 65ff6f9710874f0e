"""Support flows: orders, deliveries, returns, refunds, billing, subscriptions, products."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from sqlalchemy.ext.asyncio import AsyncSession

from actions.services import (
    DomainAction,
    get_services,
    latest_intent,
    latest_text,
    more_follows,
    put_back,
    put_back_as,
)
from actions.surveys import survey_asked_for
from bot.domain import (
    chat,
    knowledge,
    proactive,
    refusals,
    returns,
    support,
    texts,
    understanding,
)
from bot.storage.models import utcnow


def intent_ranking(parse_data: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's intent ranking (just its intent when NLU gave no ranking)."""
    ranking = parse_data.get("intent_ranking")
    if ranking:
        return list(ranking)
    intent = parse_data.get("intent") or {}
    return [intent] if intent.get("name") else []


def request_message(tracker: Tracker, flow: str | None, answering: bool = False) -> dict[str, Any]:
    """The parse data of the message that asked for `flow`: the latest one, or (after the
    identity check) the last earlier message read as that request. `answering`: the latest
    message answers the bot's question about that request ("which order?"), so it is never
    the request itself — "just the towel tbh, keeping the casserole" at the return's order
    picker (return_item 0.50) is no new, unsure return to ask "what did you mean?" about (oc04)."""
    latest: dict[str, Any] = tracker.latest_message or {}
    if not answering and (latest.get("intent") or {}).get("name") == flow:
        return latest
    users = [e for e in tracker.events if e.get("event") == "user"]
    for event in reversed(users[:-1] if answering else users):
        parse_data = event.get("parse_data") or {}
        if (parse_data.get("intent") or {}).get("name") == flow:
            return dict(parse_data, text=event.get("text") or "")
    return latest


def named_order_number(tracker: Tracker, latest_only: bool = False) -> str | None:
    """The order number the customer gave for the current request (in the request itself,
    the identity check or the order picker's button), or None: a number remembered from an
    earlier request is not this request's (issue #17, bot/domain/chat.py `_order_in_question`).

    The request starts at the user message that set `support_request` last; `latest_only`:
    the customer's latest message alone (it answers "which order?")."""
    events = list(tracker.events)
    start = next(
        (
            i
            for i in range(len(events) - 1, -1, -1)
            if events[i].get("event") == "slot" and events[i].get("name") == "support_request"
        ),
        None,
    )
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    before = [i for i in users if start is None or i < start]
    first = before[-1] if before else (users[-1] if users else len(events))
    if latest_only:
        first = users[-1] if users else len(events)
    named: str | None = None
    for event in events[first:]:
        if event.get("event") == "user":
            for entity in (event.get("parse_data") or {}).get("entities") or []:
                if entity.get("entity") == "order_number" and entity.get("value"):
                    named = str(entity["value"])
        elif event.get("event") == "slot" and event.get("name") == "order_number":
            named = str(event["value"]) if event.get("value") else None
    return named


def earlier_request(tracker: Tracker) -> str | None:
    """The request before the current one (`support_request` as set before the customer's
    latest message, other than its value now; a message put back is the same message):
    "can u just send a new one" right after "tracking says delivered but theres nothing
    here" is about that parcel (bot/domain/chat.py `_reported_lost`)."""
    events = list(tracker.events)
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    current = tracker.get_slot("support_request")
    earlier: str | None = None
    for event in events[: users[-1] if users else 0]:
        if event.get("event") == "slot" and event.get("name") == "support_request":
            value = event.get("value")
            if value and value != current:
                earlier = str(value)
    return earlier


def _entity(tracker: Tracker, name: str) -> str | None:
    """The value of entity `name` in the latest message (a button's payload), if any."""
    value = next((v for v in tracker.get_latest_entity_values(name) if v), None)
    return str(value) if value is not None else None


def return_pick(tracker: Tracker) -> str | None:
    """A return question's button choice in the latest message ("item:12", "reason:damaged")."""
    return _entity(tracker, returns.PICK_ENTITY)


# Messages at a return's yes/no that say why, in words of their own (not a question).
_WHY_INTENTS = frozenset({"nlu_fallback", "complain", "inform", "out_of_scope", "give_feedback"})


def refines_return(tracker: Tracker, text: str) -> bool:
    """Whether words at a return's yes/no change it ("just the towel", "it doesn't fit"), say
    why in words of their own ("its blunt"), or answer nothing ("whatever")."""
    draft = returns.ReturnDraft.from_slot(tracker.get_slot("return_draft"))
    if draft is None:
        return False
    if returns.may_refine(text):
        return True
    intent = latest_intent(tracker)
    # Anything else that is no request, question or no ("whatever", "hmm"): the return
    # is kept and asked again, not dropped with the work the customer put into it (tester).
    return (
        intent in _WHY_INTENTS
        and not understanding.reads_as_ask(text)
        and not refusals.is_deny_words(text)
    )


def pending_change(tracker: Tracker) -> str | None:
    """The change awaiting a "yes" (None when the bot is not waiting for one)."""
    if tracker.get_slot("awaiting") != "confirmation":
        return None
    pending = tracker.get_slot("pending_action")
    return str(pending) if pending else None


class ActionSupportRequest(DomainAction, Action):  # type: ignore[misc]
    """Answers the support request remembered in `support_request` for the verified order."""

    def name(self) -> str:
        return "action_support_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.get_slot("awaiting") == "survey_consent" and understanding.said_after_a_yes(
            latest_text(tracker)
        ):
            # "yes 5 stars", "sure, 8" at the offer (read as data: tester 8, tw8_16, tw8_17):
            # its yes, with the first answer in it (action_answer_survey_consent)
            return put_back_as(tracker, "affirm")
        if (
            latest_intent(tracker) == "affirm"
            and (tracker.get_slot("survey_postponed") or tracker.get_slot("survey_dispatch_id"))
            # a yes to a change or an offer waiting for it is that yes, never the survey's
            and tracker.get_slot("awaiting") in (None, "nothing")
            and not tracker.get_slot("pending_action")
        ):
            # "ok go on then" after "Not now", or after a request typed instead of an
            # answer (tester 8, tw8_03, tw8_05): the survey
            resumed = await survey_asked_for(tracker)
            if resumed is not None:
                return resumed
        events: list[EventType] = await super().run(dispatcher, tracker, domain)
        return events

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        pending = pending_change(tracker)
        about_the_shop = chat.about_the_shop(latest_text(tracker), get_services().settings)
        if about_the_shop is not None:
            # "when is your customer service open", "please delete all my data": read as a
            # yes, an order's status or a cancellation (tester 4, tw4_36, tw4_38)
            return about_the_shop
        if understanding.changes_account_details(latest_text(tracker)):
            # "i need to change my email its jane.d@gmail.com now" (inform 0.72): the
            # account's page in the help centre (tester 5, tw5_05, tw5_13)
            return await chat.account_details(session, latest_text(tracker))
        if understanding.mentions_discount_code(latest_text(tracker)):
            # "my promo code WELCOME10 isnt working" (order_status 0.50): the help centre's
            # answer on codes, not an order's status (tester 6, tw6_07)
            return await chat.policy_question(session, latest_text(tracker))
        if understanding.names_the_yes(latest_text(tracker), pending):
            # "yes cancel it", read as a cancel request: the yes to the change asked about
            return await ActionResolvePending().turn(session, tracker)
        next_step = tracker.get_slot("next_step")
        out_of_the_blue = (
            tracker.latest_action_name == "action_listen"  # straight from the message, not
            and next_step not in _ANSWERS_A_QUESTION  # after the identity check or a question
        )
        if out_of_the_blue and latest_intent(tracker) == "inform":
            return await _data_out_of_the_blue(session, tracker)
        if out_of_the_blue and latest_intent(tracker) == "affirm":
            return await _yes_out_of_the_blue(session, tracker)
        if out_of_the_blue and latest_intent(tracker) == "deny":
            return await _no_out_of_the_blue(session, tracker)
        return await serve_request(session, tracker, choosing_order=next_step == "choose_order")


# Steps at which an `inform` answers the bot's question (data/rules/support.yml).
_ANSWERS_A_QUESTION = frozenset({"choose_order", "return_question"})


async def _follows_up_on_an_order(session: AsyncSession, tracker: Tracker) -> bool:
    """After a request about an order: a short message naming another of the customer's
    orders (its number, "the other one", "and the mugs?") asks the same about that one."""
    flow = tracker.get_slot("support_request")
    return flow in support.ORDER_FLOWS and await chat.names_their_order(
        session, tracker.sender_id, latest_text(tracker)
    )


async def _no_out_of_the_blue(session: AsyncSession, tracker: Tracker) -> chat.Turn:
    """A no with nothing asked: "wait no undo that, i want to keep it" after a cancellation
    or a pause asks to undo it (tester 2: a trap; tester 3: "actually no, undo that, i want
    it to keep coming" after a pause); any other, anything else?"""
    if tracker.get_slot("support_request") in {
        "cancel_subscription",
        "pause_subscription",
    } and understanding.asks_undo(latest_text(tracker)):
        turn = await chat.support_request(
            session,
            get_services().settings,
            tracker.sender_id,
            "resume_subscription",
            verified=tracker.get_slot("identity") == "verified",
            text=latest_text(tracker),
        )
        turn.slots["support_request"] = "resume_subscription"
        return turn
    if refusals.says_done(latest_text(tracker)):
        # "no thats all" after "Anything else I can help with?": goodbye, not the same
        # question again (tester 2, tr02)
        return chat.Turn(slots={"next_step": "done"}).say(texts.render("utter_goodbye"))
    return chat.Turn(slots={"next_step": "done"}).say(texts.render("utter_anything_else"))


async def _yes_out_of_the_blue(session: AsyncSession, tracker: Tracker) -> chat.Turn:
    """A yes with nothing asked: "wait sorry yes cancel it after all" right after a no to
    that change asks it again (sf46); any other, anything else?"""
    if await _follows_up_on_an_order(session, tracker):
        return await serve_request(session, tracker, choosing_order=True)  # "ok and the mugs?"
    declined = tracker.get_slot("declined_change")
    if (
        declined
        and declined == tracker.get_slot("support_request")
        and understanding.names_the_yes(latest_text(tracker), declined)
    ):
        return await serve_request(session, tracker, choosing_order=False)
    # "ok. i found you on pinterest" (affirm 0.45) after the source question gave way
    late = await proactive.late_source(session, tracker.sender_id, latest_text(tracker))
    if late is not None:
        return late
    return chat.Turn(slots={"next_step": "done"}).say(texts.render("utter_anything_else"))


async def _data_out_of_the_blue(session: AsyncSession, tracker: Tracker) -> chat.Turn:
    """Data with no question open: an order number or "the other one" after a request about
    an order asks the same about that order (sv51); an ask the NLU took for data because of
    an address or a number in it ("pls change delivery adress to 5 rue victor hugo") is the
    request it ranked next; details after a request ("its the coffee subscription, 2
    payments of 19 euro") get a person offered; anything else, what the customer wants."""
    if await _follows_up_on_an_order(session, tracker):
        return await serve_request(session, tracker, choosing_order=True)
    text = latest_text(tracker)
    score = await chat.late_score(session, tracker.sender_id, text)
    if score is not None:
        return score  # "4" after the survey question was set aside for a request (tw4_03)
    source = await proactive.late_source(session, tracker.sender_id, text)
    if source is not None:
        return source  # "i found you on pinterest" after a question at that survey question
    runner_up = next(
        (
            str(item.get("name"))
            for item in intent_ranking(tracker.latest_message or {})[1:3]
            if item.get("name") in support.ORDER_FLOWS | support.SUBSCRIPTION_FLOWS
        ),
        None,
    )
    if (
        runner_up
        and tracker.get_slot("identity") == "verified"
        and understanding.reads_as_ask(text, order_number_asks=False)
    ):
        turn = await chat.support_request(
            session,
            get_services().settings,
            tracker.sender_id,
            runner_up,
            verified=True,
            text=text,
            latest=text,
        )
        turn.slots["support_request"] = runner_up
        return turn
    if tracker.get_slot("support_request"):
        return chat.Turn(
            slots={"next_step": "done", "awaiting": "confirmation", "pending_action": "offer_human"}
        ).say(texts.render("utter_details_offer_person"), support.YES_NO)
    return chat.Turn(slots={"next_step": "done"}).say(texts.render("utter_what_help"))


async def serve_request(session: AsyncSession, tracker: Tracker, choosing_order: bool) -> chat.Turn:
    """The request remembered in `support_request`; `choosing_order`: the latest message
    answers "which order?" (the picker, or a survey question answered with an order)."""
    flow = tracker.get_slot("support_request")
    request = request_message(tracker, flow, answering=choosing_order)
    return await chat.support_request(
        session,
        get_services().settings,
        tracker.sender_id,
        flow,
        verified=tracker.get_slot("identity") == "verified",
        # answering "which order?" (or pointing at another one), only the latest message
        # names it: "cancel A10001", then "no wait the other one" is not A10001 (tq19)
        order_number=named_order_number(tracker, latest_only=choosing_order),
        text=str(request.get("text") or ""),
        # answering "which order?" or following up ("and the jumper?" after the mug's
        # return, tr28): the request was judged when it was made (an unsure one got "what
        # did you mean?" then), and the answer is no new request to judge
        intent_ranking=None if choosing_order else intent_ranking(request),
        dropped=pending_change(tracker),
        declined=tracker.get_slot("declined_change"),
        return_draft=tracker.get_slot("return_draft"),
        latest=latest_text(tracker),
        return_pick=return_pick(tracker),
        latest_intent=latest_intent(tracker),
        choosing_order=choosing_order,
        # no CSAT between two requests of one message, nor after a "not now" to a survey in
        # this chat ("no stop asking me stuff", then "where is my mug": dev chat ds06)
        survey_now=not more_follows(tracker) and not tracker.get_slot("survey_postponed"),
        earlier_request=earlier_request(tracker),
    )


class ActionResolvePending(DomainAction, Action):  # type: ignore[misc]
    """Carries out (on "yes") or drops (on "no") the change the bot asked to confirm."""

    def name(self) -> str:
        return "action_resolve_pending"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        settings = get_services().settings
        confirmed = understanding.is_clear_yes(
            latest_text(tracker),
            intent_ranking(tracker.latest_message or {}),
            settings.intent_confidence_threshold,
            settings.intent_margin,
        ) or understanding.names_the_yes(latest_text(tracker), pending_change(tracker))
        # Read as affirm, also a yes: a bare "ya" / "yep" however unsure the NLU (a
        # model-dependent "no" for sf31's "ya"), and a return's button that confirms with a
        # choice in it (/affirm{"return_pick": …}).
        confirmed = confirmed or (
            latest_intent(tracker) == "affirm"
            and (understanding.is_yes_words(latest_text(tracker)) or bool(return_pick(tracker)))
        )
        # "yes, company is X GmbH, VAT DE…" at "Shall I get a person?": a person changes
        # nothing on the account, so a yes followed by details for them is enough (tw4_22:
        # read as an unsure affirm, it was taken as a no).
        confirmed = confirmed or (
            tracker.get_slot("pending_action") == "offer_human"
            and understanding.yes_with_details(latest_text(tracker))
        )
        # "yes L please" at a return's yes/no, "medium" at its size question: confirmed with
        # that choice (bot/domain/returns.py `confirms`)
        confirmed = confirmed or (
            pending_change(tracker) == "return_item"
            and returns.confirms(
                returns.ReturnDraft.from_slot(tracker.get_slot("return_draft")),
                latest_text(tracker),
            )
        )
        if (
            not confirmed
            # a change, or an offer about an order ("no not that one, the casserole" at the
            # kettle's invoice offer, tester tr29)
            and pending_change(tracker) is not None
            and tracker.get_slot("support_request") in support.ORDER_FLOWS
            and await chat.names_another_order(session, tracker.sender_id, latest_text(tracker))
        ):
            # "no wait the other one, the kettle" at "Cancel order A10002 (mug)?": the same
            # change asked for that order (tester: a hurried yes cancelled the wrong one)
            return await serve_request(session, tracker, choosing_order=True)
        return await chat.resolve_pending(
            session,
            settings,
            tracker.sender_id,
            tracker.get_slot("pending_action"),
            confirmed=confirmed,
            new_address=tracker.get_slot("new_address"),
            pause_until=tracker.get_slot("pause_until"),
            return_draft=tracker.get_slot("return_draft"),
            return_pick=return_pick(tracker),
            text=latest_text(tracker),
            switch_to=_entity(tracker, support.SWITCH_ENTITY),
        )


class ActionDropPending(Action):  # type: ignore[misc]
    """Another message while a change awaits a "yes": the change is dropped, the customer
    told so (`utter_nothing_changed`; not for an offer such as a person, which changes
    nothing), then the message is served as if nothing had been pending (it is put back
    after a listen, as Rasa's two-stage fallback does: data/rules/support.yml)."""

    def name(self) -> str:
        return "action_drop_pending"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        latest: dict[str, Any] = tracker.latest_message or {}
        pending, text = pending_change(tracker), latest_text(tracker)
        if (
            understanding.names_the_yes(text, pending)
            or (pending == "offer_human" and understanding.yes_with_details(text))
            or (
                pending == "return_item"
                and returns.confirms(
                    returns.ReturnDraft.from_slot(tracker.get_slot("return_draft")), text
                )
            )
        ):
            # "yes cancel it" that the NLU did not read as a yes: put back as the yes it is
            # (the change stays pending; the "yes to a pending change" rule confirms it).
            yes = {"name": "affirm", "confidence": 1.0}
            return put_back(tracker, {**latest, "intent": yes, "intent_ranking": [yes]})
        if latest_intent(tracker) == "nlu_fallback" and (
            refusals.declines_offer(text) or refusals.puts_off(text)
        ):
            # "not now, later. thanks" at "Resume your subscription now?": a no, which the
            # fallback's choices after "nothing changed" would not be (tester 4, tw4_18)
            no = {"name": "deny", "confidence": 1.0}
            return put_back(tracker, {**latest, "intent": no, "intent_ranking": [no]})
        if pending == "return_item" and refines_return(tracker, text):
            # "just the towel though" at "Return order A10002 (3 items)?": the return, refined
            # (put back as a return request; its next step reads the words, nothing changes yet).
            refine = {"name": "return_item", "confidence": 1.0}
            return [
                SlotSet("awaiting", "nothing"),
                SlotSet("pending_action", None),
                *put_back(tracker, {**latest, "intent": refine, "intent_ranking": [refine]}),
            ]
        redated = pending == "pause_subscription" and support.parse_pause_until(text, utcnow())
        if redated:
            # "for a month pls" at "Pause your subscription?": the pause, now with its end
            # (put back as the pause request it answers, which asks again with the date).
            pause = {"name": "pause_subscription", "confidence": 1.0}
            latest = {**latest, "intent": pause, "intent_ranking": [pause]}
        elif chat.is_change(pending):
            dispatcher.utter_message(response="utter_nothing_changed")
        return [
            SlotSet("awaiting", "nothing"),
            SlotSet("pending_action", None),
            SlotSet("pause_until", None),
            SlotSet("next_step", "done"),
            *put_back(tracker, latest),
        ]


class ActionAnswerPolicyQuestion(DomainAction, Action):  # type: ignore[misc]
    """A shop policy (shipping, payment, gift wrap, price match, returns) without an order,
    answered from the help centre (bot/domain/knowledge.py)."""

    def name(self) -> str:
        return "action_answer_policy_question"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        text = latest_text(tracker)
        if (
            support.asks_if_not_arrived(text)
            and tracker.get_slot("identity") == "verified"
            and tracker.get_slot("support_request") in {"order_status", "delivery_problem"}
        ):
            # "and if it doesnt come tomorow?" about the parcel just answered (tester tq23)
            turn = await chat.support_request(
                session,
                get_services().settings,
                tracker.sender_id,
                "delivery_problem",
                verified=True,
                text=text,
                survey_now=False,
            )
            turn.slots["support_request"] = "delivery_problem"
            return turn
        if (
            support.asks_price(text)
            and tracker.get_slot("identity") == "verified"
            and tracker.get_slot("support_request") in support.SUBSCRIPTION_FLOWS
        ):
            # "hmm wait what does it cost again" at the subscription's cancellation (tw3_13)
            return await chat.subscription_price(session, tracker.sender_id)
        return await chat.policy_question(session, text, tracker.get_slot(knowledge.FOCUS_SLOT))


class ActionConfirmAddress(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_confirm_address"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.confirm_address(
            session, tracker.sender_id, str(tracker.get_slot("new_address") or "")
        )


class ValidateAddressForm(FormValidationAction):  # type: ignore[misc]
    def name(self) -> str:
        return "validate_address_form"

    async def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        # The address is checked when confirming; here it is only trimmed.
        return {"new_address": " ".join(str(value or "").split())[:400] or None}


class ActionAnswerProductQuestion(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_answer_product_question"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        if (
            tracker.get_slot("identity") == "verified"
            and tracker.get_slot("support_request") in support.ORDER_FLOWS
            and await chat.refers_to_an_order(session, tracker.sender_id, latest_text(tracker))
        ):
            # "the CASSEROLE order" after an order's status: the same about that order
            return await serve_request(session, tracker, choosing_order=True)
        return await chat.product_question(
            session,
            tracker.sender_id,
            latest_text(tracker),
            tracker.get_slot(knowledge.FOCUS_SLOT),
        )
