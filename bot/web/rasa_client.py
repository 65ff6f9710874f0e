"""Client of Rasa's REST channel on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp


class RasaUnavailable(Exception):
    """Rasa (or the action server behind it) did not answer properly."""


@dataclass(frozen=True)
class BotReply:
    text: str
    buttons: list[dict[str, str]]


class RasaClient:
    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, token: str, timeout: float
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, sender_id: str, text: str) -> list[BotReply]:
        url = f"{self._base_url}/webhooks/rest/webhook"
        try:
            async with self._http.post(
                url, json={"sender": sender_id, "message": text}, timeout=self._timeout
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
                payload: Any = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc
        if not isinstance(payload, list):
            raise RasaUnavailable("unexpected reply from Rasa")
        return [_reply(item) for item in payload if isinstance(item, dict) and item.get("text")]

    async def set_slots(self, sender_id: str, slots: dict[str, Any]) -> None:
        """Append SlotSet events to a conversation's tracker (Rasa HTTP API, token auth)."""
        events = [{"event": "slot", "name": name, "value": value} for name, value in slots.items()]
        await self.append_events(sender_id, events)

    async def append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        url = f"{self._base_url}/conversations/{sender_id}/tracker/events"
        try:
            async with self._http.post(
                url,
                params={"token": self._token, "include_events": "NONE"},
                json=events,
                timeout=self._timeout,
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc

    async def trigger_intent(self, sender_id: str, intent: str) -> list[BotReply]:
        """Run the bot on an external event (no customer message); returns its replies."""
        url = f"{self._base_url}/conversations/{sender_id}/trigger_intent"
        try:
            async with self._http.post(
                url,
                params={"token": self._token, "include_events": "NONE"},
                json={"name": intent, "entities": {}},
                timeout=self._timeout,
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}")
                payload: Any = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc
        messages = payload.get("messages") if isinstance(payload, dict) else None
        return [
            _reply(item) for item in messages or [] if isinstance(item, dict) and item.get("text")
        ]

    async def is_ready(self) -> bool:
        try:
            async with self._http.get(
                f"{self._base_url}/status",
                params={"token": self._token},
                timeout=aiohttp.ClientTimeout(total=2),
            ) as response:
                if response.status != 200:
                    return False
                body: Any = await response.json()
                return bool(body.get("model_file"))
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False


def _reply(item: dict[str, Any]) -> BotReply:
    buttons = [
        {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
        for b in item.get("buttons") or []
        if isinstance(b, dict)
    ]
    return BotReply(text=str(item["text"]), buttons=buttons)
