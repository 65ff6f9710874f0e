"""Which order a request or an opinion is about (issue #17 item 2, docs/decisions.md
"Dialogue that holds up"): the order named, else the one order that fits, else a question
with buttons; another customer's order is never shown; feedback lands on the order named."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.feedback import ActionRecordOpinion
from actions.support import ActionAnswerProductQuestion, ActionSupportRequest, named_order_number
from bot.config import Settings
from bot.domain import chat, knowledge, support, understanding
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import (
    EscalationReason,
    FeedbackKind,
    LifecycleKind,
    OrderStatus,
    Stage,
    SubscriptionStatus,
)
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    Order,
    OrderItem,
    Subscription,
    utcnow,
)
from tests import factories
from tests.rasa_helpers import nlu_ranking, ranked_tracker, run, slot_events, tracker

CASSEROLE = "Enamel Cast-Iron Casserole 24 cm"
TOWEL = "Waffle Cotton Bath Towel"
JUMPER = "Merino Wool Crew Jumper"
KNIFE = "Damascus Chef's Knife 20 cm"
VERIFIED = {"identity": "verified"}


async def _order(
    session: AsyncSession,
    owner: Customer,
    number: str,
    status: OrderStatus,
    names: list[str],
    placed_days_ago: int,
) -> Order:
    row = await factories.order(session, owner, number, status, placed_days_ago=placed_days_ago)
    row.items = [
        OrderItem(sku=f"SKU-{i}", name=name, quantity=1, unit_price=Decimal("10.00"))
        for i, name in enumerate(names)
    ]
    await session.flush()
    return row


async def _jane(session: AsyncSession, *, second_delivered: bool = False) -> Customer:
    """Like the demo's Jane (C1001): A10001 delivered (casserole, towel), A10002 placed
    (jumper); optionally A10003 delivered (knife) too. Signed in by the shop's token."""
    jane = await factories.customer(session, email="jane.doe@example.com")
    await _order(session, jane, "A10001", OrderStatus.delivered, [CASSEROLE, TOWEL], 6)
    await _order(session, jane, "A10002", OrderStatus.placed, [JUMPER], 0)
    if second_delivered:
        await _order(session, jane, "A10003", OrderStatus.delivered, [KNIFE], 4)
    stranger = await factories.customer(session, 2)
    await _order(session, stranger, "A20002", OrderStatus.delivered, [KNIFE], 3)
    session.add(Conversation(id="conv-1", customer_id=jane.id, identified_by="token"))
    await session.commit()
    return jane


async def _conversation_order(session: AsyncSession) -> str | None:
    conversation = await session.get(Conversation, "conv-1")
    assert conversation is not None
    await session.refresh(conversation)
    if conversation.order_id is None:
        return None
    order = await session.get(Order, conversation.order_id)
    assert order is not None
    return order.number


def _about(reply: str) -> str:
    """The one order number a reply names (the confirmations' wording is item 1's)."""
    numbers: set[str] = set(re.findall(r"A\d{5}", reply))
    assert len(numbers) == 1, reply
    return numbers.pop()


def _title(order: Order, items: str) -> str:
    return f"{order.number} · {order.placed_at:%-d %b} · {items} · {order.status.value}"


DHL_JJD = "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id=JJD000390007"


def _card(order: Order, names: list[str], payload: str) -> dict[str, Any]:
    """An order card of a delivered `_order` (one of each item; factories: DHL JJD000390007)."""
    return {
        "number": order.number,
        "date": f"{order.placed_at:%Y-%m-%d}",
        "items": [{"name": name, "quantity": 1} for name in names],
        "status": order.status.value,
        "carrier": "DHL",
        "tracking_number": "JJD000390007",
        "tracking_url": DHL_JJD,
        "payload": payload,
    }


async def _number(session: AsyncSession, number: str) -> Order:
    return (await session.scalars(select(Order).where(Order.number == number))).one()


def _user(text: str, intent: str, order_number: str | None = None) -> dict[str, Any]:
    entities = [{"entity": "order_number", "value": order_number}] if order_number else []
    return {
        "event": "user",
        "text": text,
        "parse_data": {
            "text": text,
            "intent": {"name": intent, "confidence": 0.99},
            "intent_ranking": [{"name": intent, "confidence": 0.99}],
            "entities": entities,
        },
    }


