"""Single-use identity tokens (issue #16 item 6): a token with a `jti` identifies one
conversation; the same tab may reconnect with it, any other use is refused and the visitor
stays anonymous. Tokens without a `jti` are unaffected."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import conversations
from bot.domain.conversations import ChatSession, start_or_resume
from bot.domain.identity import TokenProblem, check_token, issue_token, problem_message
from bot.storage.models import IdentityTokenUse, utcnow

Sessions = async_sessionmaker[AsyncSession]
SECRET = "dev-widget-secret-change-me-in-production"  # the test settings' widget secret


def _claims(jti: str | None, customer: str = "C9001") -> Any:
    check = check_token(SECRET, issue_token(SECRET, customer, name="Jane", jti=jti))
    assert check.claims is not None
    return check.claims


async def _start(sessions: Sessions, token: str | None, claims: Any) -> ChatSession:
    async with sessions() as db, db.begin():
        return await start_or_resume(db, token, claims)


def test_the_jti_and_expiry_are_read_from_the_token() -> None:
    claims = _claims("abc-1")
    assert claims.jti == "abc-1" and claims.expires_at is not None
    assert timedelta(minutes=55) < claims.expires_at - utcnow() <= timedelta(hours=1)
    assert _claims(None).jti is None


@pytest.mark.parametrize("jti", [123, "", "x" * 129], ids=["number", "empty", "too-long"])
def test_a_malformed_jti_is_refused(jti: object) -> None:
    import jwt

    now = int(utcnow().timestamp())
    token = jwt.encode(
        {"sub": "C9001", "aud": "shop-chat", "iat": now, "exp": now + 600, "jti": jti},
        SECRET,
        algorithm="HS256",
    )
    check = check_token(SECRET, token)
    assert check.claims is None and check.problem is TokenProblem.invalid


async def test_a_second_use_from_a_new_conversation_is_refused(session_factory: Sessions) -> None:
    claims = _claims("once-1")
    first = await _start(session_factory, None, claims)
    assert first.verified and first.identity_problem is None
    second = await _start(session_factory, None, claims)
    assert second.identity_problem is TokenProblem.replayed
    assert not second.verified and second.customer is None
    assert second.conversation.id != first.conversation.id
    assert second.conversation.customer_id is None
    async with session_factory() as db:
        use = (await db.execute(select(IdentityTokenUse))).scalar_one()
        assert (use.jti, use.customer_external_id, use.conversation_id) == (
            "once-1",
            "C9001",
            first.conversation.id,
        )
        assert use.expires_at == claims.expires_at


async def test_the_same_tab_reconnecting_with_its_resume_token_is_let_in(
    session_factory: Sessions,
) -> None:
    claims = _claims("tab-1")
    first = await _start(session_factory, None, claims)
    again = await _start(session_factory, first.token, claims)
    assert again.identity_problem is None and again.verified
    assert again.conversation.id == first.conversation.id and again.token == first.token
    # Another conversation's resume token does not make a replay a reconnect.
    other = await _start(session_factory, None, None)
    stolen = await _start(session_factory, other.token, claims)
    assert stolen.identity_problem is TokenProblem.replayed and not stolen.verified
    # Nor does the resume token of the right conversation with a token for someone else.
    forged = await _start(session_factory, first.token, _claims("tab-1", customer="C9002"))
    assert forged.identity_problem is TokenProblem.replayed and not forged.verified
    assert forged.conversation.id != first.conversation.id  # a login's chat stays private


async def test_an_anonymous_chat_identified_by_the_token_can_reconnect(
    session_factory: Sessions,
) -> None:
    anonymous = await _start(session_factory, None, None)
    claims = _claims("login-1")
    signed_in = await _start(session_factory, anonymous.token, claims)
    assert signed_in.verified and signed_in.conversation.id == anonymous.conversation.id
    again = await _start(session_factory, anonymous.token, claims)
    assert again.verified and again.identity_problem is None


async def test_tokens_without_jti_are_unaffected(session_factory: Sessions) -> None:
    claims = _claims(None)
    chats = [await _start(session_factory, None, claims) for _ in range(3)]
    assert all(c.verified and c.identity_problem is None for c in chats)
    assert len({c.conversation.id for c in chats}) == 3
    async with session_factory() as db:
        assert (await db.execute(select(IdentityTokenUse))).all() == []


async def test_a_use_racing_past_the_check_is_refused_and_its_transaction_survives(
    session_factory: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = _claims("race-1")
    winner = await _start(session_factory, None, claims)

    async def never_seen(*_: object) -> None:
        return None  # read before the winner committed

    monkeypatch.setattr(conversations, "_use_known", never_seen)
    loser = await _start(session_factory, None, claims)
    assert winner.verified
    assert loser.identity_problem is TokenProblem.replayed and not loser.verified
    async with session_factory() as db:
        use = (await db.execute(select(IdentityTokenUse))).scalar_one()
        assert use.conversation_id == winner.conversation.id
        # The loser's (anonymous) conversation was committed: the outer transaction lived.
        from bot.storage.models import Conversation

        stored = await db.get(Conversation, loser.conversation.id)
        assert stored is not None and stored.customer_id is None


async def test_two_concurrent_uses_one_wins(session_factory: Sessions, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers; the race is simulated in the test above")
    claims = _claims("race-2")
    results = await asyncio.gather(
        *(_start(session_factory, None, claims) for _ in range(4)), return_exceptions=True
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    chats = [r for r in results if isinstance(r, ChatSession)]
    assert sum(c.verified for c in chats) == 1
    assert sum(c.identity_problem is TokenProblem.replayed for c in chats) == 3


async def test_expired_uses_are_forgotten_when_a_new_one_is_recorded(
    session_factory: Sessions,
) -> None:
    async with session_factory() as db, db.begin():
        db.add_all(
            [
                IdentityTokenUse(
                    jti=f"old-{i}",
                    customer_external_id="C9001",
                    conversation_id=None,
                    expires_at=utcnow() - timedelta(minutes=1),
                )
                for i in range(3)
            ]
            + [
                IdentityTokenUse(
                    jti="live",
                    customer_external_id="C9001",
                    conversation_id=None,
                    expires_at=utcnow() + timedelta(minutes=10),
                )
            ]
        )
    await _start(session_factory, None, _claims("new-1"))
    async with session_factory() as db:
        left = set((await db.execute(select(IdentityTokenUse.jti))).scalars())
    assert left == {"live", "new-1"}


# ---- the WebSocket -----------------------------------------------------------------------


async def _open_as(
    client: TestClient[web.Request, web.Application],
    token: str | None = None,
    identity: str | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": token, "identity": identity})
    frames = [await ws.receive_json(timeout=5)]
    while frames[-1]["type"] != "session":
        frames.append(await ws.receive_json(timeout=5))
    return ws, frames


async def test_a_replayed_token_is_refused_over_the_websocket(
    client: TestClient[web.Request, web.Application],
) -> None:
    identity = issue_token(SECRET, "C9101", name="Jane", jti="ws-once-1")
    ws, frames = await _open_as(client, identity=identity)
    assert [f["type"] for f in frames] == ["session"]
    assert (frames[-1]["identity"], frames[-1]["customer_name"]) == ("verified", "Jane")
    resume = frames[-1]["token"]
    await ws.close()

    # The same tab reconnecting (its resume token) keeps the login.
    ws, again = await _open_as(client, resume, identity)
    assert [f["type"] for f in again] == ["session"] and again[-1]["identity"] == "verified"
    await ws.close()

    # A fresh connection (another tab, or someone who copied the token) does not.
    ws, replay = await _open_as(client, identity=identity)
    assert replay[0]["type"] == "error" and replay[0]["error"]["code"] == "identity_refused"
    assert replay[0]["error"]["message"] == problem_message(TokenProblem.replayed)
    assert (replay[-1]["identity"], replay[-1]["customer_name"]) == ("anonymous", None)
    assert replay[-1]["token"] != resume and replay[-1]["history"] == []
    await ws.close()
