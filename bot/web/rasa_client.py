"""Client of Rasa's REST channel on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.domain import order_cards

# A worker that refused a connection is tried last for this long.
WORKER_DOWN_SECONDS = 2.0
# Rasa's REST channel (rasa_ext.channels.StrictRestInput) refuses calls without this header.
CHANNEL_SECRET_HEADER = "X-Channel-Secret"


class RasaUnavailable(Exception):
    """Rasa (or the action server behind it) did not answer properly."""

    def __init__(self, message: str, kind: str = "rasa_error") -> None:
        super().__init__(message)
        self.kind = kind  # for metrics and logs: rasa_down, rasa_timeout, rasa_http_503, ...


@dataclass(frozen=True)
class BotReply:
    text: str
    buttons: list[dict[str, str]]
    # Order cards (bot/domain/order_cards.py): `text` is their plain-text fallback.
    cards: list[dict[str, Any]] | None = None


class BotReplies(list[BotReply]):
    """A customer turn's replies, and what the NLU made of the message (issue #24: the
    `custom.nlu` item rasa_ext.channels appends; None from a channel that sends none)."""

    def __init__(self, replies: list[BotReply], nlu: dict[str, Any] | None = None) -> None:
        super().__init__(replies)
        self.nlu = nlu


class RasaClient:
    """`base_url` may list several Rasa workers, comma-separated (production profile: they
    share the SQL tracker store and the Redis lock store, so any worker can take any turn).
    A conversation goes to one worker by a hash of its id; when that worker refuses the
    connection (down, restarting) the turn goes to the next one. A turn that failed after
    it reached a worker is not repeated: the worker may have acted on it.

    Admission control: at most `max_in_flight` customer turns run on a worker at once; the
    others wait here, in order, and take whichever worker frees up first. Rasa runs all the
    requests it accepts concurrently on one core, so without this an overload makes every
    turn slow (each waits for all the others) and past the timeout none succeeds; with it,
    the workers keep completing turns at full speed and only the queue waits. A turn that
    waited out its whole timeout here never reached Rasa."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        token: str,
        timeout: float,
        max_in_flight: int = 4,
        channel_secret: str = "",
    ) -> None:
        self._http = http
        self._channel_headers = {CHANNEL_SECRET_HEADER: channel_secret}
        self.urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        self._down_until = dict.fromkeys(self.urls, 0.0)
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._total_seconds = timeout
        self._max_in_flight = max(1, max_in_flight)
        self._in_flight = dict.fromkeys(self.urls, 0)
        self._freed = asyncio.Condition()
        # Called with (outcome, seconds) after every customer turn (metrics).
        self.observer: Callable[[str, float], None] | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        return self._http

    def _worker_for(self, sender_id: str) -> str:
        """For tracker API calls: the conversation's own worker (as `send` picks it) unless
        it is known to be down, so the worker that keeps the conversation's tracker
        (rasa_ext/tracker_store.py) is the one that reads and writes it."""
        return self._candidates(_home(sender_id, len(self.urls)))[0]

    def _candidates(self, start: int) -> list[str]:
        rotated = self.urls[start:] + self.urls[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda u: self._down_until[u] > now)

    def _observe(self, outcome: str, started: float) -> None:
        if self.observer is not None:
            self.observer(outcome, time.monotonic() - started)

    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    def _free_worker(self, start: int, refused: set[str]) -> str | None:
        for url in self._candidates(start):
            if url not in refused and self._in_flight[url] < self._max_in_flight:
                return url
        return None

    async def _wait_for_a_slot(self, deadline: float) -> None:
        async with self._freed:
            await asyncio.wait_for(self._freed.wait(), max(0.0, deadline - time.monotonic()))

    async def send(self, sender_id: str, text: str, button_payload: bool = False) -> list[BotReply]:
        """A customer turn. `button_payload`: `text` is the payload of a button the bot
        offered in this conversation, so Rasa may read `/intent{...}` in it; otherwise the
        channel passes any text starting with `/` to NLU as text."""
        started = time.monotonic()
        deadline = started + self._total_seconds
        start = _home(sender_id, len(self.urls))
        refused: set[str] = set()
        while True:
            base_url = self._free_worker(start, refused)
            if base_url is None:
                if len(refused) == len(self.urls):
                    self._observe("rasa_down", started)
                    raise RasaUnavailable("no Rasa worker accepts connections", kind="rasa_down")
                try:
                    await self._wait_for_a_slot(deadline)
                except asyncio.TimeoutError:
                    self._observe("rasa_busy", started)
                    raise RasaUnavailable("every Rasa worker is busy", kind="rasa_busy") from None
                continue
            self._in_flight[base_url] += 1
            try:
                replies = await self._send(base_url, sender_id, text, button_payload, deadline)
            except aiohttp.ClientConnectorError:
                # Never reached the worker: safe to give the turn to another one.
                self._down_until[base_url] = time.monotonic() + WORKER_DOWN_SECONDS
                refused.add(base_url)
                continue
            except RasaUnavailable as exc:
                self._observe(exc.kind, started)
                raise
            finally:
                self._in_flight[base_url] -= 1
                async with self._freed:
                    self._freed.notify()
            self._observe("ok", started)
            return replies

    async def _send(
        self, base_url: str, sender_id: str, text: str, button_payload: bool, deadline: float
    ) -> list[BotReply]:
        url = f"{base_url}/webhooks/rest/webhook"
        timeout = aiohttp.ClientTimeout(total=max(0.1, deadline - time.monotonic()))
        body: dict[str, Any] = {"sender": sender_id, "message": text}
        if button_payload:
            body["button_payload"] = True
        try:
            async with self._http.post(
                url, json=body, headers=self._channel_headers, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(
                        f"Rasa answered HTTP {response.status}", kind=f"rasa_http_{response.status}"
                    )
                payload: Any = await response.json()
        except aiohttp.ClientConnectorError:
            raise
        except asyncio.TimeoutError as exc:
            raise RasaUnavailable("Rasa timed out", kind="rasa_timeout") from exc
        except aiohttp.ClientError as exc:
            raise RasaUnavailable(str(exc) or type(exc).__name__, kind="rasa_connection") from exc
        if not isinstance(payload, list):
            raise RasaUnavailable("unexpected reply from Rasa", kind="rasa_bad_reply")
        return BotReplies(_replies(payload), _nlu(payload))

    async def set_slots(self, sender_id: str, slots: dict[str, Any]) -> None:
        """Append SlotSet events to a conversation's tracker (Rasa HTTP API, token auth)."""
        events = [{"event": "slot", "name": name, "value": value} for name, value in slots.items()]
        await self.append_events(sender_id, events)

    async def append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        await self._send_events("POST", sender_id, events)

    async def replace_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        """Replace a tracker's events (PUT; an empty list wipes the conversation in Rasa's
        tracker store: used by the customer erasure)."""
        await self._send_events("PUT", sender_id, events)

    async def _send_events(self, method: str, sender_id: str, events: list[dict[str, Any]]) -> None:
        url = f"{self._worker_for(sender_id)}/conversations/{sender_id}/tracker/events"
        try:
            async with self._http.request(
                method,
                url,
                params={"token": self._token, "include_events": "NONE"},
                json=events,
                timeout=self._timeout,
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc

    async def tracker_state(self, sender_id: str) -> dict[str, Any]:
        """The conversation's current state (slots, active_loop, paused), without events."""
        url = f"{self._worker_for(sender_id)}/conversations/{sender_id}/tracker"
        try:
            async with self._http.get(
                url,
                params={"token": self._token, "include_events": "NONE"},
                timeout=self._timeout,
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
                payload: Any = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc
        if not isinstance(payload, dict):
            raise RasaUnavailable("unexpected reply from Rasa")
        return payload

    async def trigger_intent(
        self, sender_id: str, intent: str, entities: dict[str, str] | None = None
    ) -> list[BotReply]:
        """Run the bot on an external event (no customer message); returns its replies.
        `entities` fill the slots mapped from them (e.g. `language`)."""
        url = f"{self._worker_for(sender_id)}/conversations/{sender_id}/trigger_intent"
        try:
            async with self._http.post(
                url,
                params={"token": self._token, "include_events": "NONE"},
                json={"name": intent, "entities": entities or {}},
                timeout=self._timeout,
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
                payload: Any = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc
        messages = payload.get("messages") if isinstance(payload, dict) else None
        return _replies(messages if isinstance(messages, list) else [])

    async def is_ready(self) -> bool:
        """At least one worker has its model loaded."""
        ready = await asyncio.gather(*(self.worker_ready(url) for url in self.urls))
        return any(ready)

    async def worker_ready(self, base_url: str) -> bool:
        try:
            async with self._http.get(
                f"{base_url}/status",
                params={"token": self._token},
                timeout=aiohttp.ClientTimeout(total=2),
            ) as response:
                if response.status != 200:
                    return False
                body: Any = await response.json()
                return bool(body.get("model_file"))
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def tracker_store_ok(self, base_url: str, probe_sender: str) -> bool:
        """Rasa can read its tracker store (with the production profile's strict store, a
        database outage is an HTTP 500 here instead of a silent in-memory fallback)."""
        try:
            async with self._http.get(
                f"{base_url}/conversations/{probe_sender}/tracker",
                params={"token": self._token, "include_events": "NONE"},
                timeout=aiohttp.ClientTimeout(total=3),
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False


def _home(sender_id: str, workers: int) -> int:
    """The worker a conversation goes to while it is up (crc32 of the sender id)."""
    return zlib.crc32(sender_id.encode()) % workers


def _replies(payload: list[Any]) -> list[BotReply]:
    """The text replies of a reply list. Rasa sends an utterance's `custom` payload as the
    item after its text: one carrying order cards goes with the reply before it."""
    replies: list[BotReply] = []
    for item in payload:
        if not isinstance(item, dict):
            continue
        if item.get("text"):
            replies.append(_reply(item))
            continue
        cards = order_cards.cards_of(item.get("custom"))
        if cards and replies and replies[-1].cards is None:
            replies[-1] = dataclasses.replace(replies[-1], cards=cards)
    return replies


def _reply(item: dict[str, Any]) -> BotReply:
    buttons = [
        {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
        for b in item.get("buttons") or []
        if isinstance(b, dict)
    ]
    return BotReply(text=str(item["text"]), buttons=buttons)


def _nlu(payload: list[Any]) -> dict[str, Any] | None:
    """The `custom.nlu` item of a reply list (rasa_ext.channels), if any."""
    for item in payload:
        custom = item.get("custom") if isinstance(item, dict) else None
        nlu = custom.get("nlu") if isinstance(custom, dict) else None
        if isinstance(nlu, dict):
            return nlu
    return None