def _slot(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


# --- the one order that fits ---------------------------------------------------------------


async def test_damage_report_uses_the_one_delivered_order_not_the_newest(
    session: AsyncSession, action_services: object
) -> None:
    """The issue's case: "the casserole arrived with a massive chip" got "Order A10002 is
    placed; I can only arrange a return for delivered orders"."""
    await _jane(session)
    state = tracker(
        "conv-1",
        "my casserole arrived with a massive chip in the enamel",
        "damaged_item",
        {**VERIFIED, "support_request": "damaged_item"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert _about(messages[0]["text"]) == "A10001"
    assert slot_events(events)["pending_action"] == "return_item"
    assert await _conversation_order(session) == "A10001"


async def test_cancel_uses_the_one_unshipped_order(session: AsyncSession) -> None:
    await _jane(session)

    turn = await chat.support_request(
        session, Settings(), "conv-1", "cancel_order", verified=True, text="cancel my order"
    )

    # The confirmation's wording is issue #17 item 1's; here: which order it names.
    assert _about(turn.messages[0][0]) == "A10002"
    assert f"1× {JUMPER}" in turn.messages[0][0]
    assert turn.slots["pending_action"] == "cancel_order"


# --- several fit: which one? ----------------------------------------------------------------


async def test_several_fitting_orders_are_offered_as_buttons(session: AsyncSession) -> None:
    await _jane(session, second_delivered=True)
    first, third = await _number(session, "A10001"), await _number(session, "A10003")

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "return_item",
        verified=True,
        text="i want to return something",
    )

    # The orders as cards (issue #19 item 3): the card message's text is their plain-text
    # fallback; its buttons keep the picker's titles and payloads (a card picks with them).
    buttons = [
        {"title": _title(third, KNIFE), "payload": '/inform{"order_number":"A10003"}'},
        {
            "title": _title(first, f"{CASSEROLE}, {TOWEL}"),
            "payload": '/inform{"order_number":"A10001"}',
        },
    ]
    tracking = f"Tracking: DHL JJD000390007 {DHL_JJD}"  # tests/factories.py: shipped by DHL
    fallback = (
        f"Order A10003 · {third.placed_at:%Y-%m-%d} · 1× {KNIFE} · delivered · {tracking}\n"
        f"Order A10001 · {first.placed_at:%Y-%m-%d} · 1× {CASSEROLE}, 1× {TOWEL} · delivered"
        f" · {tracking}"
    )
    assert turn.messages == [
        ("Which order is it about? Tap one, or type its order number.", []),
        (fallback, buttons),
    ]
    assert turn.cards == {
        fallback: [
            _card(third, [KNIFE], '/inform{"order_number":"A10003"}'),
            _card(first, [CASSEROLE, TOWEL], '/inform{"order_number":"A10001"}'),
        ]
    }
    assert turn.slots == {"next_step": "choose_order", "awaiting": "nothing"}
    assert await _conversation_order(session) is None


async def test_the_chosen_order_continues_the_remembered_request(
    session: AsyncSession, action_services: object
) -> None:
    await _jane(session, second_delivered=True)
    events = [
        _user("i want to return something", "return_item"),
        _slot("support_request", "return_item"),
        {"event": "action", "name": "action_support_request"},
        _slot("next_step", "choose_order"),
        {"event": "action", "name": "action_listen"},
        _user('/inform{"order_number":"A10003"}', "inform", "A10003"),
        _slot("order_number", "A10003"),
    ]
    state = tracker(
        "conv-1",
        '/inform{"order_number":"A10003"}',
        "inform",
        {
            **VERIFIED,
            "support_request": "return_item",
            "next_step": "choose_order",
            "order_number": "A10003",
        },
        events=events,
    )

    events_out, messages = await run(ActionSupportRequest(), state)

    assert _about(messages[0]["text"]) == "A10003"
    assert slot_events(events_out)["next_step"] == "confirm"
    assert slot_events(events_out)["pending_action"] == "return_item"
    assert await _conversation_order(session) == "A10003"


async def test_the_picker_answered_in_words_picks_that_order_and_item(
    session: AsyncSession,
) -> None:
    """At "Which order?", "just the towel tbh, keeping the casserole" (read as a product
    question as often as not): the towel's order, the towel alone (widget check)."""
    await _jane(session, second_delivered=True)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "return_item",
        verified=True,
        text="i want to return something",
        latest="just the towel tbh, keeping the casserole",
        latest_intent="product_question",
        choosing_order=True,
    )

    said = " ".join(text for text, _ in turn.messages)
    assert "A10001" in said and TOWEL in said and CASSEROLE not in said
    assert "Which order" not in said
    assert await _conversation_order(session) == "A10001"


async def test_the_picker_answered_in_words_read_as_an_unsure_return_is_still_the_answer(
    session: AsyncSession, action_services: object
) -> None:
    """oc04 through the action: the answer read as return_item 0.50 / product_question 0.32
    is no new unsure return ("I want to be sure … What did you mean?"): the request is the
    clear one before the picker."""
    await _jane(session, second_delivered=True)
    text = "just the towel tbh, keeping the casserole"
    answer = _user(text, "return_item")
    answer["parse_data"]["intent"]["confidence"] = 0.50
    answer["parse_data"]["intent_ranking"] = [
        {"name": "return_item", "confidence": 0.50},
        {"name": "product_question", "confidence": 0.32},
    ]
    state = tracker(
        "conv-1",
        text,
        "return_item",
        {**VERIFIED, "support_request": "return_item", "next_step": "choose_order"},
        events=[
            _user("i want to return something", "return_item"),
            _slot("support_request", "return_item"),
            {"event": "action", "name": "action_support_request"},
            _slot("next_step", "choose_order"),
            {"event": "action", "name": "action_listen"},
            answer,
        ],
    )
    state.latest_message = answer["parse_data"]

    _events, messages = await run(ActionSupportRequest(), state)

    said = " ".join(m["text"] or "" for m in messages)
    assert "What did you mean" not in said
    assert "A10001" in said and TOWEL in said and CASSEROLE not in said


async def test_the_picker_answered_with_newest_oldest_or_a_place(session: AsyncSession) -> None:
    await _jane(session, second_delivered=True)  # fitting a return: A10003 (newer), A10001

    picks = {}
    for words in ("the newest one", "the older one pls", "2nd one", "hmm"):
        turn = await chat.support_request(
            session,
            Settings(),
            "conv-1",
            "return_item",
            verified=True,
            text="i want to return something",
            latest=words,
            latest_intent="inform",
            choosing_order=True,
        )
        picks[words] = (
            _about(turn.messages[0][0])
            if turn.slots.get("next_step") != "choose_order"
            else "asked again"
        )
        conversation = await session.get(Conversation, "conv-1")
        assert conversation is not None
        conversation.order_id = None
        await session.commit()

    assert picks == {
        "the newest one": "A10003",
        "the older one pls": "A10001",
        "2nd one": "A10001",
        "hmm": "asked again",
    }


async def test_a_question_at_the_picker_is_answered_and_the_picker_stays(
    session: AsyncSession,
) -> None:
    await _jane(session, second_delivered=True)
    await knowledge.load_demo(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "return_item",
        verified=True,
        text="i want to return something",
        latest="do u ship to switzerland?",
        latest_intent="policy_question",
        choosing_order=True,
    )

    assert turn.slots["next_step"] == "choose_order"
    assert turn.messages[0][0].startswith("From our help centre, “Which countries do you ship")
    assert await _conversation_order(session) is None


async def test_a_product_named_picks_the_one_order_holding_it(session: AsyncSession) -> None:
    await _jane(session, second_delivered=True)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "damaged_item",
        verified=True,
        text="the casserole arrived with a massive chip in the enamel",
    )

    assert _about(turn.messages[0][0]) == "A10001"
    assert turn.slots["pending_action"] == "return_item"
    assert await _conversation_order(session) == "A10001"


async def test_a_product_only_in_an_order_that_does_not_fit_names_that_order(
    session: AsyncSession,
) -> None:
    """ "Cancel the casserole": its order is delivered; the answer is about it, not about
    the one order that could still be cancelled."""
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_order",
        verified=True,
        text="please cancel the casserole",
    )

    assert turn.messages[0][0] == (
        "Order A10001 is already delivered, so it can't be cancelled any more. "
        "You can still return it within our return window."
    )


async def test_the_order_the_conversation_is_about_is_kept_when_it_fits(
    session: AsyncSession,
) -> None:
    await _jane(session, second_delivered=True)
    conversation = await session.get(Conversation, "conv-1")
    assert conversation is not None
    conversation.order_id = (await _number(session, "A10003")).id
    await session.commit()

    turn = await chat.support_request(
        session, Settings(), "conv-1", "return_item", verified=True, text="return it please"
    )

    assert _about(turn.messages[0][0]) == "A10003"
    assert turn.slots["pending_action"] == "return_item"


# --- another customer's order -----------------------------------------------------------------


async def test_an_order_not_on_the_account_is_said_so_and_nothing_shown(
    session: AsyncSession,
) -> None:
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "change_address",
        verified=True,
        order_number="A20002",
        text="change the address of A20002",
    )
    unknown = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_order",
        verified=True,
        order_number="#99999",
        text="cancel #99999",
    )

    second = await _number(session, "A10002")
    assert turn.messages == [
        (
            "Order A20002 isn't on your account, so I can't tell you anything about it. "
            "Did you mean one of your orders?",
            [],
        ),
        (
            f"Order A10002 · {second.placed_at:%Y-%m-%d} · 1× {JUMPER} · placed",
            [{"title": _title(second, JUMPER), "payload": '/inform{"order_number":"A10002"}'}],
        ),
    ]
    assert [card["number"] for cards in turn.cards.values() for card in cards] == ["A10002"]
    # The same words whether the order exists or not.
    assert unknown.messages[0][0].startswith("Order A99999 isn't on your account, so I can't")
    assert await _conversation_order(session) is None


# --- what counts as named for this request (actions/support.py) ---------------------------


def test_a_number_from_an_earlier_request_is_not_named_for_this_one() -> None:
    events = [
        _user("where is A10001", "order_status", "A10001"),
        _slot("order_number", "A10001"),
        _slot("support_request", "order_status"),
        {"event": "action", "name": "action_support_request"},
        _user("cancel my order", "cancel_order"),
        _slot("support_request", "cancel_order"),
    ]
    state = tracker(
        "conv-1", "cancel my order", "cancel_order", {"order_number": "A10001"}, events=events
    )

    assert named_order_number(state) is None


