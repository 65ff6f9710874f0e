"""Sockets that timestamp frames on arrival, one simulated conversation's rounds, statistics.

All times are `time.perf_counter()` of this one process, so sender and receiver share a
clock. A frame's arrival time is taken by a reader task the moment aiohttp hands it over
(the load generator's own event-loop delay is therefore part of every figure, the
baseline's included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.ws import CLOSED, read_frames

TIMEOUT = 5.0  # seconds; a hop that takes longer is an error
NOTE_GRACE = 0.5  # seconds a customer waits (unmeasured) for a system note after a message
Frame = dict[str, Any]


class SocketClosed(Exception):
    pass


class FrameSocket:
    """A WebSocket whose frames a reader task queues with their arrival time.

    The reader also keeps answering the server's heartbeat pings (aiohttp autoping)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[tuple[float, Frame]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        await read_frames(self.ws, self.frames, time.perf_counter)

    async def send(self, frame: Frame) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def wait_for(self, match: Callable[[Frame], bool], deadline: float) -> float | None:
        """Arrival time of the first queued frame that matches (others are dropped); None
        when the deadline passes first. Raises SocketClosed once the socket has closed."""
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            try:
                arrived, frame = await asyncio.wait_for(self.frames.get(), remaining)
            except asyncio.TimeoutError:
                return None
            if frame is CLOSED:
                self.frames.put_nowait((arrived, frame))  # later waits see it too
                raise SocketClosed
            if match(frame):
                return arrived

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader


# --- frame predicates -------------------------------------------------------------------------


def is_agent_message(text: str) -> Callable[[Frame], bool]:
    return lambda f: (
        f.get("type") == "message" and f.get("sender") == "agent" and f.get("text") == text
    )


def is_console_customer_message(client_id: str) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        message = frame.get("message")
        return (
            frame.get("type") == "message"
            and isinstance(message, dict)
            and message.get("sender") == "customer"
            and message.get("client_id") == client_id
        )

    return match


