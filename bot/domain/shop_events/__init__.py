"""The shop's events: validate, apply once, move lifecycles, schedule surveys.

Payload (documented in docs/events.md):

    {"id": "evt_1", "type": "order.delivered", "occurred_at": "2026-11-26T10:00:00Z",
     "customer": {"external_id": "C1001", "email": "...", "name": "..."},
     "order": {"number": "A10023", "items": [{"sku", "name", "qty", "price"}], "total": "59.90",
               "currency": "EUR", "placed_at", "shipping_address", "carrier", "tracking_number",
               "estimated_delivery"}}
    subscription events carry "subscription": {"id", "plan", "price", "currency",
               "period_start", "period_end"} instead of "order".

One module per job, each importing only the ones before it:

* `signing.py`: the `X-Signature` header (`signature_header`, `check_signature`);
* `payload.py`: the payload parsed and validated (`parse_event` -> `EventData`) and its
  stored form (`event_to_json` / `event_from_json`);
* `rules.py`: what one event does (`apply`: orders, subscriptions, lifecycles, surveys);
* `batch.py`: the same rules for the common events of a batch, set-based (`apply_batch`);
* `queue.py`: accepted now, applied in the background (`accept_on`, `apply_pending`,
  `drain`, `receive`), with the dialect-specific claim.

The names callers use are re-exported here.
"""

from __future__ import annotations

from bot.domain.shop_events.payload import (
    EVENT_TYPES,
    ORDER_EVENTS,
    SUBSCRIPTION_EVENTS,
    CustomerData,
    EventData,
    ItemData,
    OrderData,
    SubscriptionData,
    event_from_json,
    event_to_json,
    parse_event,
    parse_time,
)
from bot.domain.shop_events.queue import (
    MAX_ATTEMPTS,
    QUEUE_BATCH,
    Accepted,
    Applied,
    Receipt,
    accept,
    accept_on,
    apply_pending,
    drain,
    is_conflict,
    receive,
    stored_state,
    subject_ref,
)
from bot.domain.shop_events.rules import Outcome, apply
from bot.domain.shop_events.signing import (
    SignatureProblem,
    check_signature,
    sign,
    signature_header,
    signature_ok,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_ATTEMPTS",
    "ORDER_EVENTS",
    "QUEUE_BATCH",
    "SUBSCRIPTION_EVENTS",
    "Accepted",
    "Applied",
    "CustomerData",
    "EventData",
    "ItemData",
    "OrderData",
    "Outcome",
    "Receipt",
    "SignatureProblem",
    "SubscriptionData",
    "accept",
    "accept_on",
    "apply",
    "apply_pending",
    "check_signature",
    "drain",
    "event_from_json",
    "event_to_json",
    "is_conflict",
    "parse_event",
    "parse_time",
    "receive",
    "sign",
    "signature_header",
    "signature_ok",
    "stored_state",
    "subject_ref",
]
