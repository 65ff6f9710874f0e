"""WebSocket frame reading shared by the benchmarks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

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
