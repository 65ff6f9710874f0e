"""Survey actions: answers recorded on the right lifecycle, exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.support import ActionSupportRequest
from actions.surveys import (
    ActionAnswerSurveyConsent,
    ActionStartProactiveSurvey,
    ActionSubmitSurvey,
    ValidateSurveyForm,
)
from bot.domain import proactive, surveys
from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    EscalationReason,
    FeedbackKind,
    FeedbackSource,
    OrderStatus,
    Stage,
)
from bot.domain.lifecycle import lifecycle_for_order
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    SurveyDispatch,
    utcnow,
)
from tests import factories
from tests.rasa_helpers import domain, run, slot_events, tracker

VERIFIED = {"identity": "verified", "order_number": "A10001", "email": "jane.doe@example.com"}


async def _survey_started(session: AsyncSession) -> tuple[int, float]:
    """A delivered order's conversation after the order-status answer opened the CSAT survey."""
    owner = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, owner, "A10001", OrderStatus.delivered)
    session.add(Conversation(id="conv-1", customer_id=owner.id, order_id=order.id))
    await session.commit()
    state = tracker(
        "conv-1",
        "where is my order",
        "order_status",
        {**VERIFIED, "support_request": "order_status"},
    )
    events, _ = await run(ActionSupportRequest(), state)
    return order.id, slot_events(events)["survey_dispatch_id"]


def _answer(text: str, requested: str, dispatch_id: float, **slots: object) -> Tracker:
    return tracker(
        "conv-1",
        text,
        "inform",
        {
            **VERIFIED,
            "survey_kind": "csat",
            "survey_dispatch_id": dispatch_id,
            "requested_slot": requested,
            **slots,
        },
        active_loop="survey_form",
        extracted={requested: text},
    )


async def test_csat_four_in_words_records_one_row_on_the_orders_lifecycle(
    session: AsyncSession, action_services: object
) -> None:
    order_id, dispatch_id = await _survey_started(session)

    events, messages = await run(ValidateSurveyForm(), _answer("four", "survey_score", dispatch_id))

    assert slot_events(events) == {
        "survey_score": "4",
        "survey_retries": 0.0,
        "requested_slot": "survey_comment",
    }
    assert messages == []
    row = (await session.scalars(select(Feedback))).one()
    lifecycle = (
        await session.scalars(select(Lifecycle).where(Lifecycle.order_id == order_id))
    ).one()
    assert (row.kind, row.score, row.stage, row.lifecycle_id) == (
        FeedbackKind.csat,
        4,
        Stage.use,
        lifecycle.id,
    )
    assert (row.channel, row.source, row.conversation_id) == (
        Channel.website_chat,
        FeedbackSource.chat_survey,
        "conv-1",
    )
    assert row.survey_dispatch_id == int(dispatch_id)
    dispatch = await session.get(SurveyDispatch, int(dispatch_id))
    assert dispatch is not None and dispatch.answered_at is not None


async def test_retried_validation_records_once(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)

    await run(ValidateSurveyForm(), _answer("4/5", "survey_score", dispatch_id))
    await run(ValidateSurveyForm(), _answer("4/5", "survey_score", dispatch_id))

    assert len((await session.scalars(select(Feedback))).all()) == 1


async def test_out_of_range_is_asked_once_more_then_skipped(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)

    events, messages = await run(ValidateSurveyForm(), _answer("11", "survey_score", dispatch_id))
    assert slot_events(events) == {
        "survey_score": None,
        "survey_retries": 1.0,
        "requested_slot": "survey_score",
    }
    assert (
        messages[0]["text"]
        == "Sorry, 11 is outside the scale. Please pick a number from 1 to 5, or say 'skip'."
    )

    events, messages = await run(
        ValidateSurveyForm(), _answer("banana", "survey_score", dispatch_id, survey_retries=1.0)
    )
    assert slot_events(events) == {
        "survey_score": "skipped",
        "survey_retries": 0.0,
        "requested_slot": "survey_comment",
    }
    assert messages[0]["text"] == "No worries, let's skip that one."
    assert (await session.scalars(select(Feedback))).all() == []


async def test_skip_records_a_declined_dispatch_and_ends_the_form(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)

    events, _ = await run(ValidateSurveyForm(), _answer("no thanks", "survey_score", dispatch_id))

    assert slot_events(events) == {
        "survey_declined": True,
        "survey_score": None,
        "requested_slot": None,
    }
    dispatch = await session.get(SurveyDispatch, int(dispatch_id))
    assert (
        dispatch is not None and dispatch.declined_at is not None and dispatch.answered_at is None
    )
    assert (await session.scalars(select(Feedback))).all() == []


