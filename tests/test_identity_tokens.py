"""Customer identity tokens (bot/domain/identity.py): signature, algorithm, expiry, audience
and required claims are all checked; nothing else identifies a customer."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import Settings
from bot.domain.identity import (
    AUDIENCE,
    MAX_TOKEN_CHARS,
    TokenProblem,
    check_token,
    issue_token,
)
from bot.web.app import create_app

SECRET = "a-widget-secret-long-enough-for-hs512-too-0123456789abcdefghijklmnop"


# The parametrised tokens below are made when the module is collected; they are checked at
# that moment (a loaded two-core run reached them 14 min later, expired: invalid for the
# wrong reason).
MADE_AT = datetime.now(timezone.utc).timestamp()


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
        jwt.encode(
            _claims(),
            "another-secret-long-enough-for-hs512-too-0123456789abcdefghijklmno",
            algorithm="HS256",
        ),
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
        "wrong-secret",
        "wrong-audience",
        "no-audience",
        "no-expiry",
        "no-subject",
        "empty-subject",
        "long-subject",
        "hs512",
        "alg-none",
        "tampered",
        "oversized",
        "empty",
    ],
)
def test_bad_tokens_identify_nobody(token: str) -> None:
    check = check_token(SECRET, token, now=MADE_AT)
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


# ---- issue #16: a maximum lifetime ---------------------------------------------------------


def _encoded(**changes: object) -> str:
    return jwt.encode(_claims(**changes), SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("lifetime", "iat_offset", "accepted"),
    [
        (86400, 0, True),  # exactly the maximum
        (86401, 0, False),
        (365 * 86400, 0, False),  # the year-long token a shop might make "to be safe"
        (86400 + 3600, -3600, False),  # issued an hour ago for 25 h: still too long
        (86400, -82800, True),  # issued 23 h ago for 24 h: fine
    ],
)
def test_a_token_living_longer_than_the_maximum_is_refused(
    lifetime: int, iat_offset: int, accepted: bool
) -> None:
    iat = int(datetime.now(timezone.utc).timestamp()) + iat_offset
    token = _encoded(iat=iat, exp=iat + lifetime)
    check = check_token(SECRET, token, max_lifetime_seconds=86400)
    assert (check.problem is None) is accepted, check.problem
    if not accepted:
        assert check.problem is TokenProblem.too_long_lived and check.claims is None


def test_without_iat_the_time_left_counts() -> None:
    now = int(datetime.now(timezone.utc).timestamp())
    assert (
        check_token(SECRET, _encoded(iat=None, exp=now + 3600), max_lifetime_seconds=7200).problem
        is None
    )
    refused = check_token(SECRET, _encoded(iat=None, exp=now + 7300), max_lifetime_seconds=7200)
    assert refused.problem is TokenProblem.too_long_lived


def test_a_future_iat_does_not_stretch_the_lifetime() -> None:
    now = int(datetime.now(timezone.utc).timestamp())
    # iat in the future would make exp - iat small; PyJWT refuses it (not yet valid).
    check = check_token(SECRET, _encoded(iat=now + 86400 * 30, exp=now + 86400 * 30 + 60))
    assert check.problem is not None


def test_the_default_maximum_is_a_day() -> None:
    now = int(datetime.now(timezone.utc).timestamp())
    assert check_token(SECRET, _encoded(iat=now, exp=now + 86400)).problem is None
    assert check_token(SECRET, _encoded(iat=now, exp=now + 86401)).problem is not None


async def _hello_as(client: Any, identity: str) -> list[dict[str, Any]]:
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "identity": identity})
        frames = [await ws.receive_json(timeout=5)]
        while frames[-1]["type"] != "session":
            frames.append(await ws.receive_json(timeout=5))
        return frames


async def test_the_chat_applies_the_configured_maximum(engine: Any, settings: Settings) -> None:
    app = create_app(replace(settings, identity_max_lifetime_seconds=3600))
    async with TestClient(TestServer(app)) as client:
        secret = settings.widget_secret
        ok = await _hello_as(client, issue_token(secret, "C7001", ttl=timedelta(minutes=30)))
        assert [f["type"] for f in ok] == ["session"] and ok[-1]["identity"] == "verified"
        long_lived = issue_token(secret, "C7001", ttl=timedelta(hours=2))
        refused = await _hello_as(client, long_lived)
        assert refused[0]["error"]["code"] == "identity_refused"
        assert refused[-1]["identity"] == "anonymous"
