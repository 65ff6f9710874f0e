"""Human labels of every key the dashboard and the console show: the one home (served by
GET /api/labels).

Stages, channels, feedback kinds and sources, acquisition sources, themes, survey triggers,
the reasons a trend bucket is partial, escalation reasons, staff roles, message senders and
the review inbox's reasons. The pages' scripts never print a raw key: they ask
`/static/shared/labels.js`, which reads this table; a key missing here is humanised by the
same rule as `humanise` ("call_center" -> "Call center"), so a new enum value still reads
well.
"""

from __future__ import annotations

from typing import Any

from bot.domain.analysis import THEME_KEYWORDS
from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    EscalationReason,
    FeedbackKind,
    FeedbackSource,
    MessageSender,
    StaffRole,
    Stage,
)
from bot.domain.feedback_query import UNKNOWN_SOURCE, UNSOLICITED
from bot.domain.support import SUPPORT_FLOWS
from bot.domain.turn_review import Reason

STAGES = {
    Stage.discovery.value: "Discovery",
    Stage.research.value: "Research",
    Stage.purchase.value: "Purchase",
    Stage.use.value: "Use",
    Stage.support.value: "Support",
}
CHANNELS = {
    Channel.website_chat.value: "Website chat",
    Channel.support.value: "Support desk",
    Channel.call_center.value: "Call centre",
    Channel.email.value: "Email",
    Channel.social.value: "Social media",
    Channel.storefront.value: "Storefront",
    Channel.review_site.value: "Review sites",
}
KINDS = {
    FeedbackKind.csat.value: "CSAT answer",
    FeedbackKind.ces.value: "Effort (CES) answer",
    FeedbackKind.nps.value: "NPS answer",
    FeedbackKind.comment.value: "Comment",
    FeedbackKind.complaint.value: "Complaint",
    FeedbackKind.praise.value: "Praise",
    FeedbackKind.discovery_source.value: "How they found us",
    FeedbackKind.churn_reason.value: "Reason for cancelling",
}
SOURCES = {
    FeedbackSource.chat_survey.value: "Survey in the chat",
    FeedbackSource.proactive_survey.value: "Proactive survey",
    FeedbackSource.free_text.value: "Unprompted message",
    FeedbackSource.imported.value: "Imported",
}
ACQUISITION = {
    AcquisitionSource.search.value: "Search engine",
    AcquisitionSource.social.value: "Social media",
    AcquisitionSource.friend.value: "A friend",
    AcquisitionSource.ad.value: "Advert",
    AcquisitionSource.affiliate.value: "Affiliate site",
    AcquisitionSource.marketing_email.value: "Marketing email",
    AcquisitionSource.other.value: "Other",
    UNKNOWN_SOURCE: "Not known",
}
THEMES = {
    "delivery": "Delivery",
    "product_quality": "Product quality",
    "price": "Price",
    "support": "Customer support",
    "website": "Website",
    "billing": "Billing",
    "returns": "Returns",
    "subscription": "Subscription",
}
# Survey triggers; "in_chat:<flow>" reads IN_CHAT with the flow's label.
TRIGGERS = {
    UNSOLICITED: "No survey (unprompted)",
    "first_order": "After the first order",
    "order_delivered": "After delivery",
    "support_resolved": "After a support case",
    "subscription_renewed": "After a subscription renewal",
    "subscription_cancelled": "After a subscription cancellation",
    "relationship_nps": "Relationship NPS (by email)",
}
IN_CHAT_PREFIX = "in_chat:"
IN_CHAT = "In the chat, after {flow}"
FLOWS = {
    "order_status": "an order status question",
    "delivery_problem": "a delivery problem",
    "damaged_item": "a damaged item",
    "return_item": "a return",
    "refund_status": "a refund status question",
    "cancel_order": "cancelling an order",
    "change_address": "changing an address",
    "billing_issue": "a billing question",
    "request_refund": "a refund request",
    "pause_subscription": "pausing a subscription",
    "resume_subscription": "resuming a subscription",
    "cancel_subscription": "cancelling a subscription",
    "offer_human": "an offer to talk to a person",
}
REASONS = {
    EscalationReason.customer_request.value: "Customer asked for a person",
    EscalationReason.negative_feedback.value: "Unhappy feedback (follow-up)",
    EscalationReason.fallback.value: "Bot did not understand",
    EscalationReason.bot_failure.value: "Bot failure",
}
# Escalation priorities as stored (bot/domain/escalations.PRIORITY; +1 when overdue).
PRIORITIES = {"1": "Low", "2": "Normal", "3": "High", "4": "Urgent"}
SENTIMENTS = {"positive": "Positive", "neutral": "Neutral", "negative": "Negative"}
# Staff roles, as the console says them inside a sentence ("Signed in as Ana (agent)").
ROLES = {
    StaffRole.agent.value: "agent",
    StaffRole.cx_manager.value: "CX manager",
    StaffRole.admin.value: "admin",
    StaffRole.bot_trainer.value: "bot trainer",
}
SENDERS = {
    MessageSender.customer.value: "Customer",
    MessageSender.bot.value: "Bot",
    MessageSender.agent.value: "Agent",
    MessageSender.system.value: "System",
}
# Why the review inbox flagged a customer message (bot/domain/turn_review.py).
REVIEW_REASONS = {
    Reason.low_confidence.value: "Low confidence",
    Reason.fallback.value: "Fallback",
    Reason.did_you_mean.value: "Did you mean",
    Reason.rephrase.value: "Customer rephrased",
    Reason.human_after_misunderstanding.value: "Asked for a person after a misunderstanding",
    Reason.negative_sentiment.value: "Negative right after a reply",
}
PARTIAL = {
    "not_over": "not over yet",
    "starts_before_range": "starts before the chosen dates",
    "ends_after_range": "ends after the chosen dates",
}

