"""Item-level returns, damage and wrong items (issue #19 item 1; rules in
bot/domain/returns.py): the customer's items, reason and refund or replacement, asked only
when their words did not say it; the refund is those items' price; stored per item with a
reference, and sent to the shop's webhook."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.support import ActionDropPending, ActionResolvePending, ActionSupportRequest
from bot.config import Settings
from bot.domain import chat, refusals, returns, support
from bot.domain.enums import FeedbackKind, OrderStatus
from bot.storage.models import (
    Conversation,
    Feedback,
    Order,
    OrderItem,
    ReturnLine,
    ReturnRequest,
    WebhookOutbox,
)
from tests import factories
from tests.rasa_helpers import run, slot_events, tracker

CASSEROLE = "Enamel Cast-Iron Casserole 24 cm"
TOWEL = "Waffle Cotton Bath Towel"
MUG = "Stoneware Mug"


async def _jane(session: AsyncSession, mugs: int = 1) -> Order:
    """A delivered order of a casserole (120.00), a towel (25.00) and `mugs` mugs (12.50)."""
    jane = await factories.customer(session, email="jane.doe@example.com")
    order = await factories.order(session, jane, "A10001", OrderStatus.delivered, placed_days_ago=6)
    order.items = [
        OrderItem(sku="CAS-24", name=CASSEROLE, quantity=1, unit_price=Decimal("120.00")),
        OrderItem(sku="TWL-1", name=TOWEL, quantity=1, unit_price=Decimal("25.00")),
        OrderItem(sku="MUG-1", name=MUG, quantity=mugs, unit_price=Decimal("12.50")),
    ]
    session.add(Conversation(id="conv-1", customer_id=jane.id, identified_by="token"))
    await session.commit()
    return order


class Chat:
    """One conversation's turns against the domain, carrying the slots between them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.slots: dict[str, Any] = {}

    async def say(
        self,
        text: str,
        flow: str | None = None,
        pick: str | None = None,
        intent: str = "inform",
        earlier: str | None = None,
    ) -> chat.Turn:
        turn = await chat.support_request(
            self.session,
            Settings(),
            "conv-1",
            flow or self.slots.get("flow"),
            verified=True,
            text=text,
            return_draft=self.slots.get("return_draft"),
            latest=text,
            return_pick=pick,
            latest_intent=flow or intent,
            earlier_request=earlier,
        )
        if flow:
            self.slots["flow"] = flow
        self.slots.update(turn.slots)
        await self.session.commit()
        return turn

    async def yes(self, pick: str | None = None, text: str = "yes") -> chat.Turn:
        return await self._answer(True, pick, text)

    async def no(self, text: str = "no") -> chat.Turn:
        return await self._answer(False, None, text)

    async def _answer(self, confirmed: bool, pick: str | None, text: str) -> chat.Turn:
        turn = await chat.resolve_pending(
            self.session,
            Settings(),
            "conv-1",
            self.slots.get("pending_action"),
            confirmed=confirmed,
            new_address=None,
            return_draft=self.slots.get("return_draft"),
            return_pick=pick,
            text=text,
        )
        self.slots.update(turn.slots)
        await self.session.commit()
        return turn


def _texts(turn: chat.Turn) -> list[str]:
    return [text for text, _ in turn.messages]


def _titles(turn: chat.Turn) -> list[str]:
    return [button["title"] for _, buttons in turn.messages for button in buttons]


async def _lines(session: AsyncSession) -> list[tuple[str, int, str, str, Decimal]]:
    rows = await session.execute(
        select(
            OrderItem.name,
            ReturnLine.quantity,
            ReturnLine.reason,
            ReturnLine.resolution,
            ReturnLine.refund_amount,
        )
        .join(OrderItem, OrderItem.id == ReturnLine.order_item_id)
        .order_by(ReturnLine.id)
    )
    return [tuple(row) for row in rows.all()]


# --- the cases -----------------------------------------------------------------------

REASONS = ["Damaged", "Wrong item", "Doesn't fit", "Changed my mind", "Other", "No, keep it"]


async def test_just_the_towel_returns_the_towel_only_for_its_price(session: AsyncSession) -> None:
    """ "just the towel though, i'm keeping the casserole" got "Sorry, I didn't understand"."""
    order = await _jane(session)
    talk = Chat(session)

    asked = await talk.say("i want to return something", "return_item")
    assert _texts(asked) == [
        "Which items from order A10001 would you like to return? Pick one, or type their "
        'names (for example "just the towel").'
    ]
    assert _titles(asked) == [CASSEROLE, TOWEL, MUG, "All items"]
    assert talk.slots["next_step"] == "return_question"

    confirm = await talk.say("just the towel though, i'm keeping the casserole")
    assert _texts(confirm) == [
        f"Start a free return of order A10001 (1× {TOWEL}) for a refund of 25.00 EUR? Tap the reason to "
        "confirm, or just say yes."
    ]
    assert _titles(confirm) == REASONS
    assert talk.slots["pending_action"] == "return_item"

    done = await talk.yes(pick="reason:changed_mind")
    request = (await session.scalars(select(ReturnRequest))).one()
    assert _texts(done)[0] == (
        f"Your return for order A10001 is started: 1× {TOWEL}, reference {request.reference}. "
        "A prepaid label is on its way to jane.doe@example.com; drop the parcel off within 14 days and "
        "we'll refund 25.00 EUR within 5 working days of it reaching us."
    )
    assert await _lines(session) == [(TOWEL, 1, "changed_mind", "refund", Decimal("25.00"))]
    await session.refresh(order)
    assert order.return_requested_at is not None
    assert talk.slots["return_draft"] is None


