"""Staff accounts: argon2 passwords, server-side console sessions, presence, audit.

The functions flush but never commit: the caller owns the transaction. Passwords are
hashed and verified in a worker thread (argon2 is deliberately slow) so the event loop
keeps serving chats meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import audit
from bot.domain.enums import StaffRole
from bot.domain.errors import Conflict, InvalidInput
from bot.storage.models import AuditLog, StaffSession, StaffUser, utcnow

SESSION_TTL = timedelta(hours=12)
# Issue #22: a session's last use is written at most this often (one UPDATE), so the idle
# timeout (STAFF_IDLE_MINUTES) is exact to within this.
LAST_USED_REFRESH = timedelta(seconds=60)
SESSION_KEY_CHARS = 16
MAX_USER_AGENT_CHARS = 200
PRESENCE_WINDOW = timedelta(seconds=60)
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
# A cookie value longer than this cannot be one of ours (token_urlsafe(32) is 43 chars).
_MAX_TOKEN_CHARS = 128
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

DEMO_PASSWORD = "demo-password-123"
DEMO_USERS: tuple[tuple[str, str, StaffRole], ...] = (
    ("agent@example.com", "Sam (support)", StaffRole.agent),
    ("agent2@example.com", "Alex (support)", StaffRole.agent),
    ("cx@example.com", "Chris (CX)", StaffRole.cx_manager),
    ("admin@example.com", "Ada (admin)", StaffRole.admin),
)

# argon2-cffi's defaults (RFC 9106 "low memory" profile). Tests may swap in a cheaper one.
password_hasher = PasswordHasher()


# ---- passwords ---------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(password_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hasher, password_hash, password)


def _verify(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Same parameters as real hashes, so verifying against it costs the same.
    return hasher.hash(secrets.token_urlsafe(16))


async def prepare_password_hashing() -> None:
    """Compute the dummy hash ahead of the first login (call at start-up), so the first
    login for an unknown email does not take longer than the others."""
    await asyncio.to_thread(_dummy_hash, password_hasher)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"The password must have at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"The password must have at most {MAX_PASSWORD_CHARS} characters.")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---- users -------------------------------------------------------------------------------


async def get_user_by_email(session: AsyncSession, email: str) -> StaffUser | None:
    result = await session.execute(
        select(StaffUser).where(StaffUser.email == normalize_email(email))
    )
    return result.scalar_one_or_none()


async def create_user(
    session: AsyncSession,
    email: str,
    display_name: str,
    role: StaffRole,
    password: str,
    *,
    actor: str = "system",
    password_hash: str | None = None,
) -> StaffUser:
    """Create a staff account; Conflict when the email is taken, InvalidInput when invalid.

    `password_hash`: the argon2 hash of `password` when the caller has it already (the demo
    accounts share one password: hashed once instead of ~0.4 s per account).

    Writes a "create_staff_user" audit row by `actor` ("staff:<id>" from the console).
    On a Conflict raised by the database (a concurrent create) the session must be rolled
    back by the caller.
    """
    email = normalize_email(email)
    display_name = display_name.strip()
    if not _EMAIL.match(email) or len(email) > 254:
        raise InvalidInput("Please give a valid email address.")
    if not display_name or len(display_name) > 100:
        raise InvalidInput("The display name must have 1 to 100 characters.")
    role = StaffRole(role)
    _check_password(password)
    if await get_user_by_email(session, email) is not None:
        raise Conflict(f"A staff user with the email {email} already exists.")
    user = StaffUser(
        email=email,
        display_name=display_name,
        role=role,
        password_hash=password_hash or await hash_password(password),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A staff user with the email {email} already exists.") from exc
    session.add(
        AuditLog(
            actor=actor,
            action="create_staff_user",
            target_type="staff_user",
            target_id=str(user.id),
            details={"email": email, "role": role.value},
        )
    )
    await session.flush()
    return user


async def list_users(session: AsyncSession) -> list[StaffUser]:
    result = await session.execute(select(StaffUser).order_by(StaffUser.email))
    return list(result.scalars())


async def authenticate(session: AsyncSession, email: str, password: str) -> StaffUser | None:
    """The active user with these credentials, else None.

    An argon2 verification runs whether or not the email exists (against a dummy hash when
    it does not), so response time does not reveal which emails have accounts. A hash made
    with older parameters is upgraded on a successful login.
    """
    user = await get_user_by_email(session, email) if len(email) <= 254 else None
    hasher = password_hasher
    stored = user.password_hash if user is not None else _dummy_hash(hasher)
    valid = await asyncio.to_thread(_verify, hasher, stored, password[: MAX_PASSWORD_CHARS + 1])
    if user is None or not valid or not user.is_active:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
        await session.flush()
    return user


# ---- sessions ----------------------------------------------------------------------------


async def start_session(
    session: AsyncSession,
    user: StaffUser,
    ttl: timedelta = SESSION_TTL,
    *,
    user_agent: str | None = None,
    client_address: str | None = None,
) -> tuple[str, str]:
    """Open a console session: returns (cookie token, CSRF token).

    Only the SHA-256 of the cookie token is stored. Writes the "login" audit row and
    removes every expired session while at it. The browser's User-Agent and the client
    address are kept for the owner's list of sessions (issue #22).
    """
    now = utcnow()
    await session.execute(delete(StaffSession).where(StaffSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    expires_at = now + ttl
    session.add(
        StaffSession(
            token_hash=_token_hash(token),
            staff_user_id=user.id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
            last_used_at=now,
            user_agent=(user_agent or "")[:MAX_USER_AGENT_CHARS] or None,
            client_address=(client_address or "")[:64] or None,
        )
    )
    session.add(audit.staff_user_entry(user.id, "login", {"expires_at": expires_at.isoformat()}))
    await session.flush()
    return token, csrf_token


async def _find_session(session: AsyncSession, token: str) -> StaffSession | None:
    if not token or len(token) > _MAX_TOKEN_CHARS:
        return None
    return await session.get(StaffSession, _token_hash(token))


def idle_since(staff_session: StaffSession) -> datetime:
    return staff_session.last_used_at or staff_session.created_at


async def session_user(
    session: AsyncSession, token: str, idle: timedelta | None = None
) -> tuple[StaffUser, StaffSession] | None:
    """The user and session behind a cookie token; None when unknown, expired, unused for
    longer than `idle` (issue #22), or inactive. Its last use is refreshed (at most every
    `LAST_USED_REFRESH`).

    An expired or idle session row is deleted (flushed, committed by the caller).
    """
    if not token or len(token) > _MAX_TOKEN_CHARS:
        return None
    result = await session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.staff_user_id)
        .where(StaffSession.token_hash == _token_hash(token))
    )
    row = result.one_or_none()
    if row is None:
        return None
    staff_session, user = row._tuple()
    now = utcnow()
    idle_out = idle is not None and idle_since(staff_session) + idle <= now
    if staff_session.expires_at <= now or idle_out:
        await session.delete(staff_session)
        if idle_out:
            session.add(audit.staff_user_entry(user.id, "session_idle_timeout"))
        await session.flush()
        return None
    if not user.is_active:
        return None
    if now - idle_since(staff_session) >= LAST_USED_REFRESH:
        staff_session.last_used_at = now
        await session.flush()
    return user, staff_session


def session_key(staff_session: StaffSession) -> str:
    """The id of a session in its owner's list: a prefix of the token's SHA-256 (the
    token itself is never stored, and the hash cannot be turned back into it)."""
    return staff_session.token_hash[:SESSION_KEY_CHARS]


async def user_sessions(session: AsyncSession, user_id: int) -> list[StaffSession]:
    """The user's live sessions, most recently used first."""
    rows = await session.scalars(
        select(StaffSession).where(
            StaffSession.staff_user_id == user_id, StaffSession.expires_at > utcnow()
        )
    )
    return sorted(rows, key=idle_since, reverse=True)