GROUPS: dict[str, dict[str, str]] = {
    "stage": STAGES,
    "channel": CHANNELS,
    "kind": KINDS,
    "source": SOURCES,
    "acquisition": ACQUISITION,
    "theme": THEMES,
    "trigger": TRIGGERS,
    "flow": FLOWS,
    "sentiment": SENTIMENTS,
    "partial": PARTIAL,
    "reason": REASONS,
    "priority": PRIORITIES,
    "role": ROLES,
    "sender": SENDERS,
    "review_reason": REVIEW_REASONS,
}


def humanise(key: str) -> str:
    """The fallback of a key without a label: underscores to spaces, first letter upper."""
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def label(group: str, key: str) -> str:
    """The human label of `key` in `group` (a key of GROUPS)."""
    if group == "trigger" and key.startswith(IN_CHAT_PREFIX):
        flow = key[len(IN_CHAT_PREFIX) :]
        return IN_CHAT.format(flow=FLOWS.get(flow, humanise(flow).lower()))
    return GROUPS.get(group, {}).get(key) or humanise(key)


# The values the dashboard's filters offer, in the enums' order: its scripts hold no copy.
VALUES: dict[str, list[str]] = {
    "stage": [s.value for s in Stage],
    "channel": [c.value for c in Channel],
    "kind": [k.value for k in FeedbackKind],
    "theme": list(THEME_KEYWORDS),
}


def as_json() -> dict[str, Any]:
    return {
        "groups": GROUPS,
        "values": VALUES,
        "in_chat_prefix": IN_CHAT_PREFIX,
        "in_chat": IN_CHAT,
    }


def check_complete() -> list[str]:
    """Keys of the enums and themes with no label (a test keeps this empty)."""
    expected = {
        "stage": [s.value for s in Stage],
        "channel": [c.value for c in Channel],
        "kind": [k.value for k in FeedbackKind],
        "source": [s.value for s in FeedbackSource],
        "acquisition": [s.value for s in AcquisitionSource] + [UNKNOWN_SOURCE],
        "theme": list(THEME_KEYWORDS),
        "flow": sorted(SUPPORT_FLOWS),
        "reason": [r.value for r in EscalationReason],
        "role": [r.value for r in StaffRole],
        "sender": [s.value for s in MessageSender],
        "review_reason": [r.value for r in Reason],
    }
    return [f"{g}:{k}" for g, keys in expected.items() for k in keys if k not in GROUPS[g]]
