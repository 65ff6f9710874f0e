"""Escalation actions, free-text opinions, and a database that is down."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from rasa_sdk import Tracker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.feedback import ActionRecordOpinion
from actions.handoff import ActionEscalate, ActionGreet, ActionHandleFallback, ActionOutOfScope
from actions.services import Services, unavailable_text, use_services
from bot.config import Settings
from bot.domain import understanding
from bot.domain.enums import ConversationStatus, EscalationReason, FeedbackKind, OrderStatus, Stage
from bot.storage.models import Conversation, Customer, Escalation, Feedback, Lifecycle
from tests import factories
from tests.rasa_helpers import run, slot_events, tracker


def _fallback_events(count: int, text: str = "blorp") -> list[dict[str, Any]]:
    """A greeting answered, then `count` messages the fallback answered, then `text`."""
    user = {"event": "user", "text": "blorp", "parse_data": {"intent": {"name": "nlu_fallback"}}}
    other = {"event": "user", "text": "hi", "parse_data": {"intent": {"name": "greet"}}}
    listen = {"event": "action", "name": "action_listen"}
    fallback = {"event": "action", "name": "action_handle_fallback"}
    latest = {"event": "user", "text": text, "parse_data": {"intent": {"name": "nlu_fallback"}}}
    answered: list[dict[str, Any]] = [user, fallback, listen] * count
    return [other, {"event": "action", "name": "utter_greet"}, listen, *answered, latest]


def _unsure(text: str, ranking: list[tuple[str, float]], failed_before: int = 0) -> Tracker:
    state = tracker("conv-1", text, "nlu_fallback", events=_fallback_events(failed_before, text))
    state.latest_message["intent_ranking"] = [
        {"name": name, "confidence": confidence} for name, confidence in ranking
    ]
    return state


async def test_request_human_escalates_and_waits_for_an_agent(
    session: AsyncSession, action_services: object
) -> None:
    from bot.domain import staff
    from bot.domain.enums import StaffRole

    agent = await staff.create_user(
        session, "sam@example.com", "Sam", StaffRole.agent, "long-enough-pw"
    )
    await staff.touch_presence(session, agent.id)  # an agent has the console open
    await session.commit()

    events, messages = await run(
        ActionEscalate(), tracker("conv-1", "a person please", "request_human")
    )

    assert slot_events(events) == {
        "awaiting": "nothing",
        "pending_action": None,
        "next_step": "done",
    }
    assert "a person will reply right here" in messages[0]["text"]
    escalation = (await session.scalars(select(Escalation))).one()
    assert (escalation.reason, escalation.priority, escalation.conversation_id) == (
        EscalationReason.customer_request,
        2,
        "conv-1",
    )
    assert (
        await session.get_one(Conversation, "conv-1")
    ).status is ConversationStatus.waiting_for_agent


async def test_first_failed_understanding_offers_the_likeliest_meanings(
    session: AsyncSession, action_services: object
) -> None:
    ranking = [
        ("nlu_fallback", 0.45),
        ("refund_status", 0.31),
        ("return_item", 0.22),
        ("greet", 0.2),
        ("billing_issue", 0.1),
        ("order_status", 0.02),
    ]
    events, messages = await run(ActionHandleFallback(), _unsure("money back??", ranking))

    assert events == []
    assert [(m["response"], m["buttons"]) for m in messages] == [
        (
            "utter_fallback_choices",
            [
                {"title": "Where is my refund?", "payload": "where is my refund"},
                {"title": "Return an item", "payload": "i want to return an item"},
                {"title": "A billing problem", "payload": "billing problem"},
                {"title": "Something else", "payload": "none of these"},
            ],
        )
    ]
    assert (await session.scalars(select(Escalation))).all() == []


async def test_what_now_while_a_person_is_on_offer_offers_again(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr13: "so what can u do" after "…a person can arrange a repair. Shall I get
    one?" got "Sorry, I'm not sure I understood"."""
    said = "so what can u do"
    state = _unsure(said, [("nlu_fallback", 0.6), ("product_question", 0.2)])
    # the offer was open when the message came; action_drop_pending cleared it and put the
    # message back
    state.events[-1:-1] = [
        {"event": "slot", "name": "awaiting", "value": "confirmation"},
        {"event": "slot", "name": "pending_action", "value": "offer_human"},
        {"event": "user", "text": said},
        {"event": "slot", "name": "awaiting", "value": "nothing"},
        {"event": "slot", "name": "pending_action", "value": None},
    ]

    events, messages = await run(ActionHandleFallback(), state)

    assert [(m["text"], m["buttons"]) for m in messages] == [
        (
            "The next step is a person from our team: they can look at it with you and "
            "arrange what I can't. Shall I get one?",
            [{"title": "Yes", "payload": "yes"}, {"title": "No", "payload": "no"}],
        )
    ]
    assert slot_events(events) == {"awaiting": "confirmation", "pending_action": "offer_human"}

    # without an offer open, what the bot can do, a person on offer
    _, plain = await run(ActionHandleFallback(), _unsure(said, [("nlu_fallback", 0.6)]))
    assert plain[0]["text"].startswith("I can check an order or a delivery")


