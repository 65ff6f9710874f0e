"""The chat widget (bot/web/static/widget.js) in a real browser (marker `browser`), on the
demo shop's pages and a bare host page.

The real widget.js/widget.css and the demo shop are served next to a small in-process
stand-in for the chat WebSocket that speaks the widget protocol (docs/widget.md), so the
widget's behaviour is checked without Rasa or a database.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Any, TypeVar

import pytest
from aiohttp import WSMsgType, web

from bot.domain import texts
from bot.domain.identity import check_token, issue_token
from bot.web.app import STATIC_DIR, security_headers
from bot.web.demo_shop import create_demo_shop

SECRET = "test-widget-secret-that-is-long-enough-0123456789"
IDENTITY = re.compile(r'<script src="/widget\.js"([^>]*)></script>')

T = TypeVar("T")

# ---- the widget in a real browser ---------------------------------------------------------


@dataclass
class FakeChat:
    """Speaks the widget protocol like bot/web/chat.py, with knobs to misbehave."""

    secret: str
    next_id: int = 1
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sockets: dict[str, set[web.WebSocketResponse]] = field(default_factory=dict)
    hellos: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    refuse: bool = False  # answer upgrades with 503 (the server is "down")
    drop_acks: bool = False  # store but never acknowledge (the ack is "lost")

    def reset(self) -> None:
        self.conversations.clear()
        self.sockets.clear()
        self.hellos.clear()
        self.received.clear()
        self.refuse = self.drop_acks = False

    def stored(self, token: str, sender: str, text: str, **extra: Any) -> dict[str, Any]:
        message = {
            "type": "message",
            "id": self.next_id,
            "sender": sender,
            "text": text,
            "buttons": extra.pop("buttons", []),
            "time": datetime.now(timezone.utc).isoformat(),
            "client_id": extra.pop("client_id", None),
            "author": extra.pop("author", None),
        }
        self.next_id += 1
        self.conversations[token].append(message)
        return message

    async def broadcast(self, token: str, frame: dict[str, Any]) -> None:
        for ws in list(self.sockets.get(token, ())):
            if not ws.closed:
                await ws.send_json(frame)

    async def push(self, sender: str, text: str, author: str | None = None) -> None:
        for token in list(self.conversations):
            await self.broadcast(token, self.stored(token, sender, text, author=author))

    async def kick(self) -> None:
        for group in list(self.sockets.values()):
            for ws in list(group):
                await ws.close(code=1012)

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if self.refuse:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        token: str | None = None
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                data = json.loads(frame.data)
                if data["type"] == "hello":
                    token = await self.hello(ws, data)
                elif data["type"] == "message" and token is not None:
                    await self.message(ws, token, data)
        finally:
            if token is not None:
                self.sockets[token].discard(ws)
        return ws

    async def hello(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> str:
        self.hellos.append(data)
        token = data.get("token")
        if not isinstance(token, str) or token not in self.conversations:
            token = f"tok-{len(self.conversations) + 1}"
            self.conversations[token] = []
        self.sockets.setdefault(token, set()).add(ws)
        name, verified = None, False
        if data.get("identity"):
            check = check_token(self.secret, data["identity"])
            if check.claims is None:
                await ws.send_json(
                    {
                        "type": "error",
                        "error": {"code": "identity_refused", "message": check.message},
                    }
                )
            else:
                verified = True
                name = {"C1001": "Jane Doe"}.get(check.claims.external_id)
        await ws.send_json(
            {
                "type": "session",
                "token": token,
                "status": "bot",
                "identity": "verified" if verified else "anonymous",
                "customer_name": name,
                "history": self.conversations[token],
                "menu": texts.buttons("utter_greet"),
            }
        )
        return token

    async def message(self, ws: web.WebSocketResponse, token: str, data: dict[str, Any]) -> None:
        self.received.append(data)
        client_id, text = data.get("client_id"), data.get("text", "")
        if text == "too long please":
            await ws.send_json(
                {
                    "type": "error",
                    "error": {"code": "message_too_long", "message": "Please shorten it."},
                    "client_id": client_id,
                }
            )
            return
        for old in self.conversations[token]:
            if old["client_id"] == client_id:
                await ws.send_json(
                    {"type": "ack", "client_id": client_id, "id": old["id"], "duplicate": True}
                )
                return
        message = self.stored(token, "customer", text, client_id=client_id)
        if not self.drop_acks:
            await ws.send_json(
                {"type": "ack", "client_id": client_id, "id": message["id"], "duplicate": False}
            )
        await self.broadcast(token, message)
        if self.drop_acks:
            return
        await self.broadcast(token, {"type": "typing", "on": True})
        await asyncio.sleep(0.05)
        reply = self.stored(
            token,
            "bot",
            f"You said: {text}. Help: https://example.com/help?a=1&b=2. Not a link: javascript:alert(1)",
            buttons=[{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}],
        )
        await self.broadcast(token, {"type": "typing", "on": False})
        await self.broadcast(token, reply)


@dataclass
class WidgetSite:
    url: str
    chat: FakeChat
    call: Callable[[Coroutine[Any, Any, Any]], Any]


async def _test_page(request: web.Request) -> web.Response:
    """A bare host page whose widget tag carries whatever identity the test passes."""
    identity = request.query.get("identity")
    attribute = f' data-identity="{escape(identity)}"' if identity is not None else ""
    return web.Response(
        text=f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host</title>'
        f'</head><body><h1>Host page</h1><script src="/widget.js"{attribute} defer></script>'
        f"</body></html>",
        content_type="text/html",
    )


@pytest.fixture(scope="module")
def widget_site() -> Iterator[WidgetSite]:
    chat = FakeChat(SECRET)
    app = web.Application(middlewares=[security_headers])
    app.router.add_get("/ws", chat.socket)
    app.router.add_get("/widget.js", _widget_js)
    app.router.add_get("/widget.css", _widget_css)
    app.router.add_get("/test/page", _test_page)
    app.add_subapp("/demo/shop", create_demo_shop(SECRET))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=15)

    runner = web.AppRunner(app, shutdown_timeout=1)
    call(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    call(site.start())
    host, port = runner.addresses[0][:2]
    yield WidgetSite(f"http://{host}:{port}", chat, call)
    call(runner.cleanup())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


async def _widget_js(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "widget.js")


async def _widget_css(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "widget.css")


@pytest.fixture
def site(widget_site: WidgetSite) -> WidgetSite:
    async def reset() -> None:
        await widget_site.chat.kick()
        widget_site.chat.reset()

    widget_site.call(reset())
    return widget_site


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def _watch(page: Any) -> list[str]:
    """Collects dialogs (alert) and CSP or script errors on the page."""
    problems: list[str] = []

    def dismiss(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return problems


def _wait(predicate: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _shadow_eval(page: Any, body: str) -> Any:
    return page.evaluate(
        f"() => {{ const root = document.getElementById('shop-chat-widget').shadowRoot; {body} }}"
    )


@pytest.mark.browser
def test_anonymous_visitor_chats_with_quick_replies_links_and_escape(
    site: WidgetSite, context: Any
) -> None:
    page = context.new_page()
    problems = _watch(page)
    page.goto(f"{site.url}/demo/shop/")
    launcher = page.get_by_role("button", name="Open chat")
    launcher.wait_for()
    assert launcher.get_attribute("aria-expanded") == "false"
    assert _shadow_eval(page, "return root.mode;") == "open"
    # a first-time anonymous visitor opens no conversation just by browsing
    page.wait_for_timeout(300)
    assert site.chat.hellos == []

    launcher.click()
    dialog = page.get_by_role("dialog", name="Help with your order")
    dialog.wait_for()
    assert launcher.get_attribute("aria-expanded") == "true"
    page.locator(".msg--bot", has_text="Hi! How can I help you today?").wait_for()
    assert site.chat.hellos == [{"type": "hello", "token": None, "identity": None}]
    assert page.get_by_role("status").inner_text() == "Online"
    assert _shadow_eval(page, "return root.activeElement.getAttribute('aria-label');") == (
        "Your message"
    )
    assert page.evaluate("() => localStorage.getItem('shop-chat-token')") == "tok-1"

    page.get_by_role("button", name="Where is my order?").click()
    customer = page.locator(".msg--customer", has_text="Where is my order?")
    customer.wait_for()
    assert site.chat.received[0]["text"] == "where is my order"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        site.chat.received[0]["client_id"],
    )
    page.locator('.msg--customer[data-state="sent"]').wait_for()
    assert page.get_by_role("button", name="Start a return").is_disabled()
    reply = page.locator(".msg--bot", has_text="You said: where is my order")
    reply.wait_for()
    assert page.locator(".msg--customer").count() == 1  # the server's echo is not shown twice
    link = reply.locator("a")
    assert link.count() == 1
    assert link.get_attribute("href") == "https://example.com/help?a=1&b=2"
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert "javascript:alert(1)" in reply.inner_text()
    assert re.fullmatch(r"\d\d:\d\d", reply.locator("time").inner_text())
    assert page.locator(".typing").is_hidden()

    xss = "<img src=x onerror=alert(1)><script>alert(2)</script> javascript:alert(3)"
    page.get_by_label("Your message").fill(xss)
    page.keyboard.press("Enter")
    page.locator(".msg--customer", has_text="<img src=x onerror=alert(1)>").wait_for()
    page.locator(".msg--bot", has_text="You said: <img").wait_for()
    assert page.locator("#shop-chat-widget img, #shop-chat-widget script").count() == 0
    assert _shadow_eval(page, "return root.querySelectorAll('img, script').length;") == 0
    assert (
        _shadow_eval(page, "return root.querySelectorAll('a[href^=\"javascript\"]').length;") == 0
    )
    assert page.get_by_role("button", name="Yes").first.is_disabled()  # older rows retired

    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert not page.evaluate("() => window.ShopChat.isOpen()")
    assert _shadow_eval(page, "return root.activeElement.className;") == "launcher"
    assert launcher.get_attribute("aria-expanded") == "false"

    # shop CSS does not reach in, widget CSS does not leak out
    page.evaluate("() => window.ShopChat.open()")
    send = page.get_by_role("button", name="Send")
    assert send.evaluate("b => getComputedStyle(b).textTransform") == "none"
    assert "Georgia" in page.evaluate("() => getComputedStyle(document.body).fontFamily")
    assert problems == []


@pytest.mark.browser
def test_signed_in_customer_is_greeted_by_name_and_reload_continues(
    site: WidgetSite, context: Any
) -> None:
    page = context.new_page()
    problems = _watch(page)
    page.goto(f"{site.url}/demo/shop/")
    page.get_by_role("link", name="Sign in as Jane Doe (C1001)").click()
    page.get_by_text("Signed in as C1001").wait_for()
    # a signed-in visitor connects at once (badge, surveys pushed live)
    _wait(lambda: len(site.chat.hellos) == 1)
    identity = site.chat.hellos[0]["identity"]
    assert check_token(SECRET, identity).claims is not None
    page.evaluate("() => window.ShopChat.open()")
    page.locator(".msg--bot", has_text="Hi Jane! How can I help you today?").wait_for()
    page.get_by_label("Your message").fill("Hello from Jane")
    page.get_by_role("button", name="Send").click()
    page.locator(".msg--bot", has_text="You said: Hello from Jane").wait_for()

    page.goto(f"{site.url}/demo/shop/orders")
    page.evaluate("() => window.ShopChat.open()")
    page.locator(".msg--customer", has_text="Hello from Jane").wait_for()
    assert site.chat.hellos[-1]["token"] == "tok-1"
    assert page.locator(".msg--customer").count() == 1
    assert page.locator(".msg--bot", has_text="How can I help you today").count() == 0
    assert problems == []


@pytest.mark.browser
def test_refused_identity_is_explained_and_the_visitor_continues_anonymous(
    site: WidgetSite, context: Any
) -> None:
    forged = issue_token("not-the-shared-secret-but-long-enough-0123", "C1001")
    page = context.new_page()
    page.goto(f"{site.url}/test/page?identity={forged}")
    _wait(lambda: len(site.chat.hellos) == 1)
    page.evaluate("() => window.ShopChat.open()")
    page.locator(".msg--system", has_text="couldn't confirm who you are").wait_for()
    page.locator(".msg--bot", has_text="Hi! How can I help you today?").wait_for()
    # the refused token is not sent again on reconnect
    site.call(site.chat.kick())
    _wait(lambda: len(site.chat.hellos) == 2)
    assert site.chat.hellos[1]["identity"] is None
    assert site.chat.hellos[1]["token"] == "tok-1"


@pytest.mark.browser
def test_messages_typed_offline_survive_a_reload_and_are_sent_once(
    site: WidgetSite, context: Any
) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/test/page")
    page.evaluate("() => window.ShopChat.open()")
    page.get_by_text("Online").wait_for()

    site.chat.refuse = True
    site.call(site.chat.kick())
    page.get_by_text("Reconnecting…").wait_for()
    page.get_by_label("Your message").fill("typed while offline")
    page.keyboard.press("Enter")
    pending = page.locator('.msg--customer[data-state="pending"]', has_text="typed while offline")
    pending.wait_for()
    outbox = json.loads(page.evaluate("() => sessionStorage.getItem('shop-chat-outbox')"))
    assert [m["text"] for m in outbox] == ["typed while offline"]

    page.reload()
    page.evaluate("() => window.ShopChat.open()")
    page.locator('.msg--customer[data-state="pending"]', has_text="typed while offline").wait_for()
    assert site.chat.received == []

    site.chat.refuse = False
    page.locator('.msg--customer[data-state="sent"]', has_text="typed while offline").wait_for(
        timeout=20_000
    )
    page.locator(".msg--bot", has_text="You said: typed while offline").wait_for()
    assert [m["client_id"] for m in site.chat.received] == [outbox[0]["client_id"]]
    assert page.evaluate("() => sessionStorage.getItem('shop-chat-outbox')") is None
    assert page.locator(".msg--customer").count() == 1


@pytest.mark.browser
def test_a_lost_acknowledgement_is_resolved_by_client_id_without_duplicates(
    site: WidgetSite, context: Any
) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/test/page")
    page.evaluate("() => window.ShopChat.open()")
    page.get_by_text("Online").wait_for()
    site.chat.drop_acks = True
    page.get_by_label("Your message").fill("did you get this?")
    page.keyboard.press("Enter")
    _wait(lambda: len(site.chat.received) == 1)
    page.wait_for_timeout(200)
    site.chat.drop_acks = False
    site.call(site.chat.kick())
    page.locator('.msg--customer[data-state="sent"]', has_text="did you get this?").wait_for(
        timeout=20_000
    )
    page.wait_for_timeout(300)
    assert page.locator(".msg--customer").count() == 1
    stored = [m for m in site.chat.conversations["tok-1"] if m["sender"] == "customer"]
    assert len(stored) == 1
    assert page.evaluate("() => sessionStorage.getItem('shop-chat-outbox')") is None


@pytest.mark.browser
def test_refused_message_leaves_the_outbox_and_shows_why(site: WidgetSite, context: Any) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/test/page")
    page.evaluate("() => window.ShopChat.open()")
    page.get_by_text("Online").wait_for()
    page.get_by_label("Your message").fill("too long please")
    page.keyboard.press("Enter")
    page.locator(".msg--system", has_text="Please shorten it.").wait_for()
    page.locator('.msg--customer[data-state="failed"]').wait_for()
    assert page.evaluate("() => sessionStorage.getItem('shop-chat-outbox')") is None


@pytest.mark.browser
def test_other_tabs_see_the_customers_messages_and_the_badge_counts_unread(
    site: WidgetSite, context: Any
) -> None:
    first = context.new_page()
    first.goto(f"{site.url}/test/page")
    first.evaluate("() => window.ShopChat.open()")
    first.get_by_text("Online").wait_for()
    second = context.new_page()  # same browser: same stored conversation token
    second.goto(f"{site.url}/test/page")
    _wait(lambda: len(site.chat.hellos) == 2)
    assert site.chat.hellos[1]["token"] == "tok-1"

    first.get_by_label("Your message").fill("sent from the first tab")
    first.keyboard.press("Enter")
    first.locator(".msg--bot", has_text="You said: sent from the first tab").wait_for()

    badge = second.locator(".badge")
    badge.wait_for()
    assert badge.inner_text() == "1"
    assert badge.get_attribute("aria-label") == "1 unread message"
    site.call(site.chat.push("agent", "Hi, I'm Sam. Let me check that.", author="Sam (support)"))
    second.locator('.badge[aria-label="2 unread messages"]').wait_for()
    assert first.locator(".badge").is_hidden()  # the first tab's panel is open

    second.get_by_role("button", name="Open chat").click()
    assert badge.is_hidden()
    second.locator(".msg--customer", has_text="sent from the first tab").wait_for()
    agent = second.locator(".msg--agent", has_text="Let me check that.")
    assert agent.locator(".msg__author").inner_text() == "Sam (support)"
    assert first.locator(".msg--customer").count() == 1


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), [(360, 640), (1280, 800)])
def test_panel_is_full_screen_on_phones_and_a_card_on_desktop(
    site: WidgetSite, browser: Any, width: int, height: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.goto(f"{site.url}/demo/shop/")
        page.get_by_role("button", name="Open chat").click()
        box = page.get_by_role("dialog").bounding_box()
        if width <= 480:
            assert box == {"x": 0, "y": 0, "width": width, "height": height}
        else:
            assert (box["width"], box["height"]) == (380, 600)
            assert box["x"] + box["width"] == width - 20
    finally:
        context.close()


@pytest.mark.browser
def test_signing_out_or_switching_customer_starts_a_fresh_conversation(
    site: WidgetSite, context: Any
) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/demo/shop/login?customer=C1001")
    page.evaluate("() => window.ShopChat.open()")
    page.get_by_label("Your message").fill("my private question")
    page.keyboard.press("Enter")
    page.locator(".msg--bot", has_text="You said: my private question").wait_for()
    assert page.evaluate("() => localStorage.getItem('shop-chat-subject')") == "C1001"

    page.get_by_role("link", name="Sign out").click()
    page.get_by_text("Not signed in").wait_for()
    page.evaluate("() => window.ShopChat.open()")
    page.locator(".msg--bot", has_text="Hi! How can I help you today?").wait_for()
    assert site.chat.hellos[-1]["token"] is None
    assert page.locator(".msg--customer").count() == 0

    page.goto(f"{site.url}/demo/shop/login?customer=C1002")  # anonymous chat continues
    page.evaluate("() => window.ShopChat.open()")
    page.get_by_text("Online").wait_for()
    assert site.chat.hellos[-1]["token"] == "tok-2"
    assert page.evaluate("() => localStorage.getItem('shop-chat-subject')") == "C1002"