async def test_a_plain_yes_returns_for_a_refund_without_a_reason(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("can i return the towel", "return_item")

    await talk.yes()

    assert await _lines(session) == [(TOWEL, 1, "other", "refund", Decimal("25.00"))]


async def test_a_wrong_item_offers_a_replacement_and_refunds_nothing(session: AsyncSession) -> None:
    """A wrong item was promised "full refund or replacement" and ended as a refund of all
    three items."""
    await _jane(session)
    talk = Chat(session)

    choice = await talk.say("you sent me the wrong mug", "return_item")
    assert _texts(choice) == [
        f"Sorry about that. Start a free return of order A10001 (1× {MUG}, wrong item)? You can have a "
        "refund of 12.50 EUR or a free replacement; a plain yes means the refund."
    ]
    assert _titles(choice) == ["Refund 12.50 EUR", "Send a replacement", "No, keep it"]

    done = await talk.yes(pick="resolution:replacement")
    request = (await session.scalars(select(ReturnRequest))).one()
    assert _texts(done)[0] == (
        f"Done: a new 1× {MUG} for order A10001 is on its way, free of charge (reference "
        f"{request.reference}). A prepaid label for the old one is on its way to "
        "jane.doe@example.com; please send it back within 14 days."
    )
    assert await _lines(session) == [(MUG, 1, "wrong_item", "replacement", Decimal("0.00"))]


async def test_a_replacement_asked_in_words_at_the_yes_is_confirmed_as_one(
    session: AsyncSession,
) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("the casserole arrived with a massive chip", "damaged_item")

    confirm = await talk.say("a replacement please")

    assert _texts(confirm) == [
        f"Send you a new 1× {CASSEROLE} for order A10001 (damaged), free of charge, and "
        "collect the old one?"
    ]
    await talk.yes()
    assert await _lines(session) == [(CASSEROLE, 1, "damaged", "replacement", Decimal("0.00"))]


async def test_damaged_tapped_as_the_reason_asks_refund_or_replacement_once(
    session: AsyncSession,
) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("can i return the towel", "return_item")

    choice = await talk.yes(pick="reason:damaged")

    assert _titles(choice) == ["Refund 25.00 EUR", "Send a replacement", "No, keep it"]
    assert await _lines(session) == []
    await talk.yes()
    assert await _lines(session) == [(TOWEL, 1, "damaged", "refund", Decimal("25.00"))]


async def test_no_just_the_towel_at_the_yes_changes_the_return(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("return all of it", "return_item")

    changed = await talk.no("no, just the towel")

    assert _texts(changed)[0].startswith(
        f"Start a free return of order A10001 (1× {TOWEL}) for a refund of 25.00"
    )
    assert talk.slots["pending_action"] == "return_item"


async def test_quantities_and_everything_but_one_item(session: AsyncSession) -> None:
    await _jane(session, mugs=4)
    talk = Chat(session)

    too_many = await talk.say("i want to return 5 mugs", "return_item")
    assert _texts(too_many)[0] == f"You can return up to 4× {MUG} from that order, not 5."
    assert _texts(too_many)[1].startswith("Which items from order A10001")

    confirm = await talk.say("2 mugs")
    assert _texts(confirm)[0].startswith(
        f"Start a free return of order A10001 (2× {MUG}) for a refund of 25.00 EUR?"
    )

    rest = await Chat(session).say(
        "return everything except the casserole, they're too small", "return_item"
    )
    assert _texts(rest) == [
        f"Sorry it doesn't fit. Start a free return of order A10001 (1× {TOWEL}, 4× {MUG}) for a "
        "refund of 75.00 EUR, or exchange it for another size, free of charge? A plain yes means "
        "the refund."
    ]


async def test_items_already_returned_cannot_be_returned_again(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("return the towel, changed my mind", "return_item")
    await talk.yes()

    asked = await Chat(session).say("i want to return the towel as well", "return_item")
    # the towel is in a return: only the casserole and the mug are offered
    assert _titles(asked) == [CASSEROLE, MUG, "All items"]

    everything = Chat(session)
    await everything.say("return all of it, i don't need them", "return_item")
    await everything.yes()
    nothing = await Chat(session).say("return the mug", "return_item")
    assert _texts(nothing) == [
        "Every item of order A10001 is already in a return. If something is wrong with one "
        "of those returns, a person can help."
    ]
    assert [(n, q) for n, q, *_ in await _lines(session)] == [(TOWEL, 1), (CASSEROLE, 1), (MUG, 1)]


async def test_a_return_taken_meanwhile_is_not_stored_twice(session: AsyncSession) -> None:
    """Two chats confirm the same towel: the second yes stores nothing."""
    await _jane(session)
    first, second = Chat(session), Chat(session)
    await first.say("return the towel, it's torn", "damaged_item")
    await second.say("return the towel, it's torn", "damaged_item")
    await first.yes()

    late = await second.yes()

    assert _texts(late)[0] == (
        "Those items of order A10001 are already in a return, so I haven't started another one."
    )
    assert len(await _lines(session)) == 1


async def test_the_shop_is_sent_the_items_through_the_webhook(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("the mug is cracked, refund please", "damaged_item")
    await talk.yes()

    row = (await session.scalars(select(WebhookOutbox))).one()
    request = (await session.scalars(select(ReturnRequest))).one()
    assert row.event_type == "return.requested"
    assert row.escalation_id is None
    assert row.payload["return"] == {
        "reference": request.reference,
        "order": "A10001",
        "items": [
            {
                "sku": "MUG-1",
                "name": MUG,
                "quantity": 1,
                "reason": "damaged",
                "resolution": "refund",
                "refund_amount": "12.50",
                "exchange_size": None,
            }
        ],
        "refund_total": "12.50",
        "currency": "EUR",
    }


async def test_no_at_the_items_question_starts_nothing(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("i want to return something", "return_item")

    dropped = await talk.say("never mind", intent="deny")

    assert _texts(dropped) == ["Okay, I haven't started a return. Anything else I can help with?"]
    assert talk.slots["return_draft"] is None
    assert await _lines(session) == []


async def test_yes_at_the_items_question_means_the_whole_order(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("i want to return my order", "return_item")

    confirm = await talk.say("yes please", intent="affirm")

    assert _texts(confirm)[0].startswith(
        f"Start a free return of order A10001 (1× {CASSEROLE}, 1× {TOWEL}, 1× {MUG}) for a refund "
        "of 157.50"
    )


async def test_another_request_at_a_return_question_is_served_as_itself(
    session: AsyncSession,
) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("i want to return something", "return_item")

    other = await talk.say("where is my other parcel", "order_status")

    assert talk.slots["return_draft"] is None
    assert "Which items" not in " ".join(_texts(other))


async def test_changed_my_mind_at_the_yes_is_a_reason_not_a_cancel(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("can i return the towel", "return_item")

    confirm = await talk.say("changed my mind", "cancel_order")

    assert _texts(confirm) == [
        f"Start a free return of order A10001 (1× {TOWEL}, changed my mind) for a refund of 25.00 EUR?"
    ]


# --- through the actions --------------------------------------------------------------------


async def test_a_button_pick_reaches_the_return_through_the_action(
    session: AsyncSession, action_services: object
) -> None:
    order = await _jane(session)
    towel = next(item for item in order.items if item.name == TOWEL)
    draft = returns.ReturnDraft(order="A10001", flow="return_item", step="items").to_slot()
    payload = f'/inform{{"return_pick":"item:{towel.id}"}}'
    state = tracker(
        "conv-1",
        payload,
        "inform",
        {
            "identity": "verified",
            "support_request": "return_item",
            "return_draft": draft,
            "next_step": "return_question",
        },
        entities=[{"entity": "return_pick", "value": f"item:{towel.id}"}],
    )

    events, messages = await run(ActionSupportRequest(), state)

    assert messages[0]["text"].startswith(
        f"Start a free return of order A10001 (1× {TOWEL}) for a refund"
    )
    slots = slot_events(events)
    assert (slots["next_step"], slots["pending_action"]) == ("confirm", "return_item")
    assert json.loads(slots["return_draft"])["lines"] == {str(towel.id): 1}


async def test_a_reason_button_confirms_through_the_action(
    session: AsyncSession, action_services: object
) -> None:
    order = await _jane(session)
    towel = next(item for item in order.items if item.name == TOWEL)
    conversation = await session.get(Conversation, "conv-1")
    assert conversation is not None
    conversation.order_id = order.id
    await session.commit()
    draft = returns.ReturnDraft(
        order="A10001", flow="return_item", lines={towel.id: 1}, step="confirm"
    ).to_slot()
    payload = '/affirm{"return_pick":"reason:doesnt_fit"}'
    state = tracker(
        "conv-1",
        payload,
        "affirm",
        {
            "identity": "verified",
            "awaiting": "confirmation",
            "pending_action": "return_item",
            "return_draft": draft,
        },
        entities=[{"entity": "return_pick", "value": "reason:doesnt_fit"}],
    )

    _events, messages = await run(ActionResolvePending(), state)

    # doesn't fit: an exchange for another size or the refund, asked once (as for damage)
    assert messages[0]["text"].startswith("Sorry it doesn't fit. Start a free return")
    assert await _lines(session) == []
    refund = '/affirm{"return_pick":"resolution:refund"}'
    draft = returns.ReturnDraft(
        order="A10001",
        flow="return_item",
        lines={towel.id: 1},
        reason="doesnt_fit",
        step="confirm",
    ).to_slot()
    state = tracker(
        "conv-1",
        refund,
        "affirm",
        {
            "identity": "verified",
            "awaiting": "confirmation",
            "pending_action": "return_item",
            "return_draft": draft,
        },
        entities=[{"entity": "return_pick", "value": "resolution:refund"}],
    )

    _events, messages = await run(ActionResolvePending(), state)

    assert messages[0]["text"].startswith("Your return for order A10001 is started")
    assert await _lines(session) == [(TOWEL, 1, "doesnt_fit", "refund", Decimal("25.00"))]


async def test_just_the_towel_at_the_yes_refines_the_return(
    session: AsyncSession, action_services: object
) -> None:
    await _jane(session)
    draft = returns.ReturnDraft(order="A10001", flow="return_item", step="confirm").to_slot()
    state = tracker(
        "conv-1",
        "just the towel though",
        "inform",
        {
            "identity": "verified",
            "awaiting": "confirmation",
            "pending_action": "return_item",
            "return_draft": draft,
        },
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == []  # no "I haven't changed anything": the return is refined
    put_back = [e for e in events if e.get("event") == "user"]
    assert put_back[0]["parse_data"]["intent"]["name"] == "return_item"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("it came chipped", "damaged"),
        ("too small for me", "doesnt_fit"),
        ("wrong size", "doesnt_fit"),
        ("you sent the wrong colour", "wrong_item"),
        ("i changed my mind", "changed_mind"),
        ("dont like it", "changed_mind"),
        ("its blunt, doesnt cut anything", "damaged"),
        ("the kettle won't boil", "damaged"),
        ("the lid is missing a screw", "damaged"),
        ("just because", None),
    ],
)
def test_reasons_read_from_words(text: str, reason: str | None) -> None:
    found = returns.reason_in(text)
    assert (found.value if found else None) == reason


def test_a_broken_draft_slot_is_no_draft() -> None:
    assert returns.ReturnDraft.from_slot("not json") is None
    assert returns.ReturnDraft.from_slot(None) is None


# --- where staff and the customer see it ------------------------------------------------------


async def test_the_console_panel_and_the_export_show_the_return_per_item(
    session: AsyncSession,
) -> None:
    from bot.domain import handoff, privacy

    order = await _jane(session)
    talk = Chat(session)
    await talk.say("the mug is cracked", "damaged_item")
    await talk.yes(pick="resolution:replacement")
    await talk.say("return the towel, too small", "return_item")
    await talk.yes()
    request_refs = [r.reference for r in (await session.scalars(select(ReturnRequest))).all()]

    detail = await handoff.conversation_detail(session, "conv-1")
    panel = detail["customer"]["returns"]
    assert [(r["reference"], r["order_number"], r["refund_total"]) for r in panel] == [
        (request_refs[1], "A10001", "25.00"),
        (request_refs[0], "A10001", "0.00"),
    ]
    assert panel[0]["items"] == [
        {
            "name": TOWEL,
            "sku": "TWL-1",
            "quantity": 1,
            "reason": "doesnt_fit",
            "resolution": "refund",
            "refund_amount": "25.00",
            "exchange_size": None,
        }
    ]
    exported = await privacy.export_customer(session, order.customer_id)
    assert [r["reference"] for r in exported["returns"]] == [request_refs[1], request_refs[0]]


async def test_a_product_question_at_the_items_question_is_answered_and_the_return_waits(
    session: AsyncSession,
) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("i want to return something", "return_item")
    draft = talk.slots["return_draft"]

    answer = await talk.say("is the towel machine washable?", intent="product_question")

    assert "Which items" not in " ".join(_texts(answer))
    assert talk.slots["return_draft"] == draft  # still waiting for the items
    picked = await talk.say("the towel")
    assert _texts(picked)[0].startswith(f"Start a free return of order A10001 (1× {TOWEL})")


async def test_why_in_words_no_rule_knows_is_kept_as_other_and_the_yes_asked_again(
    session: AsyncSession, action_services: object
) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("can i return the towel", "return_item")
    state = tracker(
        "conv-1",
        "meh its just not what i hoped for",
        "nlu_fallback",
        {
            "identity": "verified",
            "awaiting": "confirmation",
            "pending_action": "return_item",
            "return_draft": talk.slots["return_draft"],
        },
    )

    events, messages = await run(ActionDropPending(), state)

    assert messages == []  # not "I haven't changed anything"
    put_back = [e for e in events if e.get("event") == "user"]
    assert put_back[0]["parse_data"]["intent"]["name"] == "return_item"
    again = await talk.say("meh its just not what i hoped for", "return_item")
    assert _texts(again) == [
        f"Start a free return of order A10001 (1× {TOWEL}, other) for a refund of 25.00 EUR?"
    ]


# --- a tester's findings (tests/conversations/returns.yml rt10–rt14) ---------------------------


async def test_an_item_already_returned_is_said_so_and_no_other_offered(
    session: AsyncSession,
) -> None:
    await _jane(session)
    first = Chat(session)
    await first.say("return the towel, changed my mind", "return_item")
    await first.yes()

    again = await Chat(session).say("return the towel", "return_item")

    assert _texts(again)[0] == (
        f"{TOWEL} from order A10001 is already in a return, so I can't start another one for it."
    )
    assert _titles(again) == [CASSEROLE, MUG, "All items"]  # asked, never the casserole unasked


async def test_the_mug_of_three_is_one_mug_the_mugs_all_three(session: AsyncSession) -> None:
    await _jane(session, mugs=3)

    one = await Chat(session).say("the mug came cracked, want a new one", "damaged_item")
    assert _texts(one)[0].startswith(f"Send you a new 1× {MUG}")

    three = await Chat(session).say("the mugs are all cracked", "damaged_item")
    assert f"3× {MUG}" in _texts(three)[0]


async def test_too_adds_items_instead_of_replacing_them(session: AsyncSession) -> None:
    await _jane(session, mugs=3)
    talk = Chat(session)
    await talk.say("return just the towel", "return_item")

    both = await talk.say("actually the mugs too", "return_item")

    assert _texts(both)[0].startswith(
        f"Start a free return of order A10001 (1× {TOWEL}, 3× {MUG}) for a refund of 62.50 EUR?"
    )


async def test_words_that_answer_nothing_keep_the_return_and_ask_again(
    session: AsyncSession,
) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("the mug is cracked", "damaged_item")

    again = await talk.say("whatever", "return_item")  # put back by action_drop_pending

    assert _texts(again)[0] == "Sorry, I didn't get that."
    assert _texts(again)[1].startswith("Sorry about that. Start a free return of order A10001")
    new_ones = await talk.say("new ones", "return_item")
    assert _texts(new_ones)[0].startswith(f"Send you a new 1× {MUG}")


def test_an_item_said_to_be_fine_is_not_returned() -> None:
    """Tester 2 (tr03): "casserole came cracked, towel is fine" returned both."""
    from decimal import Decimal

    from bot.storage.models import OrderItem

    casserole = OrderItem(
        id=1, sku="C", name="Cast-iron casserole 24 cm", quantity=1, unit_price=Decimal("89.00")
    )
    towel = OrderItem(id=2, sku="T", name="Linen towel", quantity=1, unit_price=Decimal("24.00"))
    items, left = [casserole, towel], {1: 1, 2: 1}

    for text in (
        "casserole came cracked, towel is fine",
        "casserole came cracked and the towel is fine",
        "the towel is ok but the casserole is chipped",
    ):
        assert returns.items_in(text, left, items).lines == {1: 1}, text


# --- exchanges for another size, missing items, lost parcels (tester round two) ----------------

JUMPER = "Merino jumper"
SHIRT = "Linen shirt"


async def _clothes(session: AsyncSession, *items: tuple[str, str, str, int]) -> Order:
    """A delivered order A20001 of `items` (sku, name, unit price, quantity)."""
    sanne = await factories.customer(session, email="sanne@example.com")
    order = await factories.order(
        session, sanne, "A20001", OrderStatus.delivered, placed_days_ago=7
    )
    order.items = [
        OrderItem(sku=sku, name=name, quantity=quantity, unit_price=Decimal(price))
        for sku, name, price, quantity in items
    ]
    session.add(Conversation(id="conv-1", customer_id=sanne.id, identified_by="token"))
    await session.commit()
    return order


JUMPER_LINE = ("APP-MER-JMP", JUMPER, "79.00", 1)
SHIRT_LINE = ("APP-LIN-SHT", SHIRT, "49.00", 1)
MUG_LINE = ("MUG-1", MUG, "14.00", 1)
SIZE_BUTTONS = ["XS", "S", "M", "L", "XL", "XXL", "No, keep it"]


async def _exchange_sizes(session: AsyncSession) -> list[str | None]:
    return list(
        (await session.scalars(select(ReturnLine.exchange_size).order_by(ReturnLine.id))).all()
    )


async def test_swap_the_jumper_for_an_L_is_an_exchange_for_size_L(session: AsyncSession) -> None:
    """ "jumper is too small can i swap it for a L" got a refund return (tester 2, tr04)."""
    order = await _clothes(session, JUMPER_LINE)
    talk = Chat(session)

    asked = await talk.say("jumper is too small can i swap it for a L", "return_item")
    assert _texts(asked) == [
        f"Exchange 1× {JUMPER} from order A20001 for size L, free of charge? We'll send the L "
        "and email you a prepaid label for the one you have."
    ]
    assert _titles(asked) == ["Yes", "No"]
    assert talk.slots["pending_action"] == "return_item"

    done = await talk.yes(text="yes L please")
    request = (await session.scalars(select(ReturnRequest))).one()
    assert _texts(done)[0] == (
        f"Done: your exchange for order A20001 is started, reference {request.reference}: "
        f"1× {JUMPER} for size L, free of charge. A prepaid label for the one you have is on its "
        "way to sanne@example.com; we send the L as soon as the carrier scans your parcel. If "
        "the L is sold out, you get your money back instead."
    )
    assert await _lines(session) == [(JUMPER, 1, "doesnt_fit", "replacement", Decimal("0.00"))]
    assert await _exchange_sizes(session) == ["L"]
    row = (await session.scalars(select(WebhookOutbox))).one()
    assert row.payload["return"]["items"] == [
        {
            "sku": "APP-MER-JMP",
            "name": JUMPER,
            "quantity": 1,
            "reason": "doesnt_fit",
            "resolution": "replacement",
            "refund_amount": "0.00",
            "exchange_size": "L",
        }
    ]
    assert row.payload["return"]["refund_total"] == "0.00"
    await session.refresh(order)
    assert order.return_requested_at is not None  # the old one comes back


async def test_exchange_the_shirt_for_size_M_asks_about_the_shirt_only(
    session: AsyncSession,
) -> None:
    """ "can i exchange the shirt for size M" offered only a refund (tester 2, tr21)."""
    await _clothes(session, SHIRT_LINE, MUG_LINE)
    talk = Chat(session)

    asked = await talk.say("can i exchange the shirt for size M", "return_item")

    assert _texts(asked) == [
        f"Exchange 1× {SHIRT} from order A20001 for size M, free of charge? We'll send the M "
        "and email you a prepaid label for the one you have."
    ]
    await talk.yes()
    assert await _lines(session) == [(SHIRT, 1, "doesnt_fit", "replacement", Decimal("0.00"))]
    assert await _exchange_sizes(session) == ["M"]


async def test_the_size_the_customer_has_is_named_in_the_question(session: AsyncSession) -> None:
    await _clothes(session, JUMPER_LINE)
    talk = Chat(session)

    asked = await talk.say("can i swap my M for an L", "return_item")

    assert _texts(asked)[0].startswith(
        f"Exchange 1× {JUMPER} (size M) from order A20001 for size L, free of charge?"
    )


async def test_a_bigger_size_asks_which_size_once_and_a_tapped_size_confirms(
    session: AsyncSession,
) -> None:
    """ "how do i exchange it for a bigger size", then "yes, size L please" stored a refund
    (tester 1, tq25)."""
    await _clothes(session, SHIRT_LINE)
    talk = Chat(session)

    asked = await talk.say(
        "the shirt is too small, how do i exchange it for a bigger size", "return_item"
    )
    assert _texts(asked) == [
        f"Which size would you like instead? I'll exchange 1× {SHIRT} from order A20001 free of "
        "charge: we send the new size and collect the one you have. Tap a size or type it."
    ]
    assert _titles(asked) == SIZE_BUTTONS

    again = await talk.yes()  # a plain yes says no size: asked again, nothing stored
    assert _texts(again) == _texts(asked)
    assert await _lines(session) == []

    await talk.yes(pick="size:XL")
    assert await _lines(session) == [(SHIRT, 1, "doesnt_fit", "replacement", Decimal("0.00"))]
    assert await _exchange_sizes(session) == ["XL"]


async def test_a_typed_size_at_the_size_question_confirms(session: AsyncSession) -> None:
    await _clothes(session, SHIRT_LINE)
    talk = Chat(session)
    await talk.say("can i get a bigger one", "return_item")
    draft = returns.ReturnDraft.from_slot(talk.slots["return_draft"])

    assert returns.confirms(draft, "L please")
    assert returns.confirms(draft, "a medium")
    assert not returns.confirms(draft, "no thanks")
    assert not returns.confirms(draft, "what sizes are there?")

    await talk.yes(text="yes, size L please")
    assert await _exchange_sizes(session) == ["L"]


async def test_doesnt_fit_offers_an_exchange_or_a_refund_and_a_plain_yes_refunds(
    session: AsyncSession,
) -> None:
    await _jane(session)
    talk = Chat(session)

    asked = await talk.say("the towel is too small", "return_item")
    assert _texts(asked) == [
        f"Sorry it doesn't fit. Start a free return of order A10001 (1× {TOWEL}) for a refund of "
        "25.00 EUR, or exchange it for another size, free of charge? A plain yes means the refund."
    ]
    assert _titles(asked) == ["Exchange for another size", "Refund 25.00 EUR", "No, keep it"]

    await talk.yes()
    assert await _lines(session) == [(TOWEL, 1, "doesnt_fit", "refund", Decimal("25.00"))]
    assert await _exchange_sizes(session) == [None]


async def test_the_exchange_button_asks_the_size(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)
    await talk.say("the towel is too small", "return_item")

    asked = await talk.yes(pick="resolution:replacement")

    assert _texts(asked)[0].startswith("Which size would you like instead?")
    assert _titles(asked) == SIZE_BUTTONS
    assert await _lines(session) == []


@pytest.mark.parametrize(
    ("text", "wanted", "current", "other"),
    [
        ("jumper is too small can i swap it for a L", "L", None, True),
        ("yes L please", "L", None, True),
        ("can i exchange the shirt for size M", "M", None, True),
        ("a medium please", "M", None, True),
        ("size 42 please", "42", None, True),
        ("i want size L instead of M", "L", "M", True),
        ("no not the address, the SIZE. L not M", "L", "M", True),
        ("can i get a smaller one", None, None, True),
        ("one size up please", None, None, True),
        ("it's too small", None, None, False),
        ("the jumper is large on me", None, None, False),
        ("i m keeping the mug", None, None, False),
        ("its fine", None, None, False),
    ],
)
def test_sizes_read_from_words(
    text: str, wanted: str | None, current: str | None, other: bool
) -> None:
    assert returns.size_wish(text) == returns.SizeWish(wanted, current, other)


async def test_an_item_missing_from_the_parcel_is_sent_again_without_a_return(
    session: AsyncSession,
) -> None:
    """ "box came but the towel was missing from it" got a DHL trace of the whole parcel or
    a return (tester 2, tr20)."""
    order = await _jane(session)
    talk = Chat(session)

    asked = await talk.say("box came but the towel was missing from it", "delivery_problem")
    assert _texts(asked) == [
        f"Sorry, 1× {TOWEL} should have been in your parcel for order A10001. Shall we send it "
        "again, free of charge? Or we can refund 25.00 EUR. There's nothing to send back."
    ]
    assert _titles(asked) == ["Send it again", "Refund 25.00 EUR", "No, thanks"]

    # put back as a return request by action_drop_pending: the same report, asked again
    again = await talk.say("just send the towel pls", "return_item")
    assert _texts(again) == [
        f"Send 1× {TOWEL} for order A10001 again, free of charge? There's nothing to send back."
    ]

    done = await talk.yes()
    request = (await session.scalars(select(ReturnRequest))).one()
    assert _texts(done)[0] == (
        f"Done: we'll send 1× {TOWEL} for order A10001 again, free of charge (reference "
        f"{request.reference}). It leaves our warehouse within 2 working days and you'll get the "
        "tracking by email."
    )
    assert await _lines(session) == [(TOWEL, 1, "missing", "replacement", Decimal("0.00"))]
    row = (await session.scalars(select(WebhookOutbox))).one()
    assert row.payload["return"]["items"] == [
        {
            "sku": "TWL-1",
            "name": TOWEL,
            "quantity": 1,
            "reason": "missing",
            "resolution": "replacement",
            "refund_amount": "0.00",
            "exchange_size": None,
        }
    ]
    await session.refresh(order)
    assert order.return_requested_at is None  # nothing comes back


async def test_a_missing_item_can_be_refunded_and_is_not_offered_again(
    session: AsyncSession,
) -> None:
    await _jane(session, mugs=2)
    talk = Chat(session)

    asked = await talk.say("only got one mug, the other mug wasnt in the box", "damaged_item")
    assert _texts(asked)[0].startswith(f"Sorry, 1× {MUG} should have been in your parcel")

    done = await talk.yes(pick="resolution:refund")
    request = (await session.scalars(select(ReturnRequest))).one()
    assert _texts(done)[0] == (
        f"Done: we'll refund 12.50 EUR for 1× {MUG} missing from order A10001 within 5 working "
        f"days (reference {request.reference}). There's nothing to send back."
    )
    assert await _lines(session) == [(MUG, 1, "missing", "refund", Decimal("12.50"))]
    assert request.refund_total == Decimal("12.50")


async def test_which_items_were_missing_when_none_is_named(session: AsyncSession) -> None:
    await _jane(session)
    talk = Chat(session)

    asked = await talk.say("the parcel came but something was missing", "delivery_problem")

    assert _texts(asked) == [
        "Sorry about that. Which items were missing from order A10001? Pick one, or type their "
        "names."
    ]
    assert _titles(asked) == [CASSEROLE, TOWEL, MUG]


LOST = (
    "Order A20001 shows as delivered on {day}, so DHL traces it first and we'll email "
    "you within 2 working days; if it isn't found, we'll send a new one or refund you, "
    "whichever you prefer, and there's nothing to return. If you'd rather not wait, a person "
    "from our team can arrange it now. Shall I get someone?"
)


async def test_send_a_new_one_after_a_lost_parcel_is_no_return(session: AsyncSession) -> None:
    """ "can u just send a new one" after "tracking says deliverd but theres nothing here"
    started a return for a refund of the parcel never received (tester 2, tr02)."""
    order = await _clothes(session, JUMPER_LINE)
    talk = Chat(session)
    traced = await talk.say(
        "tracking says deliverd but theres nothing here, neighbours dont have it either",
        "delivery_problem",
    )
    assert "trace" in _texts(traced)[0]

    asked = await talk.say("can u just send a new one", "return_item", earlier="delivery_problem")

    assert _texts(asked) == [LOST.format(day=support.format_date(order.delivered_at))]
    assert _titles(asked) == ["Yes", "No"]
    assert (talk.slots["awaiting"], talk.slots["pending_action"]) == ("confirmation", "offer_human")
    assert (await session.scalars(select(ReturnRequest))).all() == []
    await session.refresh(order)
    assert order.return_requested_at is None

    found = await talk.no(text="nvm found it in the bin shed 🙈 sorry")
    assert _texts(found) == [
        "Great, glad it turned up! Sorry for the trouble. Anything else I can help with?"
    ]
    assert refusals.says_done("no thats all")
    assert not refusals.says_done("no")


async def test_money_back_for_a_parcel_that_never_arrived_is_no_return(
    session: AsyncSession,
) -> None:
    order = await _clothes(session, JUMPER_LINE)
    talk = Chat(session)

    asked = await talk.say("it never arrived, i just want my money back", "request_refund")

    assert _texts(asked) == [LOST.format(day=support.format_date(order.delivered_at))]
    assert (await session.scalars(select(ReturnRequest))).all() == []


async def test_a_return_after_a_delivery_question_is_still_a_return(session: AsyncSession) -> None:
    await _clothes(session, JUMPER_LINE)
    talk = Chat(session)
    await talk.say("tracking says delivered, where is it", "delivery_problem")

    asked = await talk.say(
        "found it, but the jumper is too small, can i swap it for a L",
        "return_item",
        earlier="delivery_problem",
    )

    assert _texts(asked)[0].startswith(f"Exchange 1× {JUMPER} from order A20001 for size L")


async def test_another_size_for_an_order_not_shipped_is_no_address_change(
    session: AsyncSession,
) -> None:
    """ "i want size L instead of M, can you change it" opened the address form (tester,
    tq10)."""
    tom = await factories.customer(session, email="tom@example.com")
    order = await factories.order(session, tom, "A30001", OrderStatus.placed, placed_days_ago=1)
    session.add(Conversation(id="conv-1", customer_id=tom.id, identified_by="token"))
    await session.commit()
    talk = Chat(session)

    asked = await talk.say(
        "hmm actually i want size L instead of M, can you change it", "change_address"
    )

    assert _texts(asked) == [
        "I can't change the size of an item in an order myself. Order A30001 hasn't shipped yet: "
        "a person from our team can change the size for you, or you can cancel the order and "
        "order the size you want. Shall I get someone?"
    ]
    assert (talk.slots["next_step"], talk.slots["pending_action"]) == ("confirm", "offer_human")
    await session.refresh(order)
    assert order.shipping_address == "1 Test Street, 10115 Berlin"


async def test_another_size_read_as_an_address_change_of_a_delivered_order_is_an_exchange(
    session: AsyncSession,
) -> None:
    await _clothes(session, JUMPER_LINE)
    talk = Chat(session)

    asked = await talk.say("can you change it to size L instead of M", "change_address")

    assert _texts(asked)[0].startswith(
        f"Exchange 1× {JUMPER} (size M) from order A20001 for size L, free of charge?"
    )


async def test_two_items_with_a_reason_each_return_the_first_then_the_other(
    session: AsyncSession,
) -> None:
    """ "the mug arrived chipped and the jumper is too big, can i get a smaller one" made
    one return of both, "doesn't fit" (tester 2, tr28)."""
    await _clothes(session, JUMPER_LINE, MUG_LINE)
    talk = Chat(session)

    asked = await talk.say(
        "the mug arrived chipped and the jumper is too big, can i get a smaller one",
        "damaged_item",
    )
    assert _texts(asked) == [
        f"Sorry about that. Start a free return of order A20001 (1× {MUG}, damaged)? You can "
        "have a refund of 14.00 EUR or a free replacement; a plain yes means the refund."
    ]
    await talk.yes(pick="resolution:replacement")

    jumper = await Chat(session).say("and the jumper? it needs to be a size smaller", "return_item")
    assert _texts(jumper)[0].startswith(
        f"Which size would you like instead? I'll exchange 1× {JUMPER} from order A20001"
    )
    assert await _lines(session) == [(MUG, 1, "damaged", "replacement", Decimal("0.00"))]


# --- tester 4: what the customer's words say about the parcel --------------------------------


async def _shipped(session: AsyncSession) -> Order:
    order = await _jane(session)
    order.status = OrderStatus.shipped
    order.delivered_at = None
    await session.commit()
    return order


@pytest.mark.parametrize(
    ("flow", "said"),
    [
        ("return_item", "it arrived yesterday actually. the knife is blunt, i want a new one"),
        ("damaged_item", "i got the wrong colour mug, ordered white got black"),
    ],
)
async def test_a_parcel_the_customer_has_before_its_scan_gets_a_person(
    session: AsyncSession, flow: str, said: str
) -> None:
    """Tester 4 (tw4_15, tw4_25): on an order still shown as shipped, "it arrived yesterday
    … i want a new one" got a parcel trace and "hasn't been delivered yet"; a wrong colour
    got "still shipped in our system … if it has reached you damaged"."""
    await _shipped(session)

    turn = await Chat(session).say(said, flow)

    assert _texts(turn) == [
        "Thanks for telling me it's with you. Our tracking still shows order A10001 on its "
        "way, so I can't arrange a return or a replacement for it here, but a person from our "
        "team can sort it out with you now. Shall I get one?"
    ]
    assert turn.slots["pending_action"] == "offer_human"


async def test_a_late_parcel_read_as_a_return_is_the_late_parcel(session: AsyncSession) -> None:
    """Tester 4 (tw4_42): "my knife order is late … if it doesnt come can u send another one
    express?" (return_item 0.96) got the return window."""
    await _shipped(session)

    turn = await Chat(session).say(
        "hi my knife order is late and i need it for a gift on saturday. if it doesnt come "
        "can u send another one express?",
        "return_item",
    )

    said = " ".join(_texts(turn))
    assert "within 30 days of delivery" not in said
    assert "A10001" in said and re.search(r"trace|on its way|replacement", said)


async def test_a_remark_that_only_lets_the_shop_know_is_kept_not_returned(
    session: AsyncSession,
) -> None:
    """Tester 4 (tw4_45): "fyi the casserole box arrived soaking wet, the stuff inside is
    fine tho. just so you know" got a return offered; the remark was never stored."""
    await _jane(session)
    said = (
        "fyi the casserole box arrived soaking wet, the stuff inside is fine tho. just so you know"
    )

    turn = await Chat(session).say(said, "damaged_item")

    assert "return" not in " ".join(_texts(turn)).lower()
    assert turn.slots.get("pending_action") != "return_item"
    stored = (await session.scalars(select(Feedback))).all()
    assert [(f.kind, f.text) for f in stored] == [(FeedbackKind.complaint, said)]
    assert (await session.scalars(select(ReturnRequest))).all() == []


async def test_another_colour_is_an_exchange_a_person_arranges(session: AsyncSession) -> None:
    """Tester 4 (tw4_33): "can i exchange it for grey" got "Start a free return … for a
    refund"."""
    await _jane(session)

    turn = await Chat(session).say(
        "hey so the towel is nice but i want it in grey too, can i exchange it for grey",
        "return_item",
    )

    assert _texts(turn) == [
        "Exchanges for another colour are free within 30 days of delivery. A person from our "
        "team can reserve the grey one for you and send you the return label for order "
        "A10001. Shall I get one?"
    ]
    assert turn.slots["pending_action"] == "offer_human"
