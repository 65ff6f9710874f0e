"""SQLAlchemy 2 models for every entity of SPEC §3."""

from __future__ import annotations

import enum
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Computed,
    Date,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.functions import FunctionElement

from bot.domain.enums import (
    AcquisitionSource,
    BotEventKind,
    Channel,
    ConversationStatus,
    EscalationReason,
    EscalationStatus,
    FeedbackKind,
    FeedbackSource,
    InsightOrigin,
    InsightStatus,
    InsightTeam,
    LifecycleKind,
    MessageSender,
    OrderStatus,
    ReviewStatus,
    ShopEventStatus,
    StaffRole,
    Stage,
    SubscriptionStatus,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as VARCHAR + CHECK so migrations behave the same on SQLite and PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    is_anonymous: Mapped[bool] = mapped_column(default=False)
    acquisition_source: Mapped[AcquisitionSource | None] = mapped_column(
        _enum(AcquisitionSource, "acquisition_source")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lifecycles: Mapped[list[Lifecycle]] = relationship(back_populates="customer")


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    plan: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[SubscriptionStatus] = mapped_column(
        _enum(SubscriptionStatus, "subscription_status")
    )
    started_at: Mapped[datetime]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    paused_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # The shop's own id (shop events name subscriptions by it) and the time of the event
    # that set `status`, so an older pause/resume arriving late never overrides a newer one.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    status_changed_at: Mapped[datetime | None]
    # A pause the customer asked to end on a date ("pause until March", issue #17): the
    # day deliveries restart. None: paused until they resume it (or not paused).
    resume_on: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship()


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"))
    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    shipping_address: Mapped[str] = mapped_column(Text)
    carrier: Mapped[str | None] = mapped_column(String(50))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    placed_at: Mapped[datetime]
    shipped_at: Mapped[datetime | None]
    estimated_delivery: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    return_requested_at: Mapped[datetime | None]
    refunded_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship()
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))

    order: Mapped[Order] = relationship(back_populates="items")


class ReturnRequest(Base):
    """A return the customer confirmed in the chat: some units of some items of one order
    (issue #19, bot/domain/returns.py); `reference` is what the customer quotes."""

    __tablename__ = "return_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[ReturnLine]] = relationship(
        back_populates="request", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def refund_total(self) -> Decimal:
        return sum((line.refund_amount for line in self.lines), Decimal(0))


