"""`create_app()`: the web service's factory (chat page, chat WebSocket, health)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import text

from bot.config import Settings
from bot.storage.db import create_engine, create_session_factory
from bot.web.chat import chat_socket
from bot.web.console import create_console
from bot.web.demo_shop import create_demo_shop
from bot.web.errors import error_middleware, json_error
from bot.web.hub import ChatHub, StaffHub
from bot.web.keys import ENGINE, HUB, RASA, SESSIONS, SETTINGS, STAFF_HUB
from bot.web.rasa_client import RasaClient

STATIC_DIR = Path(__file__).parent / "static"


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    app[ENGINE] = engine
    app[SESSIONS] = create_session_factory(engine)
    yield
    await engine.dispose()


async def _rasa_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with aiohttp.ClientSession() as http:
        app[RASA] = RasaClient(
            http, settings.rasa_url, settings.rasa_token, settings.rasa_timeout_seconds
        )
        yield


async def _close_chats(app: web.Application) -> None:
    # The widget reconnects with backoff and resumes with its token.
    await app[HUB].close_all("server restarting, reconnecting")
    await app[STAFF_HUB].close_all()


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def healthz(request: web.Request) -> web.Response:
    try:
        async with request.app[ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return json_error(503, "database_unavailable", "The database is not reachable.")
    rasa_ready = await request.app[RASA].is_ready()
    return web.json_response({"status": "ok", "rasa": "ready" if rasa_ready else "unavailable"})


async def widget_script(_request: web.Request) -> web.FileResponse:
    return _asset("widget.js")


async def widget_styles(_request: web.Request) -> web.FileResponse:
    return _asset("widget.css")


def _asset(name: str) -> web.FileResponse:
    # Shops embed these from their own pages: short cache so fixes reach them quickly.
    return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "public, max-age=300"})


async def shop_home_redirect(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/demo/shop/")


def setup_routes(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", chat_socket)
    app.router.add_get("/widget.js", widget_script)
    app.router.add_get("/widget.css", widget_styles)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/demo/shop", shop_home_redirect)
    app.add_subapp("/demo/shop", create_demo_shop(settings.widget_secret))
    app.add_subapp("/console", create_console())


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'self'",
    )
    return response


def create_app(settings: Settings | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, security_headers], client_max_size=64 * 1024
    )
    app[SETTINGS] = settings or Settings.from_env()
    app[HUB] = ChatHub()
    app[STAFF_HUB] = StaffHub()
    app.on_shutdown.append(_close_chats)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_rasa_client)
    setup_routes(app, app[SETTINGS])
    return app
