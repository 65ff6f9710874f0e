"""Order cards (issue #19 item 3): an order as a structured message — number, date, items,
status, tracking link — shown by the widget, the chat page and the console instead of a
line of text (docs/widget.md, "Order cards").

A card is plain JSON (it travels from the action server through Rasa's `custom` payload
`{"order_cards": [...]}` to the web service, which stores it with the message):

    {"number": "A10001", "date": "2026-12-03", "items": [{"name": "...", "quantity": 2}],
     "status": "shipped", "carrier": "DHL", "tracking_number": "JD0001",
     "tracking_url": "https://...", "payload": "/inform{\"order_number\":\"A10001\"}"}

`payload` is only on a card that picks an order (the order picker): it is exactly the
payload of the picker's button, so picking a card is the same turn as tapping that button.
Every card message also has a plain-text fallback (`plain_text`): the message's stored text,
which is what transcripts, exports, emails and anything that does not draw cards show.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bot.domain import texts
from bot.storage.models import Order

# The key of the Rasa `custom` payload (and of the stored message's cards).
CUSTOM_KEY = "order_cards"

# Public tracking pages of the carriers the shop uses (bot/demo/data.py CARRIERS); `{number}` is
# the URL-quoted tracking number. Another carrier's card shows the number without a link.
TRACKING_URLS: dict[str, str] = {
    "dhl": "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id={number}",
    "dpd": "https://tracking.dpd.de/status/en_US/parcel/{number}",
    "ups": "https://www.ups.com/track?tracknum={number}",
    "postnl": "https://jouw.postnl.nl/track-and-trace/{number}",
    "gls": "https://gls-group.com/GROUP/en/parcel-tracking?match={number}",
}


def tracking_url(carrier: str | None, tracking_number: str | None) -> str | None:
    """The carrier's tracking page for this parcel, or None (no number, unknown carrier)."""
    if not carrier or not tracking_number:
        return None
    template = TRACKING_URLS.get(carrier.strip().lower().replace(" ", ""))
    return template.format(number=quote(tracking_number.strip(), safe="")) if template else None


def order_card(order: Order, payload: str | None = None) -> dict[str, Any]:
    """The card of `order` (its items must be loaded); `payload`: the card picks the order."""
    card: dict[str, Any] = {
        "number": order.number,
        "date": order.placed_at.date().isoformat(),
        "items": [{"name": item.name, "quantity": item.quantity} for item in order.items],
        "status": order.status.value,
        "carrier": order.carrier,
        "tracking_number": order.tracking_number,
        "tracking_url": tracking_url(order.carrier, order.tracking_number),
    }
    if payload is not None:
        card["payload"] = payload
    return card


def card_line(card: dict[str, Any]) -> str:
    """One card as one line of text (responses utter_order_card*):
    `Order A10001 · 2026-12-03 · 2x Waffle Towel, 1x Casserole · shipped · Tracking: DHL JD1 https://…`
    """
    items = ", ".join(f"{item['quantity']}× {item['name']}" for item in card["items"])
    tracking = ""
    if card.get("tracking_number"):
        parts = (card.get("carrier"), card["tracking_number"], card.get("tracking_url"))
        tracking = texts.render(
            "utter_order_card_tracking", tracking=" ".join(str(p) for p in parts if p)
        )
    return texts.render(
        "utter_order_card",
        order=card["number"],
        date=card["date"],
        items=items or texts.render("utter_order_no_items"),
        status=card["status"],
        tracking=tracking,
    )


def plain_text(cards: list[dict[str, Any]]) -> str:
    """The fallback text of a card message: a line per card (single newlines: Rasa splits a
    text without buttons at blank lines)."""
    return "\n".join(card_line(card) for card in cards)


def cards_of(custom: object) -> list[dict[str, Any]] | None:
    """The cards of a Rasa `custom` payload, if it carries any (malformed ones are dropped)."""
    if not isinstance(custom, dict):
        return None
    cards = custom.get(CUSTOM_KEY)
    if not isinstance(cards, list):
        return None
    valid = [card for card in cards if is_card(card)]
    return valid or None


def is_card(card: object) -> bool:
    return (
        isinstance(card, dict)
        and isinstance(card.get("number"), str)
        and isinstance(card.get("date"), str)
        and isinstance(card.get("status"), str)
        and isinstance(card.get("items"), list)
        and all(
            isinstance(i, dict)
            and isinstance(i.get("name"), str)
            and isinstance(i.get("quantity"), int)
            for i in card["items"]
        )
    )
