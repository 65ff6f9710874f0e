"""The CX dashboard (sub-app at /dashboard): overview, breakdowns, journey map, explorer.

The pages are one static shell (bot/web/static/dashboard/); every number comes from the
JSON API (/api/metrics, /api/journey, /api/feedback, /api/export, bot/web/api/dashboard.py)
with the same staff session. Signed-out visitors go to the console sign-in and come back;
agents get a 403 page (cx_manager and admin only).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.domain.enums import StaffRole
from bot.web import bot_pages, insight_pages, pages
from bot.web.auth import LOGIN_PAGE_PATH, NO_STORE, forbidden_response, load_staff_session

PAGES = Path(__file__).parent / "static" / "dashboard"
DASHBOARD_ROLES = frozenset({StaffRole.cx_manager, StaffRole.admin})
VIEWS = ("", "breakdowns", "journey", "explorer", "transcript", "support")


@web.middleware
async def dashboard_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/dashboard/static/"):
        return await handler(request)
    found = await load_staff_session(request)
    if found is None:
        target = request.path_qs if request.path.startswith("/dashboard/") else "/dashboard/"
        location = f"{LOGIN_PAGE_PATH}?next={quote(target, safe='/')}"
        return web.Response(status=302, headers={"Location": location, **NO_STORE})
    user, _session = found
    if user.role not in DASHBOARD_ROLES:
        return forbidden_response(request, user)
    return await handler(request)


async def shell(_request: web.Request) -> web.Response:
    return pages.response(pages.DASHBOARD, "index.html")


async def dashboard_home_redirect(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


def create_dashboard() -> web.Application:
    dashboard = web.Application(middlewares=[dashboard_auth])
    for view in VIEWS:
        dashboard.router.add_get(f"/{view}", shell)
    dashboard.router.add_static("/static/", PAGES)
    insight_pages.add_pages(dashboard)  # /dashboard/loyalty, /dashboard/insights (issue #10)
    bot_pages.add_pages(dashboard)  # /dashboard/bot (issue #24)
    return dashboard
