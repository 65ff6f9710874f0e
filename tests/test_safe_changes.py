"""Safe account changes (issue #17 item 1): the confidence gate, confirmations that name
the change, anything but a clear yes changes nothing, resume, refunds, pause-until and
policy answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.support import (
    ActionAnswerPolicyQuestion,
    ActionDropPending,
    ActionResolvePending,
    ActionSupportRequest,
)
from bot.config import Settings
from bot.domain import knowledge, refusals, support, understanding
from bot.domain.enums import EscalationReason, OrderStatus, SubscriptionStatus
from bot.storage.models import (
    AuditLog,
    Conversation,
    Escalation,
    Order,
    Subscription,
    SurveyDispatch,
    utcnow,
)
from tests import factories
from tests.rasa_helpers import nlu_ranking, ranked_tracker, run, slot_events, tracker

T, M = Settings().intent_confidence_threshold, Settings().intent_margin
UTC = timezone.utc
NOW = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)


# --- the confidence rule (pure) -------------------------------------------------------------


def test_settings_defaults() -> None:
    assert (T, M) == (0.80, 0.15)


@pytest.mark.parametrize(
    ("ranking", "clear"),
    [
        (nlu_ranking(("cancel_order", 0.95), ("order_status", 0.03)), True),
        (nlu_ranking(("cancel_order", 0.80), ("order_status", 0.65)), True),
        (nlu_ranking(("cancel_order", 0.79), ("order_status", 0.10)), False),  # below the threshold
        (nlu_ranking(("cancel_order", 0.86), ("resume_subscription", 0.72)), False),  # margin 0.14
        (
            nlu_ranking(("order_status", 0.03), ("cancel_order", 0.95)),
            True,
        ),  # order does not matter
        (nlu_ranking(("cancel_order", 0.99)), True),
        ([], False),
    ],
)
def test_is_clear(ranking: list[dict[str, Any]], clear: bool) -> None:
    assert understanding.is_clear(ranking, T, M) is clear


@pytest.mark.parametrize(
    ("text", "ranking", "yes"),
    [
        ("yes", nlu_ranking(("affirm", 0.99), ("deny", 0.005)), True),
        ("yes please go ahead", nlu_ranking(("affirm", 0.97)), True),
        ("yes", nlu_ranking(("affirm", 0.62), ("deny", 0.30)), False),
        # Not loosened for a yes-opening: with it the held-out set showed a wrong account
        # change (docs/benchmarks.md), so an unsure "yes cancel it" still changes nothing.
        ("yes cancel it", nlu_ranking(("affirm", 0.55), ("cancel_order", 0.40)), False),
        ("ok nevermind, keep the order, dont cancel", nlu_ranking(("affirm", 0.95)), False),
        ("yes but don't cancel the mug", nlu_ranking(("affirm", 0.95)), False),
        ("yeah no", nlu_ranking(("affirm", 0.95)), False),
        ("wait", nlu_ranking(("affirm", 0.95)), False),
        ("no", nlu_ranking(("deny", 0.99)), False),
        ("cancel my order", nlu_ranking(("cancel_order", 0.99)), False),
    ],
)
def test_is_clear_yes(text: str, ranking: list[dict[str, Any]], yes: bool) -> None:
    assert understanding.is_clear_yes(text, ranking, T, M) is yes


def test_clarification_offers_the_likeliest_meanings_and_something_else() -> None:
    ranking = nlu_ranking(
        ("cancel_subscription", 0.48),
        ("nlu_fallback", 0.45),
        ("resume_subscription", 0.40),
        ("pause_subscription", 0.07),
        ("order_status", 0.03),
    )
    assert understanding.clarification_buttons(ranking) == [
        {"title": "Cancel my subscription", "payload": "cancel my subscription"},
        {"title": "Resume my subscription", "payload": "resume my subscription"},
        {"title": "Pause my subscription", "payload": "pause my subscription"},
        {"title": "Something else", "payload": "something else"},
    ]


# --- pause until a date (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "restart"),
    [
        ("pause until march", datetime(2027, 3, 1, tzinfo=UTC)),
        ("can i pause my coffee box till feb", datetime(2027, 2, 1, tzinfo=UTC)),
        ("skip january", datetime(2027, 2, 1, tzinfo=UTC)),
        ("skip december", datetime(2027, 1, 1, tzinfo=UTC)),
        ("pause it till the 15th of january", datetime(2027, 1, 15, tzinfo=UTC)),
        # "mid" is the 15th (tester: "till mid january" was 1 January)
        ("ok whatever just pause it till mid january", datetime(2027, 1, 15, tzinfo=UTC)),
        ("pause till mid-march", datetime(2027, 3, 15, tzinfo=UTC)),
        ("pause my sub", None),
        ("hey can i put my coffee box on hold", None),
        ("pause until 2029-01-01", None),  # more than a year ahead
        # a length counts from today (NOW: 6 December 2026, 19:00)
        ("can i pause for a month pls", datetime(2027, 1, 6, tzinfo=UTC)),
        ("pause it for 2 weeks", datetime(2026, 12, 20, tzinfo=UTC)),
        ("pause for three months", datetime(2027, 3, 6, tzinfo=UTC)),
        ("pause for 20 months", None),  # more than a year
        # "skip the next box" names no date: support.skip_next_restart decides
        ("can i skip next months coffee box", None),
        ("skip the next box", None),
        # a month one or two letters off (tester 9, tw9_02: the pause had no end)
        ("pause my coffe box till febuary", datetime(2027, 2, 1, tzinfo=UTC)),
        ("pause until janurary", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_pause_until(text: str, restart: datetime | None) -> None:
    assert support.parse_pause_until(text, NOW) == restart


def _subscription(status: SubscriptionStatus, resume_on: datetime | None = None) -> Subscription:
    return Subscription(
        customer_id=1,
        plan="Coffee Explorer Box",
        price=24,
        currency="EUR",
        status=status,
        started_at=NOW - timedelta(days=95),
        current_period_start=NOW - timedelta(days=5),
        current_period_end=NOW + timedelta(days=25),
        resume_on=resume_on,
    )


def test_subscription_confirmations_name_the_change() -> None:
    active = _subscription(SubscriptionStatus.active)
    paused = _subscription(SubscriptionStatus.paused, datetime(2027, 3, 1, tzinfo=UTC))
    pause = support.subscription_flow(
        "pause_subscription", active, datetime(2027, 3, 1, tzinfo=UTC)
    )
    assert (pause.reply, pause.pending_action) == (
        "Pause your Coffee Explorer Box subscription until 1 March 2027? Nothing will be "
        "charged or shipped until then; deliveries restart on 1 March 2027.",
        "pause_subscription",
    )
    resume = support.subscription_flow("resume_subscription", paused)
    assert (resume.reply, resume.pending_action) == (
        "Resume your Coffee Explorer Box subscription now? Deliveries restart with the next "
        "box and the 24.00 EUR monthly charge starts again.",
        "resume_subscription",
    )
    not_paused = support.subscription_flow("resume_subscription", active)
    assert (not_paused.next_step, not_paused.pending_action) == (support.NextStep.survey, None)
    assert not_paused.reply.startswith("Your Coffee Explorer Box subscription is active")
    again = support.subscription_flow("pause_subscription", paused)
    assert (
        again.reply == "Your Coffee Explorer Box subscription is already paused until 1 March 2027."
    )


# --- policies (pure) ----------------------------------------------------------------------------


# --- actions, with the database -----------------------------------------------------------------

VERIFIED = {"identity": "verified", "order_number": "A10001", "email": "jane.doe@example.com"}


async def _customer(
    session: AsyncSession, status: OrderStatus | None = OrderStatus.placed
) -> Order | None:
    owner = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, owner, "A10001", status) if status else None
    session.add(
        Conversation(id="conv-1", customer_id=owner.id, order_id=order.id if order else None)
    )
    await session.commit()
    return order


async def _subscriber(session: AsyncSession, status: SubscriptionStatus) -> Subscription:
    owner = await factories.customer(session, email="jane.doe@example.com")
    subscription = await factories.subscription(session, owner, status)
    session.add(Conversation(id="conv-1", customer_id=owner.id))
    await session.commit()
    return subscription


async def test_unclear_cancel_asks_what_was_meant_and_opens_no_confirmation(
    session: AsyncSession, action_services: object
) -> None:
    order = await _customer(session)
    state = ranked_tracker(
        "conv-1",
        "resume my order??",
        [("cancel_order", 0.71), ("order_status", 0.2), ("resume_subscription", 0.05)],
        {**VERIFIED, "support_request": "cancel_order"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert slot_events(events) == {"next_step": "done", "awaiting": "nothing", "return_draft": None}
    assert messages[0]["text"] == "I want to be sure I do the right thing. What did you mean?"
    assert messages[0]["buttons"] == [
        {"title": "Cancel an order", "payload": "i want to cancel my order"},
        {"title": "Where is my order?", "payload": "where is my order"},
        {"title": "Resume my subscription", "payload": "resume my subscription"},
        {"title": "Something else", "payload": "something else"},
    ]
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.placed


async def test_an_unsure_request_that_would_change_nothing_is_served(
    session: AsyncSession, action_services: object
) -> None:
    """sf16: "just refund me for A10001 i dont want it anymore" (request_refund 0.75) on a
    parcel still on its way opens no change whatever it meant: the return after delivery is
    explained instead of "What did you mean?"."""
    order = await _customer(session, OrderStatus.shipped)
    assert order is not None
    order.estimated_delivery = utcnow() + timedelta(days=2)  # on its way, not late
    await session.commit()
    text = "just refund me for A10001 i dont want it anymore"
    state = ranked_tracker(
        "conv-1",
        text,
        [("request_refund", 0.75), ("cancel_order", 0.15), ("refund_status", 0.05)],
        {**VERIFIED, "support_request": "request_refund"},
        entities=[{"entity": "order_number", "value": "A10001"}],
    )

    events, messages = await run(ActionSupportRequest(), state)

    said = " ".join(m["text"] or "" for m in messages)
    assert "What did you mean" not in said
    assert "A10001" in said and "return" in said.lower()
    assert slot_events(events)["pending_action"] is None
    await session.refresh(order)
    assert order.status is OrderStatus.shipped


async def test_an_unsure_request_that_would_open_a_change_leaves_no_trace(
    session: AsyncSession, action_services: object
) -> None:
    """The trial run of an unsure change is rolled back: no return draft, no survey asked."""
    order = await _customer(session, OrderStatus.delivered)
    state = ranked_tracker(
        "conv-1",
        "take the order back i guess",
        [("return_item", 0.55), ("order_status", 0.30)],
        {**VERIFIED, "support_request": "return_item"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"] == "I want to be sure I do the right thing. What did you mean?"
    assert slot_events(events) == {"next_step": "done", "awaiting": "nothing", "return_draft": None}
    assert (await session.scalars(select(SurveyDispatch))).all() == []
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.delivered


async def test_resume_misread_as_cancel_with_a_close_runner_up_opens_no_cancel_prompt(
    session: AsyncSession, action_services: object
) -> None:
    subscription = await _subscriber(session, SubscriptionStatus.paused)
    state = ranked_tracker(
        "conv-1",
        "start my coffee again",
        [("cancel_subscription", 0.83), ("resume_subscription", 0.75)],
        {**VERIFIED, "support_request": "cancel_subscription"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert "awaiting" not in slot_events(events) or slot_events(events)["awaiting"] == "nothing"
    assert "pending_action" not in slot_events(events)
    assert "Shall I" not in messages[0]["text"] and "Cancel your" not in messages[0]["text"]
    assert [b["payload"] for b in messages[0]["buttons"]] == [
        "cancel my subscription",
        "resume my subscription",
        "something else",
    ]
    await session.refresh(subscription)
    assert subscription.status is SubscriptionStatus.paused


async def test_the_request_message_is_judged_after_the_identity_check(
    session: AsyncSession, action_services: object
) -> None:
    """After the form the latest message is the email: the request's own ranking counts."""
    await _customer(session)
    request = {
        "text": "cancel it i guess",
        "intent": {"name": "cancel_order", "confidence": 0.6},
        "intent_ranking": nlu_ranking(("cancel_order", 0.6), ("order_status", 0.3)),
    }
    state = tracker(
        "conv-1", "jane.doe@example.com", "inform", {**VERIFIED, "support_request": "cancel_order"}
    )
    state.events.insert(0, {"event": "user", "text": "cancel it i guess", "parse_data": request})
    state.latest_action_name = "identity_form"  # the check just ended

    events, messages = await run(ActionSupportRequest(), state)

    assert slot_events(events)["awaiting"] == "nothing"
    assert messages[0]["text"] == "I want to be sure I do the right thing. What did you mean?"