async def test_comment_gets_sentiment_and_themes(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    await run(ValidateSurveyForm(), _answer("5", "survey_score", dispatch_id))

    text = "Delivery was fast and the courier was lovely"
    events, _ = await run(
        ValidateSurveyForm(), _answer(text, "survey_comment", dispatch_id, survey_score="5")
    )

    assert slot_events(events) == {"survey_comment": "given", "requested_slot": None}
    comment = (
        await session.scalars(select(Feedback).where(Feedback.kind == FeedbackKind.comment))
    ).one()
    assert comment.text == text
    assert comment.sentiment is not None and comment.sentiment > 0.3
    assert comment.themes == ["delivery"]


async def test_low_score_opens_escalation_and_offers_a_person(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    await run(ValidateSurveyForm(), _answer("1", "survey_score", dispatch_id))

    events, messages = await run(
        ActionSubmitSurvey(), _answer("skip", "survey_comment", dispatch_id)
    )

    slots = slot_events(events)
    assert (slots["awaiting"], slots["pending_action"]) == ("confirmation", "offer_human")
    assert "talk to a person now" in messages[0]["text"]
    escalation = (await session.scalars(select(Escalation))).one()
    assert (escalation.reason, escalation.priority) == (EscalationReason.negative_feedback, 3)
    conversation = await session.get(Conversation, "conv-1")
    assert conversation is not None and conversation.status.value == "bot"


async def test_good_score_just_thanks(session: AsyncSession, action_services: object) -> None:
    _, dispatch_id = await _survey_started(session)
    await run(ValidateSurveyForm(), _answer("⭐⭐⭐⭐⭐", "survey_score", dispatch_id))

    events, messages = await run(
        ActionSubmitSurvey(), _answer("skip", "survey_comment", dispatch_id)
    )

    assert messages[0]["text"] == "Thank you for your feedback! It goes straight to our team."
    assert slot_events(events)["survey_dispatch_id"] is None
    assert (await session.scalars(select(Escalation))).all() == []


async def test_slots_reset_when_the_survey_starts_are_not_taken_as_answers(
    session: AsyncSession, action_services: object
) -> None:
    # Regression: at form activation Rasa sends the reset survey slots (None) for validation;
    # they were read as an empty answer (a "didn't catch a number" reply and a crash on the comment).
    _, dispatch_id = await _survey_started(session)
    state = tracker(
        "conv-1",
        "yes",
        "affirm",
        {**VERIFIED, "survey_kind": "csat", "survey_dispatch_id": dispatch_id},
        active_loop="survey_form",
        extracted={"survey_score": None, "survey_comment": None},
    )

    events, messages = await run(ValidateSurveyForm(), state)

    assert slot_events(events) == {
        "survey_score": None,
        "survey_comment": None,
        "requested_slot": "survey_score",
    }
    assert messages == []
    assert (await session.scalars(select(Feedback))).all() == []


# --- proactive surveys (scheduled by the shop's events, asked in the next chat) -------------


async def _proactive_started(
    session: AsyncSession, trigger: str, status: OrderStatus
) -> tuple[Customer, Lifecycle, SurveyDispatch, list[dict[str, Any]], list[dict[str, Any]]]:
    """A customer with a scheduled survey opened the chat: the web service triggered it."""
    owner = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, owner, "A10023", status)
    lifecycle = await lifecycle_for_order(session, order)
    dispatch = await surveys.schedule_proactive(session, lifecycle, trigger)
    session.add(Conversation(id="conv-1", customer_id=owner.id, identified_by="token"))
    await session.commit()
    state = tracker("conv-1", "", "EXTERNAL_proactive_survey", {"identity": "verified"})
    events, messages = await run(ActionStartProactiveSurvey(), state)
    return owner, lifecycle, dispatch, events, messages


def _proactive_answer(
    text: str, requested: str, dispatch_id: int, flow: str, **slots: object
) -> Tracker:
    return tracker(
        "conv-1",
        text,
        "inform",
        {
            "identity": "verified",
            "survey_kind": flow,
            "survey_dispatch_id": float(dispatch_id),
            "requested_slot": requested,
            **slots,
        },
        active_loop="survey_form",
        extracted={requested: text},
    )


async def test_proactive_first_order_survey_starts_with_intro_and_slots(
    session: AsyncSession, action_services: object
) -> None:
    _, _, dispatch, events, messages = await _proactive_started(
        session, surveys.TRIGGER_FIRST_ORDER, OrderStatus.placed
    )

    assert events == [
        {"event": "slot", "timestamp": None, "name": name, "value": value}
        for name, value in {
            "next_step": "consent",
            "awaiting": "survey_consent",
            "pending_action": None,
            "survey_kind": "first_order",
            "survey_dispatch_id": float(dispatch.id),
            "survey_source": None,
            "survey_score": None,
            "survey_ces": None,
            "survey_comment": None,
            "survey_retries": 0.0,
            "survey_declined": False,
        }.items()
    ]
    assert [m["text"] for m in messages] == [
        "Thanks for your first order A10023 with us! May we ask two quick questions?"
    ]
    await session.refresh(dispatch)
    assert dispatch.sent_at is not None and dispatch.conversation_id == "conv-1"


async def test_proactive_first_order_records_source_then_purchase_csat(
    session: AsyncSession, action_services: object
) -> None:
    owner, lifecycle, dispatch, _, _ = await _proactive_started(
        session, surveys.TRIGGER_FIRST_ORDER, OrderStatus.placed
    )

    events, messages = await run(
        ValidateSurveyForm(),
        _proactive_answer("I saw you on Instagram", "survey_source", dispatch.id, "first_order"),
    )
    assert slot_events(events) == {
        "survey_source": "social",
        "survey_retries": 0.0,
        "requested_slot": "survey_score",
    }
    assert messages == []

    events, _ = await run(
        ValidateSurveyForm(),
        _proactive_answer("5", "survey_score", dispatch.id, "first_order", survey_source="social"),
    )
    assert slot_events(events) == {
        "survey_score": "5",
        "survey_retries": 0.0,
        "requested_slot": None,
    }

    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(r.kind, r.score, r.text, r.stage, r.source, r.lifecycle_id) for r in rows] == [
        (
            FeedbackKind.discovery_source,
            None,
            "I saw you on Instagram",
            Stage.purchase,
            FeedbackSource.proactive_survey,
            lifecycle.id,
        ),
        (FeedbackKind.csat, 5, None, Stage.purchase, FeedbackSource.proactive_survey, lifecycle.id),
    ]
    assert [r.idempotency_key for r in rows] == [
        f"dispatch:{dispatch.id}:discovery_source",
        f"dispatch:{dispatch.id}:csat",
    ]
    await session.refresh(owner)
    await session.refresh(lifecycle)
    assert owner.acquisition_source is AcquisitionSource.social
    assert lifecycle.acquisition_channel is AcquisitionSource.social


