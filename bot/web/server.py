"""Serving `create_app()`: the public port, the optional internal ops port, and aiohttp's
own error answers hardened (issue #22, docs/security.md).

aiohttp answers a request it cannot parse (a bad method, a broken request line or header,
an over-long line) itself, before any routing: with `400 Bad Request`, a body that echoes
the bytes it choked on, `Server: Python/3.10 aiohttp/3.x` and none of our security
headers, because `on_response_prepare` only runs for routed requests. `HardenedAppRunner`
makes every request a `HardenedRequest`, whose prepare hook gives those answers the same
headers as every other response (bot/web/security.py) and a fixed body naming only the
status.

`python -m bot serve` runs through `serve()`; tests that only use routed requests may keep
aiohttp's TestServer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import socket
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_runner import BaseSite

from bot.config import Settings
from bot.web.security import apply_security_headers

logger = logging.getLogger(__name__)


class HardenedRequest(web.Request):
    """A request whose unrouted answers (aiohttp's parser errors) are hardened too."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        if self._match_info is not None:
            await super()._prepare_hook(response)  # routed: the app's on_response_prepare
            return
        # Not routed: aiohttp's own error answer (or a request that never reached the router).
        apply_security_headers(self, response)
        if isinstance(response, web.Response) and response.status >= 400:
            phrase = _phrase(response.status)
            body = f"{response.status} {phrase}\n".encode()
            response.body = body
            response.content_type = "text/plain"
            response.headers["Content-Length"] = str(len(body))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class HardenedAppRunner(web.AppRunner):
    """`web.AppRunner` whose server builds `HardenedRequest`s."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.request_factory = functools.partial(
            self.app._make_request,  # aiohttp's own factory, with our request class
            _cls=HardenedRequest,
        )
        return server


def ops_socket(settings: Settings) -> socket.socket | None:
    """The internal ops port's listening socket (OPS_HOST:OPS_PORT), or None when unset."""
    if not settings.ops_port:
        return None
    return socket.create_server((settings.ops_host, settings.ops_port), reuse_port=False)


async def start_sites(runner: web.AppRunner, settings: Settings) -> list[BaseSite]:
    """The public site (WEB_HOST:WEB_PORT) and, with OPS_PORT, the internal one."""
    sites: list[BaseSite] = [web.TCPSite(runner, settings.web_host, settings.web_port)]
    internal = ops_socket(settings)
    if internal is not None:
        sites.append(web.SockSite(runner, internal))
    for site in sites:
        await site.start()
    return sites


def freeze_startup_heap() -> int:
    """Moves every object alive now out of the garbage collector's reach; returns how many.

    Called once the app has started: what start-up built (the language detector's models,
    the routes, the settings) lives as long as the process, yet each full collection walked
    all of it again, about 70 ms in the middle of whichever request triggered it (the
    dashboard benchmark's slowest calls, docs/benchmarks.md). Objects created later are
    collected as before; the frozen ones are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def _serve(app: web.Application, settings: Settings) -> None:
    runner = HardenedAppRunner(app, handle_signals=True)
    await runner.setup()
    freeze_startup_heap()
    try:
        await start_sites(runner, settings)
        # Until SIGINT/SIGTERM: the runner's handlers raise GracefulExit in this task.
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve(app: web.Application, settings: Settings) -> None:
    """Run `app` until SIGINT or SIGTERM, like `web.run_app`, with the hardened runner."""
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_serve(app, settings))
