"""The stand-alone chat page (`/`) is the widget filling the page (widget.js with
`data-mode="page"`), so it has what the widget has: a phone- and desktop-sized layout with
the title as the page's heading and no launcher; re-sent messages de-duplicated by their
client id; "Did this help?" under a knowledge answer. axe-core WCAG 2.1 AA at 0 violations
in each state. Screenshots: var/results/screenshots/chat_page_*.png.

The web service runs alone (tests/live_app.py) with the echo Rasa stand-in, told which NLU
result to report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.enums import MessageSender
from bot.storage.models import AnswerRating, Message
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

pytestmark = pytest.mark.browser

WIDGET = "#shop-chat-widget"
SHOTS = Path(__file__).resolve().parent.parent / "var" / "results" / "screenshots"
POLICY = ("action_answer_policy_question",)


def _nlu(intent: str, steps: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "intent": intent,
        "confidence": 0.9,
        "runner_up": "greet",
        "runner_up_confidence": 0.01,
        "entities": [],
        "steps": list(steps),
        "model_id": "model-a",
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve_app(tmp_path_factory.mktemp("chat_page")) as app:
        yield app


@pytest.fixture(autouse=True)
def _plain_replies(live: LiveApp) -> None:
    live.rasa.nlu = None  # each test says which NLU result the echo reports


async def _customer_messages(sessions: Sessions, conversation_id: str) -> list[tuple[Any, ...]]:
    async with sessions() as db:
        rows = await db.execute(
            select(Message.text, Message.client_message_id)
            .where(
                Message.conversation_id == conversation_id, Message.sender == MessageSender.customer
            )
            .order_by(Message.id)
        )
        return [tuple(r) for r in rows]


async def _ratings(sessions: Sessions) -> list[tuple[Any, ...]]:
    async with sessions() as db:
        rows = await db.execute(
            select(Message.text, AnswerRating.helpful, AnswerRating.intent).join(
                Message, Message.id == AnswerRating.message_id
            )
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize(
    ("device", "viewport"),
    [("phone", {"width": 390, "height": 844}), ("desktop", {"width": 1280, "height": 800})],
)
def test_chat_page_fills_the_page_on_a_phone_and_a_desktop(
    live: LiveApp, browser: Any, device: str, viewport: dict[str, int]
) -> None:
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{live.url}/")
    widget = page.locator(WIDGET)
    widget.locator(".msg--bot").first.wait_for(timeout=15_000)
    # The page's own heading and landmark; nothing to open or close.
    assert page.get_by_role("heading", level=1).all_inner_texts() == ["Customer help"]
    assert page.get_by_role("main", name="Customer help").count() == 1
    assert page.get_by_role("dialog").count() == 0
    assert page.get_by_role("button", name="Open chat").count() == 0
    assert page.get_by_role("button", name="Close chat").count() == 0
    assert page.get_by_role("button", name="Where is my order?").count() == 1  # the greeting
    # Connected at once, without a click: the team's status is in the header.
    widget.locator(".header__status", has_text="Team offline").wait_for(timeout=15_000)
    box = page.locator(f"{WIDGET} .panel").bounding_box()
    if device == "phone":  # the whole screen
        assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 390, 844)
    else:  # a column in the middle, the page's full height
        assert (box["width"], box["height"]) == (768, 800)
        assert box["x"] == (1280 - 768) / 2
    send = page.get_by_role("button", name="Send").bounding_box()
    assert send["x"] + send["width"] <= viewport["width"]  # all of it on screen

    page.get_by_label("Your message").fill("where is my parcel")
    page.keyboard.press("Enter")
    widget.locator(".msg--bot", has_text="echo: where is my parcel").wait_for(timeout=15_000)
    widget.locator(".msg--customer[data-state='sent']").wait_for(timeout=15_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"chat_page_{device}.png"))
    assert axe_violations(page) == []
    page.context.close()


def test_a_re_sent_message_is_stored_and_answered_once(live: LiveApp, browser: Any) -> None:
    """Every message frame goes to the server twice (a re-send after a lost acknowledgement):
    the page's client id makes the second one a duplicate, stored once and not asked again.
    chat.js sent no client id, and both copies were stored and answered."""
    page = browser.new_context().new_page()
    sent: list[dict[str, Any]] = []

    def twice(ws: Any) -> None:
        server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            server.send(message)
            frame = json.loads(message)
            if frame.get("type") == "message":
                sent.append(frame)
                server.send(message)

        ws.on_message(to_server)

    page.route_web_socket("**/ws", twice)
    page.goto(f"{live.url}/")
    widget = page.locator(WIDGET)
    widget.locator(".msg--bot").first.wait_for(timeout=15_000)
    before = len(live.rasa.received)
    page.get_by_label("Your message").fill("my parcel is late")
    page.keyboard.press("Enter")
    widget.locator(".msg--bot", has_text="echo: my parcel is late").wait_for(timeout=15_000)
    widget.locator(".msg--customer[data-state='sent']").wait_for(timeout=15_000)
    page.wait_for_timeout(1000)  # the copy's answer, if any, would be here by now

    [frame] = sent
    assert isinstance(frame.get("client_id"), str) and frame["client_id"]
    assert [r["message"] for r in live.rasa.received[before:]] == ["my parcel is late"]
    conversation_id = live.rasa.received[-1]["sender"]
    assert live.run(_customer_messages(live.sessions, conversation_id)) == [
        ("my parcel is late", frame["client_id"])
    ]
    assert widget.locator(".msg--customer").all_inner_texts()[0].count("my parcel is late") == 1
    assert widget.locator(".msg--customer").count() == 1
    assert widget.locator(".msg--bot", has_text="echo: my parcel is late").count() == 1
    page.context.close()


def test_did_this_help_on_the_chat_page(live: LiveApp, browser: Any) -> None:
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(f"{live.url}/")
    widget = page.locator(WIDGET)
    box = page.get_by_label("Your message")
    widget.locator(".msg--bot").first.wait_for(timeout=15_000)

    # An order-status reply: nothing to rate.
    live.rasa.nlu = _nlu("order_status")
    box.fill("where is my parcel")
    box.press("Enter")
    widget.locator(".msg--bot", has_text="echo: where is my parcel").wait_for(timeout=15_000)

    # A shop-policy answer: "Did this help?" under it, and only there.
    live.rasa.nlu = _nlu("policy_question", POLICY)
    box.fill("do you ship to the uk")
    box.press("Enter")
    answer = widget.locator(".msg--bot", has_text="echo: do you ship to the uk")
    group = answer.get_by_role("group", name="Did this help?")
    group.wait_for(timeout=15_000)
    assert page.get_by_role("group", name="Did this help?").count() == 1
    assert axe_violations(page) == []

    yes = group.get_by_role("button", name="Yes")
    yes.click()
    group.get_by_role("status").filter(has_text="Thanks for telling us.").wait_for(timeout=15_000)
    assert yes.get_attribute("aria-pressed") == "true"
    assert group.get_by_role("button", name="No").get_attribute("aria-pressed") == "false"
    page.screenshot(path=str(SHOTS / "chat_page_did_this_help.png"))
    assert axe_violations(page) == []
    assert live.run(_ratings(live.sessions)) == [
        ("echo: do you ship to the uk", True, "policy_question")
    ]
    page.context.close()
