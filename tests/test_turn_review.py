"""Issue #24: each flag rule (bot/domain/turn_review.py), and the NLU result of a customer
turn stored with the message, flagged, reviewed, erased and purged (bot/domain/review_inbox.py)
on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import PROJECT_ROOT
from bot.domain import privacy, review_inbox, turn_review
from bot.domain.enums import MessageSender, ReviewStatus, StaffRole
from bot.domain.errors import InvalidInput
from bot.domain.turn_review import Reason, Rules, Turn, own_reasons, rephrased, similarity
from bot.storage.models import (
    AuditLog,
    Conversation,
    Message,
    StaffUser,
    TurnFlag,
    TurnUnderstanding,
    utcnow,
)
from tests import factories

Sessions = async_sessionmaker[AsyncSession]


def _turn(text: str = "where is my order", intent: str | None = "order_status", **kw: Any) -> Turn:
    return Turn(text=text, intent=intent, **{"confidence": 0.9, **kw})


# ---- the rules, one by one -----------------------------------------------------------------


def test_low_confidence_threshold_is_config_ymls_fallback_threshold() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())
    fallback = [c for c in config["pipeline"] if c["name"] == "FallbackClassifier"]
    assert [c["threshold"] for c in fallback] == [turn_review.LOW_CONFIDENCE]


def test_the_reviewers_intents_are_the_domains_but_the_web_services_triggers() -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
    names = [i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]]
    assert list(review_inbox.INTENTS) == [n for n in names if not n.startswith("EXTERNAL_")]


def test_low_confidence() -> None:
    assert own_reasons(_turn(confidence=0.44)) == {Reason.low_confidence}
    assert own_reasons(_turn(confidence=0.45)) == frozenset()
    assert own_reasons(_turn(confidence=0.5), rules=Rules(low_confidence=0.6)) == {
        Reason.low_confidence
    }
    # Behind nlu_fallback: the confidence of the intent the NLU leaned to.
    behind = _turn(
        intent="nlu_fallback",
        confidence=0.55,
        runner_up_intent="order_status",
        runner_up_confidence=0.3,
    )
    assert own_reasons(behind) == {Reason.low_confidence, Reason.fallback}
    assert turn_review.understood_intent(behind) == "order_status"
    no_nlu = Turn(text="x", intent=None, confidence=None)
    assert own_reasons(no_nlu) == frozenset()


def test_fallback_fired() -> None:
    # The ambiguity rule: a confident top intent, too close to the runner-up.
    ambiguous = _turn(
        intent="nlu_fallback",
        confidence=0.55,
        runner_up_intent="return_item",
        runner_up_confidence=0.52,
    )
    assert own_reasons(ambiguous) == {Reason.fallback}
    assert own_reasons(_turn(steps=("action_default_fallback",))) == {Reason.fallback}
    assert own_reasons(_turn(steps=("action_handle_fallback", "utter_fallback_rephrase"))) == {
        Reason.fallback
    }
    assert own_reasons(_turn(steps=("action_order_status", "utter_anything_else"))) == frozenset()


def test_did_you_mean_fired() -> None:
    assert own_reasons(_turn(steps=("action_handle_fallback", "utter_fallback_choices"))) == {
        Reason.fallback,
        Reason.did_you_mean,
    }
    # The account-change clarification (bot/domain/understanding.py) ends in "Something else".
    assert own_reasons(_turn(offered_choices=True)) == {Reason.did_you_mean}


def test_similarity_is_difflib_ratio_of_normalised_text() -> None:
    assert similarity("Where is my ORDER?!", "where is my order") == 1.0
    assert similarity("", "") == 1.0
    assert similarity("abc", "xyz") == 0.0
    # "where s my order" (punctuation gone) against "where is my order": 16 of 16 + 17.
    assert similarity("where is my order", "where's my order") == pytest.approx(2 * 16 / 33)


def test_rephrase() -> None:
    first = _turn("where is my parcel")
    assert rephrased(first, _turn("where is my parcel??"))
    assert rephrased(first, _turn("where's my parcel"))
    assert not rephrased(first, _turn("where is my parcel", intent="delivery_problem"))
    assert not rephrased(first, _turn("I want to know about the status of the order A10023"))
    # The setting moves the line.
    pair = (_turn("where is my parcel"), _turn("so where is the parcel then"))
    score = similarity(pair[0].text, pair[1].text)
    assert 0.6 < score < 0.9
    assert rephrased(*pair) and not rephrased(*pair, Rules(rephrase_similarity=0.9))
    # "yes" twice answers two questions.
    assert not rephrased(_turn("yes", "affirm"), _turn("yes", "affirm"))
    assert not rephrased(_turn("x", None), _turn("x", None))


def test_an_answer_to_a_question_asked_again_is_no_rephrase() -> None:
    # The identity check's successive email attempts: the bot asked for the email before
    # both (utter_ask_email ended its replies), each is a new attempt.
    first = _turn(
        "piet1@example.test",
        "inform",
        asked="utter_ask_email",
        steps=("identity_form", "utter_ask_email"),
    )
    second = _turn("piet2@example.test", "inform", asked="utter_ask_email")
    assert not rephrased(first, second)
    # The same words after another question (or none) are still a rephrase.
    assert rephrased(_turn("piet1@example.test", "inform", asked=None), second)
    assert rephrased(first, _turn("piet2@example.test", "inform", asked="utter_ask_order_number"))
    assert turn_review.question(("identity_form", "utter_ask_email")) == "utter_ask_email"
    assert turn_review.question(("utter_ask_email", "action_support_request")) is None
    assert turn_review.question(()) is None


def test_a_request_asked_again_after_the_bot_answered_it_is_no_rephrase() -> None:
    served = _turn("where is order A38378", steps=("action_support_request", "survey_form"))
    # The bot restates its answer (bot/domain/repeats.py): it had served the request.
    again = _turn(
        "where is order A38378",
        steps=("action_deactivate_loop", "action_support_request", "utter_repeated_answer"),
    )
    assert not rephrased(served, again)
    assert rephrased(served, _turn("where is order A38378", steps=("action_support_request",)))


def test_wordless_messages_are_no_rephrase() -> None:
    # "?" then "👍": both normalise to nothing (similarity 1.0) but say nothing alike.
    assert not rephrased(_turn("?", "nlu_fallback"), _turn("👍", "nlu_fallback"))


def test_default_fallback_counts_only_as_the_turns_first_step() -> None:
    # The bot answered the request, then no policy predicted what came next.
    answered = _turn(
        "I want a refund",
        "request_refund",
        steps=("action_support_request", "action_default_fallback"),
    )
    assert own_reasons(answered) == frozenset()
    assert own_reasons(_turn(steps=("action_default_fallback", "utter_default"))) == {
        Reason.fallback
    }
    # A form closed before it is bookkeeping, not an answer.
    closed = _turn(steps=("action_deactivate_loop", "action_default_fallback"))
    assert own_reasons(closed) == {Reason.fallback}


def test_refusing_the_did_you_mean_buttons_is_understood() -> None:
    refusal = _turn(
        "none of these",
        "deny",
        confidence=0.99,
        steps=("action_handle_fallback", "utter_fallback_rephrase"),
    )
    assert own_reasons(refusal, {Reason.did_you_mean, Reason.fallback}) == frozenset()
    # The buttons were offered to an opener that is no request (so not flagged).
    assert own_reasons(replace(refusal, after_choices=True)) == frozenset()
    # Not after the buttons, or not read as a refusal: the fallback fired.
    assert own_reasons(refusal) == {Reason.fallback}
    unread = _turn(
        "nah none",
        "nlu_fallback",
        confidence=0.45,
        runner_up_intent="deny",
        runner_up_confidence=0.3,
        steps=("action_handle_fallback",),
    )
    assert own_reasons(unread, {Reason.did_you_mean}) == {Reason.fallback, Reason.low_confidence}


def test_a_nonsense_or_emoji_only_opener_is_no_request() -> None:
    words = frozenset({"where", "is", "my", "order", "parcel"})
    for text in ("👍", "??", "🤷", "...", "blorp zingle wumpus"):
        assert turn_review.no_request(text, opening=True, vocabulary=words), text
    for text in ("where is my parcel", "blorp my parcel", "A10023", "Ringstrasse 12"):
        assert not turn_review.no_request(text, opening=True, vocabulary=words), text
    # After a bot message (a question) or another turn: a misunderstanding like any other.
    assert not turn_review.no_request("👍", opening=False, vocabulary=words)
    # Without a vocabulary every word is known (only word-less openers are no request).
    assert not turn_review.no_request("blorp", opening=True, vocabulary=frozenset())
    opener = _turn(
        "blorp zingle wumpus",
        "nlu_fallback",
        confidence=0.45,
        steps=("action_handle_fallback", "utter_fallback_choices"),
        no_request=True,
    )
    assert own_reasons(opener) == frozenset()
    assert own_reasons(replace(opener, no_request=False)) == {
        Reason.fallback,
        Reason.did_you_mean,
        Reason.low_confidence,
    }


def test_asked_for_a_person_after_a_misunderstanding() -> None:
    human = _turn("let me talk to a person", "request_human")
    for reason in (Reason.low_confidence, Reason.fallback, Reason.did_you_mean, Reason.rephrase):
        assert own_reasons(human, {reason}) == {Reason.human_after_misunderstanding}
    assert own_reasons(human) == frozenset()  # asked straight away: no misunderstanding
    assert own_reasons(human, {Reason.negative_sentiment}) == frozenset()
    assert own_reasons(_turn(), {Reason.fallback}) == frozenset()


def test_negative_sentiment_right_after_a_bot_reply() -> None:
    assert own_reasons(_turn(after_bot_reply=True, sentiment=-0.5)) == {Reason.negative_sentiment}
    assert own_reasons(_turn(after_bot_reply=True, sentiment=-0.49)) == frozenset()
    assert own_reasons(_turn(after_bot_reply=False, sentiment=-0.9)) == frozenset()


# ---- stored with the message ---------------------------------------------------------------


def _nlu(
    intent: str,
    confidence: float,
    runner_up: str = "out_of_scope",
    second: float = 0.05,
    steps: tuple[str, ...] = (),
    entities: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "intent": intent,
        "confidence": confidence,
        "runner_up": runner_up,
        "runner_up_confidence": second,
        "entities": entities or [],
        "steps": list(steps),
    }


async def _chat(
    db: AsyncSession, conversation_id: str = "c-review", customer_id: int | None = None
) -> str:
    db.add(Conversation(id=conversation_id, customer_id=customer_id))
    await db.flush()
    return conversation_id


async def _say(
    db: AsyncSession,
    chat: str,
    text: str,
    nlu: dict[str, Any] | None = None,
    replies: tuple[str, ...] = ("OK.",),
    buttons: list[dict[str, str]] | None = None,
    at: dt.datetime | None = None,
) -> tuple[Message, frozenset[Reason]]:
    """A customer message, its NLU result, and the bot's replies."""
    message = Message(
        conversation_id=chat, sender=MessageSender.customer, text=text, created_at=at or utcnow()
    )
    db.add(message)
    await db.flush()
    reasons: frozenset[Reason] = frozenset()
    if nlu is not None:
        reasons = await review_inbox.record_turn(db, message, nlu, [buttons or []])
    for reply in replies:
        db.add(
            Message(
                conversation_id=chat,
                sender=MessageSender.bot,
                text=reply,
                buttons=buttons,
                created_at=at or utcnow(),
            )
        )
    await db.flush()
    return message, reasons