def is_ack(client_id: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == "ack" and f.get("client_id") == client_id


def is_system_message(frame: Frame) -> bool:
    return frame.get("type") == "message" and frame.get("sender") == "system"


def is_bad_request(frame: Frame) -> bool:
    error = frame.get("error")
    return (
        frame.get("type") == "error"
        and isinstance(error, dict)
        and error.get("code") == "bad_request"
    )


# --- one conversation -------------------------------------------------------------------------


@dataclass
class Conversation:
    index: int
    conversation_id: str
    customer: FrameSocket
    console: FrameSocket | None = None
    escalation_id: int | None = None


@dataclass
class Samples:
    """Latencies in seconds, per series; errors by kind."""

    agent_to_customer: list[float] = field(default_factory=list)
    customer_to_agent: list[float] = field(default_factory=list)
    round_trip: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    agent_post_response: list[float] = field(default_factory=list)  # info: the HTTP answer
    errors: Counter[str] = field(default_factory=Counter)
    rounds_done: int = 0
    rounds_skipped: int = 0  # not started because the time budget was spent


@dataclass
class Staff:
    http: aiohttp.ClientSession
    base_url: str
    csrf_token: str


async def agent_to_customer(staff: Staff, chat: Conversation, text: str) -> tuple[float, float]:
    """(send → customer's widget has the frame, send → HTTP 201); raises on errors."""
    started = time.perf_counter()
    deadline = started + TIMEOUT
    url = f"{staff.base_url}/console/api/conversations/{chat.conversation_id}/messages"
    try:
        async with staff.http.post(
            url,
            json={"text": text},
            headers={"X-CSRF-Token": staff.csrf_token},
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        ) as response:
            await response.read()
            answered = time.perf_counter()
            if response.status != 201:
                raise HopError(f"agent_post_http_{response.status}")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise HopError(f"agent_post_{type(exc).__name__}") from exc
    arrived = await chat.customer.wait_for(is_agent_message(text), deadline)
    if arrived is None:
        raise HopError("agent_to_customer_timeout")
    return arrived - started, answered - started


async def customer_to_agent(chat: Conversation, text: str) -> float:
    """Customer sends → the console watching the conversation has the event; then waits
    (not counted) until the server has finished with the message (ack + its system note),
    so the next hop does not queue behind it on the same socket."""
    assert chat.console is not None
    client_id = uuid.uuid4().hex
    started = time.perf_counter()
    deadline = started + TIMEOUT
    await chat.customer.send({"type": "message", "text": text, "client_id": client_id})
    arrived = await chat.console.wait_for(is_console_customer_message(client_id), deadline)
    if arrived is None:
        raise HopError("customer_to_agent_timeout")
    if await chat.customer.wait_for(is_ack(client_id), deadline) is None:
        raise HopError("customer_ack_timeout")
    # A system note may follow (the "waiting for a person" note; once a person has joined
    # there may be none): wait a moment for it, not an error when it does not come.
    await chat.customer.wait_for(is_system_message, time.perf_counter() + NOTE_GRACE)
    return arrived - started


async def no_op(chat: Conversation) -> float:
    """Baseline: an unknown frame type on the same customer socket → the server's error frame."""
    started = time.perf_counter()
    await chat.customer.send({"type": "nonsense"})
    arrived = await chat.customer.wait_for(is_bad_request, started + TIMEOUT)
    if arrived is None:
        raise HopError("baseline_timeout")
    return arrived - started


class HopError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


async def one_round(
    staff: Staff,
    chat: Conversation,
    label: str,
    pause: Callable[[], float],
    out: Samples,
    typing: bool = True,
) -> None:
    """(a) agent → customer, (b) customer → agent, baseline no-op; a random pause before
    each. With `typing` the agent "types" during the pause before (a), as the console does:
    "typing on" on the console socket (relayed to the customer), "off" with
    the send. Raises SocketClosed when a socket has closed."""
    a: float | None = None
    b: float | None = None
    if typing and chat.console is not None:
        await chat.console.send({"type": "typing", "on": True})
    await asyncio.sleep(pause())
    if typing and chat.console is not None:
        await chat.console.send({"type": "typing", "on": False})
    try:
        a, posted = await agent_to_customer(staff, chat, f"Agent reply {label}")
        out.agent_to_customer.append(a)
        out.agent_post_response.append(posted)
    except HopError as exc:
        out.errors[exc.kind] += 1
    await asyncio.sleep(pause())
    try:
        b = await customer_to_agent(chat, f"Customer answer {label}")
        out.customer_to_agent.append(b)
    except HopError as exc:
        out.errors[exc.kind] += 1
    if a is not None and b is not None:
        out.round_trip.append(a + b)
    await asyncio.sleep(pause())
    try:
        out.baseline.append(await no_op(chat))
    except HopError as exc:
        out.errors[exc.kind] += 1
    out.rounds_done += 1


async def run_conversation(
    staff: Staff,
    chat: Conversation,
    rounds: int,
    rng: random.Random,
    pause_range: tuple[float, float],
    deadline: float,
    out: Samples,
    typing: bool = True,
) -> None:
    """`rounds` measured rounds, none started after `deadline` (each round is bounded by
    3 pauses + 3 * TIMEOUT on top)."""

    def pause() -> float:
        return rng.uniform(*pause_range)

    await asyncio.sleep(rng.uniform(0, pause_range[1]))  # spread the conversations' phases
    for number in range(rounds):
        if time.perf_counter() + 3 * pause_range[1] > deadline:
            out.rounds_skipped += rounds - number
            return
        try:
            await one_round(staff, chat, f"{chat.index}-{number}", pause, out, typing)
        except SocketClosed:
            out.errors["socket_closed"] += 1
            out.rounds_skipped += rounds - number - 1
            return


# --- statistics -------------------------------------------------------------------------------