def test_numbers_given_in_the_request_the_identity_check_or_the_picker_are_named() -> None:
    in_request = [
        _user("where is A10001", "order_status", "A10001"),
        _slot("order_number", "A10001"),
        _slot("support_request", "order_status"),
    ]
    in_identity_form = [
        _user("where is my order", "order_status"),
        _slot("support_request", "order_status"),
        _user("10452", "inform"),
        _slot("order_number", "A10452"),
        _user("jane.doe@example.com", "inform"),
        _slot("email", "jane.doe@example.com"),
    ]
    wrong_then_right = [
        _user("where is my order", "order_status"),
        _slot("support_request", "order_status"),
        _user("A99999", "inform", "A99999"),
        _slot("order_number", "A99999"),
        _slot("order_number", None),
    ]

    assert named_order_number(tracker("c", events=in_request)) == "A10001"
    assert named_order_number(tracker("c", events=in_identity_form)) == "A10452"
    assert named_order_number(tracker("c", events=wrong_then_right)) is None


# --- feedback on the order it is about --------------------------------------------------------


async def _subscriber_with_order(session: AsyncSession) -> tuple[Customer, Order, Lifecycle]:
    """A subscriber whose current lifecycle is the subscription period, and a delivered
    one-time order A12345 (a mug) with its own lifecycle."""
    owner = await factories.customer(session, email="sam@example.com")
    subscription = await factories.subscription(session, owner)
    order = await _order(session, owner, "A12345", OrderStatus.delivered, ["Stoneware Mug"], 20)
    order_lifecycle = await lifecycles.lifecycle_for_order(session, order)
    period = Lifecycle(
        customer_id=owner.id,
        kind=LifecycleKind.subscription_period,
        stage=Stage.use,
        opened_at=utcnow() - timedelta(days=1),
        subscription_id=subscription.id,
        period_start=utcnow() - timedelta(days=1),
    )
    session.add(period)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    assert (await lifecycles.current_lifecycle(session, owner)).id == period.id
    return owner, order, order_lifecycle


async def test_praise_naming_an_order_lands_on_that_orders_lifecycle(
    session: AsyncSession, action_services: object
) -> None:
    """The issue's case: "the mug from A12345 is lovely" landed on the subscription
    period's lifecycle with no order."""
    _, _, order_lifecycle = await _subscriber_with_order(session)

    await run(ActionRecordOpinion(), tracker("conv-1", "the mug from A12345 is lovely", "praise"))

    row = (await session.scalars(select(Feedback))).one()
    assert (row.kind, row.lifecycle_id, row.stage) == (
        FeedbackKind.praise,
        order_lifecycle.id,
        order_lifecycle.stage,
    )


async def test_a_complaint_naming_a_product_of_one_order_lands_on_that_order(
    session: AsyncSession,
) -> None:
    _, _, order_lifecycle = await _subscriber_with_order(session)

    await chat.record_opinion(
        session, "conv-1", FeedbackKind.complaint, "the mug has a crack in it", "m1"
    )

    row = (await session.scalars(select(Feedback))).one()
    assert row.lifecycle_id == order_lifecycle.id


async def test_feedback_naming_someone_elses_order_stays_on_the_current_lifecycle(
    session: AsyncSession,
) -> None:
    owner, _, _ = await _subscriber_with_order(session)
    stranger = await factories.customer(session, 2)
    await _order(session, stranger, "A20002", OrderStatus.delivered, ["Stoneware Mug"], 3)
    await session.commit()
    current = await lifecycles.current_lifecycle(session, owner)

    await chat.record_opinion(
        session, "conv-1", FeedbackKind.praise, "A20002 was a lovely gift", "m1"
    )

    row = (await session.scalars(select(Feedback))).one()
    assert (row.lifecycle_id, row.customer_id) == (current.id, owner.id)


async def test_feedback_in_a_conversation_about_an_order_lands_on_it(session: AsyncSession) -> None:
    _, order, order_lifecycle = await _subscriber_with_order(session)
    conversation = await session.get(Conversation, "conv-1")
    assert conversation is not None
    conversation.order_id = order.id
    await session.commit()

    await chat.record_opinion(session, "conv-1", FeedbackKind.praise, "you were great", "m1")

    row = (await session.scalars(select(Feedback))).one()
    assert row.lifecycle_id == order_lifecycle.id


async def test_an_order_number_out_of_the_blue_asks_the_same_about_that_order(
    session: AsyncSession, action_services: object
) -> None:
    """sv51: after an answer about A10002, "A10001" typed with no question open is the same
    request about A10001; other details after a request get a person offered; data with no
    request before it asks what the customer wants."""
    await _jane(session)
    slots = {**VERIFIED, "support_request": "order_status", "next_step": "done"}
    answered = [
        _user("where is my order", "order_status"),
        _slot("support_request", "order_status"),
        {"event": "action", "name": "action_support_request"},
        {"event": "action", "name": "action_listen"},
        _user("A10001", "inform", "A10001"),
        _slot("order_number", "A10001"),
    ]

    _, messages = await run(
        ActionSupportRequest(),
        tracker("conv-1", "A10001", "inform", {**slots, "order_number": "A10001"}, events=answered),
    )
    other_data = await run(
        ActionSupportRequest(), tracker("conv-1", "jane@example.com", "inform", slots)
    )
    no_request = {key: value for key, value in slots.items() if key != "support_request"}
    data_alone = await run(
        ActionSupportRequest(), tracker("conv-1", "jane@example.com", "inform", no_request)
    )

    assert _about(messages[0]["text"]) == "A10001" and "delivered" in messages[0]["text"]
    assert [m["text"] for m in other_data[1]] == [
        "Thanks for the details. A person from our team can look into this with you. "
        "Shall I get one?"
    ]
    assert [m["text"] for m in data_alone[1]] == [
        "Thanks! What would you like to do: check the order status, report a problem, "
        "return it, or something else?"
    ]


async def _subscriber(
    session: AsyncSession,
    number: int,
    status: SubscriptionStatus = SubscriptionStatus.active,
    cancelled_at: datetime | None = None,
) -> Subscription:
    """A customer with one subscription and no one-off orders, signed in to conv-1."""
    owner = await factories.customer(session, number)
    subscription = await factories.subscription(session, owner, status)
    if cancelled_at is not None:
        subscription.cancelled_at = cancelled_at
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    return subscription


async def test_a_subscriber_without_orders_is_offered_a_person_not_a_dead_end(
    session: AsyncSession,
) -> None:
    """Tester: a subscriber asking about a missing box, an address or a double charge got
    "I can't find any orders on your account" again and again."""
    await _subscriber(session, 7)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "billing_issue",
        verified=True,
        text="you charged me twice this month",
    )

    [(text, buttons)] = turn.messages
    assert "I can't see any one-off orders on your account, only your" in text
    assert "subscription (active)" in text and "Shall I get one?" in text
    assert [b["payload"] for b in buttons] == ["yes", "no"]
    assert (turn.slots["awaiting"], turn.slots["pending_action"]) == ("confirmation", "offer_human")


async def test_a_subscriber_without_orders_asking_about_charges_to_come_is_answered(
    session: AsyncSession,
) -> None:
    """Tester tr08: "and will i still be charged this month?" right after a pause got the
    person offer meant for a disputed charge."""
    subscription = await _subscriber(session, 7)

    async def ask(text: str) -> str:
        turn = await chat.support_request(
            session, Settings(), "conv-1", "billing_issue", verified=True, text=text
        )
        [(said, _)] = turn.messages
        return said

    asked = "and will i still be charged this month?"
    active = await ask(asked)
    assert active.startswith(f"Your {subscription.plan} subscription is active: ")
    assert support.format_date(subscription.current_period_end) in active

    subscription.status = SubscriptionStatus.paused
    subscription.resume_on = subscription.current_period_end + timedelta(days=30)
    await session.commit()
    restart = support.format_date(subscription.resume_on)
    assert await ask(asked) == (
        f"Your {subscription.plan} subscription is paused until {restart}: nothing is "
        f"charged or shipped until then. The next charge of {subscription.price:.2f} EUR "
        f"comes when deliveries restart on {restart}."
    )


