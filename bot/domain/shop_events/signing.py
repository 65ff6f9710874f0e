"""The shop events' signatures (docs/events.md): `X-Signature: t=<unix seconds>,v1=<hex
HMAC-SHA256 of "<t>.<raw body>">`, made by `signature_header` (the outgoing webhook
signs the same way) and checked by `check_signature`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time

# Signatures (docs/events.md): `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
# "<t>.<raw body>">`. The timestamp is signed, so a captured request cannot be replayed
# after the tolerance, whatever its `occurred_at` says.
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_SIGNATURE_HEADER_CHARS = 1024


# ---- signatures --------------------------------------------------------------------------


class SignatureProblem(str, enum.Enum):
    malformed = "malformed"  # missing, or not `t=<digits>,v1=<64 hex>`
    wrong = "wrong"  # no v1 value matches
    stale = "stale"  # right, but its timestamp is outside the tolerance


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Signature` value for a raw body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<body>">`, timestamped now unless `timestamp` is given. Sign the exact bytes sent,
    and sign again (a new `t`) for every delivery, retries included."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


sign = signature_header  # the name used before issue #16 (same arguments)


def _parse_header(header: str | None) -> tuple[int, list[str]] | None:
    if not header or len(header) > MAX_SIGNATURE_HEADER_CHARS:
        return None
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if (
                timestamp is not None
                or not (value.isascii() and value.isdigit())
                or len(value) > 12
            ):
                return None
            timestamp = int(value)
        elif key == "v1":
            if len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
                return None
            signatures.append(value)
        # other schemes (v0, a future v2) are ignored, as payment providers do
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def check_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> SignatureProblem | None:
    """None when `header` signs `body` with `secret` and its timestamp lies within
    `tolerance_seconds` of `now` (past or future); otherwise what is wrong. The HMAC is
    compared in constant time; any one of several `v1` values may match (secret rotation).
    Only the signature's timestamp is checked, never the event's `occurred_at`."""
    parsed = _parse_header(header)
    if parsed is None:
        return SignatureProblem.malformed
    timestamp, signatures = parsed
    expected = _digest(secret, timestamp, body).encode()
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        return SignatureProblem.wrong
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return SignatureProblem.stale
    return None


def signature_ok(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    return (
        check_signature(secret, body, header, tolerance_seconds=tolerance_seconds, now=now) is None
    )
