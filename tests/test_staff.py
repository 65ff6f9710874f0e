"""Staff accounts (bot/domain/staff.py): passwords, sessions, presence, demo users, CLI."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import cli
from bot.cli.staff import STAFF_ROLES
from bot.domain import staff
from bot.domain.enums import StaffRole
from bot.domain.errors import Conflict, InvalidInput
from bot.storage.models import AuditLog, StaffSession, StaffUser, utcnow

PASSWORD = "correct horse battery"


class CountingHasher(PasswordHasher):
    """Cheap parameters (tests stay fast) and a count of verifications."""

    def __init__(self, time_cost: int = 1) -> None:
        super().__init__(time_cost=time_cost, memory_cost=8, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(str(hash))
        return super().verify(hash, password)


@pytest.fixture(autouse=True)
def hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingHasher]:
    cheap = CountingHasher()
    monkeypatch.setattr(staff, "password_hasher", cheap)
    yield cheap


async def _user(
    session: AsyncSession,
    email: str = "Agent.One@Example.com ",
    role: StaffRole = StaffRole.agent,
    name: str = "Agent One",
) -> StaffUser:
    return await staff.create_user(session, email, name, role, PASSWORD)


async def _audit(session: AsyncSession, action: str) -> list[AuditLog]:
    result = await session.execute(
        select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
    )
    return list(result.scalars())


# ---- passwords and accounts ---------------------------------------------------------------


async def test_create_user_hashes_the_password_with_argon2(session: AsyncSession) -> None:
    user = await _user(session)
    await session.commit()
    assert user.email == "agent.one@example.com"
    assert user.display_name == "Agent One"
    assert user.role is StaffRole.agent and user.is_active
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    [audit] = await _audit(session, "create_staff_user")
    assert (audit.actor, audit.target_type, audit.target_id) == (
        "system",
        "staff_user",
        str(user.id),
    )


async def test_authenticate_accepts_right_password_and_any_email_case(
    session: AsyncSession,
) -> None:
    user = await _user(session)
    assert await staff.authenticate(session, "AGENT.one@example.com", PASSWORD) is user


async def test_wrong_password_is_refused(session: AsyncSession) -> None:
    await _user(session)
    assert await staff.authenticate(session, "agent.one@example.com", PASSWORD + "!") is None
    assert await staff.authenticate(session, "agent.one@example.com", "") is None


async def test_unknown_email_is_refused_after_a_full_verification(
    session: AsyncSession, hasher: CountingHasher
) -> None:
    await _user(session)
    hasher.verified.clear()
    assert await staff.authenticate(session, "nobody@example.com", PASSWORD) is None
    # Same work as for a real account: one argon2 verification against a dummy hash.
    assert len(hasher.verified) == 1
    assert hasher.verified[0].startswith("$argon2id$v=19$m=8,t=1,p=1$")


async def test_inactive_user_is_refused(session: AsyncSession, hasher: CountingHasher) -> None:
    user = await _user(session)
    user.is_active = False
    await session.flush()
    hasher.verified.clear()
    assert await staff.authenticate(session, user.email, PASSWORD) is None
    assert len(hasher.verified) == 1


async def test_duplicate_email_is_a_conflict(session: AsyncSession) -> None:
    await _user(session)
    with pytest.raises(Conflict):
        await _user(session, email="AGENT.ONE@example.com")


@pytest.mark.parametrize(
    ("email", "name", "password"),
    [
        ("a@example.com", "A", "short-pwd"),  # 9 characters
        ("not-an-email", "A", PASSWORD),
        ("a@example.com", "   ", PASSWORD),
        ("a@example.com", "A", "x" * (staff.MAX_PASSWORD_CHARS + 1)),
    ],
)
async def test_invalid_input_is_refused(
    session: AsyncSession, email: str, name: str, password: str
) -> None:
    with pytest.raises(InvalidInput):
        await staff.create_user(session, email, name, StaffRole.agent, password)
    assert await staff.list_users(session) == []


async def test_password_of_exactly_ten_characters_is_accepted(session: AsyncSession) -> None:
    user = await staff.create_user(session, "a@example.com", "A", StaffRole.admin, "0123456789")
    assert await staff.authenticate(session, "a@example.com", "0123456789") is user


async def test_login_upgrades_a_hash_made_with_older_parameters(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await _user(session)
    old_hash = user.password_hash
    monkeypatch.setattr(staff, "password_hasher", CountingHasher(time_cost=2))
    assert await staff.authenticate(session, user.email, PASSWORD) is user
    assert user.password_hash != old_hash
    assert ",t=2," in user.password_hash
    await session.commit()
    assert await staff.authenticate(session, user.email, PASSWORD) is user


async def test_list_users_is_sorted_by_email(session: AsyncSession) -> None:
    await _user(session, email="b@example.com")
    await _user(session, email="a@example.com", role=StaffRole.cx_manager)
    assert [u.email for u in await staff.list_users(session)] == ["a@example.com", "b@example.com"]


# ---- sessions -----------------------------------------------------------------------------


async def test_session_lifecycle_stores_only_the_token_hash(session: AsyncSession) -> None:
    user = await _user(session)
    token, csrf = await staff.start_session(session, user)
    await session.commit()
    assert token != csrf and len(token) >= 43 and len(csrf) >= 43

    [row] = (await session.execute(select(StaffSession))).scalars()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.csrf_token)
    assert row.csrf_token == csrf
    assert timedelta(hours=11, minutes=59) < row.expires_at - utcnow() <= timedelta(hours=12)

    found = await staff.session_user(session, token)
    assert found is not None
    assert found[0].id == user.id and found[1].csrf_token == csrf
    assert await staff.session_user(session, token + "x") is None
    assert await staff.session_user(session, "") is None
    assert await staff.session_user(session, "x" * 10_000) is None

    assert await staff.end_session(session, token) is True
    await session.commit()
    assert await staff.session_user(session, token) is None
    assert await staff.end_session(session, token) is False

    [login] = await _audit(session, "login")
    [logout] = await _audit(session, "logout")
    for audit in (login, logout):
        assert audit.actor == f"staff:{user.id}"
        assert (audit.target_type, audit.target_id) == ("staff_user", str(user.id))
        assert token not in str(audit.details)


async def test_expired_session_is_refused_and_deleted(session: AsyncSession) -> None:
    user = await _user(session)
    token, _csrf = await staff.start_session(session, user, ttl=timedelta(seconds=-1))
    await session.commit()
    assert await staff.session_user(session, token) is None
    await session.commit()
    count = await session.scalar(select(func.count()).select_from(StaffSession))
    assert count == 0


async def test_starting_a_session_purges_expired_ones(session: AsyncSession) -> None:
    user = await _user(session)
    await staff.start_session(session, user, ttl=timedelta(seconds=-1))
    await staff.start_session(session, user, ttl=timedelta(seconds=-1))
    live, _csrf = await staff.start_session(session, user)
    await session.commit()
    rows = list((await session.execute(select(StaffSession))).scalars())
    assert [r.token_hash for r in rows] == [hashlib.sha256(live.encode()).hexdigest()]


async def test_session_of_a_deactivated_user_is_refused(session: AsyncSession) -> None:
    user = await _user(session)
    token, _csrf = await staff.start_session(session, user)
    user.is_active = False
    await session.commit()
    assert await staff.session_user(session, token) is None


# ---- presence -----------------------------------------------------------------------------


async def test_presence_and_online_staff(session: AsyncSession) -> None:
    agent = await _user(session, email="agent@example.com", name="Zed")
    admin = await _user(session, email="admin@example.com", role=StaffRole.admin, name="Ada")
    cx = await _user(session, email="cx@example.com", role=StaffRole.cx_manager)
    stale = await _user(session, email="stale@example.com", name="Stale")
    gone = await _user(session, email="gone@example.com", name="Gone")
    gone.is_active = False
    assert await staff.online_staff(session) == []

    for user in (agent, admin, cx, gone):
        await staff.touch_presence(session, user.id)
    await staff.touch_presence(session, stale.id, utcnow() - timedelta(seconds=61))
    await session.commit()

    assert [u.email for u in await staff.online_staff(session)] == [
        "admin@example.com",
        "agent@example.com",
    ]
    assert [u.id for u in await staff.online_staff(session, roles=[StaffRole.agent])] == [agent.id]
    everyone = await staff.online_staff(session, roles=list(StaffRole), within=timedelta(minutes=5))
    assert {u.id for u in everyone} == {agent.id, admin.id, cx.id, stale.id}


async def test_logging_out_of_the_last_session_goes_offline(session: AsyncSession) -> None:
    agent = await _user(session, email="agent@example.com")
    first, _ = await staff.start_session(session, agent)
    second, _ = await staff.start_session(session, agent)
    await staff.touch_presence(session, agent.id)
    await session.commit()

    await staff.end_session(session, first)
    await session.commit()
    assert [u.id for u in await staff.online_staff(session)] == [agent.id]  # other tab open

    await staff.end_session(session, second)
    await session.commit()
    assert await staff.online_staff(session) == []


# ---- demo users ---------------------------------------------------------------------------


async def test_ensure_demo_users_is_idempotent(session: AsyncSession) -> None:
    first = await staff.ensure_demo_users(session)
    await session.commit()
    second = await staff.ensure_demo_users(session)
    await session.commit()
    assert (
        first
        == second
        == [
            ("agent@example.com", "demo-password-123", "agent"),
            ("agent2@example.com", "demo-password-123", "agent"),
            ("cx@example.com", "demo-password-123", "cx_manager"),
            ("admin@example.com", "demo-password-123", "admin"),
        ]
    )
    users = {u.email: u for u in await staff.list_users(session)}
    assert len(users) == 4
    assert users["agent@example.com"].display_name == "Sam (support)"
    assert users["agent2@example.com"].display_name == "Alex (support)"
    assert users["cx@example.com"].display_name == "Chris (CX)"
    assert users["admin@example.com"].display_name == "Ada (admin)"
    for email, password, _role in first:
        assert await staff.authenticate(session, email, password) is users[email]
    assert len(await _audit(session, "create_staff_user")) == 4


# ---- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, engine: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("APP_ENV", raising=False)


def test_cli_roles_match_the_model() -> None:
    assert tuple(r.value for r in StaffRole) == STAFF_ROLES


def test_cli_staff_demo_refuses_in_production(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    assert cli.main(["staff", "demo"]) == 2
    assert "APP_ENV=production" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
def test_cli_staff_create_list_and_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["staff", "create", "--email", "New@Example.com", "--name", "Nia", "--role", "admin"]
    assert cli.main([*args, "--password", PASSWORD]) == 0
    assert "Created admin new@example.com (Nia)" in capsys.readouterr().out

    assert cli.main([*args, "--password", PASSWORD]) == 1
    assert "already exists" in capsys.readouterr().err

    answers = iter(["0123456789", "0123456789x"])
    monkeypatch.setattr("getpass.getpass", lambda _prompt="": next(answers))
    other = ["staff", "create", "--email", "o@example.com", "--name", "O", "--role", "agent"]
    assert cli.main(other) == 1
    assert "do not match" in capsys.readouterr().err

    answers = iter(["0123456789", "0123456789"])
    assert cli.main(other) == 0
    capsys.readouterr()

    assert cli.main(["staff", "demo"]) == 0
    out = capsys.readouterr().out
    assert "/console/login" in out
    assert "agent@example.com" in out and "demo-password-123" in out
    assert cli.main(["staff", "demo"]) == 0  # idempotent
    capsys.readouterr()

    assert cli.main(["staff", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "ROLE", "ACTIVE", "LAST", "SEEN"]
    assert len(lines) == 1 + 6
    [nia] = [line for line in lines if line.startswith("new@example.com")]
    assert nia.split() == ["new@example.com", "Nia", "admin", "yes", "never"]
