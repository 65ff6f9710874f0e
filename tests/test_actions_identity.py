"""Identity form validation: order number + email against the stored order."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.identity import ValidateIdentityForm
from bot.domain import knowledge
from bot.domain.enums import OrderStatus
from bot.storage.models import Conversation
from tests import factories
from tests.rasa_helpers import run, slot_events, tracker


async def _shop(session: AsyncSession) -> None:
    owner = await factories.customer(session, email="jane.doe@example.com")
    await factories.order(session, owner, "A10001", OrderStatus.delivered)
    await session.commit()


def _form(text: str, extracted: dict[str, str], **slots: object) -> Tracker:
    return tracker(
        "conv-1",
        text,
        "inform",
        {"requested_slot": next(iter(extracted)), **slots},
        active_loop="identity_form",
        extracted=extracted,
    )


async def test_order_number_alone_is_normalised_and_email_asked_next(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    events, messages = await run(
        ValidateIdentityForm(), _form("#10001", {"order_number": "#10001"})
    )
    assert slot_events(events) == {"order_number": "A10001"}
    assert messages == []


async def test_matching_email_verifies_and_links_the_conversation(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    state = _form("Jane.Doe@Example.com", {"email": "Jane.Doe@Example.com"}, order_number="A10001")

    events, messages = await run(ValidateIdentityForm(), state)

    assert slot_events(events) == {
        "order_number": "A10001",
        "email": "jane.doe@example.com",
        "identity": "verified",
        "identity_attempts": 0.0,
        "requested_slot": None,
    }
    assert messages == []
    conversation = (await session.scalars(select(Conversation))).one()
    assert (
        conversation.id == "conv-1"
        and conversation.customer_id is not None
        and conversation.order_id is not None
    )


async def test_unknown_order_is_refused_and_only_the_number_is_asked_again(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    state = _form("jane.doe@example.com", {"email": "jane.doe@example.com"}, order_number="A99999")

    events, messages = await run(ValidateIdentityForm(), state)

    assert slot_events(events) == {
        "order_number": None,
        "email": "jane.doe@example.com",
        "identity_attempts": 1.0,
    }
    assert (
        messages[0]["text"]
        == "I can't find an order A99999. Please check the number in your confirmation email. Let's try again."
    )
    conversation = (await session.scalars(select(Conversation))).one()
    assert (conversation.customer_id, conversation.order_id) == (None, None)


async def test_wrong_email_is_refused_without_order_details(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    state = _form("tom@example.com", {"email": "tom@example.com"}, order_number="A10001")

    events, messages = await run(ValidateIdentityForm(), state)

    assert (
        messages[0]["text"]
        == "That email doesn't match our records for order A10001. Let's try again."
    )
    # The order number is kept: only the email is asked again (issue #17).
    assert slot_events(events) == {
        "order_number": "A10001",
        "email": None,
        "identity_attempts": 1.0,
    }


async def test_third_failure_ends_the_form_unverified(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    state = _form(
        "tom@example.com",
        {"email": "tom@example.com"},
        order_number="A10001",
        identity_attempts=2.0,
    )

    events, messages = await run(ValidateIdentityForm(), state)

    slots = slot_events(events)
    assert slots["identity_attempts"] == 3.0 and slots["requested_slot"] is None
    assert "identity" not in slots
    assert messages[0]["text"] == "That email doesn't match our records for order A10001."


async def test_not_an_order_number(session: AsyncSession, action_services: object) -> None:
    await _shop(session)
    events, messages = await run(ValidateIdentityForm(), _form("dunno", {"order_number": "dunno"}))
    assert slot_events(events) == {"order_number": None, "identity_attempts": 1.0}
    assert messages[0]["text"].startswith("That doesn't look like an order number")


def _both(text: str, order_number: str, email: str, **slots: object) -> Tracker:
    """One message with the order number and the email (both extracted as entities)."""
    return tracker(
        "conv-1",
        text,
        "inform",
        {"requested_slot": "order_number", **slots},
        active_loop="identity_form",
        extracted={"order_number": order_number, "email": email},
    )


async def test_order_number_and_email_in_one_message_verify_at_once(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    state = _both("#10001 jane.doe@example.com", "#10001", "jane.doe@example.com")

    events, messages = await run(ValidateIdentityForm(), state)

    assert slot_events(events) == {
        "order_number": "A10001",
        "email": "jane.doe@example.com",
        "identity": "verified",
        "identity_attempts": 0.0,
        "requested_slot": None,
    }
    assert messages == []


async def test_email_first_then_order_number_in_one_message_verify_too(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    state = tracker(
        "conv-1",
        "jane.doe@example.com, order A10001",
        "inform",
        {"requested_slot": "order_number"},
        active_loop="identity_form",
        extracted={"email": "jane.doe@example.com", "order_number": "A10001"},
    )

    events, messages = await run(ValidateIdentityForm(), state)

    assert slot_events(events)["identity"] == "verified"
    assert messages == []


async def test_both_in_one_message_with_a_wrong_email_is_one_failure_keeping_the_number(
    session: AsyncSession, action_services: object
) -> None:
    await _shop(session)
    state = _both("A10001 tom@example.com", "A10001", "tom@example.com")

    events, messages = await run(ValidateIdentityForm(), state)

    assert [m["text"] for m in messages] == [
        "That email doesn't match our records for order A10001. Let's try again."
    ]
    assert slot_events(events) == {
        "order_number": "A10001",
        "email": None,
        "identity_attempts": 1.0,
    }


async def test_a_question_at_the_email_question_is_answered_not_counted(
    session: AsyncSession, action_services: object
) -> None:
    """Tester: "why do you need my email?" got "That doesn't look like an email address"."""
    await _shop(session)
    state = _form(
        "why do you need my email?", {"email": "why do you need my email?"}, order_number="A10001"
    )

    events, messages = await run(ValidateIdentityForm(), state)

    assert slot_events(events) == {"email": None}  # asked again by the form, no attempt lost
    assert messages[0]["text"].startswith("I ask for your order number and the email you used")


async def test_nvm_leaves_the_identity_check(
    session: AsyncSession, action_services: object
) -> None:
    """Tester: "nvm" at the email question was refused as a bad email address, again and
    again (a form with no way out)."""
    await _shop(session)
    state = _form("nvm", {"email": "nvm"}, order_number="A10001")

    events, messages = await run(ValidateIdentityForm(), state)

    slots = slot_events(events)
    assert slots["requested_slot"] is None and "identity" not in slots
    assert not any("look like" in m["text"] for m in messages)


async def test_asking_in_general_leaves_the_check_and_answers_the_rules(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4 (tw4_04): an anonymous visitor's "i dont have an order yet, im asking in
    general" at the order-number question got "That doesn't look like an order number"."""
    from actions.support import ActionSupportRequest

    await _shop(session)
    await knowledge.load_demo(session)
    await session.commit()
    said = "i dont have an order yet, im asking in general"
    events, messages = await run(ValidateIdentityForm(), _form(said, {"order_number": said}))
    slots = slot_events(events)
    assert slots["requested_slot"] is None and "identity" not in slots
    assert messages == []

    asked: list[dict[str, Any]] = [
        {
            "event": "user",
            "text": "and can i return stuff from there",
            "parse_data": {"intent": {"name": "return_item", "confidence": 0.95}, "entities": []},
        },
        {"event": "slot", "name": "support_request", "value": "return_item"},
    ]
    state = tracker("conv-1", said, "inform", {"support_request": "return_item"}, events=asked)
    state.latest_message["intent"] = {"name": "inform", "confidence": 0.9}
    state.latest_action_name = "identity_form"  # the form ended; its rule serves the request
    _, messages = await run(ActionSupportRequest(), state)
    text = " ".join(m["text"] for m in messages)
    assert "30 days" in text
    assert "order number" not in text


