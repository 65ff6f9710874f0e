"""Settings read from environment variables, with safe development defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'feedback.db'}"
DEV_RASA_TOKEN = "dev-rasa-token"
DEV_WIDGET_SECRET = "dev-widget-secret-change-me-in-production"
DEV_EVENTS_SECRET = "dev-events-secret-change-me-in-production"
DEV_RASA_CHANNEL_SECRET = "dev-rasa-channel-secret"
DEV_ACTION_SERVER_TOKEN = "dev-action-server-token"
# APP_ENV: exactly one of these (unset = development). `test` behaves like development (for
# test runs and CI); only `production` refuses development secrets, short secrets and the
# demo shop. Anything else ("Production", "prod", "") is a ConfigError, never a silent
# development start.
ENVIRONMENTS = ("development", "test", "production")
# Every secret, in production: at least this many characters, never a development value.
MIN_SECRET_CHARS = 32
_SECRET_HINT = 'generate one with `python -c "import secrets; print(secrets.token_urlsafe(48))"`'


class ConfigError(RuntimeError):
    """Raised when the configuration is unsafe or incomplete."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _env_languages(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None:
        return Settings.language_detection
    if raw.strip().lower() in ("", "off", "false", "0", "none"):
        return ()
    codes = tuple(dict.fromkeys(c.strip().lower() for c in raw.split(",") if c.strip()))
    if not all(len(c) == 2 and c.isalpha() for c in codes):
        raise ConfigError(f"{name} must be off or ISO 639-1 codes like en,de,fr; got {raw!r}")
    return codes


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    environment: str = "development"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: str = DEV_RASA_TOKEN
    # Shared with Rasa's REST channel (rasa_ext.channels.StrictRestInput, credentials*.yml):
    # sent by the web service with every customer message (issue #16).
    rasa_channel_secret: str = DEV_RASA_CHANNEL_SECRET
    # Sent by Rasa to the action server (endpoints*.yml), checked by `python -m actions.server`.
    action_server_token: str = DEV_ACTION_SERVER_TOKEN
    rasa_timeout_seconds: float = 20.0
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    max_message_chars: int = 2000
    return_window_days: int = 30
    # A shipped parcel this many days past its estimated delivery date is offered a trace;
    # this many, a replacement or a refund (docs/decisions.md, issue #17 late-parcel table).
    late_grace_days: int = 2
    replacement_after_days: int = 7
    # How often each web process closes completed purchases' lifecycles (0: never).
    lifecycle_sweep_seconds: int = 3600
    survey_fatigue_days: int = 7
    # The in-chat CSAT after support is skipped when the customer answered or declined a
    # survey in that conversation or in this many hours (SPEC §6, transactional rule).
    transactional_survey_quiet_hours: int = 24
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    # Shared with the shop's backend, which signs customer identity tokens (HS256).
    widget_secret: str = DEV_WIDGET_SECRET
    # Identity tokens living longer than this (exp - iat, or exp - now without iat) are refused.
    identity_max_lifetime_seconds: int = 86400
    # Told to customers when no agent is online; say the time zone (issue #20).
    support_hours: str = "Monday to Friday, 9:00 to 17:00 (Central European Time)"
    # Told to a customer who could not be verified or cannot wait for a person (issue #17).
    support_email: str = "support@example.com"
    # A waiting escalation older than this is shown one priority level higher.
    escalation_aging_minutes: int = 15
    # A claim whose holder has not written for this long may be taken over by any agent in
    # the console (at once when the holder is offline; admins always may). Issue #20.
    claim_idle_minutes: int = 15
    # Per conversation: at most this many messages in `rate_window_seconds`.
    rate_limit_messages: int = 12
    rate_window_seconds: float = 10.0
    # Production profile (docs/deploy.md): RASA_URL may list several Rasa workers
    # (comma-separated); REDIS_URL enables the pub/sub between web replicas.
    action_server_url: str = "http://127.0.0.1:5055/webhook"
    # Customer turns running on one Rasa worker at once; the rest queue in the web service.
    rasa_max_in_flight: int = 4
    redis_url: str | None = None
    log_format: str = "text"
    # Other languages (issue #17, bot/domain/language.py): the languages the detector tells
    # apart (ISO 639-1; about 30 MB of memory each). LANGUAGE_DETECTION=off: none.
    language_detection: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl", "pt")
    # Dashboard journey map: a stage/channel is a pitfall below these scores (with at least
    # `pitfall_min_responses` answers) or above this drop-off (percent).
    pitfall_csat_below: int = 60
    pitfall_nps_below: int = 0
    pitfall_dropoff_above: int = 70
    pitfall_min_responses: int = 5
    # Dashboard: a CSAT/NPS/CES figure (a KPI, a trend point, a group, a bar) resting on fewer
    # answers than this is shown as "too few answers" instead of a number (docs/dashboard.md).
    dashboard_min_answers: int = 10
    # Insight before/after: both windows are at least this many days; "too early to tell"
    # until that long after applying (docs/dashboard.md).
    insight_min_window_days: int = 14
    # `python -m bot demo`: customers with a year of orders and feedback added in bulk to the
    # hand-made demo history (bot/demo/crowd.py; 0: the small shop only).
    demo_crowd_customers: int = 2000
    # CX alerts (bot/alerts.py, docs/dashboard.md): checked every ALERT_CHECK_SECONDS by each
    # web process (0: never; `python -m bot alerts` runs one round). A metric outside mean +-
    # ALERT_BAND_SD sd of the ALERT_BAND_WEEKS weeks before, a new pitfall, or a theme's
    # negative comments at ALERT_SPIKE_RATIO x its weekly mean (and at least ALERT_SPIKE_MIN).
    alert_check_seconds: int = 3600
    alert_band_sd: float = 2.0
    alert_band_weeks: int = 8
    alert_spike_ratio: float = 2.0
    alert_spike_min: int = 5
    # Slack-compatible incoming webhook ({"text": ...}); unset: no posts.
    alert_webhook_url: str | None = None
    # The daily digest's address (SMTP_* settings); sent from this hour (UTC) on.
    alert_digest_to: str | None = None
    alert_digest_hour: int = 7
    # Support operations page: a resolution later than this breaks the SLA (the first-reply
    # SLA is ESCALATION_AGING_MINUTES, when the console calls a waiting chat "Overdue").
    support_sla_resolution_hours: int = 24
    # Message texts older than this are blanked by `python -m bot purge-transcripts`.
    transcript_retention_days: int = 365
    # Shop events webhook (POST /api/events): HMAC-SHA256 secret shared with the shop.
    events_secret: str = DEV_EVENTS_SECRET
    events_max_body_bytes: int = 64 * 1024
    # A signature's timestamp (`t=` of X-Signature) may be this far from now, past or future.
    events_signature_tolerance_seconds: int = 300
    # Batches of pending events each web process applies at once (PostgreSQL; SQLite: 1).
    events_appliers: int = 2
    # Closed loop: a detractor's follow-up escalation is due this many hours later.
    detractor_due_hours: int = 48
    # Optional outgoing webhook notifying the shop of detractors (signed like the events).
    outgoing_webhook_url: str | None = None
    outgoing_webhook_secret: str | None = None
    outgoing_webhook_poll_seconds: float = 2.0
    # A state change (cancel, address, return, pause/resume/cancel subscription, refund) is
    # only offered for confirmation when the intent is this sure and this far ahead of the
    # runner-up; otherwise the bot asks what was meant (issue #17, bot/domain/understanding.py).
    intent_confidence_threshold: float = 0.80
    intent_margin: float = 0.15
    # Issue #22. `/metrics` on the public port needs `Authorization: Bearer METRICS_TOKEN`
    # (unset: it is served on the internal ops port only). OPS_PORT: a second listening
    # port (on OPS_HOST) for Prometheus and readiness details, never published.
    metrics_token: str | None = None
    ops_host: str = "127.0.0.1"
    ops_port: int | None = None
    # A staff session unused for this long ends (sign in again); 12 h at most anyway.
    staff_idle_minutes: int = 30
    # Per client address (bot/web/client_limits.py): new conversations and chat WebSocket
    # openings per window (0: off). The address comes from X-Forwarded-For only when the
    # peer is one of TRUSTED_PROXIES (IP addresses or CIDR networks: the nginx in front).
    client_new_conversations: int = 20
    client_websockets: int = 50
    client_limit_window_seconds: int = 600
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    # Two-factor sign-in (TOTP) for staff: "optional" (each sets it up for themselves) or
    # "required" (admins cannot sign in without it; bot/domain/two_factor.py).
    staff_2fa: str = "optional"
    # Review inbox (issue #24, bot/domain/turn_review.py): the customer's next message
    # "rephrases" a turn at this text similarity (difflib ratio, 0..1) with the same intent.
    review_rephrase_similarity: float = 0.6
    # Outgoing email (bot/mail.py, docs/email.md). SMTP_HOST unset: email is off (the
    # development default); nothing is sent and callers are told so.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_from: str = "support@example.com"
    smtp_user: str | None = None
    smtp_password: str | None = None
    # STARTTLS after connecting (port 587). Off only for a local relay or the tests' server.
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 10.0
    # Email reply when the customer has left (issue #20): at most one email per conversation
    # in this many minutes (a burst of agent lines becomes one email).
    email_reply_minutes: int = 10
    # The first agent line waits this long for the lines that follow it (one email for them).
    email_reply_gather_seconds: float = 30.0
    # The public address of this service (https://support.example.com), for links in emails.
    public_url: str = "http://127.0.0.1:8000"
    # Photos customers attach in the chat (issue #19, docs/decisions.md "Photos"): stored
    # under PHOTO_DIR (outside the web root; served to staff only), at most PHOTO_MAX_BYTES
    # as uploaded and PHOTO_MAX_PIXELS (width x height), PHOTO_MAX_PER_CONVERSATION each chat.
    photo_dir: Path = PROJECT_ROOT / "var" / "photos"
    photo_max_bytes: int = 10 * 1024 * 1024
    photo_max_pixels: int = 40_000_000
    photo_max_per_conversation: int = 20

    @property
    def rasa_urls(self) -> tuple[str, ...]:
        return tuple(u.strip().rstrip("/") for u in self.rasa_url.split(",") if u.strip())

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def __post_init__(self) -> None:
        # Settings made in code (tests, create_app(settings)) are held to the same rules.
        if self.ops_port is not None and self.ops_port == self.web_port:
            raise ConfigError("OPS_PORT must differ from WEB_PORT (it is the internal port)")
        if self.staff_idle_minutes < 1:
            raise ConfigError("STAFF_IDLE_MINUTES must be at least 1")
        if not 0 < self.review_rephrase_similarity <= 1:
            raise ConfigError("REVIEW_REPHRASE_SIMILARITY must be above 0 and at most 1")
        if self.staff_2fa not in ("optional", "required"):
            raise ConfigError(f"STAFF_2FA must be optional or required, got {self.staff_2fa!r}")
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigError(f"SMTP_PORT must be a TCP port, got {self.smtp_port}")
        if self.email_reply_minutes < 0:
            raise ConfigError("EMAIL_REPLY_MINUTES must be 0 or more")
        if self.photo_max_bytes < 1 or self.photo_max_pixels < 1:
            raise ConfigError("PHOTO_MAX_BYTES and PHOTO_MAX_PIXELS must be at least 1")
        if self.client_limit_window_seconds < 1:
            raise ConfigError("CLIENT_LIMIT_WINDOW_SECONDS must be at least 1")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ConfigError(
                    f"TRUSTED_PROXIES must list IP addresses or CIDR networks, got {proxy!r}"
                ) from exc
        if self.environment not in ENVIRONMENTS:
            raise ConfigError(
                f"APP_ENV must be one of {', '.join(ENVIRONMENTS)} (exactly, lower case); "
                f"got {self.environment!r}"
            )
        if self.is_production and self.smtp_host and not self.public_url.startswith("https://"):
            # The email replies' links would point at this machine or go over plain http.
            raise ConfigError(
                "PUBLIC_URL must be the service's https:// address when SMTP_HOST is set"
            )
        if self.is_production:
            secrets: dict[str, tuple[str | None, str | None]] = {
                "RASA_TOKEN": (self.rasa_token, DEV_RASA_TOKEN),
                "RASA_CHANNEL_SECRET": (self.rasa_channel_secret, DEV_RASA_CHANNEL_SECRET),
                "ACTION_SERVER_TOKEN": (self.action_server_token, DEV_ACTION_SERVER_TOKEN),
                "WIDGET_SECRET": (self.widget_secret, DEV_WIDGET_SECRET),
                "EVENTS_SECRET": (self.events_secret, DEV_EVENTS_SECRET),
                # Optional: unset, the outgoing webhook signs with EVENTS_SECRET.
                "OUTGOING_WEBHOOK_SECRET": (self.outgoing_webhook_secret, None),
                # Optional: unset, /metrics is only served on the internal ops port.
                "METRICS_TOKEN": (self.metrics_token, None),
            }
            for name, (value, development_value) in secrets.items():
                if value is None and development_value is None:
                    continue
                if value is None or value == development_value or len(value) < MIN_SECRET_CHARS:
                    raise ConfigError(
                        f"{name} must be set to a secret of at least {MIN_SECRET_CHARS} "
                        f"characters when APP_ENV=production ({_SECRET_HINT})"
                    )

    @classmethod
    def from_env(cls) -> Settings:
        environment = os.environ.get("APP_ENV", "development")
        rasa_token = os.environ.get("RASA_TOKEN", DEV_RASA_TOKEN)
        widget_secret = os.environ.get("WIDGET_SECRET", DEV_WIDGET_SECRET)
        events_secret = os.environ.get("EVENTS_SECRET", DEV_EVENTS_SECRET)
        origins = os.environ.get("ALLOWED_ORIGINS", "")
        return cls(
            database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            environment=environment,
            rasa_url=os.environ.get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
            rasa_token=rasa_token,
            rasa_channel_secret=os.environ.get("RASA_CHANNEL_SECRET", DEV_RASA_CHANNEL_SECRET),
            action_server_token=os.environ.get("ACTION_SERVER_TOKEN", DEV_ACTION_SERVER_TOKEN),
            web_host=os.environ.get("WEB_HOST", "127.0.0.1"),
            web_port=_env_int("WEB_PORT", 8000),
            max_message_chars=_env_int("MAX_MESSAGE_CHARS", 2000),
            return_window_days=_env_int("RETURN_WINDOW_DAYS", 30),
            late_grace_days=_env_int("LATE_GRACE_DAYS", 2),
            replacement_after_days=_env_int("REPLACEMENT_AFTER_DAYS", 7),
            lifecycle_sweep_seconds=_env_int("LIFECYCLE_SWEEP_SECONDS", 3600),
            survey_fatigue_days=_env_int("SURVEY_FATIGUE_DAYS", 7),
            transactional_survey_quiet_hours=_env_int("TRANSACTIONAL_SURVEY_QUIET_HOURS", 24),
            allowed_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            widget_secret=widget_secret,
            identity_max_lifetime_seconds=_env_int("IDENTITY_MAX_LIFETIME_SECONDS", 86400),
            rate_limit_messages=_env_int("RATE_LIMIT_MESSAGES", 12),
            support_hours=os.environ.get("SUPPORT_HOURS", cls.support_hours),
            support_email=os.environ.get("SUPPORT_EMAIL", "support@example.com"),
            escalation_aging_minutes=_env_int("ESCALATION_AGING_MINUTES", 15),
            claim_idle_minutes=_env_int("CLAIM_IDLE_MINUTES", 15),
            action_server_url=os.environ.get("ACTION_SERVER_URL", "http://127.0.0.1:5055/webhook"),
            redis_url=os.environ.get("REDIS_URL") or None,
            rasa_max_in_flight=_env_int("RASA_MAX_IN_FLIGHT", 4),
            log_format=os.environ.get("LOG_FORMAT", "text"),
            language_detection=_env_languages("LANGUAGE_DETECTION"),
            pitfall_csat_below=_env_int("PITFALL_CSAT_BELOW", 60),
            pitfall_nps_below=_env_int("PITFALL_NPS_BELOW", 0),
            pitfall_dropoff_above=_env_int("PITFALL_DROPOFF_ABOVE", 70),
            pitfall_min_responses=_env_int("PITFALL_MIN_RESPONSES", 5),
            dashboard_min_answers=_env_int("DASHBOARD_MIN_ANSWERS", 10),
            insight_min_window_days=_env_int("INSIGHT_MIN_WINDOW_DAYS", 14),
            demo_crowd_customers=_env_int("DEMO_CROWD_CUSTOMERS", 2000),
            alert_check_seconds=_env_int("ALERT_CHECK_SECONDS", 3600),
            alert_band_sd=_env_float("ALERT_BAND_SD", 2.0),
            alert_band_weeks=_env_int("ALERT_BAND_WEEKS", 8),
            alert_spike_ratio=_env_float("ALERT_SPIKE_RATIO", 2.0),
            alert_spike_min=_env_int("ALERT_SPIKE_MIN", 5),
            alert_webhook_url=os.environ.get("ALERT_WEBHOOK_URL") or None,
            alert_digest_to=os.environ.get("ALERT_DIGEST_TO") or None,
            alert_digest_hour=_env_int("ALERT_DIGEST_HOUR", 7),
            support_sla_resolution_hours=_env_int("SUPPORT_SLA_RESOLUTION_HOURS", 24),
            transcript_retention_days=_env_int("TRANSCRIPT_RETENTION_DAYS", 365),
            events_secret=events_secret,
            events_max_body_bytes=_env_int("EVENTS_MAX_BODY_BYTES", 64 * 1024),
            events_signature_tolerance_seconds=_env_int("EVENTS_SIGNATURE_TOLERANCE_SECONDS", 300),
            events_appliers=max(1, _env_int("EVENTS_APPLIERS", 2)),
            detractor_due_hours=_env_int("DETRACTOR_DUE_HOURS", 48),
            outgoing_webhook_url=os.environ.get("OUTGOING_WEBHOOK_URL") or None,
            outgoing_webhook_secret=os.environ.get("OUTGOING_WEBHOOK_SECRET") or None,
            outgoing_webhook_poll_seconds=_env_int("OUTGOING_WEBHOOK_POLL_SECONDS", 2),
            intent_confidence_threshold=_env_float("INTENT_CONFIDENCE_THRESHOLD", 0.80),
            intent_margin=_env_float("INTENT_MARGIN", 0.15),
            metrics_token=os.environ.get("METRICS_TOKEN") or None,
            ops_host=os.environ.get("OPS_HOST", "127.0.0.1"),
            ops_port=_env_int("OPS_PORT", 0) or None,
            staff_idle_minutes=_env_int("STAFF_IDLE_MINUTES", 30),
            client_new_conversations=_env_int("CLIENT_NEW_CONVERSATIONS", 20),
            client_websockets=_env_int("CLIENT_WEBSOCKETS", 50),
            client_limit_window_seconds=_env_int("CLIENT_LIMIT_WINDOW_SECONDS", 600),
            staff_2fa=os.environ.get("STAFF_2FA", "optional"),
            review_rephrase_similarity=_env_float("REVIEW_REPHRASE_SIMILARITY", 0.6),
            smtp_host=os.environ.get("SMTP_HOST") or None,
            smtp_port=_env_int("SMTP_PORT", 587),
            smtp_from=os.environ.get("SMTP_FROM") or "support@example.com",
            smtp_user=os.environ.get("SMTP_USER") or None,
            smtp_password=os.environ.get("SMTP_PASSWORD") or None,
            smtp_starttls=_env_bool("SMTP_STARTTLS", True),
            smtp_timeout_seconds=_env_float("SMTP_TIMEOUT_SECONDS", 10.0),
            email_reply_minutes=_env_int("EMAIL_REPLY_MINUTES", 10),
            email_reply_gather_seconds=_env_float("EMAIL_REPLY_GATHER_SECONDS", 30.0),
            public_url=(os.environ.get("PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
            photo_dir=Path(os.environ.get("PHOTO_DIR") or PROJECT_ROOT / "var" / "photos"),
            photo_max_bytes=_env_int("PHOTO_MAX_BYTES", 10 * 1024 * 1024),
            photo_max_pixels=_env_int("PHOTO_MAX_PIXELS", 40_000_000),
            photo_max_per_conversation=_env_int("PHOTO_MAX_PER_CONVERSATION", 20),
            trusted_proxies=tuple(
                p.strip() for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
        )