async def test_a_subscriber_without_orders_moving_house_is_offered_a_person_for_the_address(
    session: AsyncSession,
) -> None:
    subscription = await _subscriber(session, 7)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "change_address",
        verified=True,
        text="we moved!! new address for the coffee box: Keizersgracht 12, 1015 CJ Amsterdam",
    )

    [(text, _)] = turn.messages
    assert text == (
        f"I can't change the delivery address of your {subscription.plan} subscription "
        "myself, but a person from our team can update it for the next box. Shall I get one?"
    )
    assert turn.slots["pending_action"] == "offer_human"


async def test_the_other_order_at_a_changes_yes_no_asks_the_change_for_that_order(
    session: AsyncSession, action_services: object
) -> None:
    """Tester (tq19): "no wait the other one, the kettle" at "Cancel order A10005 (mug)?"
    was a plain no, and a hurried yes then cancelled the mug. The same change is asked for
    the kettle's order; nothing is cancelled. "no the mug is fine" stays a no."""
    from actions.support import ActionResolvePending

    owner = await factories.customer(session, email="ola@example.com")
    mug = await _order(session, owner, "A10005", OrderStatus.placed, ["Stoneware Mug"], 1)
    await _order(session, owner, "A10006", OrderStatus.placed, ["Gooseneck Kettle"], 2)
    session.add(Conversation(id="conv-1", customer_id=owner.id, order_id=mug.id))
    await session.commit()
    pending = {
        **VERIFIED,
        "support_request": "cancel_order",
        "awaiting": "confirmation",
        "pending_action": "cancel_order",
        "next_step": "confirm",
    }

    _, messages = await run(
        ActionResolvePending(),
        tracker("conv-1", "no wait the other one, the kettle", "deny", pending),
    )
    conversation = await session.get(Conversation, "conv-1")
    assert conversation is not None
    conversation.order_id = mug.id  # a fresh "Cancel order A10005?"
    await session.commit()
    _, plain_no = await run(
        ActionResolvePending(), tracker("conv-1", "no the mug is fine", "deny", pending)
    )

    assert messages[0]["text"].startswith("Cancel order A10006")
    assert "A10006" not in plain_no[0]["text"] and "haven't changed anything" in plain_no[0]["text"]
    statuses = (await session.scalars(select(Order.status).order_by(Order.number))).all()
    assert statuses == [OrderStatus.placed, OrderStatus.placed]


async def test_the_other_order_at_an_offer_about_an_order_answers_for_that_order(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr29: "no not that one, the casserole" at the kettle's invoice offer ("…a
    person can send it. Shall I get one?") got "Okay. Our team will still look…"."""
    from actions.support import ActionResolvePending

    owner = await factories.customer(session, email="ola@example.com")
    kettle = await _order(session, owner, "A10005", OrderStatus.delivered, ["Gooseneck Kettle"], 5)
    await _order(session, owner, "A10006", OrderStatus.delivered, [CASSEROLE], 9)
    session.add(Conversation(id="conv-1", customer_id=owner.id, order_id=kettle.id))
    await session.commit()
    offer = {
        **VERIFIED,
        "support_request": "billing_issue",
        "awaiting": "confirmation",
        "pending_action": "offer_human",
        "next_step": "confirm",
    }
    state = ranked_tracker("conv-1", "no not that one, the casserole", [("deny", 1.0)], offer)
    state.events.insert(
        0,
        {
            "event": "user",
            "text": "need the invoice for the kettle",
            "parse_data": {"intent": {"name": "billing_issue", "confidence": 0.99}},
        },
    )

    _, messages = await run(ActionResolvePending(), state)

    assert _about(messages[0]["text"]) == "A10006"
    assert (await session.scalars(select(Escalation))).all() == []


async def test_an_ask_read_as_data_is_the_request_ranked_next(
    session: AsyncSession, action_services: object
) -> None:
    """Tester (tq20): "pls change delivery adress to 5 rue victor hugo 75001 paris" is read
    as inform (0.90, change_address 0.09) because of the address in it; it got "What
    would you like to do?". With the address given in it, that address is confirmed at once
    (tester 5, tw5_06)."""
    await _jane(session)
    state = ranked_tracker(
        "conv-1",
        "pls change delivery adress to 5 rue victor hugo 75001 paris",
        [("inform", 0.90), ("change_address", 0.09)],
        {**VERIFIED, "next_step": "done"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"] == (
        "Change the delivery address of order A10002 to: 5 rue victor hugo 75001 paris?"
    )
    slots = slot_events(events)
    assert slots["support_request"] == "change_address"
    assert (slots["next_step"], slots["pending_action"], slots["new_address"]) == (
        "confirm",
        "change_address",
        "5 rue victor hugo 75001 paris",
    )


async def _cancelled(session: AsyncSession, number: int, ago: timedelta) -> Subscription:
    """A customer whose subscription was cancelled `ago`, in conversation conv-1."""
    return await _subscriber(
        session, number, SubscriptionStatus.cancelled, cancelled_at=utcnow() - ago
    )


async def test_undoing_an_old_subscription_cancellation_offers_a_person(
    session: AsyncSession,
) -> None:
    """Tester 2 (tr24, a trap): "wait no undo that, i want to keep it" right after "Cancel
    anyway" got "Okay. Anything else?"; a cancellation older than a day is a person's to
    undo."""
    await _cancelled(session, 8, timedelta(days=2))

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "resume_subscription",
        verified=True,
        text="undo the cancellation",
    )

    [(text, buttons)] = turn.messages
    assert text.startswith("Your Coffee Explorer Box subscription was cancelled on ")
    assert "a person from our team can reactivate it" in text
    assert [b["payload"] for b in buttons] == ["yes", "no"]
    assert turn.slots["pending_action"] == "offer_human"


async def test_a_cancellation_just_made_is_undone_on_a_yes(session: AsyncSession) -> None:
    """Tester 2 (tr24): the bot itself takes back a cancellation made minutes ago."""
    cancelled = await _cancelled(session, 8, timedelta(minutes=3))

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "resume_subscription",
        verified=True,
        text="wait no undo that, i want to keep it",
    )

    [(text, _)] = turn.messages
    assert text == (
        "Reactivate your Coffee Explorer Box subscription, as if you had never cancelled? "
        f"Deliveries and the {cancelled.price:.2f} EUR monthly charge carry on as before."
    )
    assert (turn.slots["pending_action"], cancelled.status) == (
        "resume_subscription",
        SubscriptionStatus.cancelled,
    )
    done = await chat.resolve_pending(
        session,
        Settings(),
        "conv-1",
        "resume_subscription",
        confirmed=True,
        new_address=None,
    )
    assert done.messages[0][0].startswith(
        "Done: your Coffee Explorer Box subscription is active again"
    )
    await session.refresh(cancelled)
    assert (cancelled.status, cancelled.cancelled_at) == (SubscriptionStatus.active, None)