async def _flags(db: AsyncSession, message_id: int) -> list[str]:
    return sorted(
        await db.scalars(select(TurnFlag.reason).where(TurnFlag.message_id == message_id))
    )


async def test_a_conversation_is_stored_and_flagged(session_factory: Sessions) -> None:
    async with session_factory() as db, db.begin():
        chat = await _chat(db)
        first, r1 = await _say(db, chat, "hi", _nlu("greet", 0.98))
        lost, r2 = await _say(
            db,
            chat,
            "my thingy never came",
            _nlu(
                "nlu_fallback",
                0.45,
                "delivery_problem",
                0.41,
                ("action_handle_fallback", "utter_fallback_choices"),
            ),
            buttons=[{"title": "Something else", "payload": "none of these"}],
        )
        again, r3 = await _say(
            db,
            chat,
            "my thingy never came!!",
            _nlu(
                "nlu_fallback",
                0.45,
                "delivery_problem",
                0.43,
                ("action_handle_fallback", "utter_fallback_offer_person"),
            ),
        )
        person, r4 = await _say(db, chat, "a person please", _nlu("request_human", 0.97))
        angry, r5 = await _say(
            db,
            chat,
            "this is useless and awful, I hate it",
            _nlu(
                "complain",
                0.9,
                entities=[{"entity": "email", "value": "x@y.z", "start": 0, "end": 5}],
            ),
        )
    assert r1 == frozenset()
    assert r2 == {Reason.low_confidence, Reason.fallback, Reason.did_you_mean}
    assert r3 == {Reason.low_confidence, Reason.fallback}
    assert r4 == {Reason.human_after_misunderstanding}
    assert r5 == {Reason.negative_sentiment}
    async with session_factory() as db:
        # The same intent (nlu_fallback) in similar words: the first was said again.
        assert await _flags(db, lost.id) == [
            "did_you_mean",
            "fallback",
            "low_confidence",
            "rephrase",
        ]
        assert await _flags(db, again.id) == ["fallback", "low_confidence"]
        assert await _flags(db, first.id) == []
        row = await db.get(TurnUnderstanding, angry.id)
        assert row is not None
        assert (row.intent, row.confidence, row.runner_up_intent, row.runner_up_confidence) == (
            "complain",
            0.9,
            "out_of_scope",
            0.05,
        )
        assert row.entities == [{"entity": "email", "value": "x@y.z", "start": 0, "end": 5}]
        assert row.sentiment is not None and row.sentiment <= -0.5
        first_row = await db.get(TurnUnderstanding, first.id)
        assert first_row is not None and first_row.sentiment is None  # nothing before it

        page = await review_inbox.flagged_turns(db, review_inbox.InboxFilter())
        assert page["total"] == 4
        assert [i["message_id"] for i in page["items"]] == [angry.id, person.id, again.id, lost.id]
        item = page["items"][-1]
        assert item["suggested_intent"] == "delivery_problem"
        # Context: every earlier message (one customer turn and its reply), and three
        # customer turns after with the bot's replies.
        assert [m["text"] for m in item["before"]] == ["hi", "OK."]
        assert [m["text"] for m in item["after"]] == [
            "OK.",
            "my thingy never came!!",
            "OK.",
            "a person please",
            "OK.",
            "this is useless and awful, I hate it",
            "OK.",
        ]
        by_reason = await review_inbox.flagged_turns(
            db, review_inbox.InboxFilter(reason=Reason.rephrase)
        )
        assert [i["message_id"] for i in by_reason["items"]] == [lost.id]
        by_intent = await review_inbox.flagged_turns(
            db, review_inbox.InboxFilter(intent="complain")
        )
        assert [i["message_id"] for i in by_intent["items"]] == [angry.id]
        future = utcnow() + dt.timedelta(days=1)
        assert (await review_inbox.flagged_turns(db, review_inbox.InboxFilter(since=future)))[
            "total"
        ] == 0