async def test_a_thumbs_up_to_a_survey_offer_is_a_yes(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tq26: "👍" to "May we ask two quick questions?" got the generic prompt."""
    state = _unsure("👍", [("nlu_fallback", 0.9)])
    state.slots["awaiting"] = "survey_consent"

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert [e["event"] for e in events] == ["action", "user"]
    assert events[1]["text"] == "👍" and events[1]["parse_data"]["intent"]["name"] == "affirm"

    # with nothing offered, a thumbs-up is no answer to anything
    _, plain = await run(ActionHandleFallback(), _unsure("👍", [("nlu_fallback", 0.9)]))
    assert [m["response"] for m in plain] == ["utter_fallback_symbols"]


async def test_a_short_follow_up_naming_an_item_of_their_orders_is_data_not_gibberish(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr28: "and the jumper?" after a request about an order fell to "not sure I
    understood"; it goes back as data about the request (the inform rule serves it)."""
    owner = await factories.customer(session, 3)
    await factories.order(session, owner, "A10001", OrderStatus.delivered)  # 2x Stoneware Mug
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    slots = {"identity": "verified", "support_request": "return_item", "awaiting": "nothing"}

    def unsure(text: str) -> Tracker:
        state = _unsure(text, [("nlu_fallback", 0.6), ("inform", 0.2)])
        state.slots.update(slots)
        return state

    events, messages = await run(ActionHandleFallback(), unsure("and the mugs?"))
    assert messages == [] and [e["event"] for e in events] == ["action", "user"]
    assert events[1]["parse_data"]["intent"]["name"] == "inform"

    # gibberish, or an item none of their orders holds, is still not understood
    for text in ("blorp zingle wumpus", "and the kettle?"):
        _, said = await run(ActionHandleFallback(), unsure(text))
        assert [m["response"] for m in said] == ["utter_fallback_choices"], text


async def test_thats_it_with_nothing_asked_is_a_goodbye(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr27: "thats it" after the survey got "not sure I understood"."""
    events, messages = await run(
        ActionHandleFallback(), _unsure("thats it", [("nlu_fallback", 0.45), ("affirm", 0.2)])
    )
    assert messages == [] and events[1]["parse_data"]["intent"]["name"] == "goodbye"


async def test_is_anyone_there_while_queued_says_the_request_waits(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tq38: "is anyone there??" after asking for a person (nobody online) got "Sorry,
    I'm not sure I understood"."""
    await run(ActionEscalate(), tracker("conv-1", "PERSON. now.", "request_human"))

    _, messages = await run(
        ActionHandleFallback(), _unsure("is anyone there??", [("nlu_fallback", 0.45)])
    )

    assert messages[0]["text"].startswith("You're already in the queue.")
    # with no request waiting it is not understood, as before
    _, plain = await run(
        ActionHandleFallback(),
        tracker("conv-2", "is anyone there??", "nlu_fallback", events=_fallback_events(0)),
    )
    assert [m["response"] for m in plain] == ["utter_fallback_choices"]


async def test_so_what_now_is_no_goodbye(session: AsyncSession, action_services: object) -> None:
    """Testers 2 and 3: "ok so what now" (read as goodbye) got "Have a lovely day!"."""
    from actions.surveys import ActionBeforeYouGo

    after_parcel = tracker(
        "conv-1",
        "ok so what now",
        "goodbye",
        {"identity": "verified", "support_request": "order_status"},
    )
    events, messages = await run(ActionBeforeYouGo(), after_parcel)
    assert messages == [] and events[1]["parse_data"]["intent"]["name"] == "delivery_problem"

    events, _ = await run(ActionBeforeYouGo(), tracker("conv-1", "ok so what now", "goodbye"))
    assert events[1]["parse_data"]["intent"]["name"] == "nlu_fallback"

    events, messages = await run(
        ActionHandleFallback(), _unsure("ok so what now", [("nlu_fallback", 1.0)])
    )
    assert messages[0]["text"].startswith("I can check an order or a delivery")
    assert slot_events(events) == {"awaiting": "confirmation", "pending_action": "offer_human"}


async def test_second_failed_understanding_offers_a_person_and_escalates_nothing(
    session: AsyncSession, action_services: object
) -> None:
    ranking = [("nlu_fallback", 0.45), ("order_status", 0.3), ("delivery_problem", 0.2)]
    events, messages = await run(ActionHandleFallback(), _unsure("hmm ok", ranking, 1))

    assert events == []
    assert [(m["response"], m["buttons"]) for m in messages] == [
        (
            "utter_fallback_offer_person",
            [
                {"title": "Where is my order?", "payload": "where is my order"},
                {"title": "A delivery problem", "payload": "my parcel hasn't arrived"},
                {"title": "Talk to a person", "payload": "i want to talk to a human"},
            ],
        )
    ]
    # Offered, never imposed: no escalation, the chat stays with the bot (issue #17).
    assert (await session.scalars(select(Escalation))).all() == []
    assert (await session.scalars(select(Conversation))).all() == []


async def test_third_failure_in_a_row_still_only_offers_a_person(
    session: AsyncSession, action_services: object
) -> None:
    _, messages = await run(ActionHandleFallback(), _unsure("??? blorp", [], 2))

    assert [(m["response"], m["buttons"]) for m in messages] == [
        (
            "utter_fallback_offer_person",
            [{"title": "Talk to a person", "payload": "i want to talk to a human"}],
        )
    ]
    assert (await session.scalars(select(Escalation))).all() == []


async def test_something_else_asks_for_their_own_words_with_a_person_on_offer(
    session: AsyncSession, action_services: object
) -> None:
    state = tracker("conv-1", "none of these", "deny", events=_fallback_events(1, "none of these"))

    _, messages = await run(ActionHandleFallback(), state)

    assert [(m["response"], m["buttons"]) for m in messages] == [
        (
            "utter_fallback_rephrase",
            [{"title": "Talk to a person", "payload": "i want to talk to a human"}],
        )
    ]


async def test_an_emoji_or_punctuation_alone_gets_a_friendly_prompt(
    session: AsyncSession, action_services: object
) -> None:
    for text in ("👍", "?", "!!! ...", "🙂🙂"):
        _, messages = await run(ActionHandleFallback(), _unsure(text, [("affirm", 0.9)], 1))

        assert [(m["response"], m["buttons"]) for m in messages] == [
            (
                "utter_fallback_symbols",
                [
                    {"title": "Where is my order?", "payload": "where is my order"},
                    {"title": "Return an item", "payload": "i want to return an item"},
                    {"title": "A product question", "payload": "question about a product"},
                ],
            )
        ]


async def test_anonymous_angry_complaint_is_recorded_and_escalated(
    session: AsyncSession, action_services: object
) -> None:
    text = "This is the worst shop ever, my parcel never came and nobody answers. Terrible!"
    events, messages = await run(ActionRecordOpinion(), tracker("conv-1", text, "complain"))

    assert slot_events(events) == {"awaiting": "confirmation", "pending_action": "offer_human"}
    assert "talk to a person now" in messages[0]["text"]
    row = (await session.scalars(select(Feedback))).one()
    customer = await session.get_one(Customer, row.customer_id)
    lifecycle = await session.get_one(Lifecycle, row.lifecycle_id)
    # No order: unattributed, not Discovery (an anonymous visitor may well have bought).
    assert (row.kind, row.text, row.stage) == (FeedbackKind.complaint, text, None)
    assert row.sentiment is not None and row.sentiment <= -0.5
    assert "delivery" in row.themes
    assert customer.is_anonymous and lifecycle.customer_id == customer.id
    escalation = (await session.scalars(select(Escalation))).one()
    assert (escalation.reason, escalation.feedback_id) == (
        EscalationReason.negative_feedback,
        row.id,
    )
    assert (await session.get_one(Conversation, "conv-1")).status is ConversationStatus.bot


def _after_answer(text: str, answering_action: str = "action_support_request") -> Tracker:
    """A complaint typed right after the bot answered a delivery question."""
    events: list[dict[str, Any]] = [
        {
            "event": "user",
            "text": "where's my parcel",
            "parse_data": {"intent": {"name": "order_status"}},
        },
        {"event": "action", "name": answering_action},
        {"event": "slot", "name": "next_step", "value": "done"},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": text, "parse_data": {"intent": {"name": "complain"}}},
    ]
    return tracker(
        "conv-1", text, "complain", {"support_request": "delivery_problem"}, events=events
    )


async def test_pushback_right_after_an_answer_offers_the_next_step_not_thanks(
    session: AsyncSession, action_services: object
) -> None:
    text = "that was 2 months ago and i still don't have it"
    events, messages = await run(ActionRecordOpinion(), _after_answer(text))

    assert slot_events(events) == {"awaiting": "confirmation", "pending_action": "offer_human"}
    assert [(m["text"], m["buttons"]) for m in messages] == [
        (
            "I'm sorry it still hasn't reached you; I've recorded this for the team. Would you "
            "like a person from our team to chase it with the carrier now?",
            [{"title": "Yes", "payload": "yes"}, {"title": "No", "payload": "no"}],
        )
    ]
    row = (await session.scalars(select(Feedback))).one()
    assert (row.kind, row.text) == (FeedbackKind.complaint, text)


async def test_a_complaint_out_of_the_blue_gets_no_request_step(
    session: AsyncSession, action_services: object
) -> None:
    text = "the packaging was a bit flimsy"
    state = _after_answer(text, answering_action="utter_greet")

    events, messages = await run(ActionRecordOpinion(), state)

    assert slot_events(events) == {}
    assert messages[0]["text"].startswith("I'm sorry to hear that, and thank you for telling us")


async def test_praise_is_recorded_once_per_message(
    session: AsyncSession, action_services: object
) -> None:
    state = tracker("conv-1", "you guys are brilliant, thanks so much", "praise")
    await run(ActionRecordOpinion(), state)
    await run(ActionRecordOpinion(), state)  # a retried action
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.text) for r in rows] == [
        (FeedbackKind.praise, "you guys are brilliant, thanks so much")
    ]


