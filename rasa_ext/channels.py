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
* **What the NLU understood** (issue #24): after the turn, the reply list ends with one
  item without text, `{"recipient_id": ..., "custom": {"nlu": {...}}}`: the intent,
  confidence, runner-up and entities of the customer's message as the tracker recorded
  them (the reading the policies acted on), the responses and actions the bot ran for
  it, and the loaded model's id (`model_id`, new with every training). Read from the tracker store after the turn (no second parse); the web service stores
  it with the message (bot/domain/turn_review.py). Clients that only read `text` skip it.
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
NLU_KEY = "nlu"
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


class StrictRestInput(RestInput):
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
                plan = await _plan(agent, text, sender_id)
            collector = CollectingOutputChannel()
            try:
                metadata = self.get_metadata(request) or {}
                for index, part in enumerate(plan.texts):
                    more = index < len(plan.texts) - 1
                    await on_new_message(
                        UserMessage(
                            part,
                            collector,
                            sender_id,
                            input_channel=self._extract_input_channel(request),
                            # the bot does not ask "how satisfied…?" between two requests
                            metadata={**metadata, compound.MORE_FOLLOWS: True}
                            if more
                            else metadata or None,
                        )
                    )
                if plan.deferred is not None:
                    _say_deferred(agent, collector, sender_id, plan.deferred)
                understood = await _understood(agent, sender_id, len(plan.texts))
                if understood is not None:
                    collector.messages.append(
                        {"recipient_id": sender_id, "custom": {NLU_KEY: understood}}
                    )
            except CancelledError:
                logger.error("turn cancelled for %s", sender_id)
                return response.json({"error": "turn_cancelled"}, status=503)
            except Exception as error:
                logger.exception("turn failed for %s", sender_id)
                return response.json(
                    {"error": "turn_failed", "reason": type(error).__name__}, status=503
                )
            return response.json(compound.without_repeats(collector.messages))

        return webhook


async def _plan(agent: Any, text: str, sender_id: str) -> compound.Plan:
    """What the bot gets for `text` (rasa_ext.compound): each cut's parts parsed by the
    loaded model; the first cut that makes a plan wins, else `text` as typed (also while
    the bot waits for a free-text answer: compound.keeps_whole)."""
    if agent is None or not agent.is_ready():
        return compound.Plan((text,))
    splits = compound.candidate_splits(text)
    if splits and compound.keeps_whole(await _requested_slot(agent, sender_id)):
        return compound.Plan((text,))
    for first, second in splits:
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


def understood(events: list[Any], parts: int = 1) -> dict[str, Any] | None:
    """The NLU result of the turn that ends `events` (a tracker's events): the first of its
    last `parts` user messages (a compound message sent as two turns is stored as one), and
    the responses (utter_*) and actions the bot ran after it; None without a user message."""
    users = [i for i, event in enumerate(events) if type(event).__name__ == "UserUttered"]
    if not users:
        return None
    start = users[-max(1, parts)] if len(users) >= parts else users[0]
    parse = getattr(events[start], "parse_data", None) or {}
    intent = parse.get("intent") or {}
    ranking = [r for r in parse.get("intent_ranking") or [] if r.get("name") != intent.get("name")]
    runner_up = ranking[0] if ranking else {}
    steps: list[str] = []
    for event in events[start + 1 :]:
        kind = type(event).__name__
        if kind == "ActionExecuted" and event.action_name not in (None, "action_listen"):
            steps.append(str(event.action_name))
        elif kind == "BotUttered":
            utter = (event.metadata or {}).get("utter_action")
            if isinstance(utter, str) and (not steps or steps[-1] != utter):
                steps.append(utter)
    return {
        "intent": intent.get("name"),
        "confidence": intent.get("confidence"),
        "runner_up": runner_up.get("name"),
        "runner_up_confidence": runner_up.get("confidence"),
        "entities": [
            {key: e.get(key) for key in ("entity", "value", "start", "end") if key in e}
            for e in parse.get("entities") or []
            if isinstance(e, dict)
        ],
        "steps": steps,
    }


async def _requested_slot(agent: Any, sender_id: str) -> str | None:
    """The slot an active form is asking for in this conversation (None: no form, or the
    tracker cannot be read; the message is then planned as usual)."""
    store = getattr(agent, "tracker_store", None)
    if store is None:
        return None
    try:
        tracker = await store.retrieve(sender_id)
    except Exception:
        logger.warning("could not read the tracker of %s before its turn", sender_id)
        return None
    if tracker is None or not tracker.active_loop_name:
        return None
    slot = tracker.get_slot("requested_slot")
    return str(slot) if slot else None


async def _understood(agent: Any, sender_id: str, parts: int) -> dict[str, Any] | None:
    """`understood` for the conversation's tracker; None when it cannot be read (the
    reply itself is never lost over this)."""
    store = getattr(agent, "tracker_store", None)
    if store is None:
        return None
    # The tracker this worker has just saved, when its store keeps it (no database read).
    kept = getattr(getattr(store, "_tracker_store", store), "kept_tracker", None)
    try:
        tracker = kept(sender_id) if callable(kept) else None
        if tracker is None:
            tracker = await store.retrieve(sender_id)
    except Exception:  # the turn is done; only the review data is missing
        logger.warning("could not read the tracker of %s for its NLU result", sender_id)
        return None
    if tracker is None:
        return None
    result = understood(list(tracker.events), parts)
    if result is not None:
        # The trained model that read it (a new id is a retraining: the before/after view).
        model_id = getattr(agent, "model_id", None)
        result["model_id"] = model_id if isinstance(model_id, str) else None
    return result