async def test_proactive_delivery_survey_asks_score_then_comment(
    session: AsyncSession, action_services: object
) -> None:
    _, _, dispatch, _, _ = await _proactive_started(
        session, surveys.TRIGGER_ORDER_DELIVERED, OrderStatus.delivered
    )

    events, _ = await run(
        ValidateSurveyForm(), _proactive_answer("4", "survey_score", dispatch.id, "delivery")
    )

    assert slot_events(events) == {
        "survey_score": "4",
        "survey_retries": 0.0,
        "requested_slot": "survey_comment",
    }
    row = (await session.scalars(select(Feedback))).one()
    assert (row.kind, row.score, row.stage, row.source, row.survey_dispatch_id) == (
        FeedbackKind.csat,
        4,
        Stage.use,
        FeedbackSource.proactive_survey,
        dispatch.id,
    )


async def test_proactive_nps_detractor_with_complaint_opens_escalation(
    session: AsyncSession, action_services: object
) -> None:
    _, lifecycle, dispatch, _, _ = await _proactive_started(
        session, surveys.TRIGGER_SUBSCRIPTION_RENEWED, OrderStatus.delivered
    )
    await run(ValidateSurveyForm(), _proactive_answer("3", "survey_score", dispatch.id, "nps"))
    complaint = "The beans were stale and the delivery was awful"
    await run(
        ValidateSurveyForm(),
        _proactive_answer(complaint, "survey_comment", dispatch.id, "nps", survey_score="3"),
    )

    events, messages = await run(
        ActionSubmitSurvey(), _proactive_answer("", "survey_comment", dispatch.id, "nps")
    )

    slots = slot_events(events)
    assert (slots["awaiting"], slots["pending_action"]) == ("confirmation", "offer_human")
    assert "talk to a person now" in messages[0]["text"]
    escalation = (await session.scalars(select(Escalation))).one()
    assert (escalation.reason, escalation.priority) == (EscalationReason.negative_feedback, 3)
    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(r.kind, r.score, r.lifecycle_id, r.source) for r in rows] == [
        (FeedbackKind.nps, 3, lifecycle.id, FeedbackSource.proactive_survey),
        (FeedbackKind.comment, None, lifecycle.id, FeedbackSource.proactive_survey),
    ]
    assert escalation.feedback_id == rows[0].id


async def test_support_survey_with_hard_effort_escalates_after_a_good_csat(
    session: AsyncSession, action_services: object
) -> None:
    _, _, dispatch, _, _ = await _proactive_started(
        session, surveys.TRIGGER_ESCALATION_RESOLVED, OrderStatus.delivered
    )
    await run(ValidateSurveyForm(), _proactive_answer("4", "survey_score", dispatch.id, "support"))
    await run(
        ValidateSurveyForm(),
        _proactive_answer("7", "survey_ces", dispatch.id, "support", survey_score="4"),
    )

    await run(ActionSubmitSurvey(), _proactive_answer("", "survey_ces", dispatch.id, "support"))

    escalation = (await session.scalars(select(Escalation))).one()
    ces = (await session.scalars(select(Feedback).where(Feedback.kind == FeedbackKind.ces))).one()
    assert (ces.score, escalation.feedback_id) == (7, ces.id)


async def test_proactive_churn_question_records_the_reason(
    session: AsyncSession, action_services: object
) -> None:
    _, _, dispatch, _, messages = await _proactive_started(
        session, surveys.TRIGGER_SUBSCRIPTION_CANCELLED, OrderStatus.delivered
    )
    assert messages[0]["text"].endswith("May we ask one quick question?")

    events, _ = await run(
        ValidateSurveyForm(),
        _proactive_answer("Too expensive for me", "survey_comment", dispatch.id, "churn_reason"),
    )

    assert slot_events(events) == {"survey_comment": "given", "requested_slot": None}
    row = (await session.scalars(select(Feedback))).one()
    assert (row.kind, row.text, row.source) == (
        FeedbackKind.churn_reason,
        "Too expensive for me",
        FeedbackSource.proactive_survey,
    )


# --- issue #18: consent, comments where a score was asked, corrections, sources ---------------


async def test_consent_yes_and_not_now(session: AsyncSession, action_services: object) -> None:
    _, _, dispatch, _, messages = await _proactive_started(
        session, surveys.TRIGGER_ORDER_DELIVERED, OrderStatus.delivered
    )
    assert messages[0]["buttons"] == [
        {"title": "Sure", "payload": "sure"},
        {"title": "Not now", "payload": "not now"},
    ]
    slots = {"identity": "verified", "survey_dispatch_id": float(dispatch.id)}
    events, _ = await run(ActionAnswerSurveyConsent(), tracker("conv-1", "sure", "affirm", slots))
    assert slot_events(events) == {"awaiting": "nothing", "next_step": "survey"}
    await session.refresh(dispatch)
    assert dispatch.accepted_at is not None


