"""`create_app()`: the web service's factory (chat page, chat WebSocket, health)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from bot.config import ConfigError, Settings
from bot.domain import staff
from bot.storage.db import create_engine, create_session_factory
from bot.web.api import create_api
from bot.web.background import alerts_ctx, background_tasks
from bot.web.chat import chat_socket
from bot.web.client_limits import client_limits_ctx
from bot.web.console import create_console
from bot.web.dashboard import create_dashboard, dashboard_home_redirect
from bot.web.email_reply import email_replies_ctx
from bot.web.errors import error_middleware
from bot.web.events_worker import events_queue_ctx
from bot.web.hub import ChatHub, StaffHub
from bot.web.keys import ENGINE, HUB, RASA, SESSIONS, SETTINGS, STAFF_HUB
from bot.web.language import language_detector_ctx
from bot.web.maintenance import lifecycle_sweep_ctx
from bot.web.ops import setup_ops
from bot.web.outgoing import outgoing_webhook_ctx
from bot.web.photos import add_routes as add_photo_routes
from bot.web.rasa_client import RasaClient
from bot.web.security import apply_security_headers, on_response_prepare

STATIC_DIR = Path(__file__).parent / "static"


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    app[ENGINE] = engine
    app[SESSIONS] = create_session_factory(engine)
    yield
    await engine.dispose()


async def _no_demo_staff_in_production(app: web.Application) -> AsyncIterator[None]:
    # The demo logins' password is published: production does not start while they work.
    if app[SETTINGS].is_production:
        async with app[SESSIONS]() as session:
            demo_users = await staff.active_demo_users(session)
        if demo_users:
            raise ConfigError(staff.demo_users_refusal(demo_users))
    yield


async def _rasa_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with aiohttp.ClientSession() as http:
        app[RASA] = RasaClient(
            http,
            settings.rasa_url,
            settings.rasa_token,
            settings.rasa_timeout_seconds,
            max_in_flight=settings.rasa_max_in_flight,
            channel_secret=settings.rasa_channel_secret,
        )
        yield


async def _close_chats(app: web.Application) -> None:
    # The widget reconnects with backoff and resumes with its token.
    await app[HUB].close_all("server restarting, reconnecting")
    await app[STAFF_HUB].close_all()


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def widget_script(_request: web.Request) -> web.FileResponse:
    return _asset("widget.js")


async def widget_styles(_request: web.Request) -> web.FileResponse:
    return _asset("widget.css")


async def favicon(_request: web.Request) -> web.FileResponse:
    # Browsers ask for /favicon.ico on every page; an SVG answers it (no 404 in the logs).
    return web.FileResponse(
        STATIC_DIR / "favicon.svg",
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"},
    )


def _asset(name: str) -> web.FileResponse:
    # Shops embed these from their own pages: short cache so fixes reach them quickly.
    return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "public, max-age=300"})


async def shop_home_redirect(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/demo/shop/")


def setup_routes(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/ws", chat_socket)
    app.router.add_get("/widget.js", widget_script)
    app.router.add_get("/widget.css", widget_styles)
    app.router.add_get("/favicon.ico", favicon)
    add_photo_routes(app)  # POST /chat/photos (issue #19; stored outside the web root)
    app.router.add_static("/static/", STATIC_DIR)
    if not settings.is_production:
        # The demo shop signs identity tokens for any `C` + 4 digits: development only. It
        # (and the demo data, bot/demo/) is imported here so production never loads it.
        from bot.web.demo_shop import create_demo_shop

        app.router.add_get("/demo/shop", shop_home_redirect)
        app.add_subapp("/demo/shop", create_demo_shop(settings.widget_secret))
    app.add_subapp("/console", create_console())
    app.router.add_get("/dashboard", dashboard_home_redirect)
    app.add_subapp("/dashboard", create_dashboard())
    app.add_subapp("/api", create_api())


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For apps built without create_app() (tests); create_app() sets the same headers on
    every response, errors and redirects included, from on_response_prepare."""
    response = await handler(request)
    apply_security_headers(request, response)
    return response


def create_app(settings: Settings | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024)
    app.on_response_prepare.append(on_response_prepare)  # bot/web/security.py
    app[SETTINGS] = settings or Settings.from_env()
    app[HUB] = ChatHub()
    app[STAFF_HUB] = StaffHub()
    app.on_shutdown.append(_close_chats)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_no_demo_staff_in_production)
    app.cleanup_ctx.append(_rasa_client)
    app.cleanup_ctx.append(client_limits_ctx)  # per-address chat limits (issue #22)
    app.cleanup_ctx.append(language_detector_ctx)  # bot/web/language.py: built once, ~1 s
    app.cleanup_ctx.append(outgoing_webhook_ctx)  # only runs with OUTGOING_WEBHOOK_URL
    app.cleanup_ctx.append(lifecycle_sweep_ctx)  # closes completed purchases' lifecycles
    app.cleanup_ctx.append(alerts_ctx)  # CX alerts every ALERT_CHECK_SECONDS (issue #21)
    app.cleanup_ctx.append(email_replies_ctx)  # email reply when the customer left (#20)
    app.cleanup_ctx.append(background_tasks)  # last: its tasks stop before what they use
    app.cleanup_ctx.append(events_queue_ctx)  # shop events worker: stops before the tasks
    setup_routes(app, app[SETTINGS])
    setup_ops(app)  # /healthz, /readyz, /metrics, Redis fan-out between replicas
    return app