async def test_undo_that_right_after_a_pause_asks_to_resume(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 3: "actually no, undo that, i want it to keep coming" right after a pause got
    "Okay. Anything else I can help with?"."""
    await _subscriber(session, 9, SubscriptionStatus.paused)
    slots = {**VERIFIED, "support_request": "pause_subscription", "next_step": "done"}

    events, messages = await run(
        ActionSupportRequest(),
        tracker("conv-1", "actually no, undo that, i want it to keep coming", "deny", slots),
    )

    assert messages[0]["text"].startswith("Resume your Coffee Explorer Box subscription now?")
    assert slot_events(events)["pending_action"] == "resume_subscription"


async def test_no_undo_that_right_after_a_cancellation_is_about_undoing_it(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 2 (tr24): "wait no undo that, i want to keep it" after "Cancel anyway" (read
    as a no, nothing asked) got "Okay. Anything else?"; a plain no still gets that."""
    await _cancelled(session, 9, timedelta(minutes=3))
    slots = {**VERIFIED, "support_request": "cancel_subscription", "next_step": "done"}

    _, undo = await run(
        ActionSupportRequest(),
        tracker("conv-1", "wait no undo that, i want to keep it", "deny", slots),
    )
    _, plain = await run(ActionSupportRequest(), tracker("conv-1", "no", "deny", slots))

    assert undo[0]["text"].startswith("Reactivate your Coffee Explorer Box subscription")
    assert [m["text"] for m in plain] == ["Okay. Anything else I can help with?"]


async def test_and_the_other_order_as_a_request_of_its_own_switches_order(
    session: AsyncSession,
) -> None:
    """Tester tr01: "and the other order?" after the kettle's status got the kettle again."""
    await _jane(session)
    first = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="wheres my casserole",
    )
    assert _about(first.messages[0][0]) == "A10001"

    other = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="and the other order?",
    )

    assert _about(other.messages[0][0]) == "A10002"
    assert await _conversation_order(session) == "A10002"


async def _after_a_double_charge(
    session: AsyncSession, number: str, charge: str, flow: str, text: str
) -> chat.Turn:
    """`text` (read as `flow`) right after the double charge `charge` on order `number`
    was answered."""
    await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "billing_issue",
        verified=True,
        text=charge,
        order_number=number,
    )
    return await chat.support_request(
        session,
        Settings(),
        "conv-1",
        flow,
        verified=True,
        text=text,
        earlier_request="billing_issue",
    )


async def test_money_back_right_after_questioning_a_charge_goes_to_a_person(
    session: AsyncSession,
) -> None:
    """Tester tr07: "i want the money back now" right after "i got charged TWICE" offered to
    cancel the (unshipped) order."""
    await _jane(session)
    turn = await _after_a_double_charge(
        session,
        "A10002",
        "i got charged TWICE for my order wtf",
        "request_refund",
        "i want the money back now",
    )

    [(text, buttons)] = turn.messages
    assert text == (
        "I can't refund a charge myself, but a person from our team can check the payments "
        "for order A10002 (59.90 EUR) with our payment provider and refund anything taken "
        "twice. Shall I get one?"
    )
    assert turn.slots["pending_action"] == "offer_human"
    assert [b["payload"] for b in buttons] == ["yes", "no"]
    orders = (await session.scalars(select(Order.status).where(Order.number == "A10002"))).all()
    assert orders == [OrderStatus.placed]


async def test_what_if_it_doesnt_come_after_a_late_parcel_answers_for_that_parcel(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tq23: "ugh. and if it doesnt come tomorow?" (policy_question) after a late
    parcel's status got "I'm not sure I can answer that from our help centre"."""
    from actions.support import ActionAnswerPolicyQuestion

    owner = await factories.customer(session, email="olga@example.com")
    late = await factories.order(session, owner, "A10007", OrderStatus.shipped, placed_days_ago=9)
    session.add(Conversation(id="conv-1", customer_id=owner.id, order_id=late.id))
    await session.commit()
    slots = {**VERIFIED, "support_request": "order_status", "next_step": "done"}

    events, messages = await run(
        ActionAnswerPolicyQuestion(),
        tracker("conv-1", "ugh. and if it doesnt come tomorow?", "policy_question", slots),
    )

    assert "A10007" in messages[0]["text"] and "trace" in messages[0]["text"]
    assert slot_events(events)["support_request"] == "delivery_problem"


async def test_a_person_asked_for_in_words_wins_over_an_unsure_reading(
    session: AsyncSession,
) -> None:
    """Tester 3 (tw3_17): "my coffee box had the wrong beans again, can i speak to someone"
    (damaged_item 0.53, request_human 0.31) got "What did you mean?"."""
    await _jane(session)
    text = "my coffee box had the wrong beans again, can i speak to someone"

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "damaged_item",
        verified=True,
        text=text,
        intent_ranking=nlu_ranking(("damaged_item", 0.53), ("request_human", 0.31)),
    )

    assert turn.messages[0][0].startswith("Our support team is offline right now")
    escalation = (await session.scalars(select(Escalation))).one()
    assert escalation.reason is EscalationReason.customer_request


async def test_why_was_it_cancelled_is_about_that_order_not_a_cancellation(
    session: AsyncSession,
) -> None:
    """Tester 3 (tw3_09): "why was A… cancelled?? i didnt cancel it" (cancel_order 0.60)
    got "What did you mean?" with "Cancel an order" among the choices."""
    jane = await _jane(session)
    cancelled = await _order(session, jane, "A10009", OrderStatus.cancelled, [TOWEL], 20)
    await session.commit()

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_order",
        verified=True,
        text="why was A10009 cancelled?? i didnt cancel it",
        order_number="A10009",
        intent_ranking=nlu_ranking(("cancel_order", 0.60), ("delivery_problem", 0.37)),
    )

    assert _about(turn.messages[0][0]) == cancelled.number
    assert "cancelled" in turn.messages[0][0]
    assert not chat.is_change(turn.slots.get("pending_action"))  # a person offered, at most


async def test_my_last_order_is_the_newest_without_a_picker(session: AsyncSession) -> None:
    """Tester 3 (tw3_04): "i got charged twice for my last order!!" asked which order."""
    await _jane(session, second_delivered=True)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "billing_issue",
        verified=True,
        text="i got charged twice for my last order!!",
    )

    assert _about(turn.messages[0][0]) == "A10002"
    assert turn.slots.get("next_step") != "choose_order"
    assert await _conversation_order(session) == "A10002"


async def test_the_cancelled_one_is_the_customers_one_cancelled_order(
    session: AsyncSession,
) -> None:
    """Tester 3 (tw3_02): "ok and can i get a refund for the cancelled one too" after a
    late parcel's status answered about the late parcel again."""
    jane = await _jane(session)
    await _order(session, jane, "A10009", OrderStatus.cancelled, [KNIFE], 40)
    await session.commit()
    await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="where is my jumper",
    )
    assert await _conversation_order(session) == "A10002"

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "request_refund",
        verified=True,
        text="ok and can i get a refund for the cancelled one too",
    )

    assert _about(turn.messages[0][0]) == "A10009"
    assert await _conversation_order(session) == "A10009"


async def test_the_next_coffee_box_is_the_subscriptions_not_the_newest_order(
    session: AsyncSession,
) -> None:
    """Tester 3 (tw3_05): "when is my next coffee box coming" answered with the jumper
    order's status and a satisfaction survey."""
    jane = await _jane(session)
    subscription = await factories.subscription(session, jane, SubscriptionStatus.active)
    await session.commit()

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="when is my next coffee box coming",
    )

    next_box = support.format_date(support.next_period_end(subscription))
    assert turn.messages == [
        (
            f"Your next Coffee Explorer Box delivery is due with your renewal on {next_box}. "
            "If you'd like to skip it or pause, just say so.",
            [],
        )
    ]
    assert turn.slots["next_step"] == "done"

    where = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="where is my jumper",
    )
    assert _about(where.messages[0][0]) == "A10002"