async def test_consent_not_now_leaves_it_for_later(
    session: AsyncSession, action_services: object
) -> None:
    _, _, dispatch, _, _ = await _proactive_started(
        session, surveys.TRIGGER_ORDER_DELIVERED, OrderStatus.delivered
    )
    slots = {"identity": "verified", "survey_dispatch_id": float(dispatch.id)}
    events, messages = await run(
        ActionAnswerSurveyConsent(), tracker("conv-1", "not now", "deny", slots)
    )
    assert slot_events(events) == {
        "awaiting": "nothing",
        "next_step": "done",
        "survey_dispatch_id": None,
        "survey_postponed": True,
    }
    assert [m["text"] for m in messages] == [
        "No problem, maybe another time. What can I do for you?"
    ]
    await session.refresh(dispatch)
    assert (dispatch.accepted_at, dispatch.declined_at) == (None, None)


async def test_a_complaint_where_the_score_was_asked_is_kept_as_the_comment(
    session: AsyncSession, action_services: object
) -> None:
    """Issue #18: "your website checkout kept logging me out, took 3 tries to pay" was
    stored as a score of 3 and the next answer became the comment."""
    _, dispatch_id = await _survey_started(session)
    complaint = "your website checkout kept logging me out, took 3 tries to pay"

    events, messages = await run(
        ValidateSurveyForm(), _answer(complaint, "survey_score", dispatch_id)
    )
    assert slot_events(events) == {
        "survey_score": None,
        "survey_comment": "given",
        "survey_retries": 1.0,
        "requested_slot": "survey_score",
    }
    assert [m["text"] for m in messages] == ["I'm sorry to hear that. I've noted it for the team."]

    events, _ = await run(
        ValidateSurveyForm(),
        _answer("four", "survey_score", dispatch_id, survey_comment="given", survey_retries=1.0),
    )
    assert slot_events(events)["requested_slot"] is None  # no comment question again
    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(r.kind, r.score, r.text) for r in rows] == [
        (FeedbackKind.comment, None, complaint),
        (FeedbackKind.csat, 4, None),
    ]
    assert rows[0].sentiment is not None and "website" in (rows[0].themes or [])


async def test_a_score_with_a_remark_keeps_both_and_skips_the_comment_question(
    session: AsyncSession, action_services: object
) -> None:
    """Tester tr27: "3 but the courier was rude last time" kept the 3, lost the remark, and
    the next message ("thats it") became the comment."""
    _, dispatch_id = await _survey_started(session)
    answer = "3 but the courier was rude last time"

    events, messages = await run(ValidateSurveyForm(), _answer(answer, "survey_score", dispatch_id))

    assert slot_events(events) == {
        "survey_score": "3",
        "survey_comment": "given",
        "survey_retries": 0.0,
        "requested_slot": None,
    }
    assert [m["text"] for m in messages] == ["I'm sorry to hear that. I've noted it for the team."]
    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(r.kind, r.score, r.text) for r in rows] == [
        (FeedbackKind.csat, 3, None),
        (FeedbackKind.comment, None, answer),
    ]


@pytest.mark.parametrize("answer", ["4", "I'd give it 4 out of 5 stars", "4 thanks", "meh, 4"])
async def test_a_bare_score_still_asks_for_the_comment(
    session: AsyncSession, action_services: object, answer: str
) -> None:
    _, dispatch_id = await _survey_started(session)
    events, messages = await run(ValidateSurveyForm(), _answer(answer, "survey_score", dispatch_id))
    assert slot_events(events)["survey_score"] == "4" and messages == []
    assert "survey_comment" not in slot_events(events)
    assert [r.kind for r in (await session.scalars(select(Feedback))).all()] == [FeedbackKind.csat]


@pytest.mark.parametrize(
    "answer", ["thats it", "that's all thanks", "no", "nothing else", "all good"]
)
async def test_nothing_to_add_is_no_comment(
    session: AsyncSession, action_services: object, answer: str
) -> None:
    _, dispatch_id = await _survey_started(session)
    await run(ValidateSurveyForm(), _answer("3", "survey_score", dispatch_id))
    events, _ = await run(
        ValidateSurveyForm(), _answer(answer, "survey_comment", dispatch_id, survey_score="3")
    )
    assert slot_events(events)["survey_comment"] == "none"
    assert [r.kind for r in (await session.scalars(select(Feedback))).all()] == [FeedbackKind.csat]


async def test_a_short_praise_where_the_score_was_asked_is_its_score_in_words(
    session: AsyncSession, action_services: object
) -> None:
    """Was kept as a comment and the score asked again; "great service thanks" answers
    "how satisfied are you?" (a 5), and the customer is told so."""
    _, dispatch_id = await _survey_started(session)
    state = _answer("great service thanks", "survey_score", dispatch_id)
    state.latest_message["intent"] = {"name": "praise", "confidence": 0.95}

    events, messages = await run(ValidateSurveyForm(), state)

    assert slot_events(events)["survey_score"] == "5"
    assert [m["text"] for m in messages] == [
        "Got it: I've put that down as 5 (on the scale from 1 to 5)."
    ]
    row = (await session.scalars(select(Feedback))).one()
    assert (row.kind, row.score) == (FeedbackKind.csat, 5)