async def end_user_session(session: AsyncSession, user_id: int, key: str) -> bool:
    """End one of the user's own sessions by its key; False when none of theirs matches."""
    if len(key) != SESSION_KEY_CHARS or not all(c in "0123456789abcdef" for c in key):
        return False
    target = await session.scalar(
        select(StaffSession).where(
            StaffSession.staff_user_id == user_id, StaffSession.token_hash.startswith(key)
        )
    )
    if target is None:
        return False
    await session.delete(target)
    session.add(audit.staff_user_entry(user_id, "end_session", {"session": key}))
    await session.flush()
    return True


async def end_session(session: AsyncSession, token: str) -> bool:
    """Log out: delete the session, write the "logout" audit row; False if none matched.

    When it was the user's last live session they are no longer shown as online.
    """
    staff_session = await _find_session(session, token)
    if staff_session is None:
        return False
    user_id = staff_session.staff_user_id
    await session.delete(staff_session)
    session.add(audit.staff_user_entry(user_id, "logout"))
    await session.flush()
    others = await session.scalar(
        select(func.count())
        .select_from(StaffSession)
        .where(StaffSession.staff_user_id == user_id, StaffSession.expires_at > utcnow())
    )
    if not others:
        await session.execute(
            update(StaffUser).where(StaffUser.id == user_id).values(last_seen_at=None)
        )
    return True


