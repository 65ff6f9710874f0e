"""Order cards in the browser (issue #19 item 3): the widget (shadow DOM) and the chat page
draw the picker's cards as a list of articles, pass axe-core WCAG 2.1 AA, and picking a card
by keyboard sends the picker button's payload (what tapping the button sent), after which
the status answer's card is shown. The web service runs alone (tests/live_app.py) with a
Rasa stand-in answering as the bot does for a signed-in customer with two orders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from bot.domain import order_cards, staff
from bot.domain.enums import MessageSender, StaffRole
from bot.storage.models import Conversation, Customer, Message
from tests import live_app
from tests.axe_helper import axe_violations
from tests.test_a11y_browser import _focused, _tab_to
from tests.test_order_cards import PICK, CardRasa

pytestmark = pytest.mark.browser

QUESTION = "Which order is it about? Tap one, or type its order number."


class CardEcho(live_app.EchoRasa):
    """live_app's Rasa stand-in answering with CardRasa's picker and status turns."""

    def __init__(self) -> None:
        super().__init__()
        self.cards = CardRasa()

    async def webhook(self, request: web.Request) -> web.Response:
        response = await self.cards.webhook(request)
        self.received.append(self.cards.received[-1])
        return response


PASSWORD = "console-password-1"


async def _seed(sessions: live_app.Sessions) -> None:
    """An admin, and a chat in which the picker's cards were shown and one was picked."""
    stub = CardRasa()
    status_card = [{k: v for k, v in stub.cards[0].items() if k != "payload"}]
    async with sessions() as db, db.begin():
        await staff.create_user(db, "ada@example.com", "Ada", StaffRole.admin, PASSWORD)
        eva = Customer(external_id="C3001", name="Eva Green", email="eva@example.com")
        db.add(eva)
        await db.flush()
        db.add(Conversation(id="conv-cards", customer_id=eva.id))
        await db.flush()
        for sender, text, buttons, cards in [
            (MessageSender.customer, "where is my order", None, None),
            (MessageSender.bot, QUESTION, None, None),
            (MessageSender.bot, order_cards.plain_text(stub.cards), stub.buttons, stub.cards),
            (MessageSender.customer, stub.buttons[0]["title"], None, None),
            (MessageSender.bot, order_cards.plain_text(status_card), None, status_card),
        ]:
            db.add(
                Message(
                    conversation_id="conv-cards",
                    sender=sender,
                    text=text,
                    buttons=buttons,
                    cards=cards,
                )
            )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live_app.LiveApp]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(live_app, "EchoRasa", CardEcho)
        with live_app.serve_app(tmp_path_factory.mktemp("cards"), seed=_seed) as live:
            yield live


def _check_picker(root: Any) -> None:
    """The picker message: two order articles, no repeated quick replies."""
    cards = root.locator(".msg--bot .cards").last
    cards.wait_for(timeout=15_000)
    articles = cards.locator("article")
    assert articles.count() == 2
    first = articles.nth(0)
    assert first.get_by_role("heading", name="Order A10001").count() == 1
    assert first.locator("time").get_attribute("datetime") == "2026-12-03"
    assert first.locator(".card__items li").all_inner_texts() == [
        "2 × Waffle Cotton Bath Towel",
        "1 × Enamel Cast-Iron Casserole 24 cm",
    ]
    link = first.get_by_role("link")
    assert link.text_content() == "Track parcel (DHL), opens in a new tab"
    assert link.get_attribute("href") == order_cards.tracking_url("DHL", "JJD000390007")
    assert "Shipped" in first.inner_text()
    assert articles.nth(1).get_by_role("button", name="Choose order A10002").count() == 1
    assert root.locator(".msg--bot", has=cards).locator(".msg__buttons").count() == 0


def test_widget_shows_order_cards_and_a_card_picks_by_keyboard(
    browser: Any, server: live_app.LiveApp
) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/demo/shop/")
    widget = page.locator("#shop-chat-widget")
    widget.wait_for(state="attached")
    _tab_to(page, "Open chat")
    page.keyboard.press("Enter")
    widget.locator(".msg--bot").first.wait_for(timeout=15_000)
    page.keyboard.type("where is my order")
    page.keyboard.press("Enter")
    widget.locator(".msg--bot", has_text=QUESTION).wait_for(timeout=15_000)
    _check_picker(widget)
    assert axe_violations(page) == []  # the cards in the shadow DOM

    _tab_to(page, "Choose order A10001")
    page.keyboard.press("Enter")
    widget.locator(".msg--bot", has_text="Order A10001 shipped on").wait_for(timeout=15_000)
    answer_card = widget.locator(".msg--bot .cards").last
    answer_card.get_by_role("heading", name="Order A10001").wait_for(timeout=15_000)
    assert answer_card.get_by_role("button").count() == 0  # a status card picks nothing
    sent = server.rasa.received[-1]
    assert (sent["message"], sent.get("button_payload")) == (PICK, True)
    # The transcript shows the picker button's title, as a tap on that button did.
    assert widget.locator(".msg--customer .msg__text").last.inner_text() == "A10001 · shipped"
    # Once picked, the picker's cards cannot be picked again.
    assert widget.locator(".card__pick:not([disabled])").count() == 0
    assert _focused(page) == "Your message"
    assert axe_violations(page) == []
    page.close()


def test_chat_page_shows_order_cards_and_a_card_picks(
    browser: Any, server: live_app.LiveApp
) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/")
    page.locator(".msg--bot").first.wait_for(timeout=15_000)
    _tab_to(page, "Your message")
    page.keyboard.type("where is my order")
    page.keyboard.press("Enter")
    page.locator(".msg--bot", has_text=QUESTION).wait_for(timeout=15_000)
    _check_picker(page)
    assert axe_violations(page) == []

    _tab_to(page, "Choose order A10001")
    page.keyboard.press("Enter")
    page.locator(".msg--bot", has_text="Order A10001 shipped on").wait_for(timeout=15_000)
    sent = server.rasa.received[-1]
    assert (sent["message"], sent.get("button_payload")) == (PICK, True)
    assert axe_violations(page) == []

    # After a reload the history draws the cards again; the picker's were answered (the
    # customer spoke after them), so they pick no more.
    page.reload()
    page.locator(".cards").first.wait_for(timeout=15_000)
    assert page.locator(".cards article").count() == 3
    assert page.locator(".card__pick").count() == 2
    assert page.locator(".card__pick:not([disabled])").count() == 0
    assert axe_violations(page) == []
    page.close()


def test_console_transcript_shows_the_cards_read_only(
    browser: Any, server: live_app.LiveApp
) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)
    page.goto(f"{server.url}/console/conversations/conv-cards")
    page.locator(".cards").first.wait_for(timeout=15_000)

    picker, status = page.locator(".cards").nth(0), page.locator(".cards").nth(1)
    assert picker.locator("article").count() == 2
    assert picker.get_by_text("Offered as a choice").count() == 2
    assert picker.get_by_role("heading", name="Order A10002").count() == 1
    assert status.locator("article").count() == 1
    assert status.get_by_text("Offered as a choice").count() == 0
    assert status.get_by_role("link").get_attribute("href") == order_cards.tracking_url(
        "DHL", "JJD000390007"
    )
    assert page.locator(".cards button").count() == 0  # staff see them, they do not pick
    assert page.locator(".msg__buttons").count() == 0  # the picker buttons are the cards
    assert axe_violations(page) == []
    page.close()
