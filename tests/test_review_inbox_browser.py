"""The review inbox (/console/review, issue #24) in a real browser: a bot trainer signs in,
lands on the inbox, filters by reason, reads a flagged turn with its context, corrects its
intent with an entity, confirms another and dismisses a third; the verdicts are stored. The
page passes axe-core's WCAG 2.1 AA rules with 0 violations, as does the dashboard's Bot page
(the figures of the same turns). Screenshots: /tmp/review_*.png.
Only the web service runs (the turns are seeded as the chat would store them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain import review_inbox, staff
from bot.domain.enums import MessageSender, ReviewStatus, StaffRole
from bot.storage.models import Conversation, Message, TurnUnderstanding
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

PASSWORD = "review-password-1"
SHOTS = Path("/tmp")


def _nlu(
    intent: str, confidence: float, runner_up: str, second: float, *steps: str
) -> dict[str, Any]:
    return {
        "intent": intent,
        "confidence": confidence,
        "runner_up": runner_up,
        "runner_up_confidence": second,
        "entities": [],
        "steps": list(steps),
    }


async def _seed(sessions: Sessions) -> None:
    async with sessions() as db, db.begin():
        await staff.create_user(db, "tia@example.com", "Tia", StaffRole.bot_trainer, PASSWORD)
        await staff.create_user(db, "chris@example.com", "Chris", StaffRole.cx_manager, PASSWORD)
        db.add(Conversation(id="conv-review"))
        await db.flush()
        turns = [
            ("hello", _nlu("greet", 0.99, "thank", 0.01), "Hi! How can I help?"),
            (
                "cancel A12345 please",
                _nlu("order_status", 0.31, "cancel_order", 0.3),
                "Which order?",
            ),
            (
                "my thingy never came",
                _nlu("nlu_fallback", 0.45, "delivery_problem", 0.4, "action_handle_fallback"),
                "Sorry, I didn't get that.",
            ),
            (
                "asdfgh",
                _nlu("nlu_fallback", 0.45, "greet", 0.1, "action_handle_fallback"),
                "Sorry?",
            ),
        ]
        for text, nlu, reply in turns:
            message = Message(
                conversation_id="conv-review", sender=MessageSender.customer, text=text
            )
            db.add(message)
            await db.flush()
            await review_inbox.record_turn(db, message, nlu)
            db.add(Message(conversation_id="conv-review", sender=MessageSender.bot, text=reply))
            await db.flush()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(tmp_path_factory.mktemp("review_inbox"), seed=_seed) as app:
        yield app


def _card(page: Any, text: str) -> Any:
    return page.locator(".review-card", has=page.locator(".review-turn", has_text=text))


@pytest.mark.browser
def test_a_bot_trainer_reviews_flagged_turns(live: LiveApp, browser: Any) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live.url}/console/login")
    page.get_by_label("Email").fill("tia@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/console/review", timeout=15_000)  # a trainer's home
    page.locator(".review-card").nth(2).wait_for(timeout=15_000)
    assert page.locator("#summary").inner_text() == "3 flagged messages (1–3 shown)"
    # A trainer has no queue: the header links only what they may open.
    nav = [a.inner_text() for a in page.locator(".topbar__nav a").all()]
    assert nav == ["Review inbox", "Account"]
    page.screenshot(path=str(SHOTS / "review_inbox.png"), full_page=True)
    assert axe_violations(page) == []

    # Filter: only the turns where the fallback fired.
    page.get_by_label("Why flagged").select_option("fallback")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function("() => document.querySelectorAll('.review-card').length === 2")
    assert "reason=fallback" in page.url
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => document.querySelectorAll('.review-card').length === 3")

    # The misread cancellation: context, then the right intent with the order number marked.
    card = _card(page, "cancel A12345 please")
    context = card.locator(".review-context li").all_inner_texts()
    assert context[:3] == [
        "Customer:hello",
        "Bot:Hi! How can I help?",
        "Customer:cancel A12345 please",
    ]
    assert "Bot:Which order?" in context
    card.get_by_label("Right intent").select_option("cancel_order")
    card.get_by_label("Entity (optional)").select_option("order_number")
    card.get_by_label("Entity words").fill("A12345")
    card.get_by_role("button", name="Save with this intent").click()
    card.locator(".review-verdict", has_text="Corrected to cancel_order.").wait_for(timeout=15_000)

    _card(page, "my thingy never came").get_by_role(
        "button", name="Confirm: delivery_problem"
    ).click()
    _card(page, "my thingy never came").locator(
        ".review-verdict", has_text="Confirmed as delivery_problem."
    ).wait_for(timeout=15_000)
    _card(page, "asdfgh").get_by_role("button", name="Not a real request").click()
    _card(page, "asdfgh").locator(".review-verdict", has_text="Dismissed").wait_for(timeout=15_000)
    page.screenshot(path=str(SHOTS / "review_inbox_done.png"), full_page=True)
    assert axe_violations(page) == []

    async def verdicts(sessions: Sessions) -> list[tuple[Any, ...]]:
        async with sessions() as db:
            rows = await db.execute(
                select(
                    Message.text,
                    TurnUnderstanding.review_status,
                    TurnUnderstanding.reviewed_intent,
                    TurnUnderstanding.reviewed_entities,
                )
                .join(Message, Message.id == TurnUnderstanding.message_id)
                .where(TurnUnderstanding.review_status.is_not(None))
                .order_by(Message.id)
            )
            return [tuple(r) for r in rows]

    assert live.run(verdicts(live.sessions)) == [
        (
            "cancel A12345 please",
            ReviewStatus.corrected,
            "cancel_order",
            [{"entity": "order_number", "value": "A12345", "start": 7, "end": 13}],
        ),
        ("my thingy never came", ReviewStatus.confirmed, "delivery_problem", []),
        ("asdfgh", ReviewStatus.dismissed, None, None),
    ]
    # Reviewed: the open inbox is empty.
    page.reload()
    page.locator("#empty").wait_for(state="visible", timeout=15_000)


@pytest.mark.browser
def test_the_dashboards_bot_page(live: LiveApp, browser: Any) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live.url}/console/login?next=/dashboard/bot")
    page.get_by_label("Email").fill("chris@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/dashboard/bot", timeout=15_000)
    page.locator("body[data-ready=true]").wait_for(timeout=15_000)
    # One conversation of 4 messages; 3 flagged (2 fallbacks), handed to nobody.
    assert page.locator("#kpi-containment .kpi__value").inner_text() == "100 %"
    assert page.locator("#kpi-fallback .kpi__previous").inner_text() == "2 of 4 messages"
    assert page.locator("#kpi-flagged .kpi__value").inner_text() == "300"
    # figures with a fraction are shown with one decimal at most (a tester: "33.3333")
    shown = page.evaluate(
        "import('/dashboard/static/cx-pages.js').then(m => [m.fmt(100 / 3), m.fmt(2.5, ' %'), m.fmt(7)])"
    )
    assert shown == ["33.3", "2.5 %", "7"]
    rows = page.locator("#intent-table tr[data-key]")
    assert rows.first.get_attribute("data-key") == "nlu_fallback"
    assert page.locator(".topbar__nav a[aria-current=page]").inner_text() == "Bot"
    page.screenshot(path=str(SHOTS / "review_dashboard_bot.png"), full_page=True)
    assert axe_violations(page) == []
