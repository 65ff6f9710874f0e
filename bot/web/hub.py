"""Live chat connections of this process, per conversation, and per-conversation rate limits.

The hub is what lets the server push to a customer at any time (agent replies, proactive
surveys): every open widget tab of a conversation is registered here. Messages for a
customer who is not connected are in the transcript and arrive with the history on
reconnect. (Fan-out across several web replicas is the production profile's Redis pub/sub.)
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any

from aiohttp import WSCloseCode
from aiohttp.web_ws import WebSocketResponse


class ChatHub:
    def __init__(self) -> None:
        self._sockets: dict[str, set[WebSocketResponse]] = defaultdict(set)
        self._recent: dict[str, deque[float]] = defaultdict(deque)

    def join(self, conversation_id: str, ws: WebSocketResponse) -> None:
        self._sockets[conversation_id].add(ws)

    def leave(self, conversation_id: str, ws: WebSocketResponse) -> None:
        sockets = self._sockets.get(conversation_id)
        if sockets is None:
            return
        sockets.discard(ws)
        if not sockets:
            del self._sockets[conversation_id]
            self._recent.pop(conversation_id, None)

    def connected(self, conversation_id: str) -> int:
        return len(self._sockets.get(conversation_id, ()))

    async def send(
        self, conversation_id: str, frame: dict[str, Any], exclude: WebSocketResponse | None = None
    ) -> int:
        """Send to every live tab of the conversation; returns how many got it."""
        delivered = 0
        for ws in list(self._sockets.get(conversation_id, ())):
            if ws is exclude or ws.closed:
                continue
            try:
                await ws.send_json(frame)
                delivered += 1
            except (ConnectionError, RuntimeError):
                self.leave(conversation_id, ws)
        return delivered

    def allow(self, conversation_id: str, limit: int, window_seconds: float) -> bool:
        """Sliding-window rate limit per conversation (shared by all its tabs)."""
        now = time.monotonic()
        recent = self._recent[conversation_id]
        while recent and now - recent[0] > window_seconds:
            recent.popleft()
        if len(recent) >= limit:
            return False
        recent.append(now)
        return True

    async def close_all(self, message: str) -> None:
        for conversation_id in list(self._sockets):
            for ws in list(self._sockets.get(conversation_id, ())):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=message.encode())


class StaffHub:
    """Open console connections; each watches the queue or one conversation."""

    def __init__(self) -> None:
        self._watching: dict[WebSocketResponse, str | None] = {}
        self._staff: dict[WebSocketResponse, int] = {}

    def join(self, ws: WebSocketResponse, staff_id: int) -> None:
        self._watching[ws] = None
        self._staff[ws] = staff_id

    def watch(self, ws: WebSocketResponse, conversation_id: str | None) -> None:
        if ws in self._watching:
            self._watching[ws] = conversation_id

    def leave(self, ws: WebSocketResponse) -> None:
        self._watching.pop(ws, None)
        self._staff.pop(ws, None)

    def online_staff_ids(self) -> set[int]:
        return set(self._staff.values())

    async def _send(self, sockets: list[WebSocketResponse], frame: dict[str, Any]) -> None:
        for ws in sockets:
            if ws.closed:
                self.leave(ws)
                continue
            try:
                await ws.send_json(frame)
            except (ConnectionError, RuntimeError):
                self.leave(ws)

    async def queue_changed(self) -> None:
        await self._send(list(self._watching), {"type": "queue_changed"})

    async def conversation_event(self, conversation_id: str, frame: dict[str, Any]) -> None:
        """Live update for consoles showing this conversation (and the queue's last message)."""
        watchers = [ws for ws, watched in self._watching.items() if watched == conversation_id]
        await self._send(watchers, {**frame, "conversation_id": conversation_id})

    async def close_all(self) -> None:
        for ws in list(self._watching):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restarting")
