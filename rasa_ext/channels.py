"""Rasa's REST channel for the web service: a shared secret, no typed intents, and a failed
turn is an HTTP 503, not a 200 with no reply. Same URL: /webhooks/rest/webhook.

* **Shared secret** (issue #16): every call must carry `X-Channel-Secret` equal to the
  `secret` in credentials*.yml (`${RASA_CHANNEL_SECRET}`); otherwise 401 and nothing reaches
  the bot. Rasa refuses to start the channel without a secret.
* **No typed intents** (issue #16): Rasa reads a message starting with `/` as
  `/intent{entities}` (RegexMessageHandler), so a customer typing
  `/EXTERNAL_support_resolved` would run that intent. Only a message the web service marks
  `"button_payload": true` (the payload of a button the bot offered in that conversation)
  keeps that syntax; any other text loses its leading slashes, so NLU classifies the words
  (Rasa's WhitespaceTokenizer drops a leading `/` from the first token anyway). The web
  service's transcript keeps what the customer typed.
* **Two requests in one message** (issue #17): `rasa_ext.compound` decides from the NLU's
  reading of each part whether the message is sent as typed, reduced to its request, or as
  two turns; a second request it cannot serve now gets `utter_compound_next`.
* **Strict**: Rasa's own `RestInput` logs any exception while handling a message and still
  answers 200 with whatever was collected, so the caller cannot tell a failed turn (tracker
  store, lock store, broker or action server down) from a silent bot.
"""

from __future__ import annotations

import hmac
import logging
import re
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.nlg.interpolator import interpolate_text
from rasa.shared.constants import INTENT_MESSAGE_PREFIX
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from rasa_ext import compound

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Channel-Secret"
DEFERRED_RESPONSE = "utter_compound_next"
# Leading slashes and the whitespace between them: what makes Rasa unpack an intent.
_INTENT_SYNTAX = re.compile(rf"^[\s{re.escape(INTENT_MESSAGE_PREFIX)}]+")


def literal_text(text: str) -> str:
    """`text` as NLU should classify it: never in Rasa's `/intent{entities}` form."""
    stripped = text.strip()
    if not stripped.startswith(INTENT_MESSAGE_PREFIX):
        return text
    # Only slashes (no intent name can follow): Rasa finds no intent in them anyway.
    return _INTENT_SYNTAX.sub("", stripped) or stripped


class StrictRestInput(RestInput):  # type: ignore[misc]
    def __init__(self, secret: str) -> None:
        if not secret:
            raise RasaException(
                f"{type(self).__name__} needs `secret` in the credentials file "
                "(RASA_CHANNEL_SECRET): the web service sends it with every message"
            )
        self._secret = secret.encode()

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> StrictRestInput:
        return cls(str((credentials or {}).get("secret") or ""))

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "").encode()
        return hmac.compare_digest(given, self._secret)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("strict_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self._authorised(request):
                return response.json({"error": "unauthorized"}, status=401)
            if not isinstance(request.json, dict):
                return response.json({"error": "bad_request"}, status=400)
            sender_id = await self._extract_sender(request)
            text = self._extract_message(request)
            agent = getattr(request.app.ctx, "agent", None)
            plan = compound.Plan((text,))
            if isinstance(text, str) and request.json.get("button_payload") is not True:
                text = literal_text(text)
                plan = await _plan(agent, text)
            collector = CollectingOutputChannel()
            try:
                for part in plan.texts:
                    await on_new_message(
                        UserMessage(
                            part,
                            collector,
                            sender_id,
                            input_channel=self._extract_input_channel(request),
                            metadata=self.get_metadata(request),
                        )
                    )
                if plan.deferred is not None:
                    _say_deferred(agent, collector, sender_id, plan.deferred)
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


async def _plan(agent: Any, text: str) -> compound.Plan:
    """What the bot gets for `text` (rasa_ext.compound): each cut's parts parsed by the
    loaded model; the first cut that makes a plan wins, else `text` as typed."""
    if agent is None or not agent.is_ready():
        return compound.Plan((text,))
    for first, second in compound.candidate_splits(text):
        one, two = [await agent.parse_message(part) for part in (first, second)]
        chosen = compound.plan(first, second, _reading(one), _reading(two))
        if chosen is not None:
            return chosen
    return compound.Plan((text,))


def _reading(parsed: dict[str, Any]) -> compound.Reading:
    intent = parsed.get("intent") or {}
    return compound.Reading(intent.get("name"), float(intent.get("confidence") or 0.0))


def _say_deferred(
    agent: Any, collector: CollectingOutputChannel, sender_id: str, request: str
) -> None:
    """The bot will come to `request` next (a domain response, not a string here)."""
    variations = agent.domain.responses.get(DEFERRED_RESPONSE) or []
    if variations:
        text = interpolate_text(variations[0]["text"], {"request": request})
        collector.messages.append({"recipient_id": sender_id, "text": text})