class ReturnLine(Base):
    """One item of a return: how many units, why, and refund or replacement (an exchange for
    another size is a replacement with `exchange_size`; an item missing from the parcel, reason
    `missing`, is a replacement or refund with nothing sent back)."""

    __tablename__ = "return_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    return_id: Mapped[int] = mapped_column(
        ForeignKey("return_requests.id", ondelete="CASCADE"), index=True
    )
    order_item_id: Mapped[int] = mapped_column(
        ForeignKey("order_items.id", ondelete="CASCADE"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
    # bot/domain/returns.py Reason and Resolution values.
    reason: Mapped[str] = mapped_column(String(32))
    resolution: Mapped[str] = mapped_column(String(32))
    refund_amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    # The size wanted instead, for an exchange (reason doesnt_fit, resolution replacement;
    # migration 0031); null otherwise.
    exchange_size: Mapped[str | None] = mapped_column(String(16))

    request: Mapped[ReturnRequest] = relationship(back_populates="lines")


class Lifecycle(Base):
    __tablename__ = "lifecycles"
    __table_args__ = (
        Index("ix_lifecycles_customer_open", "customer_id", "closed_at"),
        # Dashboard journey map: journeys opened in a range (migration 0005).
        Index("ix_lifecycles_opened", "opened_at", "customer_id", "stage", "acquisition_channel"),
        # Loyalty: each customer's lifecycles in order, for ROW_NUMBER/LEAD (migration 0008).
        Index("ix_lifecycles_customer_history", "customer_id", "opened_at", "id"),
        UniqueConstraint(
            "subscription_id", "period_start", name="uq_lifecycles_subscription_period"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[LifecycleKind] = mapped_column(_enum(LifecycleKind, "lifecycle_kind"))
    stage: Mapped[Stage] = mapped_column(_enum(Stage, "lifecycle_stage"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(32))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    period_start: Mapped[datetime | None]
    acquisition_channel: Mapped[AcquisitionSource | None] = mapped_column(
        _enum(AcquisitionSource, "lifecycle_acquisition")
    )

    customer: Mapped[Customer] = relationship(back_populates="lifecycles")


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[ConversationStatus] = mapped_column(
        _enum(ConversationStatus, "conversation_status"), default=ConversationStatus.bot
    )
    channel: Mapped[Channel] = mapped_column(
        _enum(Channel, "conversation_channel"), default=Channel.website_chat
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    # SHA-256 of the browser's resume token; the token itself is never stored.
    access_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # "token" when the shop's signed identity token identified the customer, "order" when
    # they verified with order number + email.
    identified_by: Mapped[str | None] = mapped_column(String(16))
    # Order the conversation is about, so feedback lands on that order's lifecycle.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    # ISO 639-1 code of the last message the customer clearly wrote in another language than
    # English (issue #17, bot/web/language.py); None: English, or not told. For the agents.
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_time", "conversation_id", "id"),
        # A message re-sent after a reconnect carries the same client id: stored once.
        UniqueConstraint(
            "conversation_id", "client_message_id", name="uq_messages_conversation_client_id"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    sender: Mapped[MessageSender] = mapped_column(_enum(MessageSender, "message_sender"))
    text: Mapped[str] = mapped_column(Text)
    buttons: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    # Order cards shown with it (bot/domain/order_cards.py, migration 0025); `text` is their
    # plain-text fallback.
    cards: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    client_message_id: Mapped[str | None] = mapped_column(String(64))
    # Display name of the agent who wrote it (sender agent).
    author: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A photo the customer attached (issue #19, migration 0023): the message is its line in
    # the transcript; the image is served to staff only (bot/web/photos.py).
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id", ondelete="SET NULL"))


# The support survey of a chat (trigger "support_resolved", bot/domain/surveys.py), as
# support operations select it (index ix_survey_dispatches_support_chats, migration 0032).
SUPPORT_CHAT_SURVEYS = "trigger = 'support_resolved' AND conversation_id IS NOT NULL"


class SurveyDispatch(Base):
    __tablename__ = "survey_dispatches"
    __table_args__ = (
        # Dashboard response rate by the time a survey was sent (migration 0005).
        Index("ix_survey_dispatches_sent", "sent_at", "answered_at"),
        # Support operations' per-agent answers (migration 0032): the support surveys of
        # chats, without reading every dispatch.
        Index(
            "ix_survey_dispatches_support_chats",
            "id",
            postgresql_where=text(SUPPORT_CHAT_SURVEYS),
            sqlite_where=text(SUPPORT_CHAT_SURVEYS),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    lifecycle_id: Mapped[int] = mapped_column(ForeignKey("lifecycles.id"), index=True)
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id"))
    trigger: Mapped[str] = mapped_column(String(64))
    survey_kind: Mapped[FeedbackKind] = mapped_column(_enum(FeedbackKind, "dispatch_kind"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the survey was first offered (a proactive one: its consent question was shown).
    sent_at: Mapped[datetime | None]
    # Proactive surveys ask for consent first (migration 0011): how often the question was
    # shown (a "not now" offers it once more in a later chat) and when the customer said yes.
    offer_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    accepted_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    declined_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]


# Columns of the dashboard's covering index on feedback (migration 0005).
DASHBOARD_METRIC_COLUMNS = ("created_at", "stage", "channel", "kind", "score", "sentiment")


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_created", "created_at"),
        Index("ix_feedback_lifecycle", "lifecycle_id"),
        # Dashboard (migration 0005): the metrics of a date range read only this index.
        Index("ix_feedback_created_metrics", *DASHBOARD_METRIC_COLUMNS),
        # Explorer pages: newest first with the id as tie-break, straight from the index.
        Index("ix_feedback_created_id", "created_at", "id"),
        Index("ix_feedback_order", "order_id"),
        Index("ix_feedback_dispatch", "survey_dispatch_id"),
        # Explorer filtered by stage, as the journey map's pitfalls open it (migration 0009):
        # newest first and counts straight from the index.
        Index(
            "ix_feedback_stage_created",
            "stage",
            "created_at",
            "id",
            postgresql_include=["channel", "kind", "score", "sentiment"],
        ),
        # Free-text filter (migration 0009): pg_trgm on PostgreSQL, a plain index on SQLite.
        Index(
            "ix_feedback_text_trgm",
            "text",
            postgresql_using="gin",
            postgresql_ops={"text": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # customer, lifecycle and stage are NULL only for a web review from a reviewer who is not
    # a known customer (migration 0019): `reviewer_id` is set instead (SPEC §3).
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    lifecycle_id: Mapped[int | None] = mapped_column(ForeignKey("lifecycles.id"))
    stage: Mapped[Stage | None] = mapped_column(_enum(Stage, "feedback_stage"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "feedback_channel"))
    source: Mapped[FeedbackSource] = mapped_column(_enum(FeedbackSource, "feedback_source"))
    kind: Mapped[FeedbackKind] = mapped_column(_enum(FeedbackKind, "feedback_kind"))
    score: Mapped[int | None]
    text: Mapped[str | None] = mapped_column(Text)
    sentiment: Mapped[float | None]
    themes: Mapped[list[str]] = mapped_column(JSON, default=list)
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id"))
    survey_dispatch_id: Mapped[int | None] = mapped_column(ForeignKey("survey_dispatches.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Imported web feedback (issue #23, migration 0019): who wrote it when not a customer,
    # the platform (trustpilot, judgeme, google, or a social network) and its public URL.
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("reviewers.id"), index=True)
    platform: Mapped[str | None] = mapped_column(String(32))
    source_url: Mapped[str | None] = mapped_column(String(2000))
    # SHA-256 of what the platform said (score, text, time): a re-import updates an edited
    # review and skips an unchanged one without analysing its text again.
    content_hash: Mapped[str | None] = mapped_column(String(64))


class Reviewer(Base):
    """Someone who wrote a web review or a social post and is not a known customer: one per
    channel and handle (the platform's name or id of the author), with an email when the
    export carries one. Never a customer: no lifecycle, no orders (issue #23)."""

    __tablename__ = "reviewers"
    __table_args__ = (UniqueConstraint("channel", "handle", name="uq_reviewers_channel_handle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "reviewer_channel"))
    handle: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Escalation(Base):
    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    # Indexed (migration 0026) for the loyalty summary's escalation lookups.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id"), index=True)
    reason: Mapped[EscalationReason] = mapped_column(_enum(EscalationReason, "escalation_reason"))
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[EscalationStatus] = mapped_column(
        _enum(EscalationStatus, "escalation_status"), default=EscalationStatus.waiting
    )
    summary: Mapped[str | None] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    claimed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # Follow-up deadline of a detractor (closed loop), e.g. created + 48 h.
    due_at: Mapped[datetime | None]
    # The customer went back to the bot while waiting (issue #17): still queued; a claim
    # hands the chat over again. Cleared when they ask for a person again or on a claim.
    back_with_bot_at: Mapped[datetime | None]


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[StaffRole] = mapped_column(_enum(StaffRole, "staff_role"))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Presence: refreshed while the console is open; "online" = seen in the last minute.
    last_seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Optional TOTP two-factor sign-in (issue #22, bot/domain/two_factor.py): the secret
    # (pending until `totp_enabled_at`) and the last time step accepted (no replays).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(Integer)


class StaffSession(Base):
    """Server-side console session; the cookie holds a random token, we keep its SHA-256."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # Issue #22: idle timeout (STAFF_IDLE_MINUTES after the last use; refreshed at most once
    # a minute) and what the owner sees in their list of sessions.
    last_used_at: Mapped[datetime | None]
    user_agent: Mapped[str | None] = mapped_column(String(200))
    client_address: Mapped[str | None] = mapped_column(String(64))


class StaffNote(Base):
    """Internal note on a conversation: staff only, never sent to the customer."""

    __tablename__ = "staff_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleRead(Base):
    """How far a staff member has read a conversation in the console (issue #20): the
    customer's messages after `last_read_message_id` count as unread for them."""

    __tablename__ = "console_reads"

    staff_user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    last_read_message_id: Mapped[int] = mapped_column(Integer)
    read_at: Mapped[datetime] = mapped_column(default=utcnow)


class CannedResponse(Base):
    """A saved reply agents insert in the console by its shortcut; admins manage them."""

    __tablename__ = "canned_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """Bearer token for the JSON API (shop backends, scripts); we keep only its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token acts with the rights of this role (agent, cx_manager or admin).
    role: Mapped[StaffRole] = mapped_column(_enum(StaffRole, "api_token_role"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdentityTokenUse(Base):
    """A single-use identity token (one with a `jti`) that identified a chat: the token may
    only come back for that conversation (a reconnect of the same tab). Rows are forgotten
    once the token has expired (bot/domain/conversations.py)."""

    __tablename__ = "identity_token_uses"

    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The shop's customer id (`sub`); erasure deletes the customer's rows.
    customer_external_id: Mapped[str] = mapped_column(String(64), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "staff:<id>", "customer:<id>" or "system": bot-made changes are audited too.
    # Indexed: what an agent took part in is read from here (bot/domain/staff_access.py).
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ShopEvent(Base):
    """A shop event received on POST /api/events, by the shop's event id (idempotency).

    Accepted as `pending` with its validated `payload`; the events worker applies pending
    rows oldest first, one customer (`customer_ref`) at a time, then stores the `result`
    and clears `payload` and `customer_ref` (personal data is kept only while pending).
    """

    __tablename__ = "shop_events"
    __table_args__ = (
        # The worker's queue: only pending rows, oldest first, and per customer (migration
        # 0010).
        Index(
            "ix_shop_events_pending",
            "received_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_shop_events_pending_customer",
            "customer_ref",
            "received_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Events naming one order or subscription, in the order received (migration 0030).
        Index(
            "ix_shop_events_pending_subject",
            "subject_ref",
            "received_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the event did; a replay of the same id answers with it (None while pending).
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[ShopEventStatus] = mapped_column(
        _enum(ShopEventStatus, "shop_event_status"), default=ShopEventStatus.pending
    )
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    customer_ref: Mapped[str | None] = mapped_column(String(64))
    # "o:<order number>" / "s:<subscription id>" while pending: two customers' events naming
    # the same order are applied in the order received, also by parallel appliers.
    subject_ref: Mapped[str | None] = mapped_column(String(70))
    applied_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class WebhookOutbox(Base):
    """Notifications for the shop's outgoing webhook, delivered by a background task."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    # The escalation notified about: at most one notification each (unique).
    escalation_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    # Set when the retries are used up; the row is kept for inspection.
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class BotEvent(Base):
    """Bot analytics from Rasa's event broker (`python -m bot analytics-consumer`).

    One row per counted Rasa event; `event_key` (conversation, event, Rasa's timestamp) is
    unique, so a redelivered broker message is counted once. `conversation_id` is Rasa's
    sender id, not a foreign key: Rasa may know conversations the product does not.
    """

    __tablename__ = "bot_events"
    __table_args__ = (Index("ix_bot_events_occurred", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[BotEventKind] = mapped_column(_enum(BotEventKind, "bot_event_kind"))
    occurred_at: Mapped[datetime]


class Insight(Base):
    """A finding of the CX team on the insight board (bot/domain/insights.py)."""

    __tablename__ = "insights"
    __table_args__ = (Index("ix_insights_status", "status", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    owner_team: Mapped[InsightTeam] = mapped_column(_enum(InsightTeam, "insight_team"))
    status: Mapped[InsightStatus] = mapped_column(
        _enum(InsightStatus, "insight_status"), default=InsightStatus.new
    )
    origin: Mapped[InsightOrigin] = mapped_column(_enum(InsightOrigin, "insight_origin"))
    # Explorer filters (without dates) of the feedback that matches the insight: volume,
    # trend and the before/after comparison are computed from them.
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Written by the CX manager; told once to each linked customer after `applied`.
    customer_message: Mapped[str | None] = mapped_column(Text)
    # Customers are told in their next chat until then (None: they are not told).
    notify_until: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the change went live (may be set in the past by the CX manager).
    applied_at: Mapped[datetime | None]


class InsightFeedback(Base):
    """The feedback rows behind an insight (its evidence; their customers may be told)."""

    __tablename__ = "insight_feedback"

    insight_id: Mapped[int] = mapped_column(
        ForeignKey("insights.id", ondelete="CASCADE"), primary_key=True
    )
    feedback_id: Mapped[int] = mapped_column(
        ForeignKey("feedback.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class InsightNotice(Base):
    """An insight told to a customer in the chat: at most one per (insight, customer)."""

    __tablename__ = "insight_notices"
    __table_args__ = (
        UniqueConstraint("insight_id", "customer_id", name="uq_insight_notices_insight_customer"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    insight_id: Mapped[int] = mapped_column(ForeignKey("insights.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    delivered_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackTotals:
    """The additive columns of every feedback roll-up (bot.domain.metrics.MetricCounts), so a
    range's figures are sums of rows."""

    volume: Mapped[int] = mapped_column(Integer, default=0)
    csat_responses: Mapped[int] = mapped_column(Integer, default=0)
    csat_satisfied: Mapped[int] = mapped_column(Integer, default=0)
    nps_responses: Mapped[int] = mapped_column(Integer, default=0)
    nps_promoters: Mapped[int] = mapped_column(Integer, default=0)
    nps_detractors: Mapped[int] = mapped_column(Integer, default=0)
    ces_responses: Mapped[int] = mapped_column(Integer, default=0)
    ces_sum: Mapped[int] = mapped_column(Integer, default=0)
    sentiment_count: Mapped[int] = mapped_column(Integer, default=0)
    sentiment_sum: Mapped[float] = mapped_column(Float, default=0.0)


class FeedbackDaily(FeedbackTotals, Base):
    """Dashboard pre-aggregate (migration 0005): feedback per UTC day x stage x channel.

    The columns of bot.domain.metrics.MetricCounts; maintained by database triggers on
    `feedback` (bot/storage/rollup.py), never by code.
    """

    __tablename__ = "feedback_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)


class FeedbackDailyGroup(FeedbackTotals, Base):
    """Dashboard pre-aggregate (migration 0005): feedback per UTC day x survey trigger,
    acquisition source or product (`dimension`, `key`), with the columns of FeedbackDaily.

    Maintained by database triggers on `feedback` (bot/storage/rollup.py).
    """

    __tablename__ = "feedback_daily_groups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))


class SurveyDispatchDaily(Base):
    """Dashboard pre-aggregate (migration 0005): surveys sent/answered per UTC day x trigger."""

    __tablename__ = "survey_dispatch_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(64), primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)


class FeedbackMonthlyGroup(FeedbackTotals, Base):
    """Dashboard pre-aggregate (migration 0009): the month totals of FeedbackDailyGroup
    (`month` = its first day), kept by a trigger on feedback_daily_groups."""

    __tablename__ = "feedback_monthly_groups"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))


class SurveyDispatchSourceDaily(Base):
    """Dashboard pre-aggregate (migration 0009): surveys sent/answered per UTC day x the
    acquisition source of their journey; kept by triggers (bot/storage/rollup.py)."""

    __tablename__ = "survey_dispatch_sources"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)


class JourneyFix(Base):
    """Pre-aggregate of "what to fix first" (issue #21, migration 0028): one row per journey x
    key (`all`, `stage:<s>`, `cell:<s>:<c>`, `theme:<s>:<t>`) with the journey's CSAT/NPS
    counts and return; kept by triggers (bot/storage/rollup_fix.py), never by code."""

    __tablename__ = "journey_fix"
    __table_args__ = (Index("ix_journey_fix_day", "day", "opened_at"),)

    lifecycle_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    opened_at: Mapped[datetime]
    returned: Mapped[int] = mapped_column(Integer, default=0)
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_good: Mapped[int] = mapped_column(Integer, default=0)
    nps_n: Mapped[int] = mapped_column(Integer, default=0)
    nps_net: Mapped[int] = mapped_column(Integer, default=0)


class JourneyFixDaily(Base):
    """The sums of JourneyFix per UTC day of opening x key (issue #21, migration 0028)."""

    __tablename__ = "journey_fix_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    journeys: Mapped[int] = mapped_column(Integer, default=0)
    returned: Mapped[int] = mapped_column(Integer, default=0)
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_good: Mapped[int] = mapped_column(Integer, default=0)
    nps_n: Mapped[int] = mapped_column(Integer, default=0)
    nps_net: Mapped[int] = mapped_column(Integer, default=0)


class JourneyFixMonthly(Base):
    """The month totals of JourneyFixDaily (`month` = its first day; migration 0029)."""

    __tablename__ = "journey_fix_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    journeys: Mapped[int] = mapped_column(Integer, default=0)
    returned: Mapped[int] = mapped_column(Integer, default=0)
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_good: Mapped[int] = mapped_column(Integer, default=0)
    nps_n: Mapped[int] = mapped_column(Integer, default=0)
    nps_net: Mapped[int] = mapped_column(Integer, default=0)


class JourneyLink(Base):
    """Journey-map pre-aggregate (migration 0009, filled on PostgreSQL only): journeys per
    day and links between a customer's consecutive journeys (bot/storage/rollup_journey.py)."""

    __tablename__ = "journey_links"

    grain: Mapped[str] = mapped_column(String(2), primary_key=True)
    m: Mapped[date] = mapped_column(Date, primary_key=True)
    a: Mapped[date] = mapped_column(Date, primary_key=True)
    b: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(48), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


# lifecycle_loyalty's generated columns (migration 0033 carries the same text). Bands as
# small integers, indexes into bot.domain.loyalty's CSAT_BANDS / NPS_BANDS / SUPPORT_BANDS;
# the integer sums compare exactly (mean >= 4 <=> sum >= 4 n).
LOYALTY_CSAT_BAND = (
    "CASE WHEN csat_n = 0 THEN 3 WHEN csat_sum >= 4 * csat_n THEN 0 "
    "WHEN csat_sum <= 2 * csat_n THEN 2 ELSE 1 END"
)
LOYALTY_NPS_BAND = (
    "CASE WHEN nps_n = 0 THEN 3 WHEN nps_sum >= 9 * nps_n THEN 0 "
    "WHEN nps_sum >= 7 * nps_n THEN 1 ELSE 2 END"
)
LOYALTY_SUPPORT = "CASE WHEN escalated THEN 2 WHEN stage = 'support' THEN 1 ELSE 0 END"
LOYALTY_SCAN_COLUMNS = (
    "csat_band",
    "nps_band",
    "support",
    "source",
    "seq",
    "gap_days",
    "prev_opened_at",
    "next_opened_at",
    "next2_opened_at",
    "next3_opened_at",
)


class LoyaltyGapDays(FunctionElement[int]):
    """Days from a lifecycle to the customer's next purchase, rounded up: the next one opened
    at most W days later (W whole days of 24 h) <=> gap_days <= W. Exact on PostgreSQL
    (numeric epoch of the interval, microseconds included); whole seconds on SQLite (the
    summary is filled on PostgreSQL only)."""

    type = Integer()
    name = "loyalty_gap_days"
    inherit_cache = True


LOYALTY_GAP_DAYS_POSTGRESQL = (
    "CAST(ceil(EXTRACT(epoch FROM next_opened_at - opened_at) / 86400) AS integer)"
)
LOYALTY_GAP_DAYS_SQLITE = (
    "(CAST(strftime('%s', next_opened_at) AS INTEGER) "
    "- CAST(strftime('%s', opened_at) AS INTEGER) + 86399) / 86400"
)


@compiles(LoyaltyGapDays)
def _gap_days_postgresql(_element: LoyaltyGapDays, _compiler: Any, **_kw: Any) -> str:
    return LOYALTY_GAP_DAYS_POSTGRESQL


@compiles(LoyaltyGapDays, "sqlite")
def _gap_days_sqlite(_element: LoyaltyGapDays, _compiler: Any, **_kw: Any) -> str:
    return LOYALTY_GAP_DAYS_SQLITE


class LifecycleLoyalty(Base):
    """Loyalty summary, one row per lifecycle (migration 0026, filled on PostgreSQL only, by
    the triggers of bot/storage/rollup_loyalty.py): its place among the customer's purchase
    lifecycles, renewal, stage, source, escalation and CSAT/NPS counts and sums."""

    __tablename__ = "lifecycle_loyalty"
    __table_args__ = (
        Index(
            "ix_lifecycle_loyalty_opened",
            "opened_at",
            postgresql_include=list(LOYALTY_SCAN_COLUMNS),
            postgresql_where=text("purchase"),
            sqlite_where=text("purchase"),
        ),
        Index(
            "ix_lifecycle_loyalty_closed",
            "closed_at",
            postgresql_where=text("period"),
            sqlite_where=text("period"),
        ),
        Index("ix_lifecycle_loyalty_customer", "customer_id"),
        # Migration 0034: the lifecycles whose previous purchase opened in a range (the
        # customer counts of the monthly roll-up's partial months).
        Index(
            "ix_lifecycle_loyalty_prev",
            "prev_opened_at",
            postgresql_include=["next_opened_at", "next2_opened_at", "next3_opened_at"],
            postgresql_where=text("purchase"),
            sqlite_where=text("purchase"),
        ),
    )

    lifecycle_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    purchase: Mapped[bool]
    period: Mapped[bool]
    renewed: Mapped[bool]
    stage: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int | None] = mapped_column(Integer)
    prev_opened_at: Mapped[datetime | None]
    next_opened_at: Mapped[datetime | None]
    next2_opened_at: Mapped[datetime | None]
    next3_opened_at: Mapped[datetime | None]
    first_opened_at: Mapped[datetime | None]
    escalated: Mapped[bool]
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_sum: Mapped[int] = mapped_column(Integer, default=0)
    nps_n: Mapped[int] = mapped_column(Integer, default=0)
    nps_sum: Mapped[int] = mapped_column(Integer, default=0)
    # Migration 0033: stored (generated) columns, so that the overview groups and compares
    # plain columns (the covering index above holds them: an index-only scan).
    csat_band: Mapped[int] = mapped_column(
        SmallInteger, Computed(LOYALTY_CSAT_BAND, persisted=True)
    )
    nps_band: Mapped[int] = mapped_column(SmallInteger, Computed(LOYALTY_NPS_BAND, persisted=True))
    support: Mapped[int] = mapped_column(SmallInteger, Computed(LOYALTY_SUPPORT, persisted=True))
    gap_days: Mapped[int | None] = mapped_column(
        Integer, Computed(LoyaltyGapDays(), persisted=True)
    )


class LifecycleLoyaltyMonthly(Base):
    """Monthly loyalty roll-up (migration 0034, filled on PostgreSQL only, by the trigger of
    bot/storage/rollup_loyalty_monthly.py on `lifecycle_loyalty`): per UTC month and key,
    purchase lifecycles, those without a next / 2nd / 3rd next purchase, and cumulative
    counts by days to the next purchase (basis 0: month opened; 1: month of the previous
    purchase)."""

    __tablename__ = "lifecycle_loyalty_monthly"
    __table_args__ = (
        Index(
            "ix_lifecycle_loyalty_monthly_key",
            "basis",
            "month",
            "csat_band",
            "nps_band",
            "support",
            "source",
            "first",
        ),
    )

    # Rows of deltas, added up per key by the readers (never updated in place).
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    basis: Mapped[int] = mapped_column(SmallInteger)
    month: Mapped[date] = mapped_column(Date)
    csat_band: Mapped[int] = mapped_column(SmallInteger)
    nps_band: Mapped[int] = mapped_column(SmallInteger)
    support: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[str] = mapped_column(String(32))
    first: Mapped[bool]
    n: Mapped[int] = mapped_column(Integer)
    next_null: Mapped[int] = mapped_column(Integer)
    next2_null: Mapped[int] = mapped_column(Integer)
    next3_null: Mapped[int] = mapped_column(Integer)
    returned: Mapped[list[int] | None] = mapped_column(
        JSON().with_variant(ARRAY(Integer), "postgresql")
    )


class TurnUnderstanding(Base):
    """What the NLU made of a customer message (issue #24, migration 0020): intent,
    confidence, runner-up and entities as Rasa's channel reported them with the bot's reply,
    the responses the bot gave, and a reviewer's verdict. Personal data (the entities'
    values): deleted with the conversation, by a customer erasure and by the transcript
    purge (bot/domain/privacy.py)."""

    __tablename__ = "turn_understandings"
    __table_args__ = (
        Index("ix_turn_understandings_conversation", "conversation_id", "message_id"),
        Index("ix_turn_understandings_created", "created_at"),
        Index("ix_turn_understandings_model", "model_id", "created_at"),
    )

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    runner_up_intent: Mapped[str | None] = mapped_column(String(64))
    runner_up_confidence: Mapped[float | None] = mapped_column(Float)
    entities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The responses (utter_*) and actions the bot ran for this message.
    bot_steps: Mapped[list[str] | None] = mapped_column(JSON)
    # VADER compound of the text when it came right after a bot reply, else None.
    sentiment: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    review_status: Mapped[ReviewStatus | None] = mapped_column(
        _enum(ReviewStatus, "turn_review_status")
    )
    reviewed_intent: Mapped[str | None] = mapped_column(String(64))
    reviewed_entities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reviewed_at: Mapped[datetime | None]
    # Rasa's id of the trained model that read the message (migration 0022): a new id is a
    # retraining (bot/domain/bot_analytics.py's before/after view).
    model_id: Mapped[str | None] = mapped_column(String(64))


class AnswerRating(Base):
    """A customer's "did this help?" on one of the bot's knowledge answers (issue #24,
    migration 0022): the answer's message, yes or no (the last click counts), the intent and
    model of the turn it answered. Deleted with the transcript (bot/domain/privacy.py)."""

    __tablename__ = "answer_ratings"
    __table_args__ = (Index("ix_answer_ratings_answered", "answered_at"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    helpful: Mapped[bool]
    intent: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)
    rated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TurnFlag(Base):
    """Why a customer turn is in the review inbox (bot/domain/turn_review.py): one row per
    reason."""

    __tablename__ = "turn_flags"
    __table_args__ = (Index("ix_turn_flags_reason", "reason", "message_id"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("turn_understandings.message_id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)


class Alert(Base):
    """A CX alert (bot/domain/alerts.py): stored once per `key`, then posted to the webhook
    and listed in one daily email digest (issue #21, migration 0021)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # metric_band, new_pitfall, theme_spike
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(2000))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    webhook_sent_at: Mapped[datetime | None]
    digest_sent_at: Mapped[datetime | None]


def _install_rollup_triggers() -> None:
    from bot.storage import rollup, rollup_fix, rollup_loyalty_monthly

    rollup.install(Base.metadata)
    rollup_fix.install(Base.metadata)
    rollup_loyalty_monthly.install(Base.metadata)


_install_rollup_triggers()


class Photo(Base):
    """A photo a customer attached in the chat (issue #19, bot/domain/photos.py, migration
    0023): checked by content, EXIF removed, re-encoded; the file lives in PHOTO_DIR under
    `storage_key` (never under the web root). Erasure deletes the file and keeps the row
    with `erased_at` (the counts stay; nothing identifying is left)."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    # The damage report it belongs to, when one was in progress: its order, and the
    # conversation's open escalation (if the chat was already with the team).
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))
    # Relative path inside PHOTO_DIR: two hex characters / 32 hex characters + extension.
    storage_key: Mapped[str] = mapped_column(String(80), unique=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_at: Mapped[datetime | None]


# --- the shop's knowledge: products, help-centre articles (issue #19, bot/domain/knowledge.py)


class KnowledgeProduct(Base):
    """A product as the bot knows it (imported from CSV or edited by admins)."""

    __tablename__ = "knowledge_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32), default="")
    price: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    description: Mapped[str] = mapped_column(Text, default="")
    materials: Mapped[str] = mapped_column(Text, default="")
    care: Mapped[str] = mapped_column(Text, default="")
    sizes: Mapped[str] = mapped_column(Text, default="")
    warranty: Mapped[str] = mapped_column(Text, default="")
    stock: Mapped[int] = mapped_column(Integer, default=0)
    url: Mapped[str] = mapped_column(String(2000))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeArticle(Base):
    """A help-centre article (imported from Markdown or edited by admins)."""

    __tablename__ = "knowledge_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(2000))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgePassage(Base):
    """One quotable piece of a product or article with its embedding, rebuilt whenever that
    product or article changes (never per question). `kind` is 'title' (name/title and
    description, for finding the item) or the field/paragraph it quotes."""

    __tablename__ = "knowledge_passages"
    __table_args__ = (Index("ix_knowledge_passages_source_ref", "source", "ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # "product" | "article"
    ref: Mapped[str] = mapped_column(String(100))  # SKU or slug
    kind: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    model: Mapped[str | None] = mapped_column(String(64))


class UnansweredQuestion(Base):
    """A knowledge question the bot was not sure about, counted per normalised wording."""

    __tablename__ = "knowledge_unanswered"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_key: Mapped[str] = mapped_column(String(300), unique=True)
    question: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=1)
    closest: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_asked_at: Mapped[datetime] = mapped_column(default=utcnow)
