"""Order cards (issue #19 item 3): the card builder and its plain-text fallback, the action's
Rasa `custom` payload, the Rasa client attaching it to its reply, and the chat WebSocket
carrying cards live and in the history, a pick sent as the picker button's payload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.support import ActionSupportRequest
from bot.config import Settings
from bot.domain import order_cards
from bot.domain.enums import MessageSender, OrderStatus
from bot.storage.models import Conversation, Message, Order, OrderItem
from bot.web.app import create_app
from bot.web.rasa_client import BotReply, _replies
from tests import factories
from tests.rasa_helpers import run, tracker

DHL_URL = "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id="
PICK = '/inform{"order_number":"A10001"}'


def _order(**changes: Any) -> Order:
    order = Order(
        number="A10001",
        status=OrderStatus.shipped,
        carrier="DHL",
        tracking_number="JJD000390007",
        placed_at=datetime(2026, 12, 3, 22, 15, tzinfo=timezone.utc),
        items=[
            OrderItem(
                sku="TW-1", name="Waffle Cotton Bath Towel", quantity=2, unit_price=Decimal("19.50")
            ),
            OrderItem(
                sku="CA-1",
                name="Enamel Cast-Iron Casserole 24 cm",
                quantity=1,
                unit_price=Decimal("89.00"),
            ),
        ],
    )
    for name, value in changes.items():
        setattr(order, name, value)
    return order


# --- the card and its plain-text fallback ---------------------------------------------------


def test_a_card_holds_number_date_items_status_and_tracking_link() -> None:
    assert order_cards.order_card(_order()) == {
        "number": "A10001",
        "date": "2026-12-03",
        "items": [
            {"name": "Waffle Cotton Bath Towel", "quantity": 2},
            {"name": "Enamel Cast-Iron Casserole 24 cm", "quantity": 1},
        ],
        "status": "shipped",
        "carrier": "DHL",
        "tracking_number": "JJD000390007",
        "tracking_url": DHL_URL + "JJD000390007",
    }


def test_a_picking_card_carries_the_picker_buttons_payload() -> None:
    card = order_cards.order_card(
        _order(status=OrderStatus.placed, carrier=None, tracking_number=None), PICK
    )

    assert card["payload"] == PICK
    assert (card["status"], card["carrier"], card["tracking_number"], card["tracking_url"]) == (
        "placed",
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("carrier", "number", "url"),
    [
        ("DHL", "JJD000390007", DHL_URL + "JJD000390007"),
        ("dpd", "0123 456", "https://tracking.dpd.de/status/en_US/parcel/0123%20456"),
        ("UPS", "1Z999AA1", "https://www.ups.com/track?tracknum=1Z999AA1"),
        ("PostNL", "3SABC/1", "https://jouw.postnl.nl/track-and-trace/3SABC%2F1"),
        ("GLS", "551234", "https://gls-group.com/GROUP/en/parcel-tracking?match=551234"),
        ("Hermes", "H123", None),  # a carrier without a known tracking page: no link
        ("DHL", None, None),
        (None, "JJD1", None),
    ],
)
def test_the_tracking_link_is_the_carriers_page_for_the_quoted_number(
    carrier: str | None, number: str | None, url: str | None
) -> None:
    assert order_cards.tracking_url(carrier, number) == url


def test_the_plain_text_fallback_is_a_line_per_card() -> None:
    shipped = order_cards.order_card(_order())
    placed = order_cards.order_card(
        _order(
            number="A10002",
            status=OrderStatus.placed,
            carrier=None,
            tracking_number=None,
            items=[
                OrderItem(
                    sku="J", name="Merino Wool Crew Jumper", quantity=1, unit_price=Decimal(1)
                )
            ],
        ),
        '/inform{"order_number":"A10002"}',
    )
    hermes = order_cards.order_card(_order(number="A10003", carrier="Hermes", items=[]))

    assert order_cards.plain_text([shipped, placed, hermes]) == (
        "Order A10001 · 2026-12-03 · 2× Waffle Cotton Bath Towel, 1× Enamel Cast-Iron Casserole"
        f" 24 cm · shipped · Tracking: DHL JJD000390007 {DHL_URL}JJD000390007\n"
        "Order A10002 · 2026-12-03 · 1× Merino Wool Crew Jumper · placed\n"
        "Order A10003 · 2026-12-03 · no items · shipped · Tracking: Hermes JJD000390007"
    )


def test_malformed_cards_in_a_custom_payload_are_dropped() -> None:
    good = order_cards.order_card(_order())
    assert order_cards.cards_of({"order_cards": [good, {"number": 5}, "x"]}) == [good]
    assert (
        order_cards.cards_of(
            {
                "order_cards": [
                    {
                        "number": "A1",
                        "date": "d",
                        "status": "s",
                        "items": [{"name": "n", "quantity": "2"}],
                    }
                ]
            }
        )
        is None
    )
    assert order_cards.cards_of({"nlu": {}}) is None
    assert order_cards.cards_of(None) is None


# --- Rasa's reply list -> the web service's replies -------------------------------------------


def test_the_rasa_client_attaches_cards_to_the_reply_before_them() -> None:
    card = order_cards.order_card(_order(), PICK)
    fallback = order_cards.plain_text([card])
    buttons = [{"title": "A10001 · 3 Dec · …", "payload": PICK}]
    payload = [
        {
            "recipient_id": "s",
            "text": "Which order is it about? Tap one, or type its order number.",
        },
        {"recipient_id": "s", "text": fallback, "buttons": buttons},
        {"recipient_id": "s", "custom": {"order_cards": [card]}},
        {"recipient_id": "s", "custom": {"nlu": {"intent": "order_status"}}},
    ]

    assert _replies(payload) == [
        BotReply("Which order is it about? Tap one, or type its order number.", []),
        BotReply(fallback, buttons, [card]),
    ]


# --- the action: a status answer is followed by the order's card --------------------------------


async def test_an_order_status_answer_is_followed_by_the_orders_card(
    session: AsyncSession, action_services: object
) -> None:
    jane = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, jane, "A10001", OrderStatus.shipped, placed_days_ago=3)
    order.items = [
        OrderItem(
            sku="K", name="Damascus Chef's Knife 20 cm", quantity=1, unit_price=Decimal("129.00")
        )
    ]
    session.add(Conversation(id="conv-1", customer_id=jane.id, identified_by="token"))
    await session.commit()
    state = tracker(
        "conv-1",
        "where is my order",
        "order_status",
        {"identity": "verified", "support_request": "order_status"},
    )

    _events, messages = await run(ActionSupportRequest(), state)

    card = {
        "number": "A10001",
        "date": f"{order.placed_at:%Y-%m-%d}",
        "items": [{"name": "Damascus Chef's Knife 20 cm", "quantity": 1}],
        "status": "shipped",
        "carrier": "DHL",
        "tracking_number": "JJD000390007",
        "tracking_url": DHL_URL + "JJD000390007",
    }
    assert messages[0]["text"].startswith(
        "Order A10001 (1× Damascus Chef's Knife 20 cm) shipped on "
    )
    assert messages[0]["custom"] == {}
    assert messages[1]["text"] == (
        f"Order A10001 · {order.placed_at:%Y-%m-%d} · 1× Damascus Chef's Knife 20 cm · shipped"
        f" · Tracking: DHL JJD000390007 {DHL_URL}JJD000390007"
    )
    assert messages[1]["custom"] == {"order_cards": [card]}
    assert messages[1]["buttons"] == []


# --- the chat WebSocket ---------------------------------------------------------------------


class CardRasa:
    """Rasa's REST channel answering like the real bot with a signed-in customer of two orders:
    "where is my order" gets the picker (question, card message, its custom item); the
    picker's payload gets the status answer and the order's card."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.cards = [
            order_cards.order_card(_order(), PICK),
            order_cards.order_card(
                _order(
                    number="A10002", status=OrderStatus.placed, carrier=None, tracking_number=None
                ),
                '/inform{"order_number":"A10002"}',
            ),
        ]
        self.buttons = [
            {"title": f"{c['number']} · {c['status']}", "payload": c["payload"]} for c in self.cards
        ]

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        to = body["sender"]
        if body["message"] == PICK:
            card = {k: v for k, v in self.cards[0].items() if k != "payload"}
            return web.json_response(
                [
                    {"recipient_id": to, "text": "Order A10001 shipped on 4 December 2026."},
                    {"recipient_id": to, "text": order_cards.plain_text([card])},
                    {"recipient_id": to, "custom": {"order_cards": [card]}},
                ]
            )
        return web.json_response(
            [
                {
                    "recipient_id": to,
                    "text": "Which order is it about? Tap one, or type its order number.",
                },
                {
                    "recipient_id": to,
                    "text": order_cards.plain_text(self.cards),
                    "buttons": self.buttons,
                },
                {"recipient_id": to, "custom": {"order_cards": self.cards}},
            ]
        )

    async def ok(self, _request: web.Request) -> web.Response:
        return web.json_response({"paused": False, "active_loop": {}, "slots": {}, "events": []})


