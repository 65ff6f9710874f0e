"""A tiny HTTP load balancer with failover, for the action server replicas.

    python -m bot.balancer --port 5050 --upstream http://127.0.0.1:5055 --upstream http://127.0.0.1:5056

Rasa has one action endpoint URL; in the production profile it points here. Requests go
round-robin to the replicas; when a replica refuses the connection, drops it mid-request
(killed) or times out, the same request is sent to the next one. That is safe because
every action is idempotent where it matters: feedback rows carry an idempotency key that
is unique in the database (docs/decisions.md, "Production profile"). A replica that failed
is skipped for a moment. In a real deployment a load balancer with retries (HAProxy
`retries` + `option redispatch`, nginx `proxy_next_upstream`, a Kubernetes Service with a
retrying mesh) takes this place (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

logger = logging.getLogger("bot.balancer")

SKIP_SECONDS = 2.0  # a replica that failed is tried last for this long
HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})
HTTP = web.AppKey("http", aiohttp.ClientSession)


class Upstreams:
    def __init__(self, urls: list[str], timeout: float) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._next = itertools.cycle(range(len(self.urls)))
        self._failed_at = dict.fromkeys(self.urls, 0.0)
        self.retries = 0

    def order(self) -> list[str]:
        """Every replica once, round-robin, recently failed ones last."""
        start = next(self._next)
        rotated = self.urls[start:] + self.urls[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda u: now - self._failed_at[u] < SKIP_SECONDS)

    def failed(self, url: str) -> None:
        self._failed_at[url] = time.monotonic()


UPSTREAMS = web.AppKey("upstreams", Upstreams)


async def proxy(request: web.Request) -> web.StreamResponse:
    upstreams = request.app[UPSTREAMS]
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    problems = []
    for attempt, base in enumerate(upstreams.order()):
        if attempt:
            upstreams.retries += 1
        try:
            async with request.app[HTTP].request(
                request.method, base + request.path_qs, data=body, headers=headers,
                timeout=upstreams.timeout,
            ) as response:  # fmt: skip
                payload = await response.read()
                if response.status in (502, 503, 504):
                    raise aiohttp.ClientResponseError(
                        response.request_info, (), status=response.status
                    )
                return web.Response(
                    body=payload, status=response.status,
                    content_type=response.content_type, charset=response.charset,
                )  # fmt: skip
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            upstreams.failed(base)
            problems.append(f"{base}: {type(error).__name__}")
            logger.warning("upstream %s failed (%s); trying the next one", base, error)
    return web.json_response(
        {"error": {"code": "no_upstream", "message": "; ".join(problems)}}, status=503
    )


async def status(request: web.Request) -> web.Response:
    upstreams = request.app[UPSTREAMS]
    return web.json_response({"upstreams": upstreams.urls, "retries": upstreams.retries})


def create_app(urls: list[str], timeout: float) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[UPSTREAMS] = Upstreams(urls, timeout)

    async def http(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            app[HTTP] = session
            yield

    app.cleanup_ctx.append(http)
    app.router.add_get("/_balancer", status)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.balancer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", required=True, help="repeat per replica")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per attempt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(create_app(args.upstream, args.timeout), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
