"""The domain's value sets: stages, channels, statuses, roles and the other enums.

They belong to the domain (what a stage or a role is); bot/storage/models.py imports them
for its columns. This module imports nothing of bot/, so every layer may use it.
"""

from __future__ import annotations

import enum


class Stage(str, enum.Enum):
    discovery = "discovery"
    research = "research"
    purchase = "purchase"
    use = "use"
    support = "support"


class LifecycleKind(str, enum.Enum):
    one_time = "one_time"
    subscription_period = "subscription_period"


class AcquisitionSource(str, enum.Enum):
    search = "search"
    social = "social"
    friend = "friend"
    ad = "ad"
    affiliate = "affiliate"
    marketing_email = "marketing_email"
    other = "other"


class OrderStatus(str, enum.Enum):
    placed = "placed"
    shipped = "shipped"
    delivered = "delivered"
    returned = "returned"
    refunded = "refunded"
    cancelled = "cancelled"


class SubscriptionStatus(str, enum.Enum):
    active = "active"
    paused = "paused"
    cancelled = "cancelled"


class ConversationStatus(str, enum.Enum):
    bot = "bot"
    waiting_for_agent = "waiting_for_agent"
    with_agent = "with_agent"
    closed = "closed"


class Channel(str, enum.Enum):
    website_chat = "website_chat"
    support = "support"
    call_center = "call_center"
    email = "email"
    social = "social"
    storefront = "storefront"
    # Public review sites (Trustpilot, Google Business Profile): issue #23, migration 0019.
    review_site = "review_site"


class MessageSender(str, enum.Enum):
    customer = "customer"
    bot = "bot"
    agent = "agent"
    system = "system"


class FeedbackKind(str, enum.Enum):
    csat = "csat"
    ces = "ces"
    nps = "nps"
    comment = "comment"
    complaint = "complaint"
    praise = "praise"
    discovery_source = "discovery_source"
    churn_reason = "churn_reason"


class FeedbackSource(str, enum.Enum):
    chat_survey = "chat_survey"
    proactive_survey = "proactive_survey"
    free_text = "free_text"
    imported = "imported"


class EscalationReason(str, enum.Enum):
    customer_request = "customer_request"
    negative_feedback = "negative_feedback"
    fallback = "fallback"
    bot_failure = "bot_failure"


class EscalationStatus(str, enum.Enum):
    waiting = "waiting"
    claimed = "claimed"
    resolved = "resolved"


class StaffRole(str, enum.Enum):
    agent = "agent"
    cx_manager = "cx_manager"
    admin = "admin"
    # Reviews the bot's misunderstood turns (issue #24, migration 0020): the review inbox only.
    bot_trainer = "bot_trainer"


class ShopEventStatus(str, enum.Enum):
    pending = "pending"  # accepted (202), waiting for the events worker
    applied = "applied"
    failed = "failed"  # refused by a rule that needs the database; `result` says why


class BotEventKind(str, enum.Enum):
    user_turn = "user_turn"
    fallback = "fallback"
    handoff = "handoff"


class InsightStatus(str, enum.Enum):
    new = "new"
    accepted = "accepted"
    in_progress = "in_progress"
    applied = "applied"
    wont_do = "wont_do"


class InsightTeam(str, enum.Enum):
    product = "product"
    support = "support"
    logistics = "logistics"
    marketing = "marketing"
    web = "web"


class InsightOrigin(str, enum.Enum):
    theme = "theme"
    pitfall = "pitfall"
    feedback = "feedback"


class ReviewStatus(str, enum.Enum):
    confirmed = "confirmed"  # the predicted intent was right
    corrected = "corrected"  # a reviewer picked another intent
    dismissed = "dismissed"  # "not a real request"