@pytest.mark.parametrize(
    ("text", "score"),
    [("it was ok i guess", "3"), ("pretty good i guess", "4"), ("not great tbh", "2")],
)
async def test_a_score_in_words_is_the_answer_not_a_comment(
    session: AsyncSession, action_services: object, text: str, score: str
) -> None:
    """Testers 4 and 5: "it was ok i guess" was noted as a comment and the same CSAT asked
    again as if unanswered."""
    _, dispatch_id = await _survey_started(session)

    events, messages = await run(ValidateSurveyForm(), _answer(text, "survey_score", dispatch_id))

    slots = slot_events(events)
    assert slots["survey_score"] == score
    rows = (await session.scalars(select(Feedback))).all()
    low = score == "2"
    expected: list[tuple[FeedbackKind, int | None, str | None]] = [
        (FeedbackKind.csat, int(score), None)
    ]
    if low:  # also the comment, not asked for with "Thanks! Anything you'd like to add?"
        expected.append((FeedbackKind.comment, None, text))
        assert slots["survey_comment"] == "given"
    assert [(row.kind, row.score, row.text) for row in rows] == expected
    assert messages[0]["text"].startswith("Got it") is not low  # a low one is not "got it"


async def test_words_that_disagree_are_a_comment_and_the_score_is_asked_again(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    text = "good product, terrible delivery"

    events, _ = await run(ValidateSurveyForm(), _answer(text, "survey_score", dispatch_id))

    assert slot_events(events)["survey_score"] is None
    rows = (await session.scalars(select(Feedback))).all()
    assert [(row.kind, row.text) for row in rows] == [(FeedbackKind.comment, text)]


async def test_sorry_i_meant_corrects_the_last_score(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    await run(ValidateSurveyForm(), _answer("2", "survey_score", dispatch_id))

    events, messages = await run(
        ValidateSurveyForm(),
        _answer("sorry, I meant 4", "survey_comment", dispatch_id, survey_score="2"),
    )

    assert slot_events(events) == {"survey_comment": None, "requested_slot": "survey_comment"}
    assert [m["text"] for m in messages] == ["Got it, I've changed your answer to 4."]
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.score) for r in rows] == [(FeedbackKind.csat, 4)]


async def test_an_unknown_source_is_asked_once_more_then_skipped(
    session: AsyncSession, action_services: object
) -> None:
    _, _, dispatch, _, _ = await _proactive_started(
        session, surveys.TRIGGER_FIRST_ORDER, OrderStatus.placed
    )
    events, messages = await run(
        ValidateSurveyForm(),
        _proactive_answer("hello", "survey_source", dispatch.id, "first_order"),
    )
    assert slot_events(events) == {
        "survey_source": None,
        "survey_retries": 1.0,
        "requested_slot": "survey_source",
    }
    assert "search engine, social media, a friend" in messages[0]["text"]

    events, _ = await run(
        ValidateSurveyForm(),
        _proactive_answer(
            "just tell me where A81402 is",
            "survey_source",
            dispatch.id,
            "first_order",
            survey_retries=1.0,
        ),
    )
    assert slot_events(events)["survey_source"] == "skipped"
    assert (await session.scalars(select(Feedback))).all() == []


def _read_as(
    text: str, requested: str, dispatch_id: float, intent: str, confidence: float, **slots: object
) -> Tracker:
    """A survey question answered with a message the NLU read as `intent` (a request the
    question's mapping leaves out, so nothing was extracted by Rasa)."""
    state = tracker(
        "conv-1",
        text,
        intent,
        {
            **VERIFIED,
            "survey_kind": "csat",
            "survey_dispatch_id": dispatch_id,
            "requested_slot": requested,
            **slots,
        },
        active_loop="survey_form",
    )
    state.latest_message["intent"]["confidence"] = confidence
    state.latest_message["intent_ranking"] = [
        {"name": intent, "confidence": confidence},
        {"name": "complain", "confidence": round(1 - confidence, 2)},
    ]
    return state


REMARK = "your website checkout kept logging me out, took 3 tries to pay"
PILING_UP = "too much coffee piling up in the cupboard"


