"""Rasa's REST channel, except that a failed turn is an HTTP 503, not a 200 with no reply.

Rasa's own `RestInput` logs any exception while handling a message and still answers
200 with whatever was collected, so the caller cannot tell a failed turn (tracker store,
lock store or broker down) from a silent bot. Same URL: /webhooks/rest/webhook.
"""

from __future__ import annotations

import logging
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)


class StrictRestInput(RestInput):  # type: ignore[misc]
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("strict_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            sender_id = await self._extract_sender(request)
            collector = CollectingOutputChannel()
            message = UserMessage(
                self._extract_message(request),
                collector,
                sender_id,
                input_channel=self._extract_input_channel(request),
                metadata=self.get_metadata(request),
            )
            try:
                await on_new_message(message)
            except CancelledError:
                logger.error("turn cancelled for %s", sender_id)
                return response.json({"error": "turn_cancelled"}, status=503)
            except Exception as error:
                logger.exception("turn failed for %s", sender_id)
                return response.json(
                    {"error": "turn_failed", "reason": type(error).__name__}, status=503
                )
            return response.json(collector.messages)

        return webhook
