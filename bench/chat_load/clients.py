"""The two ways a simulated customer talks to the bot: the web service's WebSocket and
bare Rasa's REST channel. One call of `say` is one turn: a customer message and all the
bot's replies to it, timed from sending to the arrival of the last reply."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from bench.ws import CLOSED, read_frames, simulated_client
from bot.config import Settings

TURN_TIMEOUT = 30.0  # seconds; a turn that takes longer is an error
QUIET = 0.150  # seconds without frames that end a WebSocket turn (not part of its latency)

# (step, expected text in one of the bot's replies); the customer's text for `order` and
# `email` is the simulated customer's own order number and email.
STEPS: tuple[tuple[str, str], ...] = (
    ("hi", "what can i do for you"),
    ("where is my order", "order number"),
    ("order", "email"),
    ("email", "how satisfied"),
    ("4", "anything you'd like to add"),
    ("skip", "thank you for your feedback"),
)


def script(order_number: str, email: str) -> list[tuple[str, str, str]]:
    """(step name, customer text, expected reply fragment) for one conversation."""
    texts = {"order": order_number, "email": email}
    return [(step, texts.get(step, step), expected) for step, expected in STEPS]


@dataclass
class Turn:
    step: str
    started: float  # time.monotonic() when the message was sent
    ended: float  # arrival of the last reply (or when the error was noticed)
    error: str | None = None  # None, or what went wrong
    replies: int = 0
    unexpected: bool = False  # no reply contained the expected fragment (not an error)

    @property
    def latency(self) -> float | None:
        return None if self.error else self.ended - self.started


class Chat(Protocol):
    late_frames: int

    async def open(self) -> str | None:
        """Start a conversation; None when it worked, else the error."""

    async def say(self, step: str, text: str, expected: str) -> Turn: ...

    async def close(self) -> None: ...


def _unexpected(texts: list[str], expected: str) -> bool:
    return not any(expected in t.lower() for t in texts)


@dataclass
class WsChat:
    """One browser tab on the chat WebSocket: a new connection and a new conversation.

    A reader task timestamps every frame as it arrives (and keeps answering the server's
    heartbeat pings while the customer is "thinking")."""

    http: aiohttp.ClientSession
    url: str
    late_frames: int = 0
    ws: aiohttp.ClientWebSocketResponse[bool] | None = None
    client_headers: dict[str, str] = field(default_factory=simulated_client)  # one customer
    frames: asyncio.Queue[tuple[float, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.ws is not None
        await read_frames(self.ws, self.frames, time.monotonic)

    async def _next(self, timeout: float) -> tuple[float, dict[str, Any]] | None:
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self.frames.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _connect(self) -> aiohttp.ClientWebSocketResponse[bool]:
        return await self.http.ws_connect(self.url, headers=self.client_headers)

    async def open(self) -> str | None:
        deadline = time.monotonic() + TURN_TIMEOUT
        try:
            ws = await asyncio.wait_for(self._connect(), TURN_TIMEOUT)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return "connect_failed"
        self.ws = ws
        self.reader = asyncio.create_task(self._read())
        try:
            await ws.send_json({"type": "hello", "token": None})
        except (aiohttp.ClientError, OSError, RuntimeError):
            return "connect_failed"
        for _ in range(100):  # the session frame comes first; bounded anyway
            got = await self._next(deadline - time.monotonic())
            if got is None:
                return "hello_timeout"
            frame = got[1]
            if frame.get("type") == "session":
                return None
            if frame is CLOSED or frame.get("type") == "error":
                return "hello_refused"
        return "hello_refused"

    async def say(self, step: str, text: str, expected: str) -> Turn:
        assert self.ws is not None
        while not self.frames.empty():  # replies that came after the previous turn ended
            _, frame = self.frames.get_nowait()
            if frame.get("type") == "message":
                self.late_frames += 1
            if frame is CLOSED:
                self.frames.put_nowait((time.monotonic(), frame))
                break
        started = time.monotonic()
        deadline = started + TURN_TIMEOUT
        turn = Turn(step, started, started)
        try:
            await self.ws.send_json(
                {"type": "message", "text": text, "client_id": str(uuid.uuid4())}
            )
        except (aiohttp.ClientError, OSError, RuntimeError):
            turn.error, turn.ended = "connection_lost", time.monotonic()
            return turn
        typing_off = False
        texts: list[str] = []
        last_reply = started
        for _ in range(1000):  # a turn has a handful of frames; bounded anyway
            # Until the first reply after typing-off: up to the turn timeout (the web service
            # stores each reply before sending it, which can take a while under load). Then
            # the turn ends after QUIET seconds without frames.
            wait = deadline - time.monotonic()
            if typing_off and texts:
                wait = min(wait, QUIET)
            got = await self._next(wait)
            if got is None:
                if typing_off and texts:
                    break
                turn.error = "no_reply" if typing_off else "timeout"
                break
            at, frame = got
            kind = frame.get("type")
            if frame is CLOSED:
                turn.error = "connection_lost"
                break
            if kind == "error":
                code = (
                    frame.get("error", {}).get("code", "?")
                    if isinstance(frame.get("error"), dict)
                    else "?"
                )
                turn.error = f"error_frame:{code}"
                break
            if kind == "message" and frame.get("sender") == "system":
                turn.error = "system_message"
                break
            if kind == "message" and frame.get("sender") == "bot":
                texts.append(str(frame.get("text", "")))
                last_reply = at
            elif kind == "typing" and frame.get("on") is False:
                typing_off = True
        else:
            turn.error = "too_many_frames"
        turn.replies = len(texts)
        turn.ended = last_reply if turn.error is None else time.monotonic()
        turn.unexpected = turn.error is None and _unexpected(texts, expected)
        return turn

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader


@dataclass
class RestChat:
    """Bare Rasa: its REST channel, a fresh sender id per conversation."""

    http: aiohttp.ClientSession
    url: str
    late_frames: int = 0
    sender: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex}")
    # The channel refuses calls without its shared secret (rasa_ext/channels.py).
    headers: dict[str, str] = field(
        default_factory=lambda: {"X-Channel-Secret": Settings.from_env().rasa_channel_secret}
    )

    async def open(self) -> str | None:
        return None

    async def say(self, step: str, text: str, expected: str) -> Turn:
        started = time.monotonic()
        turn = Turn(step, started, started)
        body: Any = None
        try:
            async with self.http.post(
                self.url,
                json={"sender": self.sender, "message": text},
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=TURN_TIMEOUT),
            ) as response:
                if response.status != 200:
                    turn.error = f"http_{response.status}"
                else:
                    body = await response.json(content_type=None)
        except asyncio.TimeoutError:
            turn.error = "timeout"
        except (aiohttp.ClientError, OSError, ValueError):
            turn.error = "connection_failed"
        turn.ended = time.monotonic()
        if turn.error is None:
            items = body if isinstance(body, list) else []
            texts = [str(i["text"]) for i in items if isinstance(i, dict) and i.get("text")]
            turn.replies = len(texts)
            if not texts:
                turn.error = "no_reply"
            turn.unexpected = turn.error is None and _unexpected(texts, expected)
        return turn

    async def close(self) -> None:
        return None
