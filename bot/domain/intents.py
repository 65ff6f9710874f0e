"""Intent names and phrases that both the dialogue's readers (bot/domain/understanding.py,
bot/domain/review_inbox.py) and the Rasa components (rasa_ext/compound.py) use. The
components run inside Rasa, whose environment has none of the web service's packages, so
this module imports nothing."""

from __future__ import annotations

# The support requests, in the order the domain lists them.
SUPPORT_REQUESTS = (
    "order_status",
    "delivery_problem",
    "damaged_item",
    "return_item",
    "refund_status",
    "cancel_order",
    "change_address",
    "billing_issue",
    "cancel_subscription",
    "pause_subscription",
    "resume_subscription",
    "request_refund",
)

# Requests that change an order or a subscription: confirmed with a clear yes, and never
# offered on an unsure reading.
STATE_CHANGES = frozenset(
    {
        "cancel_order",
        "change_address",
        "return_item",
        "damaged_item",
        "pause_subscription",
        "resume_subscription",
        "cancel_subscription",
        "request_refund",
    }
)

# "fyi the casserole box arrived soaking wet, the stuff inside is fine tho. just so you
# know": a remark for the shop, nothing to do (tester 4, tw4_45: a return was offered). Such
# a message is one remark: never cut in two, never a request.
JUST_LETTING_KNOW = (
    r"\b(?:fyi|just so (?:you|u) know|just letting (?:you|u) know|just to let (?:you|u) know|"
    r"no need to do anything|nothing (?:you )?need to do|(?:everything|stuff|all) inside "
    r"(?:is|was) (?:fine|ok|okay|intact))\b"
)
