"""The real web service on a free loopback port, in a background thread with its own event
loop, for tests that need a server outside pytest's loop: browser tests (Playwright's sync
API owns the test thread) and schemathesis. Rasa is an echo stand-in on another port.

    with serve_app(tmp_path, seed=my_seed, allowed_origins=("http://shop.test",)) as live:
        page.goto(live.url + "/console/login")
        live.run(some_coroutine(live.sessions))   # runs in the server's loop
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Base
from bot.web.app import create_app

Sessions = async_sessionmaker[AsyncSession]
Seed = Callable[[Sessions], Awaitable[None]]
T = TypeVar("T")


class EchoRasa:
    """Rasa's HTTP API as the web service uses it: echoes each message back, with the
    message as the title of a quick-reply button; tracker calls succeed."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        # Set by a test: the NLU result appended as rasa_ext.channels does (issue #24).
        self.nlu: dict[str, Any] | None = None

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        text = str(body.get("message", ""))
        replies: list[dict[str, Any]] = [
            {
                "recipient_id": body.get("sender"),
                "text": f"echo: {text}",
                "buttons": [{"title": text, "payload": "/noop"}],
            }
        ]
        if self.nlu is not None:
            replies.append({"recipient_id": body.get("sender"), "custom": {"nlu": self.nlu}})
        return web.json_response(replies)

    async def ok(self, _request: web.Request) -> web.Response:
        return web.json_response({"events": [], "messages": [], "model_file": "stub.tar.gz"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self.webhook)
        app.router.add_get("/status", self.ok)
        app.router.add_get("/conversations/{sender}/tracker", self.ok)
        app.router.add_post("/conversations/{sender}/tracker/events", self.ok)
        app.router.add_put("/conversations/{sender}/tracker/events", self.ok)
        app.router.add_post("/conversations/{sender}/trigger_intent", self.ok)
        return app


class ShopPages:
    """A shop's site on another origin (another loopback port): every path answers with
    `html`, which the test sets (e.g. a page embedding the widget)."""

    def __init__(self) -> None:
        self.html = "<!doctype html><title>Shop</title>"

    async def page(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.html, content_type="text/html")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{path:.*}", self.page)
        return app


@dataclass
class LiveApp:
    url: str
    settings: Settings
    sessions: Sessions
    rasa: EchoRasa
    loop: asyncio.AbstractEventLoop
    shop: ShopPages
    shop_url: str  # an origin the chat WebSocket accepts (in ALLOWED_ORIGINS)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine in the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


async def _site(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@contextmanager
def serve_app(tmp_path: Path, seed: Seed | None = None, **overrides: Any) -> Iterator[LiveApp]:
    """A fresh SQLite database (tables from the models, then `seed`), the web service with
    `Settings` changed by `overrides`, and the echo Rasa; stopped on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-app", daemon=True)
    thread.start()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    rasa, shop = EchoRasa(), ShopPages()
    runners: list[web.AppRunner] = []

    async def start() -> tuple[str, Settings, str]:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        if seed is not None:
            await seed(sessions)
        rasa_runner, rasa_url = await _site(rasa.app())
        shop_runner, shop_url = await _site(shop.app())
        runners.extend([rasa_runner, shop_runner])
        overrides["allowed_origins"] = (*overrides.get("allowed_origins", ()), shop_url)
        settings = replace(
            Settings(),
            database_url=database_url,
            rasa_url=rasa_url,
            rasa_timeout_seconds=5.0,
            **overrides,
        )
        app_runner, url = await _site(create_app(settings))
        runners.append(app_runner)
        return url, settings, shop_url

    async def stop() -> None:
        for runner in reversed(runners):
            await runner.cleanup()
        await engine.dispose()

    try:
        url, settings, shop_url = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
        yield LiveApp(url, settings, sessions, rasa, loop, shop, shop_url)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