@pytest.fixture
async def card_client(
    engine: Any, settings: Settings
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], CardRasa]]:
    stub = CardRasa()
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", stub.webhook)
    rasa_app.router.add_get("/conversations/{sender}/tracker", stub.ok)
    rasa_app.router.add_post("/conversations/{sender}/tracker/events", stub.ok)
    rasa_server = TestServer(rasa_app)
    await rasa_server.start_server()
    app = create_app(
        replace(
            settings, rasa_url=str(rasa_server.make_url("")).rstrip("/"), rasa_timeout_seconds=2.0
        )
    )
    async with TestClient(TestServer(app)) as client:
        yield client, stub
    await rasa_server.close()


async def _bot_frames(ws: Any, count: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while len(frames) < count:
        frame = await ws.receive_json(timeout=5)
        if frame["type"] == "message" and frame["sender"] == "bot":
            frames.append(frame)
    return frames


async def test_the_picker_and_the_status_answer_carry_cards_live_and_in_the_history(
    card_client: tuple[TestClient[web.Request, web.Application], CardRasa], session_factory: Any
) -> None:
    client, stub = card_client
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": None})
    session = await ws.receive_json(timeout=5)

    await ws.send_json({"type": "message", "text": "where is my order", "client_id": "c1"})
    question, picker = await _bot_frames(ws, 2)

    assert (question["text"], question["cards"]) == (
        "Which order is it about? Tap one, or type its order number.",
        [],
    )
    assert picker["cards"] == stub.cards
    assert picker["buttons"] == stub.buttons
    assert picker["text"] == order_cards.plain_text(stub.cards)

    # Picking the first card: what the widget sends for it (the picker button's payload and
    # title) is forwarded to the bot as a button payload, as for the button itself.
    await ws.send_json(
        {"type": "message", "text": PICK, "display": stub.buttons[0]["title"], "client_id": "c2"}
    )
    answer, card = await _bot_frames(ws, 2)

    assert stub.received[-1]["message"] == PICK
    assert stub.received[-1].get("button_payload") is True
    assert answer["text"] == "Order A10001 shipped on 4 December 2026." and answer["cards"] == []
    assert [c["number"] for c in card["cards"]] == ["A10001"]
    assert "payload" not in card["cards"][0]
    await ws.close()

    # Stored with the message (the transcript's text is the fallback) and in the history.
    async with session_factory() as db:
        rows = (await db.scalars(select(Message).order_by(Message.id))).all()
    assert [(m.sender, m.text, m.cards) for m in rows] == [
        (MessageSender.customer, "where is my order", None),
        (MessageSender.bot, question["text"], None),
        (MessageSender.bot, order_cards.plain_text(stub.cards), stub.cards),
        (MessageSender.customer, stub.buttons[0]["title"], None),
        (MessageSender.bot, answer["text"], None),
        (MessageSender.bot, card["text"], card["cards"]),
    ]
    again = await client.ws_connect("/ws")
    await again.send_json({"type": "hello", "token": session["token"]})
    history = (await again.receive_json(timeout=5))["history"]
    assert [m["cards"] for m in history] == [[], [], stub.cards, [], [], card["cards"]]
    await again.close()
