"""The dashboard's Bot page (/dashboard/bot, issue #24): how well the bot understands.

Registered on the dashboard sub-app (bot/web/dashboard.py), so it shares its sign-in and
role check (cx_manager, admin); every number comes from /api/bot-quality."""

from __future__ import annotations

from aiohttp import web

from bot.web import pages


async def bot_page(_request: web.Request) -> web.Response:
    return pages.response(pages.DASHBOARD, "bot.html")


def add_pages(dashboard: web.Application) -> None:
    dashboard.router.add_get("/bot", bot_page)
