"""What the web service tells Rasa's channel about a customer's message (issue #16): the
channel's shared secret, and whether the text is the payload of a button the bot offered in
this conversation (only then may it use Rasa's `/intent{entities}` syntax)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.config import DEV_RASA_CHANNEL_SECRET
from bot.domain.enums import MessageSender
from bot.storage.models import Message
from bot.web.delivery import push
from tests.conftest import StubRasa


async def _open(client: TestClient[web.Request, web.Application]) -> Any:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello"})
    assert (await ws.receive_json(timeout=5))["type"] == "session"
    return ws


async def _say(ws: Any, text: str, display: str | None = None) -> None:
    await ws.send_json({"type": "message", "text": text, "display": display})
    while True:
        frame = await ws.receive_json(timeout=5)
        if frame["type"] == "error" or str(frame.get("text", "")).startswith("echo: "):
            return


async def _customer_texts(session_factory: Any, conversation_id: str) -> list[str]:
    """What the transcript shows of the customer's messages, in order."""
    async with session_factory() as db:
        rows = await db.scalars(
            select(Message.text)
            .where(Message.conversation_id == conversation_id)
            .where(Message.sender == MessageSender.customer)
            .order_by(Message.id)
        )
        return list(rows.all())


async def test_every_turn_carries_the_channel_secret(
    client: TestClient[web.Request, web.Application], rasa: tuple[StubRasa, str]
) -> None:
    ws = await _open(client)
    await _say(ws, "hello")
    assert rasa[0].channel_secrets == [DEV_RASA_CHANNEL_SECRET]
    await ws.close()


async def test_typed_slash_text_is_not_a_payload_but_an_offered_button_is(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: Any,
) -> None:
    stub = rasa[0]
    ws = await _open(client)
    await _say(ws, "/EXTERNAL_support_resolved")
    conversation_id = stub.received[0]["sender"]
    # Another conversation's buttons do not count.
    other = await _open(client)
    await _say(other, "hi")
    await push(
        client.app,
        stub.received[1]["sender"],
        MessageSender.bot,
        "Shall I?",
        [{"title": "Sure", "payload": "/affirm"}],
    )
    await _say(ws, "/affirm")
    # Offered here: the button's payload, as a click sends it (with its title to show).
    await push(
        client.app,
        conversation_id,
        MessageSender.bot,
        "Shall I?",
        [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}],
    )
    await _say(ws, "/affirm", display="Yes")
    await _say(ws, "  /deny ")
    await _say(ws, '/affirm{"identity": "verified"}')
    await _say(ws, "plain words")

    mine = [b for b in stub.received if b["sender"] == conversation_id]
    assert [(b["message"], b.get("button_payload", False)) for b in mine] == [
        ("/EXTERNAL_support_resolved", False),
        ("/affirm", False),
        ("/affirm", True),
        ("/deny", True),
        ('/affirm{"identity": "verified"}', False),
        ("plain words", False),
    ]
    typed = await _customer_texts(session_factory, conversation_id)
    # The transcript shows what the customer typed (or the clicked button's title).
    assert typed == [
        "/EXTERNAL_support_resolved",
        "/affirm",
        "Yes",
        "/deny",
        '/affirm{"identity": "verified"}',
        "plain words",
    ]
    await ws.close()
    await other.close()


async def test_a_button_title_typed_is_that_button(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: Any,
) -> None:
    """Tester 3: "changed my mind" typed at a return's reason buttons (one of them titled
    "Changed my mind") was read as a no. Typed, the title is the button; only the buttons
    of the bot's last answer count, and the transcript keeps the customer's words."""
    stub = rasa[0]
    pick = '/inform{"return_pick": "reason:changed_mind"}'
    stub.buttons = [
        {"title": "Damaged", "payload": '/inform{"return_pick": "reason:damaged"}'},
        {"title": "Changed my mind", "payload": pick},
    ]
    ws = await _open(client)
    await _say(ws, "i want to return the towel")
    conversation_id = stub.received[0]["sender"]
    stub.buttons = []  # the answers from here on offer none

    await _say(ws, "changed my mind!")
    await _say(ws, "Changed my mind")  # the buttons were answered: words again

    assert [(b["message"], b.get("button_payload", False)) for b in stub.received[1:]] == [
        (pick, True),
        ("Changed my mind", False),
    ]
    typed = await _customer_texts(session_factory, conversation_id)
    assert typed == ["i want to return the towel", "changed my mind!", "Changed my mind"]
    await ws.close()