async def test_how_long_for_the_money_back_after_a_double_charge_is_the_preauthorisation(
    session: AsyncSession,
) -> None:
    """Tester 3 (tw3_15): "ok and how long for the money back?" right after the double-charge
    answer got "There's no refund on order A…: it is shipped and no return has been started"."""
    await _jane(session)
    turn = await _after_a_double_charge(
        session,
        "A10002",
        "i was charged twice for A10002",
        "refund_status",
        "ok and how long for the money back?",
    )

    [(text, buttons)] = turn.messages
    assert text.startswith("A second amount for order A10002 is usually a card pre-authorisation")
    assert "3–5 working days" in text
    assert turn.slots["pending_action"] == "offer_human"
    assert [b["payload"] for b in buttons] == ["yes", "no"]


async def test_a_delivery_that_came_late_is_kept_as_a_complaint_not_traced(
    session: AsyncSession,
) -> None:
    """Tester 3 (tw3_20): "3 - casserole is nice but it came a day late" (delivery_problem
    0.98) opened a DHL trace of the delivered parcel."""
    await _jane(session)
    text = "3 - casserole is nice but it came a day late"

    turn = await chat.support_request(
        session, Settings(), "conv-1", "delivery_problem", verified=True, text=text
    )

    [(said, _)] = turn.messages
    assert said.startswith("I'm sorry to hear that, and thank you for telling us")
    assert "trace" not in said
    row = (await session.scalars(select(Feedback))).one()
    assert (row.kind, row.text) == (FeedbackKind.complaint, text)
    lifecycle = await session.get(Lifecycle, row.lifecycle_id)
    assert lifecycle is not None
    assert lifecycle.order_id == (await _number(session, "A10001")).id


async def test_the_tracking_number_asked_after_an_address_refusal_is_given(
    session: AsyncSession,
) -> None:
    """Tester 4 (tw4_31): "ok whats the tracking number again so i can redirect it with the
    carrier" (change_address) got "its address can't be changed" again."""
    owner = await factories.customer(session, email="tom@example.com")
    await factories.order(session, owner, "A10007", OrderStatus.shipped, placed_days_ago=3)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "change_address",
        verified=True,
        text="ok whats the tracking number again so i can redirect it with the carrier",
    )

    assert "Tracking: DHL JJD000390007" in turn.messages[0][0]
    assert "can't be changed" not in turn.messages[0][0]


async def test_the_status_of_two_named_orders_answers_both(session: AsyncSession) -> None:
    """Tester 4 (tw4_20): "whats the status of A… and A…" answered only the second."""
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="whats the status of A10001 and A10002",
        order_number="A10002",
    )

    said = " ".join(text for text, _ in turn.messages)
    assert said.index("A10001") < said.index("A10002")
    assert "was delivered" in said or "delivered" in said
    assert "is being packed" in said


async def test_still_there_after_a_double_charge_is_the_charge_not_the_parcel(
    session: AsyncSession,
) -> None:
    """Tester 4 (tw4_09): "its been 9 days tho, still there" right after the double-charge
    answer (order_status) opened a parcel trace for the late order."""
    owner = await factories.customer(session, email="tom@example.com")
    await factories.order(session, owner, "A10007", OrderStatus.shipped, placed_days_ago=9)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    turn = await _after_a_double_charge(
        session,
        "A10007",
        "i was charged twice for A10007",
        "order_status",
        "its been 9 days tho, still there",
    )

    [(text, _)] = turn.messages
    assert text.startswith("I can't refund a charge myself, but a person from our team")
    assert "trace" not in text
    assert turn.slots["pending_action"] == "offer_human"


async def test_a_follow_up_naming_a_product_picks_its_order_though_it_does_not_fit(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4 (tw4_41): "and the casserole one?" after the newest order's status gave the
    newest order again (the delivered casserole order does not fit a status request); "the
    CASSEROLE order", read as a product question, gave the casserole's stock."""
    await _jane(session)
    await chat.support_request(
        session, Settings(), "conv-1", "order_status", verified=True, text="wheres my order"
    )
    await session.commit()
    assert await _conversation_order(session) == "A10002"
    slots = {**VERIFIED, "support_request": "order_status", "next_step": "done"}
    asked = [_user("wheres my order", "order_status"), _slot("support_request", "order_status")]

    _, messages = await run(
        ActionSupportRequest(),
        tracker("conv-1", "and the casserole one?", "inform", slots, events=asked),
    )
    assert _about(messages[0]["text"]) == "A10001"

    await chat.support_request(
        session, Settings(), "conv-1", "order_status", verified=True, text="wheres my order"
    )
    await session.commit()
    _, messages = await run(
        ActionAnswerProductQuestion(),
        tracker("conv-1", "the CASSEROLE order", "product_question", slots, events=asked),
    )
    assert _about(messages[0]["text"]) == "A10001"
    assert not any("In stock" in str(m.get("text")) for m in messages)


async def test_a_real_product_question_is_still_answered_as_one(
    session: AsyncSession, action_services: object
) -> None:
    await _jane(session)
    slots = {**VERIFIED, "support_request": "order_status", "next_step": "done"}
    assert not await chat.refers_to_an_order(session, "conv-1", "is the casserole oven safe?")
    assert not await chat.refers_to_an_order(session, "conv-1", "the kettle one")  # not hers
    assert await chat.refers_to_an_order(session, "conv-1", "no the other one, the casserole")
    _, messages = await run(
        ActionAnswerProductQuestion(),
        tracker("conv-1", "is the casserole oven safe?", "product_question", slots),
    )
    assert not re.findall(r"A\d{5}", " ".join(str(m.get("text")) for m in messages))


async def test_not_that_one_the_one_with_the_towel_picks_the_towel_order(
    session: AsyncSession,
) -> None:
    """Tester 4 (tw4_28): at "Cancel order A10002?", "wait no not that one, the one with
    the towel" showed the picker of every other order."""
    jane = await _jane(session, second_delivered=True)
    await _order(session, jane, "A10004", OrderStatus.delivered, ["Kettle"], 40)
    await session.commit()
    await chat.support_request(
        session, Settings(), "conv-1", "cancel_order", verified=True, text="pls cancel my order"
    )
    assert await _conversation_order(session) == "A10002"

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_order",
        verified=True,
        text="pls cancel my order",
        latest="wait no not that one, the one with the towel",
        choosing_order=True,
    )

    assert _about(turn.messages[0][0]) == "A10001"
    assert turn.slots.get("next_step") != "choose_order"


async def test_changing_the_account_email_is_not_a_parcel_address_change(
    session: AsyncSession,
) -> None:
    """Tester 4 (tw4_35): "how do i change my email address on my account" (change_address
    1.00) asked for the jumper order's new delivery address."""
    await _jane(session)
    await knowledge.load_demo(session)
    await session.commit()
    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "change_address",
        verified=True,
        text="how do i change my email address on my account",
        intent_ranking=nlu_ranking(("change_address", 1.0)),
    )
    said = " ".join(text for text, _ in turn.messages)
    assert "Personal details" in said
    assert "A10002" not in said
    assert turn.slots.get("next_step") == "done"


async def test_a_person_offered_for_an_account_question_awaits_its_yes(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tester 5 (tw5_05): "i need to change my email its jane.d@gmail.com now" got the
    knowledge base's "Shall I pass your question to a person?" (unsure of its articles on
    that stack), and "yes" then got "Okay. Anything else?": the turn's "awaiting: nothing"
    overwrote the offer's."""
    await _jane(session)
    await session.commit()

    async def unsure(session: AsyncSession, text: str) -> chat.Turn:
        offer = chat.Turn(slots={"awaiting": "confirmation", "pending_action": "offer_human"})
        return offer.say("Shall I pass your question to a person from our team?")

    monkeypatch.setattr(chat, "account_details", unsure)
    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "change_address",
        verified=True,
        text="i need to change my email its jane.d@gmail.com now",
        intent_ranking=nlu_ranking(("change_address", 0.9)),
    )
    said = " ".join(text for text, _ in turn.messages)
    assert "Shall I pass your question to a person" in said, said
    assert turn.slots.get("awaiting") == "confirmation"
    assert turn.slots.get("pending_action") == "offer_human"