async def test_clear_pause_until_march_names_the_date_then_stores_it(
    session: AsyncSession, action_services: object
) -> None:
    subscription = await _subscriber(session, SubscriptionStatus.active)
    state = tracker(
        "conv-1",
        "pause my subscription until march",
        "pause_subscription",
        {**VERIFIED, "support_request": "pause_subscription"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    slots = slot_events(events)
    restart = support.parse_pause_until("pause my subscription until march", utcnow())
    assert restart is not None and restart.day == 1 and restart.month == 3
    assert (slots["awaiting"], slots["pending_action"], slots["pause_until"]) == (
        "confirmation",
        "pause_subscription",
        restart.isoformat(),
    )
    day = restart.strftime("%-d %B %Y")
    assert messages[0]["text"].startswith(
        f"Pause your Coffee Explorer Box subscription until {day}?"
    )

    yes = tracker("conv-1", "yes", "affirm", {**VERIFIED, **slots})
    events, messages = await run(ActionResolvePending(), yes)

    await session.refresh(subscription)
    assert subscription.status is SubscriptionStatus.paused
    assert subscription.resume_on == restart
    assert messages[0]["text"] == (
        f"Done: your Coffee Explorer Box subscription is paused until {day}. Deliveries "
        f"restart on {day}; tell me any time if you want them back sooner."
    )
    assert slot_events(events)["pause_until"] is None
    audit = (await session.scalars(select(AuditLog))).one()
    assert (audit.action, audit.details) == (
        "pause_subscription",
        {"via": "chat", "resume_on": restart.date().isoformat()},
    )


async def test_confirmed_resume_reactivates_the_subscription(
    session: AsyncSession, action_services: object
) -> None:
    subscription = await _subscriber(session, SubscriptionStatus.paused)
    subscription.paused_at, subscription.resume_on = utcnow(), utcnow() + timedelta(days=30)
    await session.commit()
    state = tracker(
        "conv-1",
        "yes",
        "affirm",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "resume_subscription"},
    )

    _events, messages = await run(ActionResolvePending(), state)

    await session.refresh(subscription)
    after: tuple[SubscriptionStatus, datetime | None, datetime | None] = (
        subscription.status,
        subscription.paused_at,
        subscription.resume_on,
    )
    assert after == (
        SubscriptionStatus.active,
        None,
        None,
    )
    assert messages[0]["text"].startswith(
        "Done: your Coffee Explorer Box subscription is active again."
    )
    audit = (await session.scalars(select(AuditLog))).one()
    assert audit.action == "resume_subscription"


@pytest.mark.parametrize(
    "text", ["yes but dont cancel", "ok nevermind, keep the order, dont cancel", "yeah wait"]
)
async def test_a_yes_with_a_no_in_it_changes_nothing(
    session: AsyncSession, action_services: object, text: str
) -> None:
    order = await _customer(session)
    state = tracker(
        "conv-1",
        text,
        "affirm",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    events, messages = await run(ActionResolvePending(), state)

    assert messages[0]["text"] == "Okay, I haven't changed anything. Anything else I can help with?"
    assert slot_events(events)["awaiting"] == "nothing"
    assert slot_events(events)["pending_action"] is None
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.placed
    assert (await session.scalars(select(AuditLog))).all() == []


async def test_an_unsure_yes_changes_nothing(
    session: AsyncSession, action_services: object
) -> None:
    order = await _customer(session)
    state = ranked_tracker(
        "conv-1",
        "mm ya maybe",
        [("affirm", 0.55), ("deny", 0.35)],
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    _events, messages = await run(ActionResolvePending(), state)

    assert messages[0]["text"] == "Okay, I haven't changed anything. Anything else I can help with?"
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.placed


async def test_a_bare_ya_is_a_yes_however_unsure_the_nlu(
    session: AsyncSession, action_services: object
) -> None:
    """sf31: "ya" read as affirm at 0.72 with greet behind it was taken for a no."""
    order = await _customer(session)
    state = ranked_tracker(
        "conv-1",
        "ya",
        [("affirm", 0.55), ("deny", 0.35)],
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    await run(ActionResolvePending(), state)

    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.cancelled


async def test_another_message_drops_the_pending_change_and_is_served_again() -> None:
    state = tracker(
        "conv-1",
        "do you do gift wrapping",
        "policy_question",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == [{**messages[0], "response": "utter_nothing_changed"}]
    assert events[:4] == [
        {"event": "slot", "timestamp": None, "name": "awaiting", "value": "nothing"},
        {"event": "slot", "timestamp": None, "name": "pending_action", "value": None},
        {"event": "slot", "timestamp": None, "name": "pause_until", "value": None},
        {"event": "slot", "timestamp": None, "name": "next_step", "value": "done"},
    ]
    assert events[4]["event"] == "action" and events[4]["name"] == "action_listen"
    assert events[5]["event"] == "user"
    assert events[5]["text"] == "do you do gift wrapping"
    assert events[5]["parse_data"]["intent"]["name"] == "policy_question"


async def test_another_support_request_while_a_change_waits_says_it_was_dropped(
    session: AsyncSession, action_services: object
) -> None:
    order = await _customer(session)
    state = tracker(
        "conv-1",
        "where is my order",
        "order_status",
        {
            **VERIFIED,
            "support_request": "order_status",
            "awaiting": "confirmation",
            "pending_action": "cancel_order",
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"] == "Okay, I haven't changed anything."
    assert messages[1]["text"].startswith("Order A10001 (")
    slots = slot_events(events)
    assert (slots["awaiting"], slots["pending_action"]) == ("nothing", None)
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.placed


@pytest.mark.parametrize(
    ("status", "return_requested", "pending", "start"),
    [
        (
            OrderStatus.delivered,
            False,
            "return_item",
            "Start a free return of order A10001 (2× Stoneware Mug) for a refund of 59.90 EUR?",
        ),
        (OrderStatus.placed, False, "cancel_order", "Order A10001 hasn't shipped yet"),
        (OrderStatus.delivered, True, None, "Your return for order A10001 was opened on"),
        (OrderStatus.refunded, False, None, "Your refund of 59.90 EUR for order A10001"),
    ],
)
async def test_i_want_a_refund(
    session: AsyncSession,
    action_services: object,
    status: OrderStatus,
    return_requested: bool,
    pending: str | None,
    start: str,
) -> None:
    order = await _customer(session, status)
    assert order is not None
    if return_requested:
        order.return_requested_at = utcnow() - timedelta(days=2)
        await session.commit()
    state = tracker(
        "conv-1",
        "I want a refund",
        "request_refund",
        {**VERIFIED, "support_request": "request_refund"},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"].startswith(start), messages[0]["text"]
    assert slot_events(events).get("pending_action") == pending
    await session.refresh(order)
    assert order.status is status


async def test_policy_question_action_quotes_the_help_centre_article(
    session: AsyncSession, action_services: object
) -> None:
    await knowledge.load_demo(session)
    await session.commit()
    state = tracker("conv-1", "do u ship to ireland", "policy_question")

    events, messages = await run(ActionAnswerPolicyQuestion(), state)

    # what was answered is kept for a follow-up ('and is it free?'; bot/domain/knowledge.py)
    assert slot_events(events) == {"knowledge_focus": "article:shipping-countries"}
    assert messages[0]["text"] == (
        "From our help centre, “Which countries do you ship to?”: “We ship to every EU country "
        "and to the United Kingdom.” Read the article: "
        "https://shop.example.com/help/shipping-countries"
    )


async def test_a_resume_by_the_shop_clears_the_pause_date(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    from tests.test_shop_events import send, sub_event

    await send(session_factory, sub_event("s1", "started", 0))
    async with session_factory() as session:
        sub = (await session.scalars(select(Subscription))).one()
        sub.status, sub.resume_on = SubscriptionStatus.paused, datetime(2027, 3, 1, tzinfo=UTC)
        sub.status_changed_at = sub.started_at
        await session.commit()

    await send(session_factory, sub_event("s2", "started", 24 * 5))

    async with session_factory() as session:
        sub = (await session.scalars(select(Subscription))).one()
        assert (sub.status, sub.resume_on) == (SubscriptionStatus.active, None)


@pytest.mark.parametrize(
    ("text", "ask"),
    [
        ("where is A81402", True),
        ("can i return the shirt", True),
        ("RETURN THE SHIRT", True),
        ("ok and how long do refunds take", True),
        ("is my parcel lost", True),
        ("the jumper is lovely?", True),  # a question mark is a question
        ("your website checkout kept logging me out, took 3 tries to pay", False),
        ("too much coffee piling up in the cupboard", False),
        ("delivery was slow but the mug is great", False),
        ("useless. i just want my money back", True),  # tester 6, tw6_02
        ("just refund me", True),
        ("just so you know the box was wet", False),
        # tester 7 (tw7_05): a remark that opens with the noun, at the comment question
        ("refund took too long", False),
        ("return policy is confusing", False),
        ("cancel", True),
        ("change address pls", True),
        # tester 4 (tw4_31), tester 5 (tw5_25): a contraction, "then" before the ask
        ("ok whats the tracking number again so i can redirect it", True),
        ("ok then i want to return it when it arrives", True),
    ],
)
def test_what_reads_as_an_ask(text: str, ask: bool) -> None:
    assert understanding.reads_as_ask(text) is ask


def test_a_survey_answer_despite_the_intent() -> None:
    clear = [
        {"name": "billing_issue", "confidence": 0.95},
        {"name": "complain", "confidence": 0.03},
    ]
    unclear = [
        {"name": "billing_issue", "confidence": 0.6},
        {"name": "complain", "confidence": 0.3},
    ]
    remark = "checkout kept logging me out"

    def answer(text: str, ranking: list[dict[str, Any]], free_text: bool) -> bool:
        return understanding.survey_answer_despite_intent(text, ranking, 0.8, 0.15, free_text)

    assert answer(remark, unclear, free_text=False) is True
    assert answer(remark, clear, free_text=False) is False  # a clear request wins
    assert answer(remark, clear, free_text=True) is True  # a remark where one was asked for
    assert answer("can you check my bill", unclear, free_text=True) is False
    # sv16: a clear remark on how it went answers the score question (kept as the comment)
    soaked = [
        {"name": "damaged_item", "confidence": 0.94},
        {"name": "delivery_problem", "confidence": 0.04},
    ]
    rain = "the driver left it in the rain and the box was soaked through"
    assert answer(rain, soaked, free_text=False) is True
    assert answer("the box was soaked, can i return it", soaked, free_text=False) is False
    never = [
        {"name": "delivery_problem", "confidence": 0.95},
        {"name": "complain", "confidence": 0.02},
    ]
    assert answer("my parcel never arrived", never, free_text=False) is False


async def test_another_request_at_the_offer_of_a_person_is_served_without_nothing_changed() -> None:
    """ "Would you like to talk to a person now?" is an offer, not a change: a new request in
    its place is served without "Okay, I haven't changed anything" (it was said before the
    damage answer, in a dev conversation of 2026-12-07)."""
    state = tracker(
        "conv-1",
        "and the lid was cracked",
        "damaged_item",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "offer_human"},
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == []
    assert events[1] == {
        "event": "slot",
        "timestamp": None,
        "name": "pending_action",
        "value": None,
    }


def test_only_account_changes_are_changes() -> None:
    from bot.domain import chat

    assert chat.is_change("cancel_order") and chat.is_change("pause_subscription")
    assert not chat.is_change("offer_human") and not chat.is_change(None)


@pytest.mark.parametrize(
    ("pending", "said_first"),
    [("offer_human", None), ("cancel_order", "Okay, I haven't changed anything.")],
)
async def test_a_support_request_in_place_of_a_yes_says_nothing_changed_only_for_a_change(
    session: AsyncSession, action_services: object, pending: str, said_first: str | None
) -> None:
    await _customer(session, OrderStatus.delivered)
    state = ranked_tracker(
        "conv-1",
        "where is my order A10001",
        [("order_status", 0.97), ("delivery_problem", 0.01)],
        {
            **VERIFIED,
            "support_request": "order_status",
            "awaiting": "confirmation",
            "pending_action": pending,
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    texts_said = [m["text"] for m in messages]
    assert ("Okay, I haven't changed anything." in texts_said) == (said_first is not None)
    if said_first:
        assert texts_said[0] == said_first
    assert "A10001" in texts_said[-1]
    assert slot_events(events)["pending_action"] is None


# --- a yes that names the change (sf17: "yes cancel it" was read as no yes at all) ---------


@pytest.mark.parametrize(
    ("text", "pending", "confirms"),
    [
        ("yes cancel it", "cancel_order", True),
        ("Yes, cancel it please", "cancel_order", True),
        ("ok cancel it after all", "cancel_order", True),
        ("yes pause it", "pause_subscription", True),
        ("yes return it", "return_item", True),
        ("yes cancel the subscription", "cancel_order", False),  # names something else
        ("yes but dont cancel", "cancel_order", False),
        ("yes cancel it, no wait", "cancel_order", False),
        ("cancel it", "cancel_order", False),  # no yes
        ("yes cancel", "offer_human", False),
        ("yes cancel it", None, False),
    ],
)
def test_a_yes_that_names_the_change(text: str, pending: str | None, confirms: bool) -> None:
    assert understanding.names_the_yes(text, pending) is confirms


async def test_yes_cancel_it_unread_by_the_nlu_is_put_back_as_the_yes() -> None:
    state = tracker(
        "conv-1",
        "yes cancel it",
        "nlu_fallback",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == []
    assert [e["event"] for e in events] == ["action", "user"]  # no slot reset: still pending
    assert events[1]["text"] == "yes cancel it"
    assert events[1]["parse_data"]["intent"] == {"name": "affirm", "confidence": 1.0}


async def test_yes_cancel_it_read_as_another_cancel_confirms_the_one_asked(
    session: AsyncSession, action_services: object
) -> None:
    order = await _customer(session)
    state = ranked_tracker(
        "conv-1",
        "yes cancel it",
        [("cancel_subscription", 0.55), ("affirm", 0.3)],
        {
            **VERIFIED,
            "support_request": "cancel_subscription",
            "awaiting": "confirmation",
            "pending_action": "cancel_order",
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"] == "Done: order A10001 is cancelled. You won't be charged."
    assert slot_events(events)["pending_action"] is None
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.cancelled


async def test_a_hesitant_yes_that_names_the_change_confirms_it(
    session: AsyncSession, action_services: object
) -> None:
    order = await _customer(session)
    state = ranked_tracker(
        "conv-1",
        "yes cancel it",
        [("affirm", 0.55), ("cancel_order", 0.35)],
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_order"},
    )

    _events, messages = await run(ActionResolvePending(), state)

    assert messages[0]["text"] == "Done: order A10001 is cancelled. You won't be charged."
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.cancelled


async def test_a_length_at_the_pause_question_asks_again_with_the_date() -> None:
    """A tester's "for a month pls" at "Pause your subscription?" was taken as a no."""
    state = tracker(
        "conv-1",
        "for a month pls",
        "nlu_fallback",
        {
            **VERIFIED,
            "awaiting": "confirmation",
            "pending_action": "pause_subscription",
            "support_request": "pause_subscription",
        },
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == []  # not "I haven't changed anything": the pause is being dated
    assert events[-1]["event"] == "user" and events[-1]["text"] == "for a month pls"
    assert events[-1]["parse_data"]["intent"] == {"name": "pause_subscription", "confidence": 1.0}


async def test_the_same_change_asked_again_says_nothing_about_nothing_changed(
    session: AsyncSession, action_services: object
) -> None:
    await _subscriber(session, SubscriptionStatus.active)
    state = ranked_tracker(
        "conv-1",
        "pause it for 2 weeks",
        [("pause_subscription", 0.97), ("cancel_subscription", 0.01)],
        {
            **VERIFIED,
            "support_request": "pause_subscription",
            "awaiting": "confirmation",
            "pending_action": "pause_subscription",
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert len(messages) == 1  # the pause asked again with its date, nothing before it
    assert messages[0]["text"].startswith("Pause your Coffee Explorer Box subscription until")
    assert slot_events(events)["pending_action"] == "pause_subscription"


async def test_refining_the_change_asked_about_is_not_questioned_again(
    session: AsyncSession, action_services: object
) -> None:
    """ "for a month pls" at "Pause your subscription?", read as a pause but unsurely, got
    "What did you mean?" (a dev conversation): it only asks the pause again, dated."""
    subscription = await _subscriber(session, SubscriptionStatus.active)
    state = ranked_tracker(
        "conv-1",
        "for a month pls",
        [("pause_subscription", 0.52), ("inform", 0.4)],
        {
            **VERIFIED,
            "support_request": "pause_subscription",
            "awaiting": "confirmation",
            "pending_action": "pause_subscription",
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert len(messages) == 1
    assert messages[0]["text"].startswith("Pause your Coffee Explorer Box subscription until")
    assert slot_events(events)["pending_action"] == "pause_subscription"
    await session.refresh(subscription)
    assert subscription.status is SubscriptionStatus.active  # nothing without a yes


async def test_a_yes_naming_the_change_just_declined_asks_it_again(
    session: AsyncSession, action_services: object
) -> None:
    """A tester: "cancel A10002 pls" → "hmm actually no keep it" → "wait sorry yes cancel it
    after all" got "What did you mean?" with a "Cancel my subscription" button. It asks the
    order's cancellation again (a yes after a no is not taken as the yes itself)."""
    order = await _customer(session)
    state = ranked_tracker(
        "conv-1",
        "wait sorry yes cancel it after all",
        [("cancel_subscription", 0.48), ("cancel_order", 0.4)],
        {
            **VERIFIED,
            "support_request": "cancel_subscription",
            "declined_change": "cancel_order",
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"].startswith("Cancel order A10001")
    assert slot_events(events)["pending_action"] == "cancel_order"
    assert order is not None
    await session.refresh(order)
    assert order.status is OrderStatus.placed  # asked, not done
    assert understanding.names_the_yes("wait sorry yes cancel it after all", "cancel_order")


# --- a cancellation offers a pause first (issue #19 item 4) -----------------------------------


def test_cancelling_an_active_subscription_offers_a_pause_as_prominently() -> None:
    offer = support.subscription_flow(
        "cancel_subscription", _subscription(SubscriptionStatus.active)
    )

    assert (offer.reply, offer.pending_action) == (
        "Cancel your Coffee Explorer Box subscription (24.00 EUR a month)? You'll keep the "
        "current box; no further charges. If you only need a break, you can pause it instead "
        "and restart whenever you like.",
        "cancel_subscription",
    )
    assert offer.buttons == [
        {"title": "Cancel anyway", "payload": "yes"},
        {"title": "Pause instead", "payload": '/affirm{"switch_to":"pause_subscription"}'},
        {"title": "Keep it as it is", "payload": "no"},
    ]
    # a paused subscription is not offered the pause it already has
    paused = support.subscription_flow(
        "cancel_subscription", _subscription(SubscriptionStatus.paused)
    )
    assert [b["title"] for b in paused.buttons] == ["Yes", "No"]


async def test_pause_instead_pauses_and_cancels_nothing(
    session: AsyncSession, action_services: object
) -> None:
    subscription = await _subscriber(session, SubscriptionStatus.active)
    payload = '/affirm{"switch_to":"pause_subscription"}'
    state = tracker(
        "conv-1",
        payload,
        "affirm",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_subscription"},
        entities=[{"entity": "switch_to", "value": "pause_subscription"}],
    )

    _events, messages = await run(ActionResolvePending(), state)

    await session.refresh(subscription)
    assert subscription.status is SubscriptionStatus.paused
    assert messages[0]["text"].startswith("Done: your Coffee Explorer Box subscription is paused")
    audit = (await session.scalars(select(AuditLog))).one()
    assert audit.action == "pause_subscription"


async def test_cancel_anyway_cancels_in_the_same_turn(
    session: AsyncSession, action_services: object
) -> None:
    subscription = await _subscriber(session, SubscriptionStatus.active)
    state = tracker(
        "conv-1",
        "yes",
        "affirm",
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "cancel_subscription"},
    )

    await run(ActionResolvePending(), state)

    await session.refresh(subscription)
    assert subscription.status is SubscriptionStatus.cancelled


@pytest.mark.parametrize(
    "text", ["whatever just cancel it", "fine, cancel it", "just cancel it", "ok just cancel it"]
)
def test_an_impatient_yes_naming_the_cancellation_confirms_it(text: str) -> None:
    """Tester: "whatever just cancel it" at the pause offer went to an order's cancellation."""
    assert understanding.names_the_yes(text, "cancel_subscription")


async def test_pause_instead_typed_at_the_cancellation_asks_the_pause(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 2 (tr09): "no wait, actually just pause it instead" (pause_subscription 0.77)
    at the cancellation got "I haven't changed anything"; it asks the pause, changes nothing."""
    subscription = await _subscriber(session, SubscriptionStatus.active)
    state = ranked_tracker(
        "conv-1",
        "no wait, actually just pause it instead",
        [("pause_subscription", 0.77), ("deny", 0.14)],
        {
            **VERIFIED,
            "support_request": "pause_subscription",
            "awaiting": "confirmation",
            "pending_action": "cancel_subscription",
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"].startswith("Pause your Coffee Explorer Box subscription")
    assert slot_events(events)["pending_action"] == "pause_subscription"
    await session.refresh(subscription)
    assert subscription.status is SubscriptionStatus.active


async def test_pause_instead_read_as_a_no_at_the_cancellation_asks_the_pause(
    session: AsyncSession, action_services: object
) -> None:
    """tr09 with another model: the same words read as deny 0.52 (pause 0.38) reached the
    yes/no and got "Okay, I haven't changed anything"."""
    subscription = await _subscriber(session, SubscriptionStatus.active)
    state = ranked_tracker(
        "conv-1",
        "no wait, actually just pause it instead",
        [("deny", 0.52), ("pause_subscription", 0.38)],
        {
            **VERIFIED,
            "support_request": "cancel_subscription",
            "awaiting": "confirmation",
            "pending_action": "cancel_subscription",
        },
    )

    events, messages = await run(ActionResolvePending(), state)

    assert messages[0]["text"].startswith("Pause your Coffee Explorer Box subscription")
    assert slot_events(events)["pending_action"] == "pause_subscription"
    await session.refresh(subscription)
    assert subscription.status is SubscriptionStatus.active


async def test_words_that_end_in_keep_it_never_mind_change_nothing(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 3 (tw3_14): "no not that one, the jumper one... actually keep it, never mind"
    at "Cancel order …?" was served as a cancellation of the jumper order."""
    await _customer(session, OrderStatus.placed)
    state = ranked_tracker(
        "conv-1",
        "no not that one, the jumper one... actually keep it, never mind",
        [("cancel_order", 0.91), ("deny", 0.05)],
        {
            **VERIFIED,
            "support_request": "cancel_order",
            "awaiting": "confirmation",
            "pending_action": "cancel_order",
        },
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert [m["text"] for m in messages] == ["Okay, I haven't changed anything."]
    assert slot_events(events)["pending_action"] is None
    statuses = (await session.scalars(select(Order.status))).all()
    assert statuses == [OrderStatus.placed]


@pytest.mark.parametrize(
    ("text", "retracts"),
    [
        ("no not that one, the jumper one... actually keep it, never mind", True),
        ("ok keep it then", True),
        ("actually forget it thanks", True),
        ("please dont cancel it", True),
        ("nvm", True),
        ("i want to keep it", False),
        ("the towel, keep the casserole", False),
        ("never mind the towel, cancel the jumper", False),
    ],
)
def test_what_takes_a_change_back_at_the_end(text: str, retracts: bool) -> None:
    assert understanding.ends_in_retraction(text) is retracts


async def test_so_what_do_i_do_at_the_person_offered_explains_and_asks_again(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 3 (tw3_10): "ok so what do i do" at the person offered for a size change was
    read as a no ("Okay. Our team will still look at what you told us…")."""
    await _customer(session, OrderStatus.placed)
    state = ranked_tracker(
        "conv-1",
        "ok so what do i do",
        [("affirm", 0.56), ("out_of_scope", 0.16), ("goodbye", 0.16)],
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "offer_human"},
    )

    events, messages = await run(ActionResolvePending(), state)

    assert messages[0]["text"].startswith("The next step is a person from our team")
    assert [b["payload"] for b in messages[0]["buttons"]] == ["yes", "no"]
    slots = slot_events(events)
    assert (slots["awaiting"], slots["pending_action"]) == ("confirmation", "offer_human")


async def test_what_does_it_cost_at_a_subscription_change_is_its_price(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 3 (tw3_13): "hmm wait what does it cost again" at "Cancel your … subscription?"
    got "I'm not sure I can answer that from our product pages and help centre"."""
    subscription = await _subscriber(session, SubscriptionStatus.active)
    state = tracker(
        "conv-1",
        "hmm wait what does it cost again",
        "policy_question",
        {**VERIFIED, "support_request": "cancel_subscription"},
    )

    _, messages = await run(ActionAnswerPolicyQuestion(), state)

    renewal = support.format_date(support.next_period_end(subscription))
    assert [m["text"] for m in messages] == [
        "Your Coffee Explorer Box subscription costs 24.00 EUR a month, charged when it "
        f"renews (next on {renewal})."
    ]
    assert not support.asks_price("what does it say on the label")


@pytest.mark.parametrize("postponed", [False, True])
async def test_no_satisfaction_survey_after_a_not_now_in_the_same_chat(
    session: AsyncSession, action_services: object, postponed: bool
) -> None:
    """Dev chat ds06: "no stop asking me stuff" to a survey offer, then "where is my mug"
    got its answer and "How satisfied are you with the help you got today?"."""
    await _customer(session, OrderStatus.placed)
    state = ranked_tracker(
        "conv-1",
        "where is my mug",
        [("order_status", 0.97), ("delivery_problem", 0.01)],
        {**VERIFIED, "support_request": "order_status", "survey_postponed": postponed},
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert "A10001" in messages[0]["text"]
    # the survey form asks its question when the action leaves next_step at "survey"
    assert (slot_events(events).get("next_step") == "survey") is not postponed


@pytest.mark.parametrize(
    ("text", "yes"),
    [
        ("yes. but do i need a photo or not??", True),  # tester 4, tw4_08
        ("yes, do i need to be home?", True),
        ("yes but dont cancel", False),
        ("yes cancel it, no wait", False),
        ("yes. not the towel though?", True),  # a question: asked, not a refinement
    ],
)
def test_a_yes_then_a_question_is_a_yes(text: str, yes: bool) -> None:
    ranking = [
        {"name": "affirm", "confidence": 0.87},
        {"name": "billing_issue", "confidence": 0.04},
    ]
    assert understanding.is_clear_yes(text, ranking, T, M) is yes


async def test_a_yes_with_details_at_the_person_offered_is_the_yes() -> None:
    """Tester 4 (tw4_22): "yes, company is Shah Design GmbH, VAT DE123456789" at "Shall I
    get one?" (complain 0.52) was stored as a complaint."""
    state = ranked_tracker(
        "conv-1",
        "yes, company is Shah Design GmbH, VAT DE123456789",
        [("complain", 0.52), ("product_question", 0.22), ("affirm", 0.2)],
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "offer_human"},
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == []
    assert [e["event"] for e in events] == ["action", "user"]
    assert events[1]["parse_data"]["intent"]["name"] == "affirm"
    assert not understanding.yes_with_details("yes, but no person please")


async def test_an_unsure_yes_with_details_at_the_person_offered_gets_the_person(
    session: AsyncSession, action_services: object
) -> None:
    """tw4_22 again: the NLU read "yes, company is …" as affirm, unsure (0.61 / 0.30), so the
    rule brought it to the yes/no; it was taken as a no ("Our team will still look…")."""
    await _subscriber(session, SubscriptionStatus.active)
    state = ranked_tracker(
        "conv-1",
        "yes, company is Shah Design GmbH, VAT DE123456789",
        [("affirm", 0.61), ("billing_issue", 0.30)],
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "offer_human"},
    )

    events, messages = await run(ActionResolvePending(), state)

    escalation = (await session.scalars(select(Escalation))).one()
    assert escalation.reason is EscalationReason.customer_request
    assert "Our team will still look" not in messages[0]["text"]
    assert slot_events(events)["pending_action"] is None


async def test_not_now_later_at_a_change_is_a_no() -> None:
    """Tester 4 (tw4_18): "not now, later. thanks" at "Resume your … subscription now?" got
    "nothing changed" and then the fallback's "Did you mean one of these?"."""
    state = ranked_tracker(
        "conv-1",
        "not now, later. thanks",
        [("nlu_fallback", 0.45), ("deny", 0.3)],
        {**VERIFIED, "awaiting": "confirmation", "pending_action": "resume_subscription"},
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == []
    assert [e["event"] for e in events] == ["action", "user"]
    assert events[1]["parse_data"]["intent"]["name"] == "deny"


async def test_just_cancel_it_right_after_a_subscription_change_is_the_subscription(
    session: AsyncSession, action_services: object
) -> None:
    """Tester 4 (tw4_29): "actually just cancel it" right after resuming the subscription
    (cancel_order 0.9) asked to cancel the unshipped jumper order."""
    from bot.storage.models import Customer

    subscription = await _subscriber(session, SubscriptionStatus.active)
    owner = await session.get(Customer, subscription.customer_id)
    assert owner is not None
    await factories.order(session, owner, "A10002", OrderStatus.placed)
    await session.commit()
    events: list[dict[str, Any]] = [
        {"event": "slot", "name": "support_request", "value": "resume_subscription"},
        {
            "event": "user",
            "text": "actually just cancel it",
            "parse_data": {"intent": {"name": "cancel_order"}},
        },
    ]
    state = ranked_tracker(
        "conv-1",
        "actually just cancel it",
        [("cancel_order", 0.9), ("cancel_subscription", 0.08)],
        {**VERIFIED, "support_request": "cancel_order"},
        events=events,
    )

    result, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"].startswith("Cancel your Coffee Explorer Box subscription")
    slots = slot_events(result)
    assert (slots["pending_action"], slots["support_request"]) == (
        "cancel_subscription",
        "cancel_subscription",
    )


def test_bye_after_nope_is_done() -> None:
    """Tester 4 (tw4_21): "nope bye" got "Okay. Anything else I can help with?" again."""
    assert refusals.says_done("nope bye") and refusals.says_done("ok thats all")
    assert not refusals.says_done("nope, where is my refund")


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # tester 7: a score first, then its reason; the question asked back
        ("2, the parcel is a week late and nobody tells me anything", True),
        ("4/5 - slow though", True),
        ("why do you need to know", True),
        ("where is my parcel", False),
        ("can i get a refund for the late one", False),
    ],
)
def test_a_score_with_its_reason_answers_a_score_question_however_sure_the_nlu(
    text: str, answer: bool
) -> None:
    ranking = nlu_ranking(("delivery_problem", 0.99))
    assert (
        understanding.survey_answer_despite_intent(text, ranking, 0.8, 0.15, free_text=False)
        is answer
    )


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("sure, found u on tiktok", "found u on tiktok"),
        ("yes 5 stars", "5 stars"),
        ("sure, 8", "8"),
        ("yes", None),
        ("yesterday it came", None),
    ],
)
def test_what_is_said_after_a_yes(text: str, rest: str | None) -> None:
    assert understanding.said_after_a_yes(text) == rest
