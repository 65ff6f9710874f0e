"""Live chat connections of this process, per conversation, and per-conversation rate limits.

The hub is what lets the server push to a customer at any time (agent replies, proactive
surveys): every open widget tab of a conversation is registered here. Messages for a
customer who is not connected are in the transcript and arrive with the history on
reconnect. With several web replicas (REDIS_URL set) every push is also published on Redis
and each replica delivers it to the sockets it holds (`Fanout`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections import defaultdict, deque
from typing import Any

from aiohttp import WSCloseCode
from aiohttp.web_ws import WebSocketResponse

from bot.domain import safe_json

logger = logging.getLogger(__name__)

FANOUT_CHANNEL = "shopbot:hub"
FANOUT_RETRY_SECONDS = 1.0


class Fanout:
    """Redis pub/sub between web replicas: a push for a conversation reaches the replica
    that holds its WebSocket. Best effort: if Redis is down the message is still in the
    transcript and reaches the customer with the history on reconnect."""

    def __init__(self, redis: Any, channel: str = FANOUT_CHANNEL) -> None:
        self.redis = redis
        self.channel = channel
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.failures = 0

    async def publish(
        self, target: str, conversation_id: str | None, frame: dict[str, Any]
    ) -> None:
        payload = {
            "origin": self.origin,
            "target": target,
            "conversation_id": conversation_id,
            "frame": frame,
        }
        try:
            await self.redis.publish(self.channel, json.dumps(payload))
        except Exception as exc:  # Redis down: the transcript still has the message
            self.failures += 1
            logger.warning("fan-out publish failed: %s", exc)

    async def listen(self, hub: ChatHub, staff: StaffHub, ready: asyncio.Event) -> None:
        """Deliver what other replicas publish; resubscribes after a Redis outage."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._deliver(hub, staff, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("fan-out subscription lost (%s); retrying", exc)
                await asyncio.sleep(FANOUT_RETRY_SECONDS)

    async def _deliver(self, hub: ChatHub, staff: StaffHub, raw: bytes | str) -> None:
        try:
            payload = safe_json.loads(raw)
        except safe_json.BadJson:
            logger.warning("fan-out message is not acceptable JSON, skipped")
            return
        if not isinstance(payload, dict) or payload.get("origin") == self.origin:
            return
        target, conversation_id, frame = (
            payload.get("target"),
            payload.get("conversation_id"),
            payload.get("frame"),
        )
        if not isinstance(frame, dict):
            return
        if target == "chat" and isinstance(conversation_id, str):
            await hub.deliver(conversation_id, frame)
        elif target == "chat_end" and isinstance(conversation_id, str):
            await hub.end_here(conversation_id)
        elif target == "staff_queue":
            await staff.deliver_queue_changed()
        elif target == "staff_conversation" and isinstance(conversation_id, str):
            await staff.deliver_conversation_event(conversation_id, frame)


class ChatHub:
    def __init__(self) -> None:
        self._sockets: dict[str, set[WebSocketResponse]] = defaultdict(set)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self.fanout: Fanout | None = None

    def total(self) -> int:
        """Open sockets on this replica."""
        return sum(len(s) for s in self._sockets.values())

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
        """Send to every live tab of the conversation, on every replica; returns how many
        tabs on this replica got it."""
        delivered = await self.deliver(conversation_id, frame, exclude)
        if self.fanout is not None:
            await self.fanout.publish("chat", conversation_id, frame)
        return delivered

    async def deliver(
        self, conversation_id: str, frame: dict[str, Any], exclude: WebSocketResponse | None = None
    ) -> int:
        """Send to the conversation's tabs connected to this replica."""
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

    async def end(self, conversation_id: str) -> None:
        """Close the conversation's live tabs on every replica (its data was erased): the
        widget reconnects, its token no longer resumes anything, so it starts afresh and
        clears what the page still showed."""
        await self.end_here(conversation_id)
        if self.fanout is not None:
            await self.fanout.publish("chat_end", conversation_id, {})

    async def end_here(self, conversation_id: str) -> None:
        sockets = list(self._sockets.pop(conversation_id, ()))
        self._recent.pop(conversation_id, None)
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"conversation erased")
                for ws in sockets
            ),
            return_exceptions=True,
        )

    async def close_all(self, message: str) -> None:
        """Close every socket at once (graceful shutdown: the widget reconnects, possibly to
        another replica, and resumes with its token)."""
        sockets = [ws for group in self._sockets.values() for ws in group]
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=message.encode()) for ws in sockets),
            return_exceptions=True,
        )


class StaffHub:
    """Open console connections; each watches the queue or one conversation."""

    def __init__(self) -> None:
        self._watching: dict[WebSocketResponse, str | None] = {}
        self._staff: dict[WebSocketResponse, int] = {}
        # When this process last refreshed each user's presence for their open consoles
        # (time.monotonic()): several tabs of one user write it once per period.
        self._presence_touched: dict[int, float] = {}
        self.fanout: Fanout | None = None

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

    def presence_due(self, staff_id: int, now: float, every: float) -> bool:
        """Whether an open console of this user should refresh their presence now (at most
        once per `every` seconds per user and process, whatever the number of tabs)."""
        last = self._presence_touched.get(staff_id)
        if last is not None and now - last < every:
            return False
        self._presence_touched[staff_id] = now
        return True

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
        await self.deliver_queue_changed()
        if self.fanout is not None:
            await self.fanout.publish("staff_queue", None, {})

    async def deliver_queue_changed(self) -> None:
        await self._send(list(self._watching), {"type": "queue_changed"})

    async def conversation_event(self, conversation_id: str, frame: dict[str, Any]) -> None:
        """Live update for consoles showing this conversation (and the queue's last message)."""
        await self.deliver_conversation_event(conversation_id, frame)
        if self.fanout is not None:
            await self.fanout.publish("staff_conversation", conversation_id, frame)

    async def deliver_conversation_event(self, conversation_id: str, frame: dict[str, Any]) -> None:
        watchers = [ws for ws, watched in self._watching.items() if watched == conversation_id]
        await self._send(watchers, {**frame, "conversation_id": conversation_id})
        message = frame.get("message") if frame.get("type") == "message" else None
        if isinstance(message, dict) and message.get("sender") == "customer":
            # The queue's unread counts and "last message" changed (issue #20).
            queue = [ws for ws, watched in self._watching.items() if watched is None]
            await self._send(
                queue, {"type": "customer_message", "conversation_id": conversation_id}
            )

    async def close_all(self) -> None:
        for ws in list(self._watching):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restarting")