async def test_database_down_gives_a_clear_answer_and_writes_nothing(
    settings: Settings, action_services: object, session: AsyncSession
) -> None:
    down = Services.from_settings(
        replace(settings, database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    )
    use_services(down)
    try:
        events, messages = await run(
            ActionEscalate(), tracker("conv-1", "a person please", "request_human")
        )
    finally:
        await down.engine.dispose()
    assert events == []
    assert messages == [
        {
            "text": unavailable_text(),
            "buttons": [],
            "elements": [],
            "custom": {},
            "template": None,
            "response": None,
            "image": None,
            "attachment": None,
        }
    ]
    assert (await session.scalars(select(Escalation))).all() == []


async def test_hand_back_asks_csat_then_ces_recorded_at_stage_support(
    session: AsyncSession, action_services: object
) -> None:
    from actions.handoff import ActionStartSupportSurvey
    from actions.surveys import ValidateSurveyForm
    from bot.domain.enums import OrderStatus
    from bot.storage.models import SurveyDispatch
    from tests import factories

    owner = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, owner, "A10001", OrderStatus.delivered)
    session.add(Conversation(id="conv-1", customer_id=owner.id, order_id=order.id))
    await session.commit()

    events, messages = await run(
        ActionStartSupportSurvey(), tracker("conv-1", "", "EXTERNAL_support_resolved")
    )
    slots = slot_events(events)
    assert (slots["survey_kind"], slots["next_step"]) == ("support", "survey")
    assert messages[0]["text"].startswith("Thanks for your patience!")

    base = {"survey_kind": "support", "survey_dispatch_id": slots["survey_dispatch_id"]}
    form = ValidateSurveyForm()
    csat, _ = await run(
        form,
        tracker(
            "conv-1",
            "5",
            "inform",
            {**base, "requested_slot": "survey_score"},
            "survey_form",
            extracted={"survey_score": "5"},
        ),
    )
    assert slot_events(csat)["requested_slot"] == "survey_ces"
    ces, _ = await run(
        form,
        tracker(
            "conv-1",
            "two",
            "inform",
            {**base, "survey_score": "5", "requested_slot": "survey_ces"},
            "survey_form",
            extracted={"survey_ces": "two"},
        ),
    )
    assert slot_events(ces) == {"survey_ces": "2", "survey_retries": 0.0, "requested_slot": None}

    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(r.kind, r.score, r.stage) for r in rows] == [
        (FeedbackKind.csat, 5, Stage.support),
        (FeedbackKind.ces, 2, Stage.support),
    ]
    dispatch = (await session.scalars(select(SurveyDispatch))).one()
    assert dispatch.trigger == "support_resolved" and dispatch.answered_at is not None


