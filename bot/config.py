"""Settings read from environment variables, with safe development defaults."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

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


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_optional_str(name: str, default: None) -> str | None:
    return os.environ.get(name) or None


def _env_optional_int(name: str, default: None) -> int | None:
    return _env_int(name, 0) or None


def _env_path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name) or default)


def _env_list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated values; blanks dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _env_languages(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None:
        return default
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
    def variables(cls) -> dict[str, str]:
        """Each setting read from the environment: field name -> variable name."""
        return {
            f.name: _VARIABLE_NAMES.get(f.name, f.name.upper())
            for f in fields(cls)
            if f.name not in _SET_IN_CODE_ONLY
        }

    @classmethod
    def from_env(cls) -> Settings:
        """Each variable that is set replaces its field's default (defined once, above)."""
        defaults = {f.name: _default(f) for f in fields(cls)}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in _SET_IN_CODE_ONLY:
                continue
            reader = _FIELD_READERS.get(f.name) or _TYPE_READERS[str(f.type)]
            values[f.name] = reader(_VARIABLE_NAMES.get(f.name, f.name.upper()), defaults[f.name])
        return cls(**values)


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    assert f.default_factory is not MISSING, f.name
    return f.default_factory()


# Settings made in code only (tests, create_app(settings)), never read from the environment.
_SET_IN_CODE_ONLY = frozenset({"rasa_timeout_seconds", "rate_window_seconds"})
# A variable whose name is not its field's name in upper case.
_VARIABLE_NAMES = {"environment": "APP_ENV"}
# How a variable is read, by the field's type (its annotation as written above) ...
_TYPE_READERS: dict[str, Callable[[str, Any], Any]] = {
    "str": _env_str,
    "str | None": _env_optional_str,
    "int": _env_int,
    "int | None": _env_optional_int,
    "float": _env_float,
    "bool": _env_bool,
    "Path": _env_path,
    "tuple[str, ...]": _env_list,
}
# ... or, for these fields, by a reader of their own.
_FIELD_READERS: dict[str, Callable[[str, Any], Any]] = {
    "rasa_url": lambda name, default: _env_str(name, default).rstrip("/"),
    "public_url": lambda name, default: (os.environ.get(name) or default).rstrip("/"),
    "smtp_from": lambda name, default: os.environ.get(name) or default,
    "events_appliers": lambda name, default: max(1, _env_int(name, default)),
    "language_detection": _env_languages,
}
