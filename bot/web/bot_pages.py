"""The dashboard's Bot page (/dashboard/bot, issue #24): how well the bot understands.

Registered on the dashboard sub-app (bot/web/dashboard.py), so it shares its sign-in and
role check (cx_manager, admin); every number comes from /api/bot-quality."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PAGES = Path(__file__).parent / "static" / "dashboard"


async def bot_page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGES / "bot.html", headers={"Cache-Control": "no-store"})


def add_pages(dashboard: web.Application) -> None:
    dashboard.router.add_get("/bot", bot_page)