async def test_nobody_online_the_bot_says_when_the_team_is_back_and_asks_for_an_email(
    session: AsyncSession, action_services: object
) -> None:
    events, messages = await run(
        ActionEscalate(), tracker("conv-1", "a person please", "request_human")
    )

    assert messages[0]["text"] == (
        # no agent at the console, whatever the hours: not "they're back" during them (tester)
        "Our support team is offline right now; they're usually here Monday to Friday, 9:00 "
        "to 17:00 (Central European Time). "
        "Your request is queued. Type your email address and they'll reply to you there too. "
        "Meanwhile I'm happy to keep helping here."
    )
    escalation = (await session.scalars(select(Escalation))).one()
    assert escalation.status.value == "waiting"
    # The bot keeps helping (issue #17): not paused, the chat stays the bot's, and the
    # queued request is marked so a claim tells the customer a person joined.
    assert [e["event"] for e in events] == ["slot", "slot", "slot"]
    assert (await session.get_one(Conversation, "conv-1")).status is ConversationStatus.bot
    assert escalation.back_with_bot_at is not None


async def test_asking_again_while_queued_says_so_instead_of_repeating(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr14: "why?? just connect me" right after the request was queued got the
    offline text again, then "I checked again and it's still the same"."""
    await run(ActionEscalate(), tracker("conv-1", "a person please", "request_human"))

    _, messages = await run(
        ActionEscalate(), tracker("conv-1", "why?? just connect me", "request_human")
    )

    assert messages[0]["text"].startswith("You're already in the queue")
    assert "Monday to Friday" in messages[0]["text"]
    assert len((await session.scalars(select(Escalation))).all()) == 1


async def test_an_unsure_product_question_is_answered_when_the_knowledge_base_is_sure(
    session: AsyncSession, action_services: object
) -> None:
    """sf47: "does the merino jumper shrink" was answered "not sure I understood"."""
    from bot.domain import knowledge

    await knowledge.load_demo(session)
    await session.commit()
    ranking = [("nlu_fallback", 0.45), ("inform", 0.40), ("product_question", 0.33)]

    events, messages = await run(
        ActionHandleFallback(), _unsure("does the merino jumper shrink", ranking)
    )

    assert slot_events(events) == {"knowledge_focus": "product:CLO-0107"}
    [message] = messages
    assert "CLO-0107" in message["text"] and "shrink" in message["text"].lower()


async def test_an_unsure_question_the_knowledge_base_cannot_answer_gets_the_choices(
    session: AsyncSession, action_services: object
) -> None:
    from bot.domain import knowledge
    from bot.storage.models import UnansweredQuestion

    await knowledge.load_demo(session)
    await session.commit()
    ranking = [("nlu_fallback", 0.45), ("product_question", 0.30), ("order_status", 0.2)]

    _, messages = await run(
        ActionHandleFallback(), _unsure("can you sing me a song about dragons?", ranking)
    )

    assert [m["response"] for m in messages] == ["utter_fallback_choices"]
    assert (await session.scalars(select(UnansweredQuestion))).all() == []  # not counted


async def test_a_follow_up_not_understood_is_asked_about_the_product_in_focus(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr11: 'how heavy is it' right after a question about the casserole got 'not
    sure I understood' (the NLU ranked no knowledge intent)."""
    from bot.domain import knowledge

    await knowledge.load_demo(session)
    await session.commit()
    ranking = [("nlu_fallback", 0.45), ("out_of_scope", 0.14), ("return_item", 0.12)]
    state = _unsure("how heavy is it", ranking)
    state.slots["knowledge_focus"] = "product:KIT-0142"

    events, messages = await run(ActionHandleFallback(), state)
    _, alone = await run(ActionHandleFallback(), _unsure("how heavy is it", ranking))

    assert slot_events(events) == {"knowledge_focus": "product:KIT-0142"}
    [message] = messages
    assert "KIT-0142" in message["text"] and "4.9 kg" in message["text"]
    assert [m["response"] for m in alone] == ["utter_fallback_choices"]


async def test_out_of_scope_right_after_a_knowledge_answer_is_tried_as_a_follow_up(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr12: 'what if its over 50 euros' after the shipping answers got 'I can't
    help with that'."""
    from bot.domain import knowledge

    await knowledge.load_demo(session)
    await session.commit()
    focus = {"knowledge_focus": "article:delivery-times article:shipping-costs"}
    text = "what if its over 50 euros"

    events, messages = await run(ActionOutOfScope(), tracker("conv-1", text, "out_of_scope", focus))
    _, alone = await run(ActionOutOfScope(), tracker("conv-1", text, "out_of_scope"))
    _, other = await run(
        ActionOutOfScope(), tracker("conv-1", "sing me a song", "out_of_scope", focus)
    )

    assert slot_events(events) == {"knowledge_focus": "article:shipping-costs"}
    [message] = messages
    assert "How much does shipping cost?" in message["text"] and "free" in message["text"]
    assert [m["response"] for m in alone] == ["utter_out_of_scope"]
    assert [m["response"] for m in other] == ["utter_out_of_scope"]


async def test_a_no_in_words_to_a_survey_offer_postpones_it(
    session: AsyncSession, action_services: object
) -> None:
    """Dev chat ds06: "no stop asking me stuff" at "May we ask two quick questions?" got
    "not sure I understood"; put back as a deny it looped (the "none of the meanings" rule
    brings a deny after the fallback back to the fallback) until Rasa timed out."""
    from bot.domain import proactive
    from bot.storage.models import SurveyDispatch

    lifecycle = await factories.order_lifecycle(session, 1, "A10023", OrderStatus.delivered, 1)
    dispatch = SurveyDispatch(
        customer_id=lifecycle.customer_id,
        lifecycle_id=lifecycle.id,
        trigger="first_order",
        survey_kind=FeedbackKind.csat,
        offer_count=1,
    )
    session.add(dispatch)
    await session.commit()
    state = _unsure("no stop asking me stuff", [("nlu_fallback", 0.9)])
    state.slots.update(awaiting="survey_consent", survey_dispatch_id=float(dispatch.id))

    events, messages = await run(ActionHandleFallback(), state)

    assert [m["text"] for m in messages] == [proactive.postponed_reply()]
    assert slot_events(events)["survey_postponed"] is True
    assert all(e["event"] != "user" for e in events)  # nothing put back


async def test_why_at_a_survey_offer_says_what_for_and_the_offer_stands(
    session: AsyncSession, action_services: object
) -> None:
    """Dev chat ds05: "why?" at the churn survey's offer got "not sure I understood"."""
    state = _unsure("why?", [("nlu_fallback", 0.9)])
    state.slots["awaiting"] = "survey_consent"

    events, messages = await run(ActionHandleFallback(), state)

    assert messages[0]["text"].startswith("Your answers show us what works")
    assert [b["title"] for b in messages[0]["buttons"]] == ["Sure", "Not now"]
    assert events == []


async def test_the_teams_hours_and_a_data_deletion_are_answered_not_guessed(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4: "ok fine. what's your opening hours for phone support" got "Okay. Anything
    else?" and "when is your customer service open" a late order's status (tw4_36); "please
    delete all my data and my account" got "What did you mean?" (tw4_38)."""
    from actions.support import ActionSupportRequest

    owner = await factories.customer(session, email="jane.doe@example.com")
    await factories.order(session, owner, "A10001", OrderStatus.shipped)
    session.add(Conversation(id="conv-1", customer_id=owner.id))
    await session.commit()
    verified = {"identity": "verified", "support_request": "order_status"}

    _, hours = await run(
        ActionSupportRequest(),
        tracker("conv-1", "when is your customer service open", "order_status", verified),
    )
    events, deletion = await run(
        ActionHandleFallback(), _unsure("GDPR deletion request", [("nlu_fallback", 0.5)])
    )

    assert [m["text"] for m in hours] == [
        "Our support team is here Monday to Friday, 9:00 to 17:00 (Central European Time). "
        "I'm here any time, and whatever you'd like a person to look at is queued for them."
    ]
    assert deletion[0]["text"].startswith("I can't delete your account myself")
    # typed in a hurry (a chat in Chromium on the final clone: it got an order's status)
    assert understanding.asks_support_hours("when r u guys open")
    assert not understanding.asks_support_hours("when r u sending my order")
    assert slot_events(events)["pending_action"] == "offer_human"


async def test_and_the_coffee_after_another_request_is_the_subscriptions_state(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4 (tw4_07): "and the coffee?" after an address change (nlu_fallback) got the
    coffee dripper's product page; a subscriber means the coffee subscription."""
    owner = await factories.customer(session)
    await factories.order(session, owner, "A10002", OrderStatus.placed)
    await factories.subscription(session, owner)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    state = _unsure("and the coffee?", [("nlu_fallback", 0.45), ("inform", 0.18)])
    state.slots.update(identity="verified", support_request="change_address", awaiting="nothing")

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert events[-1]["event"] == "user"
    assert events[-1]["parse_data"]["intent"]["name"] == "order_status"

    # a product the subscription is not: the fallback's own answer
    state = _unsure("and the dripper?", [("nlu_fallback", 0.45)])
    state.slots.update(identity="verified", support_request="change_address", awaiting="nothing")
    events, _ = await run(ActionHandleFallback(), state)
    assert not any(
        e.get("event") == "user" and e["parse_data"]["intent"]["name"] == "order_status"
        for e in events
    )


async def test_a_request_the_nlu_could_not_place_is_read_from_its_words(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 3 (tw3_13, tw3_10): "hmm wait what does it cost again" at a subscription's
    cancellation and "the jumper i just ordered, can i get it in L instead", both read as
    nlu_fallback, got "Sorry, I'm not sure I understood"."""
    price = _unsure("hmm wait what does it cost again", [("nlu_fallback", 0.45)])
    price.slots.update(identity="verified", support_request="cancel_subscription")
    size = _unsure("the jumper i just ordered, can i get it in L instead", [("nlu_fallback", 0.45)])
    size.slots.update(identity="verified")

    meant = []
    for state in (price, size):
        events, messages = await run(ActionHandleFallback(), state)
        assert messages == []
        meant.append(events[-1]["parse_data"]["intent"]["name"])

    assert meant == ["policy_question", "return_item"]


async def test_whats_your_phone_number_says_how_to_reach_the_team_and_queues_nothing(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 5 (tw5_20): "whats your phone number" (request_human 0.71) queued the chat for
    a person."""
    owner = await factories.customer(session)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()

    events, messages = await run(
        ActionEscalate(), tracker("conv-1", "whats your phone number", "request_human")
    )

    assert messages[0]["text"].startswith("We don't have a phone line")
    assert slot_events(events)["pending_action"] == "offer_human"
    assert (await session.scalars(select(Escalation))).all() == []


async def test_so_how_long_after_a_questioned_charge_is_about_the_charge(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 5 (tw5_30): "so how long then?" after the double-charge answer got the help
    centre's delivery times."""
    state = _unsure("so how long then?", [("nlu_fallback", 0.45), ("goodbye", 0.30)])
    state.slots.update(identity="verified", support_request="billing_issue")

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert events[-1]["parse_data"]["intent"]["name"] == "refund_status"


async def test_a_parcel_sent_elsewhere_is_the_address_change(
    session: AsyncSession, action_services: object
) -> None:
    """tq36: "can i get it delivered to a packstation instead" after an order's status
    (nlu_fallback 0.45, order_status 0.38) got the fallback's menu."""
    state = _unsure(
        "can i get it delivered to a packstation instead",
        [("nlu_fallback", 0.45), ("order_status", 0.38)],
    )
    state.slots.update(identity="verified", support_request="order_status")

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert events[-1]["parse_data"]["intent"]["name"] == "change_address"


async def test_a_late_parcel_with_what_to_do_about_it_is_the_late_parcel(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 6 (tw6_01): "my order is a week late, just cancel it and refund me"
    (nlu_fallback 0.45, delivery_problem 0.38, cancel_order 0.28) got the fallback's menu."""
    state = _unsure(
        "my order is a week late, just cancel it and refund me",
        [("nlu_fallback", 0.45), ("delivery_problem", 0.38), ("cancel_order", 0.28)],
    )
    state.slots.update(identity="verified")

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert events[-1]["parse_data"]["intent"]["name"] == "delivery_problem"


async def test_why_was_it_cancelled_not_placed_by_the_nlu_is_about_that_order(
    session: AsyncSession, action_services: object
) -> None:
    """tw3_09 with another model: "why was A45039 cancelled?? i didnt cancel it"
    (nlu_fallback; cancel_order 0.51) got the subscription article from the fallback."""
    state = _unsure(
        "why was A45039 cancelled?? i didnt cancel it",
        [("nlu_fallback", 0.55), ("cancel_order", 0.51), ("delivery_problem", 0.48)],
    )
    state.slots.update(identity="verified")

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert events[-1]["parse_data"]["intent"]["name"] == "cancel_order"


@pytest.mark.parametrize(
    ("text", "redirect"),
    [
        ("can i get it delivered to a packstation instead", True),
        ("pls send it to my work", True),
        ("can they leave it with my neighbour", True),
        ("redirect it to a parcel shop", True),
        ("i work from home, is it delivered on saturdays", False),
        ("send it back to you", False),
    ],
)
def test_asks_redirect(text: str, redirect: bool) -> None:
    assert understanding.asks_redirect(text) is redirect


async def test_anyone_there_while_queued_says_queued_not_the_greeting(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 5 (tw5_29): "hello?? is anyone there" (greet 1.00) while queued for a person
    got the bot's introduction again."""
    from actions.handoff import ActionGreet

    owner = await factories.customer(session)
    conversation = Conversation(id="conv-1", customer_id=owner.id, identified_by="token")
    session.add(conversation)
    await session.commit()
    _, plain = await run(ActionGreet(), tracker("conv-1", "hello?? is anyone there", "greet"))
    assert plain == [{**plain[0], "response": "utter_greet"}]

    await run(ActionEscalate(), tracker("conv-1", "i want a person", "request_human"))
    _, queued = await run(ActionGreet(), tracker("conv-1", "hello?? is anyone there", "greet"))
    assert (
        queued[0]["text"].startswith("You're already in the queue") or "queue" in queued[0]["text"]
    )
    _, hello = await run(ActionGreet(), tracker("conv-1", "hi", "greet"))
    assert hello[0]["response"] == "utter_greet"
    # "hey whats ur phone number" read as a greeting: how to reach the team
    _, phone = await run(ActionGreet(), tracker("conv-1", "hey whats ur phone number", "greet"))
    assert phone[0]["text"].startswith("We don't have a phone line")


@pytest.mark.parametrize(
    "text", ["why do you care", "cant remember tbh", "ok. i found you on pinterest"]
)
async def test_not_understood_at_a_survey_question_goes_to_the_question(
    session: AsyncSession, action_services: object, text: str
) -> None:
    """Tester 7 (tw7_01, tw7_11, tw7_15, tw7_16): read as nlu_fallback at a survey question,
    these got a menu of meanings or a help-centre article; the question's validation tells
    an answer, a why and an ask apart."""
    state = _unsure(text, [("nlu_fallback", 0.45)])
    state.slots["requested_slot"] = "survey_source"
    state.active_loop = {"name": "survey_form"}

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert [e["event"] for e in events] == ["action", "user"]
    assert events[1]["text"] == text and events[1]["parse_data"]["intent"]["name"] == "inform"


async def test_i_have_time_now_at_a_survey_offer_is_a_yes(
    session: AsyncSession, action_services: object
) -> None:
    state = _unsure("ok i have time now, ask your questions", [("nlu_fallback", 0.45)])
    state.slots["awaiting"] = "survey_consent"

    events, _ = await run(ActionHandleFallback(), state)

    assert events[1]["parse_data"]["intent"]["name"] == "affirm"


@pytest.mark.parametrize(
    ("action", "text", "intent"),
    [
        (ActionOutOfScope(), "ok ask ur question", "out_of_scope"),
        (ActionGreet(), "hi, ok i can do the questions now", "greet"),
    ],
)
async def test_asking_for_the_offered_survey_is_its_yes(
    session: AsyncSession, action_services: object, action: Any, text: str, intent: str
) -> None:
    """Tester 8 (tw8_04, tw8_06): asked for while its offer was open, the survey got "I
    can't help with that" or the greeting."""
    state = tracker("conv-1", text, intent, {"awaiting": "survey_consent"})

    events, messages = await run(action, state)

    assert messages == []
    assert events[-1]["event"] == "user"
    assert events[-1]["parse_data"]["intent"]["name"] == "affirm"


async def test_a_promo_code_not_understood_is_a_shop_question(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 6 (tw6_07) again with the night's model: read as nlu_fallback, "my promo code
    WELCOME10 isnt working" got a menu of meanings."""
    state = _unsure("my promo code WELCOME10 isnt working", [("nlu_fallback", 0.45)])

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert events[-1]["parse_data"]["intent"]["name"] == "policy_question"


async def test_l8r_at_a_survey_offer_puts_it_off(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 8 (tw8_01): "l8r" at the offer got a menu of meanings."""
    state = _unsure("l8r", [("nlu_fallback", 0.45)])
    state.slots["awaiting"] = "survey_consent"

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []  # no menu of meanings (no dispatch here, so no "maybe another time")
    assert slot_events(events)["awaiting"] == "nothing"


async def test_an_ask_not_understood_at_a_survey_question_is_not_taken_for_an_answer(
    session: AsyncSession, action_services: object
) -> None:
    """Put back as an answer, "can i talk to someone about this" lost its request: the
    survey set it aside and served it as data, and no hand-over opened."""
    state = _unsure("can i talk to someone about this", [("nlu_fallback", 0.45)])
    state.slots["requested_slot"] = "survey_score"
    state.active_loop = {"name": "survey_form"}

    events, _ = await run(ActionHandleFallback(), state)

    put_back = [e for e in events if e["event"] == "user"]
    assert all(e["parse_data"]["intent"]["name"] != "inform" for e in put_back)


async def test_a_question_about_the_teams_hours_read_as_a_complaint_is_answered(
    session: AsyncSession, action_services: object
) -> None:
    """Testers 4 and 7 (tw4_36, tw7_10): "what are your opening hours for phone support"
    (complain 0.99) was recorded as a complaint with "I'm sorry to hear that"."""
    await factories.customer(session, 3)
    await session.commit()

    asked = tracker("conv-1", "what are your opening hours for phone support", "complain")
    _, messages = await run(ActionRecordOpinion(), asked)
    assert "sorry" not in messages[0]["text"].lower()
    assert (await session.scalars(select(Feedback))).all() == []

    said = tracker("conv-1", "you never answer the phone", "complain")
    await run(ActionRecordOpinion(), said)
    assert len((await session.scalars(select(Feedback))).all()) == 1


async def test_a_source_not_understood_after_the_question_gave_way_goes_to_the_survey(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 7 (tw7_15): "ok. i found you on pinterest" (nlu_fallback) after the source
    question gave way to a question got a menu of meanings."""
    state = _unsure("ok. i found you on pinterest", [("nlu_fallback", 0.45)])
    state.slots["survey_dispatch_id"] = 7.0

    events, messages = await run(ActionHandleFallback(), state)

    assert messages == []
    assert events[-1]["parse_data"]["intent"]["name"] == "inform"
