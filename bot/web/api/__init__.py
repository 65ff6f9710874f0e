"""The JSON API sub-app mounted at /api (authentication: bot/web/api/auth.py).

Each area is one module with `add_routes(app)`, `OPENAPI_PATHS` and `OPENAPI_SCHEMAS`;
`API_MODULES` lists them and the OpenAPI document is assembled from the same list.
"""

from __future__ import annotations

from types import ModuleType

from aiohttp import web

from bot.web.api import openapi
from bot.web.api.auth import api_auth_middleware

OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict)


def _api_modules() -> tuple[ModuleType, ...]:
    from bot.web.api import (
        bot_quality,
        dashboard,
        events,
        insights,
        intake,
        knowledge,
        loyalty,
        privacy,
        tokens,
    )

    return (tokens, privacy, events, dashboard, intake, loyalty, insights, bot_quality, knowledge)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_DOCUMENT])


def create_api() -> web.Application:
    api = web.Application(middlewares=[api_auth_middleware])
    modules = _api_modules()
    api[OPENAPI_DOCUMENT] = openapi.build_document(modules)
    api.router.add_get("/openapi.json", openapi_json)
    for module in modules:
        module.add_routes(api)
    return api