async def test_review_confirm_correct_dismiss(session_factory: Sessions) -> None:
    async with session_factory() as db, db.begin():
        trainer = StaffUser(
            email="t@example.com", display_name="T", role=StaffRole.bot_trainer, password_hash="x"
        )
        db.add(trainer)
        chat = await _chat(db)
        a, _ = await _say(
            db, chat, "my thingy never came", _nlu("nlu_fallback", 0.45, "delivery_problem", 0.41)
        )
        b, _ = await _say(
            db, chat, "cancel A12345 now", _nlu("order_status", 0.3, "cancel_order", 0.28)
        )
        c, _ = await _say(db, chat, "asdf", _nlu("nlu_fallback", 0.45, "greet", 0.1))
    async with session_factory() as db, db.begin():
        user = await db.get(StaffUser, trainer.id)
        assert user is not None
        confirmed = await review_inbox.review(db, a.id, user, "confirm")
        corrected = await review_inbox.review(
            db,
            b.id,
            user,
            "correct",
            "cancel_order",
            [{"entity": "order_number", "value": "A12345"}],
        )
        dismissed = await review_inbox.review(db, c.id, user, "dismiss")
        with pytest.raises(InvalidInput):
            await review_inbox.review(db, b.id, user, "correct", "no_such_intent")
        with pytest.raises(InvalidInput):
            await review_inbox.review(
                db,
                b.id,
                user,
                "correct",
                "cancel_order",
                [{"entity": "order_number", "value": "B99999"}],
            )
    assert (confirmed["review_status"], confirmed["reviewed_intent"]) == (
        "confirmed",
        "delivery_problem",
    )
    assert corrected["reviewed_entities"] == [
        {"entity": "order_number", "value": "A12345", "start": 7, "end": 13}
    ]
    assert (dismissed["review_status"], dismissed["reviewed_intent"]) == ("dismissed", None)
    async with session_factory() as db:
        rows = {r.message_id: r for r in await db.scalars(select(TurnUnderstanding))}
        assert rows[b.id].review_status is ReviewStatus.corrected
        assert rows[b.id].reviewed_by_id == trainer.id
        audits = list(await db.scalars(select(AuditLog).where(AuditLog.action == "review_turn")))
        assert sorted(a.target_id for a in audits) == sorted(str(m.id) for m in (a, b, c))
        assert (await review_inbox.flagged_turns(db, review_inbox.InboxFilter()))["total"] == 0
        reviewed = await review_inbox.flagged_turns(db, review_inbox.InboxFilter(state="reviewed"))
        assert reviewed["total"] == 3