async def test_a_remark_read_as_a_request_is_the_comment_at_the_comment_question(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    await run(ValidateSurveyForm(), _answer("2", "survey_score", dispatch_id))
    events, _ = await run(
        ValidateSurveyForm(),
        _read_as(
            PILING_UP, "survey_comment", dispatch_id, "product_question", 0.95, survey_score="2"
        ),
    )
    assert slot_events(events)["survey_comment"] == "given"
    comments = (
        await session.scalars(select(Feedback).where(Feedback.kind == FeedbackKind.comment))
    ).all()
    assert [row.text for row in comments] == [PILING_UP]


async def test_a_question_at_the_comment_question_gives_way(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    events, messages = await run(
        ValidateSurveyForm(),
        _read_as("can i return the shirt", "survey_comment", dispatch_id, "return_item", 0.95),
    )
    assert "survey_comment" not in slot_events(events) and messages == []
    assert (await session.scalars(select(Feedback))).all() == []


async def test_a_clear_request_at_a_score_question_gives_way(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    events, _ = await run(
        ValidateSurveyForm(),
        _read_as(REMARK, "survey_score", dispatch_id, "billing_issue", 0.95),
    )
    assert "survey_score" not in slot_events(events)
    assert (await session.scalars(select(Feedback))).all() == []


async def test_an_unclear_remark_at_a_score_question_is_a_comment_and_the_score_is_asked_again(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    events, messages = await run(
        ValidateSurveyForm(),
        _read_as(REMARK, "survey_score", dispatch_id, "billing_issue", 0.62),
    )
    slots = slot_events(events)
    assert (slots["survey_score"], slots["survey_comment"]) == (None, "given")
    assert [m["text"] for m in messages] == ["I'm sorry to hear that. I've noted it for the team."]
    rows = (await session.scalars(select(Feedback))).all()
    assert [(row.kind, row.text) for row in rows] == [(FeedbackKind.comment, REMARK)]


async def test_a_trigger_is_never_taken_back_as_an_answer(
    session: AsyncSession, action_services: object
) -> None:
    """An agent resolving while a survey question was open: Rasa's trigger text "EXTERNAL:
    EXTERNAL_support_resolved" (no intent ranking) was stored as the survey's comment."""
    _, dispatch_id = await _survey_started(session)
    state = tracker(
        "conv-1",
        "EXTERNAL: EXTERNAL_support_resolved",
        "EXTERNAL_support_resolved",
        {
            **VERIFIED,
            "survey_kind": "csat",
            "survey_dispatch_id": dispatch_id,
            "requested_slot": "survey_score",
        },
        active_loop="survey_form",
    )
    state.latest_message["intent_ranking"] = []
    events, messages = await run(ValidateSurveyForm(), state)
    assert "survey_score" not in slot_events(events) and messages == []
    assert (await session.scalars(select(Feedback))).all() == []


async def test_the_other_order_at_a_score_question_ends_the_survey_and_is_put_back(
    session: AsyncSession, action_services: object
) -> None:
    """sv51: "the other one" right after a status answer and its CSAT question is about the
    customer's other order: no score, no comment, the survey ends unanswered and the message
    is put back to be served as itself (data/rules/smalltalk.yml, then action_support_request)."""
    _, dispatch_id = await _survey_started(session)
    answer = _answer("the other one", "survey_score", dispatch_id, support_request="order_status")

    events, messages = await run(ValidateSurveyForm(), answer)

    assert slot_events(events) == {
        "survey_score": None,
        "survey_declined": True,
        "survey_set_aside": True,
        "requested_slot": None,
    }
    assert messages == []
    answer.slots.update(survey_declined=True, survey_set_aside=True)
    events, messages = await run(ActionSubmitSurvey(), answer)
    assert messages == []
    assert slot_events(events)["survey_set_aside"] is False
    assert [(e["event"], e.get("name") or e.get("text")) for e in events[-2:]] == [
        ("action", "action_listen"),
        ("user", "the other one"),
    ]
    assert (await session.scalars(select(Feedback))).all() == []
    dispatch = await session.get(SurveyDispatch, int(dispatch_id))
    assert dispatch is not None and dispatch.answered_at is None


async def test_a_follow_up_question_at_a_score_or_comment_question_is_put_back(
    session: AsyncSession, action_services: object
) -> None:
    """Tester: "ok and the mugs?" at "How satisfied…?" and "can i get it delivered to a
    packstation instead" at the comment question were stored as comments."""
    _, dispatch_id = await _survey_started(session)

    score_events, _ = await run(
        ValidateSurveyForm(), _answer("ok and the mugs?", "survey_score", dispatch_id)
    )
    comment_events, _ = await run(
        ValidateSurveyForm(),
        _answer("can i get it delivered to a packstation instead", "survey_comment", dispatch_id),
    )

    assert slot_events(score_events)["survey_set_aside"] is True
    assert slot_events(comment_events)["survey_set_aside"] is True
    assert (await session.scalars(select(Feedback))).all() == []


async def test_a_long_remark_naming_an_order_is_still_the_comment(
    session: AsyncSession, action_services: object
) -> None:
    _, dispatch_id = await _survey_started(session)
    text = "A10001 came with a cracked lid and the box was soaked"

    events, _ = await run(
        ValidateSurveyForm(),
        _answer(text, "survey_comment", dispatch_id, support_request="order_status"),
    )

    assert "survey_declined" not in slot_events(events)
    assert [row.text for row in (await session.scalars(select(Feedback))).all()] == [text]


async def test_undo_at_the_churn_question_and_an_ask_at_a_score_are_set_aside(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4: "oh no wait undo that, i pressed the wrong button" at "May I ask why you're
    cancelling?" was stored as the churn reason (tw4_30); "ok well can you reorder it for me
    then" at "How satisfied…?" as a comment (tw4_05); "actually where is my refund for the
    kettle" at the comment question as the comment (tw4_44)."""
    _, dispatch_id = await _survey_started(session)

    undo, _ = await run(
        ValidateSurveyForm(),
        _answer(
            "oh no wait undo that, i pressed the wrong button",
            "survey_comment",
            dispatch_id,
            survey_kind="churn_reason",
            support_request="cancel_subscription",
        ),
    )
    ask, _ = await run(
        ValidateSurveyForm(),
        _answer("ok well can you reorder it for me then", "survey_score", dispatch_id),
    )
    refund, _ = await run(
        ValidateSurveyForm(),
        _answer("actually where is my refund for the kettle", "survey_comment", dispatch_id),
    )
    scored, _ = await run(
        ValidateSurveyForm(),
        _answer("4, can you be quicker next time?", "survey_score", dispatch_id),
    )

    assert slot_events(undo)["survey_set_aside"] is True
    assert slot_events(ask)["survey_set_aside"] is True
    assert slot_events(refund)["survey_set_aside"] is True
    assert "survey_set_aside" not in slot_events(scored)  # a score with an ask: the answer
    kinds = (await session.scalars(select(Feedback.kind))).all()
    assert sorted(kinds) == [FeedbackKind.comment, FeedbackKind.csat]  # the score + its remark


async def test_feedback_given_with_the_wish_to_give_it_is_kept_as_the_comment(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4 (tw4_24): "i want to give feedback on your chat, it is a bit slow", then "no
    i dont want to rate anything": the remark was lost."""
    from actions.surveys import ActionStartFeedbackSurvey

    owner = await factories.customer(session, email="jane.doe@example.com")
    session.add(Conversation(id="conv-1", customer_id=owner.id))
    await session.commit()
    said = "i want to give feedback on your chat, it is a bit slow"

    events, messages = await run(
        ActionStartFeedbackSurvey(), tracker("conv-1", said, "give_feedback", {})
    )

    slots = slot_events(events)
    assert (slots["next_step"], slots["survey_comment"]) == ("survey", "given")
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.text) for r in rows] == [(FeedbackKind.comment, "it is a bit slow")]
    assert messages[0]["text"] == "We'd love to hear it: we read every answer."

    # the wish alone keeps nothing
    await run(ActionStartFeedbackSurvey(), tracker("conv-1", "Leave feedback", "give_feedback", {}))
    assert len((await session.scalars(select(Feedback))).all()) == 1


async def test_a_bare_score_after_the_survey_was_set_aside_is_its_score(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4 (tw4_03): the CSAT question was set aside by "actually can u resume it";
    once that was done, "4" got "Thanks for the details. A person from our team can look
    into this" and "no?? i was giving you 4 stars" an order's status."""
    from actions.support import ActionSupportRequest

    _, dispatch_id = await _survey_started(session)
    slots = {**VERIFIED, "support_request": "resume_subscription", "next_step": "done"}

    _, messages = await run(ActionSupportRequest(), tracker("conv-1", "4", "inform", slots))

    assert [m["text"] for m in messages] == ["Thanks, I've noted your score of 4."]
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.score, r.survey_dispatch_id) for r in rows] == [
        (FeedbackKind.csat, 4, int(dispatch_id))
    ]
    # the same score again is acknowledged, not stored twice; another bare number changes
    # nothing (tester 8: a CSAT 2 with its escalation became a 5), said as a correction it
    # does (tester 8, tw8_11)
    _, again = await run(ActionSupportRequest(), tracker("conv-1", "4", "inform", slots))
    assert [m["text"] for m in again] == ["Thanks, I've noted your score of 4."]
    _, bare = await run(ActionSupportRequest(), tracker("conv-1", "2", "inform", slots))
    assert "2" not in " ".join(m["text"] or "" for m in bare)
    session.expire_all()  # the action changes rows in its own session
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.score) for r in rows] == [(FeedbackKind.csat, 4)]
    meant = tracker("conv-1", "sorry i meant 2", "inform", slots)
    _, other = await run(ActionSupportRequest(), meant)
    assert [m["text"] for m in other] == ["Got it, I've changed your answer to 2."]
    session.expire_all()
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.score) for r in rows] == [(FeedbackKind.csat, 2)]


