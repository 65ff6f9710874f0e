"""The outgoing webhook's background task (only when OUTGOING_WEBHOOK_URL is set).

Every `poll_seconds` it queues new detractor escalations into the outbox and POSTs the
due rows to the shop, signed like the incoming events (`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">` with OUTGOING_WEBHOOK_SECRET, else EVENTS_SECRET; every try is signed
anew, so the shop can refuse old timestamps). A 2xx answer delivers
a row; anything else retries with exponential backoff (bot/domain/outbox.py). It runs
beside the request handlers, so the chat and the API never wait for the shop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import outbox
from bot.domain.shop_events import signature_header
from bot.storage.models import utcnow
from bot.web.background import stop
from bot.web.keys import SESSIONS, SETTINGS

logger = logging.getLogger(__name__)
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)
OUTGOING_TASK = web.AppKey("outgoing_webhook_task", asyncio.Task)


class OutgoingWebhook:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        http: aiohttp.ClientSession,
        url: str,
        secret: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.http = http
        self.url = url
        self.secret = secret
        self.clock = clock

    async def run_once(self) -> int:
        """Queue new detractors, send what is due; returns how many were delivered."""
        async with self.sessions() as session, session.begin():
            await outbox.enqueue_new_detractors(session, self.clock())
        async with self.sessions() as session, session.begin():
            claimed = await outbox.claim(session, self.clock())
        delivered = 0
        for row in claimed:  # no transaction is open while we wait for the shop
            error = await self._post(row)
            async with self.sessions() as session, session.begin():
                await outbox.finish(session, row.id, error, self.clock())
            if error is None:
                delivered += 1
            else:
                logger.warning("outgoing webhook row %s failed: %s", row.id, error)
        return delivered

    async def _post(self, row: outbox.Claimed) -> str | None:
        body = json.dumps(row.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Signature": signature_header(self.secret, body, int(self.clock().timestamp())),
            "X-Event-Type": row.event_type,
        }
        try:
            async with self.http.post(
                self.url, data=body, headers=headers, timeout=REQUEST_TIMEOUT
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def run_forever(self, poll_seconds: float) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not end the task
                logger.exception("outgoing webhook round failed")
            await asyncio.sleep(poll_seconds)


async def outgoing_webhook_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: start the sender when configured; stop it on shutdown."""
    settings = app[SETTINGS]
    if not settings.outgoing_webhook_url:
        yield
        return
    async with aiohttp.ClientSession() as http:
        sender = OutgoingWebhook(
            app[SESSIONS],
            http,
            settings.outgoing_webhook_url,
            settings.outgoing_webhook_secret or settings.events_secret,
        )
        app[OUTGOING_TASK] = asyncio.create_task(
            sender.run_forever(settings.outgoing_webhook_poll_seconds)
        )
        yield
        await stop(app[OUTGOING_TASK])
