"""Customer identity tokens made by the shop's backend: HS256 JWTs (SPEC §5).

Claims: `sub` = the customer's external id (the shop's id), `exp` (required), `aud` =
"shop-chat" (so a token made for another purpose is refused), optional `email` and `name`
used to create the customer on first contact.

Single use (issue #16): a token with a `jti` (a string of at most 128 characters) is bound
to the first conversation it identifies (bot/domain/conversations.py `start_or_resume`,
table `identity_token_uses`): the same tab reconnecting with that conversation's resume
token is let in again, any other use of the token is refused (`TokenProblem.replayed`).
Tokens without a `jti` may be used any number of times until they expire.

Lifetime (issue #16): a token may live at most `max_lifetime_seconds`
(IDENTITY_MAX_LIFETIME_SECONDS, default 24 h): `exp - iat` when it has an `iat`,
otherwise `exp - now`; and always `exp - now`, so an old `iat` cannot stretch it. The token
sits in the shop's page, readable by any script there: a long-lived one is a long-lived
key to the customer's chat.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt

from bot.domain import texts

AUDIENCE = "shop-chat"
MAX_TOKEN_CHARS = 4096
MAX_EMAIL_CHARS = 254  # the customers table's column sizes
MAX_NAME_CHARS = 200
MAX_LIFETIME_SECONDS = 86400
MAX_JTI_CHARS = 128  # the identity_token_uses table's key


class TokenProblem(str, enum.Enum):
    expired = "token_expired"
    invalid = "token_invalid"
    too_long_lived = "token_lifetime_too_long"
    replayed = "token_already_used"


# The response naming each problem; others get utter_signin_unconfirmed.
_MESSAGES = {
    TokenProblem.expired: "utter_signin_expired",
    TokenProblem.replayed: "utter_signin_replayed",
}


def problem_message(problem: TokenProblem) -> str:
    """What the customer is told when their identity token is not applied."""
    return " ".join(
        (
            texts.render(_MESSAGES.get(problem, "utter_signin_unconfirmed")),
            texts.render("utter_signin_still_chat"),
        )
    )


@dataclass(frozen=True)
class CustomerClaims:
    external_id: str
    email: str | None
    name: str | None
    # Single-use tokens: the token's id and when it expires (then its use is forgotten).
    jti: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class TokenCheck:
    claims: CustomerClaims | None
    problem: TokenProblem | None = None

    @property
    def message(self) -> str:
        return problem_message(self.problem or TokenProblem.invalid)


def issue_token(
    secret: str,
    external_id: str,
    *,
    ttl: timedelta = timedelta(hours=1),
    email: str | None = None,
    name: str | None = None,
    jti: str | None = None,
    now: datetime | None = None,
) -> str:
    """What a shop's backend does (see docs/widget.md); also used by the demo shop."""
    issued = now or datetime.now(timezone.utc)
    claims: dict[str, object] = {
        "sub": external_id,
        "aud": AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    if jti:
        claims["jti"] = jti
    return jwt.encode(claims, secret, algorithm="HS256")


def check_token(
    secret: str,
    token: str,
    *,
    max_lifetime_seconds: int = MAX_LIFETIME_SECONDS,
    now: float | None = None,
) -> TokenCheck:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return TokenCheck(None, TokenProblem.invalid)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        return TokenCheck(None, TokenProblem.expired)
    except jwt.PyJWTError:
        return TokenCheck(None, TokenProblem.invalid)
    current = time.time() if now is None else now
    expires, issued = claims["exp"], claims.get("iat")
    lifetime = expires - (issued if isinstance(issued, (int, float)) else current)
    if lifetime > max_lifetime_seconds or expires - current > max_lifetime_seconds:
        return TokenCheck(None, TokenProblem.too_long_lived)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 64:
        return TokenCheck(None, TokenProblem.invalid)
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS):
        # A single-use token whose use we could not record: refused, not made reusable.
        return TokenCheck(None, TokenProblem.invalid)
    return TokenCheck(
        CustomerClaims(
            subject.strip(),
            _text_claim(claims.get("email"), MAX_EMAIL_CHARS),
            _text_claim(claims.get("name"), MAX_NAME_CHARS),
            jti=jti,
            expires_at=datetime.fromtimestamp(expires, timezone.utc),
        )
    )


def _text_claim(value: object, limit: int) -> str | None:
    # Longer than the customers table holds: ignored rather than failing the chat.
    return value if isinstance(value, str) and len(value) <= limit else None
