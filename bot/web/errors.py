"""One middleware maps domain and HTTP errors to JSON `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import SQLAlchemyError

from bot.domain import safe_json
from bot.domain.errors import DomainError

logger = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_input",
    429: "rate_limited",
}


async def read_json(request: web.Request) -> Any:
    """The request body parsed by `safe_json` (depth ≤ 64, finite numbers); `BadJson`
    (400 `bad_json` through the middleware) otherwise."""
    return safe_json.loads(await request.read())


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 with a clear message."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(reason="The request body must be a JSON object.")
    return data


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return json_error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return json_error(exc.status, HTTP_CODES.get(exc.status, "error"), exc.reason)
    except SQLAlchemyError:
        logger.exception("database error on %s", request.path)
        return json_error(
            503, "unavailable", "The service is temporarily unavailable; please retry."
        )