async def test_erased_and_purged_with_the_transcript(session_factory: Sessions) -> None:
    old = utcnow() - dt.timedelta(days=100)
    async with session_factory() as db, db.begin():
        customer = await factories.customer(db, 7)
        theirs = await _chat(db, "c-theirs", customer.id)
        await _say(
            db,
            theirs,
            "my email is zed@example.org",
            _nlu(
                "nlu_fallback",
                0.45,
                "order_status",
                0.2,
                entities=[{"entity": "email", "value": "zed@example.org"}],
            ),
        )
        other = await _chat(db, "c-other")
        await _say(db, other, "where is A77777", _nlu("order_status", 0.3), at=old)
        await _say(db, other, "and now?", _nlu("order_status", 0.3))
    async with session_factory() as db, db.begin():
        erasure = await privacy.erase_customer(db, customer.external_id)
        assert erasure.counts["turn_understandings"] == 1
    async with session_factory() as db, db.begin():
        left = list(await db.scalars(select(TurnUnderstanding.conversation_id)))
        assert left == ["c-other", "c-other"]
        assert await privacy.purge_transcripts(db, 30) == 2  # the old message and its reply
    async with session_factory() as db:
        texts = (
            (
                await db.execute(
                    select(Message.text).join(
                        TurnUnderstanding, TurnUnderstanding.message_id == Message.id
                    )
                )
            )
            .scalars()
            .all()
        )
        assert texts == ["and now?"]
        assert len(list(await db.scalars(select(TurnFlag.message_id)))) == 1