@pytest.mark.parametrize(("text", "stored"), [("great thanks", [5]), ("thanks", [])])
async def test_thanks_with_a_score_in_words_ends_the_survey_and_keeps_the_score(
    session: AsyncSession, action_services: object, text: str, stored: list[int]
) -> None:
    """ "great thanks" at "How satisfied…?" is read as thanks, which ends the survey (a
    rule); the survey ended with nothing stored."""
    _, dispatch_id = await _survey_started(session)
    state = tracker(
        "conv-1",
        text,
        "thank",
        {**VERIFIED, "survey_kind": "csat", "survey_dispatch_id": dispatch_id},
    )

    await run(ActionSubmitSurvey(), state)

    rows = (await session.scalars(select(Feedback))).all()
    assert [row.score for row in rows if row.kind is FeedbackKind.csat] == stored


async def _first_order_survey(session: AsyncSession) -> float:
    """A first-order survey accepted in conv-1: how they heard about us, then the CSAT."""
    owner = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, owner, "A10001", OrderStatus.placed)
    session.add(Conversation(id="conv-1", customer_id=owner.id, order_id=order.id))
    lifecycle = await lifecycle_for_order(session, order)
    dispatch = SurveyDispatch(
        customer_id=owner.id,
        lifecycle_id=lifecycle.id,
        conversation_id="conv-1",
        trigger=surveys.TRIGGER_FIRST_ORDER,
        survey_kind=FeedbackKind.discovery_source,
        created_at=utcnow(),
        sent_at=utcnow(),
        accepted_at=utcnow(),
    )
    session.add(dispatch)
    await session.commit()
    return float(dispatch.id)


def _source_answer(text: str, intent: str, dispatch_id: float, **slots: object) -> Tracker:
    return tracker(
        "conv-1",
        text,
        intent,
        {
            **VERIFIED,
            "survey_kind": surveys.FLOW_FIRST_ORDER,
            "survey_dispatch_id": dispatch_id,
            "requested_slot": "survey_source",
            **slots,
        },
        active_loop="survey_form",
    )


