"""bot/mail.py against the tests' local SMTP server (tests/smtp_server.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Settings
from bot.mail import MailDisabled, Mailer, MailError, OutgoingEmail, build_message
from tests.smtp_server import SmtpSink, smtp_server, smtp_settings, text_of  # noqa: F401


async def test_sends_a_plain_text_email(smtp_server: SmtpSink) -> None:  # noqa: F811
    settings = smtp_settings(smtp_server, Settings(), smtp_from="help@shop.test")
    mailer = Mailer(settings)
    assert mailer.enabled
    message_id = await mailer.send(
        to="ann@example.com", subject="Your chat", text="Hello Ann,\nwe replied.", from_name="Shop"
    )
    [message] = await smtp_server.wait(1)
    assert message["To"] == "ann@example.com"
    assert message["From"] == "Shop <help@shop.test>"
    assert message["Subject"] == "Your chat"
    assert message["Message-ID"] == message_id
    assert text_of(message) == "Hello Ann,\nwe replied.\n"
    assert smtp_server.envelopes[0].mail_from == "help@shop.test"
    assert smtp_server.envelopes[0].rcpt_tos == ("ann@example.com",)


async def test_html_alternative(smtp_server: SmtpSink) -> None:  # noqa: F811
    mailer = Mailer(smtp_settings(smtp_server, Settings()))
    await mailer.send(to="b@example.com", subject="S", text="plain", html="<p>rich</p>")
    [message] = await smtp_server.wait(1)
    assert text_of(message) == "plain\n"
    html = message.get_body(("html",))
    assert html is not None and html.get_content().replace("\r\n", "\n") == "<p>rich</p>\n"


async def test_disabled_by_default() -> None:
    mailer = Mailer(Settings())
    assert not mailer.enabled
    with pytest.raises(MailDisabled):
        await mailer.send(to="a@example.com", subject="S", text="t")


async def test_unreachable_server_is_a_mail_error() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused.
    mailer = Mailer(Settings(smtp_host="127.0.0.1", smtp_port=1, smtp_starttls=False))
    with pytest.raises(MailError):
        await mailer.send(to="a@example.com", subject="S", text="t")


def test_header_line_breaks_refused() -> None:
    settings = Settings(smtp_host="127.0.0.1")
    with pytest.raises(MailError):
        build_message(
            settings, OutgoingEmail(to="a@example.com\nBcc: x@evil", subject="S", text="t")
        )
    with pytest.raises(MailError):
        build_message(settings, OutgoingEmail(to="a@example.com", subject="S\r\nX: y", text="t"))


def test_smtp_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("SMTP_PORT", "2525")
    monkeypatch.setenv("SMTP_FROM", "help@example.com")
    monkeypatch.setenv("SMTP_USER", "bot")
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    monkeypatch.setenv("SMTP_STARTTLS", "false")
    settings = Settings.from_env()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_from) == (
        "mail.example.com",
        2525,
        "help@example.com",
    )
    assert (settings.smtp_user, settings.smtp_password, settings.smtp_starttls) == (
        "bot",
        "pw",
        False,
    )
    monkeypatch.delenv("SMTP_HOST")
    assert Settings.from_env().smtp_host is None


def test_production_email_needs_a_public_https_address() -> None:
    from bot.config import ConfigError

    production: dict[str, Any] = {
        name: "x" * 40
        for name in (
            "rasa_token",
            "rasa_channel_secret",
            "action_server_token",
            "widget_secret",
            "events_secret",
        )
    }
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        Settings(environment="production", smtp_host="mail.example.com", **production)
    settings = Settings(
        environment="production",
        smtp_host="mail.example.com",
        public_url="https://help.example.com",
        **production,
    )
    assert settings.public_url == "https://help.example.com"
    assert Settings(environment="production", **production).smtp_host is None  # email off: fine