SOMETHING_ELSE = [{"title": "Something else", "payload": "none of these"}]
CHOICES = ("action_handle_fallback", "utter_fallback_choices")


async def test_stored_turns_answers_refusals_and_openers(session_factory: Sessions) -> None:
    async with session_factory() as db, db.begin():
        chat = await _chat(db, "c-opener")
        blorp, r1 = await _say(
            db,
            chat,
            "blorp zingle wumpus",
            _nlu("nlu_fallback", 0.45, "greet", 0.1, CHOICES),
            buttons=SOMETHING_ELSE,
        )
        refusal, r2 = await _say(
            db,
            chat,
            "none of these",
            _nlu("deny", 0.99, steps=("action_handle_fallback", "utter_fallback_rephrase")),
        )
        again, r3 = await _say(
            db,
            chat,
            "blorp zingle wumpus",
            _nlu("nlu_fallback", 0.45, "greet", 0.1, CHOICES),
            buttons=SOMETHING_ELSE,
        )
        chat = await _chat(db, "c-identity")
        await _say(
            db,
            chat,
            "where is my order",
            _nlu("order_status", 0.99, steps=("identity_form", "utter_ask_order_number")),
        )
        await _say(
            db, chat, "A27118", _nlu("inform", 0.95, steps=("identity_form", "utter_ask_email"))
        )
        first, _ = await _say(
            db,
            chat,
            "piet1@example.test",
            _nlu("inform", 0.95, steps=("identity_form", "utter_ask_email")),
        )
        second, _ = await _say(
            db,
            chat,
            "piet2@example.test",
            _nlu("inform", 0.95, steps=("identity_form", "utter_ask_email")),
        )
        await _say(
            db,
            chat,
            "piet3@example.test",
            _nlu("inform", 0.95, steps=("identity_form", "action_support_request")),
        )
    # A gibberish opener is no request; the refusal of its buttons is understood; the same
    # words after the bot spoke are a misunderstanding.
    assert (r1, r2) == (frozenset(), frozenset())
    assert r3 == {Reason.fallback, Reason.did_you_mean, Reason.low_confidence}
    async with session_factory() as db:
        for message in (blorp, refusal, first, second):
            assert await _flags(db, message.id) == [], message.text
    # Rules changed since the turns were stored: reflag applies them again (reviewed
    # turns keep theirs).
    async with session_factory() as db, db.begin():
        db.add(TurnFlag(message_id=first.id, reason="rephrase"))
        db.add(TurnFlag(message_id=again.id, reason="rephrase"))
    async with session_factory() as db, db.begin():
        row = await db.get(TurnUnderstanding, again.id)
        assert row is not None
        row.review_status = ReviewStatus.dismissed
    async with session_factory() as db, db.begin():
        assert await review_inbox.reflag(db) == 1
    async with session_factory() as db:
        assert await _flags(db, first.id) == []
        assert await _flags(db, again.id) == [
            "did_you_mean",
            "fallback",
            "low_confidence",
            "rephrase",
        ]


