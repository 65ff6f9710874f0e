"""Outgoing email over SMTP: one small, shared API (docs/email.md).

Usage::

    mailer = Mailer(settings)            # reads SMTP_* from bot.config.Settings
    if mailer.enabled:                   # False when SMTP_HOST is unset (development default)
        await mailer.send(to="ann@example.com", subject="…", text="…")

`send` builds a plain-text message (optionally with an HTML alternative), opens one SMTP
connection (STARTTLS and login when configured), sends and closes it. It raises
`MailDisabled` when email is off and `MailError` when the server refuses or cannot be
reached, so callers decide whether a failure matters. Nothing is sent at import time and
nothing is global: make a `Mailer` where it is needed (it holds only the settings).

Tests: `tests/smtp_server.py` starts a local SMTP server and collects what it receives;
`smtp_settings(server)` there gives the settings pointing at it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from bot.config import Settings

log = logging.getLogger(__name__)


class MailError(RuntimeError):
    """The message could not be handed to the SMTP server."""


class MailDisabled(MailError):
    """Email is off (SMTP_HOST unset)."""


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None = None
    # Shown as the sender's name; the address is always SMTP_FROM.
    from_name: str | None = None
    reply_to: str | None = None


def build_message(settings: Settings, email: OutgoingEmail) -> EmailMessage:
    """The MIME message `Mailer.send` would send (no header injection: line breaks refused)."""
    for header in (email.to, email.subject, email.from_name or "", email.reply_to or ""):
        if "\r" in header or "\n" in header:
            raise MailError("a header value may not contain a line break")
    message = EmailMessage()
    message["From"] = (
        formataddr((email.from_name, settings.smtp_from)) if email.from_name else settings.smtp_from
    )
    message["To"] = email.to
    message["Subject"] = email.subject
    domain = settings.smtp_from.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=domain)
    if email.reply_to:
        message["Reply-To"] = email.reply_to
    message.set_content(email.text)
    if email.html is not None:
        message.add_alternative(email.html, subtype="html")
    return message


class Mailer:
    """Sends email with the SMTP settings it is given."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def enabled(self) -> bool:
        return self._settings.smtp_host is not None

    async def send(
        self,
        to: str,
        subject: str,
        text: str,
        *,
        html: str | None = None,
        from_name: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send one message; returns its Message-ID. Raises MailDisabled / MailError."""
        email = OutgoingEmail(
            to=to, subject=subject, text=text, html=html, from_name=from_name, reply_to=reply_to
        )
        return await self.send_email(email)

    async def send_email(self, email: OutgoingEmail) -> str:
        settings = self._settings
        if settings.smtp_host is None:
            raise MailDisabled("email is off (SMTP_HOST is not set)")
        message = build_message(settings, email)
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_user,
                password=settings.smtp_password,
                start_tls=settings.smtp_starttls,
                use_tls=False,
                timeout=settings.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("email to the SMTP server %s failed: %s", settings.smtp_host, exc)
            raise MailError(f"the SMTP server did not take the message: {exc}") from exc
        return str(message["Message-ID"])
