"""A local SMTP server for tests: receives over real SMTP and keeps every message.

    from tests.smtp_server import SmtpSink, smtp_server, smtp_settings  # noqa: F401 (fixture)

    async def test_x(smtp_server: SmtpSink, settings: Settings) -> None:
        mailer = Mailer(smtp_settings(smtp_server, settings))
        await mailer.send(to="a@example.com", subject="Hi", text="Hello")
        [message] = await smtp_server.wait(1)
        assert message["To"] == "a@example.com"

`running_smtp_server()` is the same as a context manager (e.g. for a module-scoped fixture).
The server (aiosmtpd) runs in its own thread and event loop on a free loopback port, so
it serves async tests, Playwright's sync tests and a web service in a background thread
alike. `messages` holds `email.message.EmailMessage` objects (modern policy: use
`message.get_body(("plain",)).get_content()` for the text); `envelopes` the SMTP envelope
(MAIL FROM, RCPT TO). `clear()` empties both. No TLS and no login: settings from
`smtp_settings` turn STARTTLS off and leave SMTP_USER unset.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.config import Settings


@dataclass(frozen=True)
class ReceivedEnvelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]


class SmtpSink:
    """The collecting side: aiosmtpd calls `handle_DATA` for each message."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.envelopes: list[ReceivedEnvelope] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = message_from_bytes(data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append(parsed)
            self.envelopes.append(
                ReceivedEnvelope(str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos))
            )
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()

    def snapshot(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    async def wait(self, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """Wait (async) until at least `count` messages arrived; returns all of them."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} email(s), got {len(self.messages)}")
            await asyncio.sleep(0.02)
        return self.snapshot()

    def wait_sync(self, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """The same for synchronous tests (Playwright's sync API)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} email(s), got {len(self.messages)}")
            time.sleep(0.02)
        return self.snapshot()


def text_of(message: EmailMessage) -> str:
    """The plain-text body of a received message (line ends as \\n)."""
    body = message.get_body(("plain",))
    assert body is not None, "the email has no text/plain part"
    content: Any = body.get_content()
    return str(content).replace("\r\n", "\n")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def smtp_settings(sink: SmtpSink, settings: Settings, **overrides: Any) -> Settings:
    """`settings` sending email to `sink` (plain SMTP, no login)."""
    return replace(
        settings,
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_starttls=False,
        smtp_user=None,
        smtp_password=None,
        **overrides,
    )


@contextmanager
def running_smtp_server() -> Iterator[SmtpSink]:
    """A local SMTP server while the block runs (for module-scoped fixtures)."""
    sink = SmtpSink()
    for attempt in range(3):
        sink.port = _free_port()
        controller = Controller(sink, hostname=sink.host, port=sink.port)
        try:
            controller.start()
        except Exception:  # the port was taken between probing and binding: try another
            if attempt == 2:
                raise
            continue
        break
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A running local SMTP server for one test."""
    with running_smtp_server() as sink:
        yield sink