# ---- through the chat: Rasa's reply carries the NLU result ---------------------------------


@pytest.fixture
async def nlu_client(engine: Any, settings: Any) -> Any:
    """The web service against a Rasa stand-in whose channel appends the NLU item."""
    from dataclasses import replace

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from bot.web.app import create_app

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        low = "thingy" in body["message"]
        nlu = (
            _nlu("nlu_fallback", 0.45, "delivery_problem", 0.4, ("action_handle_fallback",))
            if low
            else _nlu("greet", 0.99)
        )
        return web.json_response(
            [
                {"recipient_id": body["sender"], "text": "Sorry?" if low else "Hello!"},
                {"recipient_id": body["sender"], "custom": {"nlu": nlu}},
            ]
        )

    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", webhook)
    server = TestServer(rasa)
    await server.start_server()
    app = create_app(replace(settings, rasa_url=str(server.make_url("")).rstrip("/")))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
    await server.close()


async def test_the_chat_stores_the_nlu_result_with_the_message(
    nlu_client: Any, session_factory: Sessions
) -> None:
    ws = await nlu_client.ws_connect("/ws")
    await ws.send_json({"type": "hello"})
    assert (await ws.receive_json(timeout=5))["type"] == "session"
    for text, answer in (("hello", "Hello!"), ("my thingy", "Sorry?")):
        await ws.send_json({"type": "message", "text": text, "client_id": text})
        while (frame := await ws.receive_json(timeout=5)).get("text") != answer:
            assert frame["type"] != "error", frame
    await ws.close()
    async with session_factory() as db:
        rows = (
            await db.execute(
                select(Message.text, TurnUnderstanding.intent, TurnUnderstanding.runner_up_intent)
                .join(TurnUnderstanding, TurnUnderstanding.message_id == Message.id)
                .order_by(Message.id)
            )
        ).all()
        assert [tuple(r) for r in rows] == [
            ("hello", "greet", "out_of_scope"),
            ("my thingy", "nlu_fallback", "delivery_problem"),
        ]
        flagged = await review_inbox.flagged_turns(db, review_inbox.InboxFilter())
        assert [(i["text"], i["reasons"]) for i in flagged["items"]] == [
            ("my thingy", ["fallback", "low_confidence"])
        ]
        # The reply list's NLU item is not a message.
        bot_texts = list(
            await db.scalars(select(Message.text).where(Message.sender == MessageSender.bot))
        )
        assert bot_texts == ["Hello!", "Sorry?"]
