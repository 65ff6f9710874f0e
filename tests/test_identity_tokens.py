"""Customer identity tokens (bot/domain/identity.py): signature, algorithm, expiry, audience
and required claims are all checked; nothing else identifies a customer."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from bot.domain.identity import (
    AUDIENCE,
    MAX_TOKEN_CHARS,
    TokenProblem,
    check_token,
    issue_token,
)

SECRET = "a-widget-secret-long-enough-for-hs512-too-0123456789abcdefghijklmnop"


def _claims(**changes: object) -> dict[str, object]:
    now = int(datetime.now(timezone.utc).timestamp())
    claims: dict[str, object] = {"sub": "C1001", "aud": AUDIENCE, "iat": now, "exp": now + 600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_names_the_customer() -> None:
    check = check_token(SECRET, issue_token(SECRET, "C1001", name="Jane", email="j@example.com"))
    assert check.problem is None and check.claims is not None
    assert (check.claims.external_id, check.claims.name, check.claims.email) == (
        "C1001",
        "Jane",
        "j@example.com",
    )


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(), "another-secret-long-enough-for-hs512-too-0123456789abcdefghijklmno", algorithm="HS256"),
        jwt.encode(_claims(aud="shop-admin"), SECRET, algorithm="HS256"),  # other purpose
        jwt.encode(_claims(aud=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),  # never expires
        jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(sub=""), SECRET, algorithm="HS256"),
        jwt.encode(_claims(sub="x" * 65), SECRET, algorithm="HS256"),
        jwt.encode(_claims(), SECRET, algorithm="HS512"),  # only HS256 is accepted
        _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".",  # unsigned
        jwt.encode(_claims(), SECRET, algorithm="HS256")[:-2] + "xx",  # tampered signature
        "x" * (MAX_TOKEN_CHARS + 1),
        "",
    ],
    ids=[
        "wrong-secret", "wrong-audience", "no-audience", "no-expiry", "no-subject",
        "empty-subject", "long-subject", "hs512", "alg-none", "tampered", "oversized", "empty",
    ],
)  # fmt: skip
def test_bad_tokens_identify_nobody(token: str) -> None:
    check = check_token(SECRET, token)
    assert check.claims is None and check.problem is TokenProblem.invalid


def test_expired_token_is_told_apart() -> None:
    old = issue_token(SECRET, "C1001", now=datetime.now(timezone.utc) - timedelta(hours=2))
    check = check_token(SECRET, old)
    assert check.claims is None and check.problem is TokenProblem.expired


def test_oversized_name_or_email_claims_are_ignored() -> None:
    token = jwt.encode(
        _claims(name="n" * 201, email="e" * 250 + "@x.io"), SECRET, algorithm="HS256"
    )
    check = check_token(SECRET, token)
    assert check.claims is not None and (check.claims.name, check.claims.email) == (None, None)
