"""Dashboard pages of the loyalty view and the insight board (static shells at /dashboard/).

Registered on the dashboard sub-app (bot/web/dashboard.py), so they share its sign-in and
role check (cx_manager, admin); every number comes from /api/loyalty and /api/insights.
"""

from __future__ import annotations

from aiohttp import web

from bot.web import pages


def _page(name: str) -> web.Response:
    return pages.response(pages.DASHBOARD, name)


async def loyalty_page(_request: web.Request) -> web.Response:
    return _page("loyalty.html")


async def insights_page(_request: web.Request) -> web.Response:
    return _page("insights.html")


def add_pages(dashboard: web.Application) -> None:
    dashboard.router.add_get("/loyalty", loyalty_page)
    dashboard.router.add_get("/insights", insights_page)