async def test_a_source_named_in_words_read_as_a_complaint_is_the_answer(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 7 (tw7_13): "got an email from you guys" (complain 0.74) at "How did you first
    hear about us?" was stored as a complaint and the survey dropped."""
    dispatch_id = await _first_order_survey(session)
    state = _source_answer("got an email from you guys", "complain", dispatch_id)

    extracted = await ValidateSurveyForm().extract_survey_source(None, state, domain())

    assert extracted == {"survey_source": "got an email from you guys"}
    # a question still wins
    asked = _source_answer("can you email me the invoice?", "billing_issue", dispatch_id)
    assert await ValidateSurveyForm().extract_survey_source(None, asked, domain()) == {}


async def test_the_source_corrected_at_the_next_question(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 7 (tw7_14): "google", then "no wait it was a tiktok ad" at the CSAT question
    was stored as a comment and the source stayed "search"."""
    dispatch_id = await _first_order_survey(session)
    await proactive.answer_source(session, "conv-1", dispatch_id, "google")
    await session.commit()
    fix = tracker(
        "conv-1",
        "no wait it was a tiktok ad",
        "inform",
        {
            **VERIFIED,
            "survey_kind": surveys.FLOW_FIRST_ORDER,
            "survey_dispatch_id": dispatch_id,
            "survey_source": "search",
            "requested_slot": "survey_score",
        },
        active_loop="survey_form",
        extracted={"survey_score": "no wait it was a tiktok ad"},
    )

    events, messages = await run(ValidateSurveyForm(), fix)

    slots = slot_events(events)
    assert (slots["survey_score"], slots["survey_source"]) == (None, "ad")
    assert [m["text"] for m in messages] == ["Got it, I've corrected where you heard about us."]
    session.expire_all()
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.text) for r in rows] == [
        (FeedbackKind.discovery_source, "no wait it was a tiktok ad")
    ]
    customer = (await session.scalars(select(Customer))).one()
    assert customer.acquisition_source is AcquisitionSource.ad


async def test_a_comment_after_a_retried_score_skips_the_score(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 7 (tw7_06): "👎" (asked once more), then "your website is so slow": kept as
    the comment, and the score was asked a third time."""
    _, dispatch_id = await _survey_started(session)
    state = _answer("your website is so slow", "survey_score", dispatch_id, survey_retries=1.0)
    state.latest_message["intent"] = {"name": "complain", "confidence": 0.95}

    events, _ = await run(ValidateSurveyForm(), state)

    slots = slot_events(events)
    assert slots["survey_score"] == "skipped"
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.text) for r in rows] == [(FeedbackKind.comment, "your website is so slow")]


async def test_why_at_the_score_question_is_answered_there(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 7 (tw7_01): "why do you care" at the in-chat CSAT was set aside as a question
    and answered with a help-centre article on knife care."""
    _, dispatch_id = await _survey_started(session)

    events, messages = await run(
        ValidateSurveyForm(), _answer("why do you care", "survey_score", dispatch_id)
    )

    slots = slot_events(events)
    assert slots["survey_score"] is None and not slots.get("survey_set_aside")
    assert messages[0]["text"].startswith("It helps us")
    assert (await session.scalars(select(Feedback))).all() == []


async def test_a_source_given_after_the_question_gave_way_is_kept(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 7 (tw7_15): the return policy asked at "How did you first hear about us?" was
    answered (the survey gave way); "ok. i found you on pinterest" then got "Okay. Anything
    else?" and nothing was stored."""
    dispatch_id = await _first_order_survey(session)

    turn = await proactive.late_source(session, "conv-1", "ok. i found you on pinterest")
    await session.commit()

    assert turn is not None and turn.messages[0][0].startswith("Thanks, I've noted how you found")
    rows = (await session.scalars(select(Feedback))).all()
    assert [(r.kind, r.survey_dispatch_id) for r in rows] == [
        (FeedbackKind.discovery_source, int(dispatch_id))
    ]
    # answered once: a second mention is no answer to anything
    assert await proactive.late_source(session, "conv-1", "pinterest again lol") is None
    # a question naming a source is a question
    assert await proactive.late_source(session, "other-conv", "do you sell on instagram?") is None


async def test_a_yes_with_the_first_answer_in_it_keeps_the_answer(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 8 (tw8_02): "sure, found u on tiktok" at the first-order offer asked "How did
    you first hear about us?" anyway, and took the next "5" for the source."""
    dispatch_id = await _first_order_survey(session)
    state = tracker(
        "conv-1",
        "sure, found u on tiktok",
        "affirm",
        {
            **VERIFIED,
            "awaiting": "survey_consent",
            "survey_kind": surveys.FLOW_FIRST_ORDER,
            "survey_dispatch_id": dispatch_id,
        },
    )

    events, _ = await run(ActionAnswerSurveyConsent(), state)

    slots = slot_events(events)
    assert (slots["next_step"], slots["survey_source"]) == ("survey", "social")
    session.expire_all()
    customer = (await session.scalars(select(Customer))).one()
    assert customer.acquisition_source is AcquisitionSource.social


async def test_a_correction_with_its_reason_keeps_the_reason(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 8 (tw8_21): "actually make that a 3, the site was slow" changed the score and
    dropped the reason."""
    _, dispatch_id = await _survey_started(session)
    await run(ValidateSurveyForm(), _answer("5", "survey_score", dispatch_id))

    await run(
        ValidateSurveyForm(),
        _answer(
            "actually make that a 3, the site was slow",
            "survey_comment",
            dispatch_id,
            survey_score="5",
        ),
    )

    session.expire_all()
    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(r.kind, r.score, r.text) for r in rows] == [
        (FeedbackKind.csat, 3, None),
        (FeedbackKind.comment, None, "the site was slow"),
    ]
