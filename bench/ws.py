"""WebSocket frame reading shared by the benchmarks."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp

# The per-address limits stay on in the benchmarks: their stacks trust loopback
# as the proxy in front (as production trusts nginx), and every simulated customer says which
# address it comes from, as nginx would (`simulated_client()`).
TRUSTED_PROXY_ENV = {"TRUSTED_PROXIES": "127.0.0.1"}


def simulated_client() -> dict[str, str]:
    """The X-Forwarded-For of a new simulated customer: a random 10.0.0.0/8 address."""
    address = ipaddress.IPv4Address((10 << 24) + 1 + secrets.randbelow(2**24 - 2))
    return {"X-Forwarded-For": str(address)}


# Put on the queue once the socket has closed; compare by identity.
CLOSED: dict[str, Any] = {"type": "_closed"}


async def read_frames(
    ws: aiohttp.ClientWebSocketResponse[bool],
    frames: asyncio.Queue[tuple[float, dict[str, Any]]],
    clock: Callable[[], float],
) -> None:
    """Queue every JSON frame with its arrival time (from `clock`), then CLOSED."""
    try:
        async for message in ws:  # ends when the socket closes
            now = clock()
            if message.type is aiohttp.WSMsgType.TEXT:
                try:
                    frame = json.loads(message.data)
                except ValueError:
                    frame = {"type": "_invalid"}
                frames.put_nowait((now, frame if isinstance(frame, dict) else {}))
            elif message.type is aiohttp.WSMsgType.ERROR:
                break
    finally:
        frames.put_nowait((clock(), CLOSED))