# --- tester 5 --------------------------------------------------------------------------------


async def _status_of(session: AsyncSession, number: str, status: OrderStatus) -> Order:
    order = await _number(session, number)
    order.status = status
    now = utcnow()
    if status is OrderStatus.cancelled:
        order.cancelled_at = now - timedelta(days=1)
    if status is OrderStatus.refunded:
        order.refunded_at = now - timedelta(days=2)
    if status is OrderStatus.shipped:
        order.shipped_at = now - timedelta(days=8)
    await session.commit()
    return order


async def test_why_was_it_cancelled_offers_a_person(session: AsyncSession) -> None:
    """Tester 5 (tw5_09): "why was my jumper order cancelled?? i never cancelled it" got
    only "is cancelled, so there's no delivery in progress"."""
    await _jane(session)
    await _status_of(session, "A10002", OrderStatus.cancelled)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="why was my jumper order cancelled?? i never cancelled it",
    )

    assert "a person from our team can find out why" in turn.messages[0][0]
    assert turn.slots["pending_action"] == "offer_human"


async def test_how_long_on_a_refunded_order_gives_the_refunds_days(session: AsyncSession) -> None:
    """Tester 5 (tw5_10): "how long does it take to show up on my card" (order_status) on a
    refunded order got the refund date again, without the days a statement takes."""
    await _jane(session)
    await _status_of(session, "A10001", OrderStatus.refunded)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        order_number="A10001",
        text="how long does it take to show up on my card",
    )

    assert "3–5 working days" in turn.messages[0][0]


async def test_send_a_new_one_after_a_late_parcels_status_is_the_late_parcel(
    session: AsyncSession,
) -> None:
    """Tester 5 (tw5_08): "can you just send a new one" after the late parcel's trace got
    "hasn't been delivered yet. You can return it within 30 days of delivery"."""
    await _jane(session)
    await _status_of(session, "A10002", OrderStatus.shipped)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "return_item",
        verified=True,
        order_number="A10002",
        text="can you just send a new one",
        earlier_request="delivery_problem",
    )

    assert not any("within 30 days of delivery" in text for text, _ in turn.messages)


async def test_a_complaint_that_an_order_has_not_come_gives_its_status(
    session: AsyncSession,
) -> None:
    """Tester 5 (tw5_24): "this is the third time im asking, the jumper STILL hasnt shipped"
    was recorded with "If there's an order I can help with, just tell me"."""
    await _jane(session)
    said = "this is the third time im asking, the jumper STILL hasnt shipped, ridiculous"

    turn = await chat.record_opinion(
        session, "conv-1", FeedbackKind.complaint, said, "m-1", settings=Settings()
    )

    texts_said = [text for text, _ in turn.messages]
    assert texts_said[0].startswith("I'm sorry about that")
    assert "A10002" in " ".join(texts_said)
    stored = (await session.scalars(select(Feedback))).all()
    assert [(f.kind, f.text) for f in stored] == [(FeedbackKind.complaint, said)]


async def test_and_the_subscription_at_a_pause_asks_the_pause_again(session: AsyncSession) -> None:
    """Tester 5 (tw5_26): "and the subscription?" (cancel_subscription 0.84) while "Pause
    your subscription?" waited got "Okay, I haven't changed anything" and a cancel offer."""
    jane = await _jane(session)
    await factories.subscription(session, jane)
    await session.commit()

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_subscription",
        verified=True,
        text="and the subscription?",
        intent_ranking=nlu_ranking(("cancel_subscription", 0.84)),
        dropped="pause_subscription",
    )

    said = " ".join(text for text, _ in turn.messages)
    assert "Pause" in said and "Cancel" not in said and "haven't changed" not in said
    assert turn.slots["pending_action"] == "pause_subscription"


async def test_a_return_read_two_ways_is_still_a_return(session: AsyncSession) -> None:
    """Tester 5 (tw5_11): "the shirt came ripped, i want a new one" (return 0.61, damaged
    0.21) got "What did you mean?"."""
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "return_item",
        verified=True,
        text="the towel came ripped, i want a new one",
        intent_ranking=nlu_ranking(("return_item", 0.61), ("damaged_item", 0.21), ("praise", 0.14)),
    )

    assert "What did you mean" not in turn.messages[0][0]
    assert "A10001" in turn.messages[0][0]


async def test_a_visitor_not_signed_in_is_told_how_to_manage_a_subscription(
    session: AsyncSession,
) -> None:
    """Tester 5 (tw5_17, tw5_18): an anonymous "i want to cancel my subscription" was asked
    for an order number (a subscription has none) and the email then refused."""
    await knowledge.load_demo(session)
    session.add(Conversation(id="conv-anon"))
    await session.commit()

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-anon",
        "cancel_subscription",
        verified=False,
        text="i want to cancel my subscription",
    )

    said = [text for text, _ in turn.messages]
    assert said[0].startswith("From our help centre")
    assert said[-1].startswith("To change your subscription here, sign in")
    assert "order number" not in " ".join(said)
    assert turn.slots["next_step"] == "done"


async def test_an_address_typed_with_the_request_is_confirmed_not_asked_again(
    session: AsyncSession,
) -> None:
    """Tester 5 (tw5_06): "change the delivery address for the jumper to Rosenweg 12, 8001
    Zürich" asked "What's the new delivery address?"."""
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "change_address",
        verified=True,
        text="change the delivery address for the jumper to Rosenweg 12, 8001 Zürich",
        intent_ranking=nlu_ranking(("change_address", 0.99)),
    )

    assert "Rosenweg 12, 8001 Zürich" in turn.messages[0][0]
    assert turn.slots["new_address"] == "Rosenweg 12, 8001 Zürich"
    assert (turn.slots["awaiting"], turn.slots["pending_action"]) == (
        "confirmation",
        "change_address",
    )
    assert (await _number(session, "A10002")).shipping_address != "Rosenweg 12, 8001 Zürich"


async def test_both_of_my_orders_gives_each_orders_status(session: AsyncSession) -> None:
    """Tester 5 (tw5_02): "hi where r my orders, both of them pls" gave the newest only."""
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "order_status",
        verified=True,
        text="hi where r my orders, both of them pls",
    )

    said = " ".join(text for text, _ in turn.messages)
    assert "A10001" in said and "A10002" in said and "A20002" not in said


async def test_a_new_account_email_typed_in_is_answered_with_the_account_page(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 5 (tw5_05): "i need to change my email its jane.d@gmail.com now" (inform 0.72)
    got "What did you mean?" and a knowledge miss."""
    await _jane(session)
    await knowledge.load_demo(session)
    await session.commit()
    said = "i need to change my email its jane.d@gmail.com now"

    _, messages = await run(
        ActionSupportRequest(), tracker("conv-1", said, "inform", {**VERIFIED, "next_step": "done"})
    )

    assert "Personal details" in messages[0]["text"]


def test_the_words_of_an_address_change_request_are_not_an_address() -> None:
    """sf20 in the regression suite: "need to change the delivery address on A94736 i
    moved" was taken as the new address ("to change the delivery …") and, on a yes, set."""
    assert support.address_given("need to change the delivery address on A94736 i moved") is None
    assert support.address_given("i want to change my address to my work address") is None
    assert support.address_given("can you deliver to my neighbour at number 5") is None
    assert (
        support.address_given(
            "change the delivery address for the jumper to Rosenweg 12, 8001 Zürich"
        )
        == "Rosenweg 12, 8001 Zürich"
    )
    assert (
        support.address_given("pls send it to 42 Elm Road, 10115 Berlin")
        == "42 Elm Road, 10115 Berlin"
    )


async def test_ok_whatever_just_cancel_it_then_asks_the_cancellation(session: AsyncSession) -> None:
    """Tester 6 (tw6_03): after "a person can change the size, or you can cancel the order
    and order the size you want. Shall I get someone?", "ok whatever just cancel it then"
    (cancel_order 0.62) got "What did you mean?", then its yes "Anything else?"."""
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_order",
        verified=True,
        text="ok whatever just cancel it then",
        intent_ranking=nlu_ranking(("cancel_order", 0.62), ("cancel_subscription", 0.30)),
        dropped="offer_human",
    )

    assert turn.messages[0][0].startswith("Cancel order A10002 (1× " + JUMPER)
    assert turn.slots["pending_action"] == "cancel_order"


