"""Issue #24 in a real browser, each screen with axe-core WCAG 2.1 AA at 0 violations:

* the widget asks "Did this help?" under a knowledge answer (not under other replies); the
  customer's No, then Yes, is stored (the last click counts) with the turn's intent and model;
* the review inbox's "Save as regression conversation" downloads the chat as a
  tests/conversations file;
* the dashboard's Bot page shows "did this help?" and the figures before and after a
  change of model.

Only the web service runs, with the echo Rasa stand-in (tests/live_app.py) told which NLU
result to report. Screenshots: /tmp/bot_feedback_*.png."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain import answer_ratings, review_inbox, staff
from bot.domain.enums import MessageSender, StaffRole
from bot.storage.models import AnswerRating, Conversation, Message, utcnow
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

pytestmark = pytest.mark.browser
PASSWORD = "feedback-password-1"
SHOTS = Path("/tmp")
POLICY = ("action_answer_policy_question",)


def _nlu(intent: str, confidence: float, model: str, steps: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "intent": intent,
        "confidence": confidence,
        "runner_up": "greet",
        "runner_up_confidence": 0.01,
        "entities": [],
        "steps": list(steps),
        "model_id": model,
    }


# ---- the widget ---------------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[LiveApp]:
    with serve_app(tmp_path) as app:
        yield app


def test_did_this_help_in_the_widget(shop: LiveApp, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{shop.url}/demo/shop/")
    page.get_by_role("button", name="Open chat").click()
    widget = page.locator("#shop-chat-widget")
    box = widget.get_by_label("Your message")
    box.wait_for(timeout=15_000)

    # An order-status reply: nothing to rate.
    shop.rasa.nlu = _nlu("order_status", 0.93, "model-b")
    box.fill("where is my parcel")
    box.press("Enter")
    widget.locator(".msg--bot", has_text="echo: where is my parcel").wait_for(timeout=15_000)

    # A shop-policy answer: "Did this help?" under it.
    shop.rasa.nlu = _nlu("policy_question", 0.88, "model-b", POLICY)
    box.fill("do you ship to the uk")
    box.press("Enter")
    answer = widget.locator(".msg--bot", has_text="echo: do you ship to the uk")
    group = answer.get_by_role("group", name="Did this help?")
    group.wait_for(timeout=15_000)
    assert widget.get_by_role("group", name="Did this help?").count() == 1
    assert axe_violations(page) == []

    no, yes = group.get_by_role("button", name="No"), group.get_by_role("button", name="Yes")
    no.click()
    group.get_by_role("status").filter(has_text="Thanks for telling us.").wait_for(timeout=15_000)
    assert (no.get_attribute("aria-pressed"), yes.get_attribute("aria-pressed")) == (
        "true",
        "false",
    )
    yes.click()
    page.wait_for_function(
        """() => document.querySelector('#shop-chat-widget').shadowRoot
                 .querySelector('.helpful[data-helpful=true]').getAttribute('aria-pressed') === 'true'"""
    )
    assert no.get_attribute("aria-pressed") == "false"
    page.screenshot(path=str(SHOTS / "bot_feedback_widget.png"))
    assert axe_violations(page) == []

    async def stored(sessions: Sessions) -> list[tuple[Any, ...]]:
        async with sessions() as db:
            rows = await db.execute(
                select(
                    Message.text, AnswerRating.helpful, AnswerRating.intent, AnswerRating.model_id
                ).join(Message, Message.id == AnswerRating.message_id)
            )
            return [tuple(r) for r in rows]

    assert shop.run(stored(shop.sessions)) == [
        ("echo: do you ship to the uk", True, "policy_question", "model-b")
    ]
    page.close()


# ---- the review inbox and the Bot page ------------------------------------------------------


async def _seed(sessions: Sessions) -> None:
    """Model m1 read two chats (a policy answer rated no, a fallback) in the two days before
    model m2 took over three days ago; m2 read two (a policy answer rated yes, an order
    status). The windows are two days each side."""
    change = utcnow().replace(microsecond=0) - dt.timedelta(days=3)
    plan = [
        (
            "c1",
            change - dt.timedelta(days=2),
            "what is your returns policy",
            _nlu("policy_question", 0.9, "m1", POLICY),
            False,
        ),
        (
            "c2",
            change - dt.timedelta(days=1),
            "my thingy never came",
            _nlu("nlu_fallback", 0.3, "m1", ("action_handle_fallback",)),
            None,
        ),
        (
            "c3",
            change,
            "how long do refunds take",
            _nlu("policy_question", 0.9, "m2", POLICY),
            True,
        ),
        (
            "c4",
            change + dt.timedelta(days=1),
            "where is my order",
            _nlu("order_status", 0.9, "m2"),
            None,
        ),
    ]
    async with sessions() as db, db.begin():
        await staff.create_user(db, "tia@example.com", "Tia", StaffRole.bot_trainer, PASSWORD)
        await staff.create_user(db, "chris@example.com", "Chris", StaffRole.cx_manager, PASSWORD)
        for chat, at, text, nlu, helpful in plan:
            db.add(Conversation(id=chat, created_at=at))
            await db.flush()
            message = Message(
                conversation_id=chat, sender=MessageSender.customer, text=text, created_at=at
            )
            db.add(message)
            await db.flush()
            await review_inbox.record_turn(db, message, nlu)
            answer = Message(
                conversation_id=chat, sender=MessageSender.bot, text="Here you go.", created_at=at
            )
            db.add(answer)
            await db.flush()
            if helpful is not None:
                await answer_ratings.rate(db, chat, answer.id, helpful)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(tmp_path_factory.mktemp("bot_feedback"), seed=_seed) as app:
        yield app


def _sign_in(page: Any, live: LiveApp, email: str, then: str) -> None:
    page.goto(f"{live.url}/console/login?next={then}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}{then}", timeout=15_000)


def test_save_a_flagged_chat_as_a_regression_conversation(live: LiveApp, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    _sign_in(page, live, "tia@example.com", "/console/review")
    card = page.locator(".review-card", has=page.locator(".review-turn", has_text="my thingy"))
    card.wait_for(timeout=15_000)
    message_id = card.get_attribute("data-message-id")
    link = card.get_by_role("link", name="Save as regression conversation")
    assert axe_violations(page) == []
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == f"reviewed-rv{message_id}.yml"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert "category: reviewed\n" in text
    assert f"- id: rv{message_id}\n" in text
    assert '    - say: "my thingy never came"\n' in text
    assert "      expect: {none: ['$NOT_UNDERSTOOD']}\n" in text
    page.screenshot(path=str(SHOTS / "bot_feedback_review.png"), full_page=True)
    context.close()


def test_the_bot_page_before_and_after_a_retraining(live: LiveApp, browser: Any) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _sign_in(page, live, "chris@example.com", "/dashboard/bot")
    page.locator("body[data-ready=true]").wait_for(timeout=15_000)
    assert page.locator("#kpi-helpful .kpi__value").inner_text() == "50 %"
    assert page.locator("#kpi-helpful .kpi__previous").inner_text() == "1 yes of 2 rated answers"
    table = page.locator("#retraining-0")
    assert table.get_attribute("data-model") == "m2"
    assert table.locator("caption").inner_text().startswith("Model m1 → m2, changed ")
    assert table.locator("caption").inner_text().endswith("; 2 days each side")

    def row(label: str) -> list[str]:
        texts: list[str] = table.locator(f"tr[data-key='{label}'] td").all_inner_texts()
        return texts

    assert row("Conversations (n)") == ["2", "2", "", ""]
    assert row("Fallback rate") == ["50 %", "0 %", "1 of 2", "0 of 2"]
    assert row("Answers rated helpful") == ["0 %", "100 %", "0 of 1", "1 of 1"]
    assert row("Flagged messages") == ["50 %", "0 %", "1 of 2", "0 of 2"]
    page.screenshot(path=str(SHOTS / "bot_feedback_dashboard.png"), full_page=True)
    assert axe_violations(page) == []