# ---- presence ----------------------------------------------------------------------------


async def touch_presence(session: AsyncSession, user_id: int, now: datetime | None = None) -> None:
    """Mark the user as seen now (the console calls this while it is open)."""
    await session.execute(
        update(StaffUser).where(StaffUser.id == user_id).values(last_seen_at=now or utcnow())
    )


async def online_staff(
    session: AsyncSession,
    roles: Iterable[StaffRole] = (StaffRole.agent, StaffRole.admin),
    within: timedelta = PRESENCE_WINDOW,
) -> list[StaffUser]:
    """Active users of these roles seen in the last `within`, by display name."""
    cutoff = utcnow() - within
    result = await session.execute(
        select(StaffUser)
        .where(
            StaffUser.is_active.is_(True),
            StaffUser.role.in_(list(roles)),
            StaffUser.last_seen_at.is_not(None),
            StaffUser.last_seen_at >= cutoff,
        )
        .order_by(StaffUser.display_name, StaffUser.id)
    )
    return list(result.scalars())


# ---- demo accounts -----------------------------------------------------------------------


async def ensure_demo_users(session: AsyncSession) -> list[tuple[str, str, str]]:
    """Create the demo accounts that are missing; returns (email, password, role) of all.

    Existing accounts are left alone (their password is not reset).
    """
    logins: list[tuple[str, str, str]] = []
    demo_hash: str | None = None
    for email, display_name, role in DEMO_USERS:
        if await get_user_by_email(session, email) is None:
            demo_hash = demo_hash or await hash_password(DEMO_PASSWORD)
            await create_user(
                session, email, display_name, role, DEMO_PASSWORD, password_hash=demo_hash
            )
        logins.append((email, DEMO_PASSWORD, role.value))
    return logins


def _demo_emails() -> list[str]:
    return [email for email, _name, _role in DEMO_USERS]


async def active_demo_users(session: AsyncSession) -> list[StaffUser]:
    """The demo accounts (emails of `DEMO_USERS`, published password) that can sign in."""
    result = await session.execute(
        select(StaffUser)
        .where(StaffUser.email.in_(_demo_emails()), StaffUser.is_active.is_(True))
        .order_by(StaffUser.email)
    )
    return list(result.scalars())


def demo_users_refusal(users: Iterable[StaffUser]) -> str:
    """Why production refuses to start while these demo accounts are active."""
    return (
        "Refusing to start with APP_ENV=production: the demo staff accounts "
        + ", ".join(u.email for u in users)
        + f" are active (their password {DEMO_PASSWORD!r} is published in the README). "
        "Create your own accounts with `python -m bot staff create`, then deactivate the demo "
        "ones with `APP_ENV=production python -m bot staff remove-demo`."
    )


async def deactivate_demo_users(session: AsyncSession, *, actor: str = "system") -> list[str]:
    """Deactivate the active demo accounts and end their sessions (production must not start
    while they can sign in); audited ("deactivate_staff_user"); returns their emails.
    Deactivated, not deleted: their notes, replies and audit rows stay attributed."""
    users = await active_demo_users(session)
    for user in users:
        user.is_active = False
        user.last_seen_at = None
        await session.execute(delete(StaffSession).where(StaffSession.staff_user_id == user.id))
        session.add(
            AuditLog(
                actor=actor,
                action="deactivate_staff_user",
                target_type="staff_user",
                target_id=str(user.id),
                details={"email": user.email, "reason": "demo account"},
            )
        )
    await session.flush()
    return [u.email for u in users]