async def test_no_order_number_leaves_the_check_and_offers_a_person(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 5 (tw5_15): an anonymous double charge, "i dont have an order number its on my
    card statement", got the order-number question again."""
    from actions.support import ActionSupportRequest

    await _shop(session)
    said = "i dont have an order number its on my card statement"
    events, messages = await run(ValidateIdentityForm(), _form(said, {"order_number": said}))
    assert slot_events(events)["requested_slot"] is None and messages == []

    state = tracker("conv-1", said, "inform", {"support_request": "billing_issue"})
    state.latest_action_name = "identity_form"
    events, messages = await run(ActionSupportRequest(), state)
    assert messages[0]["text"].startswith("No problem: a person from our team can find your order")
    assert slot_events(events)["pending_action"] == "offer_human"


async def test_a_rule_asked_about_by_a_visitor_needs_no_order_number(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 6 (tw6_09): "ok and can i return a knife if i dont like it" (return_item 0.87)
    from a visitor got "What's your order number?"; the request's action answers it from the
    help centre. A return of an order they have is still checked."""
    session.add(Conversation(id="conv-1"))
    await session.commit()
    form = ValidateIdentityForm()

    async def required(text: str) -> list[str]:
        state = tracker("conv-1", text, "return_item", active_loop="identity_form")
        slots: list[str] = await form.required_slots(["order_number", "email"], None, state, {})
        return slots

    assert await required("ok and can i return a knife if i dont like it") == []
    # tw5_15: read as billing_issue, the check started again at the order-number question
    assert await required("i dont have an order number its on my card statement") == []
    assert await required("i want to return the knife i bought") == ["order_number", "email"]
