"""Email reply when the customer has left the chat (issue #20; docs/email.md).

After an agent's line is stored and shown (bot/web/console.py `api_reply`),
`EmailReplies.agent_replied` checks whether the customer has the chat open on this
replica. If not, and email is on, one email is scheduled for the conversation: it waits
EMAIL_REPLY_GATHER_SECONDS for the lines that follow, and at least EMAIL_REPLY_MINUTES
after the conversation's previous email, then sends every agent line from the first one
on with a resume link (bot/domain/email_reply.py). A customer back in the chat by then
gets no email (they see the lines live). A failed send is logged and counted, not retried.

The state (pending email, time of the last one) is this process's: with several web
replicas each keeps its own, and a customer connected to another replica counts as away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from bot.domain import email_reply
from bot.domain.enums import MessageSender
from bot.mail import Mailer, MailError
from bot.storage.models import Message, utcnow
from bot.web.keys import HUB, SESSIONS, SETTINGS
from bot.web.ops import METRICS

logger = logging.getLogger(__name__)

AppState = web.Application | ChainMapProxy


class EmailReplies:
    """The pending email per conversation and when each conversation's last one went."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._last_sent: dict[str, float] = {}
        self.sent = 0
        self.failed = 0

    def pending(self, conversation_id: str) -> bool:
        return conversation_id in self._pending

    def agent_replied(self, app: AppState, message: Message) -> None:
        """Schedule the email for an agent's line, when the customer is away."""
        settings = app[SETTINGS]
        conversation_id = message.conversation_id
        if message.sender is not MessageSender.agent or settings.smtp_host is None:
            return
        if app[HUB].connected(conversation_id) > 0 or conversation_id in self._pending:
            return  # in the chat, or an email is already waiting for more lines
        wait = settings.email_reply_gather_seconds
        last = self._last_sent.get(conversation_id)
        if last is not None:
            wait = max(wait, last + settings.email_reply_minutes * 60 - time.monotonic())
        task = asyncio.create_task(
            self._guarded(app, conversation_id, message.id, wait),
            name=f"email-reply-{conversation_id}",
        )
        self._pending[conversation_id] = task
        task.add_done_callback(lambda _t: self._pending.pop(conversation_id, None))

    async def _guarded(
        self, app: AppState, conversation_id: str, first_id: int, wait: float
    ) -> None:
        try:
            await self._send_later(app, conversation_id, first_id, wait)
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. the database is down: the lines are in the chat anyway
            self.failed += 1
            logger.exception("email reply for %s failed", conversation_id)

    async def _send_later(
        self, app: AppState, conversation_id: str, first_id: int, wait: float
    ) -> None:
        await asyncio.sleep(max(wait, 0.0))
        if app[HUB].connected(conversation_id) > 0:
            return  # came back meanwhile: the lines are in front of them
        settings = app[SETTINGS]
        async with app[SESSIONS]() as session:
            contact = await email_reply.contact_for(session, conversation_id)
            lines = await email_reply.agent_lines_from(session, conversation_id, first_id)
        if contact is None or not lines:
            return
        token = email_reply.resume_link_token(settings.widget_secret, conversation_id, utcnow())
        mail = email_reply.compose(lines, email_reply.resume_link(settings.public_url, token))
        try:
            await Mailer(settings).send(to=contact.email, subject=mail.subject, text=mail.text)
        except MailError as exc:
            self.failed += 1
            metrics = app.get(METRICS)
            if metrics is not None:
                metrics.error("email_reply_failed")
            logger.warning("email reply for %s not sent: %s", conversation_id, exc)
            return
        self.sent += 1
        self._last_sent[conversation_id] = time.monotonic()
        logger.info("email reply sent for %s (%d line(s))", conversation_id, len(lines))

    async def close(self) -> None:
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


EMAIL_REPLIES = web.AppKey("email_replies", EmailReplies)


async def email_replies_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: pending emails are dropped on shutdown (the lines stay in the chat)."""
    app[EMAIL_REPLIES] = replies = EmailReplies()
    yield
    await replies.close()


def agent_replied(app: AppState, message: Message) -> None:
    replies = app.get(EMAIL_REPLIES)
    if replies is not None:
        replies.agent_replied(app, message)