async def test_refund_for_the_towel_read_as_its_status_offers_the_way_to_it(
    session: AsyncSession,
) -> None:
    """Tester 6 (tw6_04): "refund for the towel pls" (refund_status) on a delivered order got
    "There's no refund on order A10001: it is delivered and no return has been started."."""
    await _jane(session)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "refund_status",
        verified=True,
        text="refund for the towel pls",
        intent_ranking=nlu_ranking(("refund_status", 0.55), ("request_refund", 0.40)),
    )

    said = " ".join(text for text, _ in turn.messages)
    assert "There's no refund" not in said
    assert "A10001" in said and TOWEL in said and CASSEROLE not in said
    assert turn.slots["pending_action"] == "return_item"


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("refund for the towel pls", True),
        ("i want my money back", True),
        ("where is my refund", False),
        ("has my refund gone through yet", False),
        ("still no refund", False),
        ("i was promised a refund 2 weeks ago, nothing", False),
    ],
)
def test_asks_for_money_back(text: str, asks: bool) -> None:
    assert understanding.asks_for_money_back(text) is asks


async def test_a_promo_code_that_does_not_work_gets_the_help_centre_not_an_order(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 6 (tw6_07): "my promo code WELCOME10 isnt working" (order_status 0.50) got a
    refunded order's status and card."""
    await knowledge.load_demo(session)
    await _jane(session)

    _events, messages = await run(
        ActionSupportRequest(),
        tracker("conv-1", "my promo code WELCOME10 isnt working", "order_status", VERIFIED),
    )

    said = " ".join(m["text"] or "" for m in messages)
    assert "A1000" not in said
    assert re.search(r"code", said, re.I), said


async def test_is_there_a_cheaper_plan_read_as_a_cancellation_is_answered(
    session: AsyncSession,
) -> None:
    """Tester 6 (tw6_08): "is there a cheaper plan?" (cancel_subscription 0.47) right after a
    cancellation was put off got "What did you mean?"."""
    await knowledge.load_demo(session)
    await _subscriber(session, 9, SubscriptionStatus.active)

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_subscription",
        verified=True,
        text="is there a cheaper plan?",
        intent_ranking=nlu_ranking(("cancel_subscription", 0.47), ("policy_question", 0.16)),
    )

    said = " ".join(text for text, _ in turn.messages)
    assert "What did you mean" not in said and "Cancel your" not in said
    assert "19" in said, said

    # read for sure (make run check in Chromium: "is there a cheaper plan for the coffee
    # box?", cancel_subscription 0.87, opened the cancellation); a way to cancel still asks it
    async def reply(text: str) -> str:
        turn = await chat.support_request(
            session,
            Settings(),
            "conv-1",
            "cancel_subscription",
            verified=True,
            text=text,
            intent_ranking=nlu_ranking(("cancel_subscription", 0.87)),
        )
        return " ".join(said for said, _ in turn.messages)

    sure = await reply("is there a cheaper plan for the coffee box?")
    assert "Cancel your" not in sure and "19" in sure
    assert (await reply("is there a way to cancel my subscription?")).startswith("Cancel your")


async def test_damage_in_so_many_words_read_unsure_still_offers_the_return(
    session: AsyncSession,
) -> None:
    """sf09 with today's model: "the lid of the casserole has a crack in it" (damaged_item
    0.73, product_question 0.26) got "What did you mean?"; a question with damage words
    ("can the casserole crack in the oven?") still gets it."""
    await _jane(session)
    ranking = [
        {"name": "damaged_item", "confidence": 0.73},
        {"name": "product_question", "confidence": 0.26},
    ]

    async def reply(text: str) -> str:
        turn = await chat.support_request(
            session, Settings(), "conv-1", "damaged_item", True, text=text, intent_ranking=ranking
        )
        return " ".join(said for said, _ in turn.messages)

    report = await reply("the lid of the casserole has a crack in it")
    assert "A10001" in report and "return" in report.lower()
    assert "What did you mean" in await reply("can the casserole crack in the oven?")


@pytest.mark.parametrize(
    ("flow", "text"),
    [
        ("return_item", "cant you make an exception? i was travelling"),
        ("delivery_problem", "an exception to the 30 days. for the shirt"),
    ],
)
async def test_an_exception_to_the_rules_offers_a_person(
    session: AsyncSession, flow: str, text: str
) -> None:
    """Tester 4 (tw4_10): after "outside our 30-day return window", "cant you make an
    exception?" got a menu of meanings and "an exception to the 30 days. for the shirt"
    (delivery_problem) a parcel trace on an order delivered in September."""
    await _jane(session)
    await session.commit()
    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        flow,
        verified=True,
        text=text,
        intent_ranking=nlu_ranking((flow, 0.9)),
    )
    said = " ".join(message for message, _ in turn.messages)
    assert "exception" in said and "trace" not in said
    assert (turn.slots["awaiting"], turn.slots["pending_action"]) == (
        "confirmation",
        "offer_human",
    )


async def test_a_subscription_reading_is_dropped_for_a_customer_without_one(
    session: AsyncSession,
) -> None:
    """Tester tq10 (after 005a471): "nvm just cancel it then ill reorder" (cancel_order 0.50,
    cancel_subscription 0.42) by a customer with orders and no subscription was asked
    "Cancel an order or my subscription?"; the order's cancellation is asked instead."""
    owner = await factories.customer(session, email="ines@example.com")
    await factories.order(session, owner, "A10002", OrderStatus.placed)
    session.add(Conversation(id="conv-9", customer_id=owner.id, identified_by="token"))
    await session.commit()

    turn = await chat.support_request(
        session,
        Settings(),
        "conv-9",
        "cancel_order",
        verified=True,
        text="nvm just cancel it then ill reorder",
        intent_ranking=nlu_ranking(
            ("cancel_order", 0.50), ("cancel_subscription", 0.42), ("return_item", 0.03)
        ),
    )

    said = " ".join(message for message, _ in turn.messages)
    assert "A10002" in said and "What did you mean" not in said
    assert turn.slots.get("pending_action") == "cancel_order"


async def test_switching_plans_is_no_cancellation(session: AsyncSession) -> None:
    """Tester 9 (tw9_03): "switch my coffee plan to the bigger one" (cancel_subscription)
    asked the subscription's cancellation."""
    await _jane(session)
    await knowledge.load_demo(session)
    await session.commit()
    turn = await chat.support_request(
        session,
        Settings(),
        "conv-1",
        "cancel_subscription",
        verified=True,
        text="switch my coffee plan to the bigger one",
        intent_ranking=nlu_ranking(("cancel_subscription", 0.9)),
    )
    said = " ".join(message for message, _ in turn.messages)
    assert turn.slots.get("pending_action") != "cancel_subscription"
    assert "Cancel your" not in said and "plan" in said.lower()
