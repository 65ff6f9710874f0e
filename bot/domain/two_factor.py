"""Optional TOTP two-factor sign-in for staff (issue #22; RFC 6238 through `pyotp`).

* Anyone signed in sets it up for themselves: `begin_setup` stores a new secret as pending
  and returns it (and its otpauth:// URI for the authenticator app); `confirm_setup` with a
  current code turns it on. `disable` needs a current code too.
* With it on, signing in needs the 6-digit code after the password (`check_code`): 30-second
  steps, one step of clock drift either way, and a code's step is never accepted twice
  (`totp_last_step`), so an observed code cannot be replayed.
* `STAFF_2FA=required`: admins without it on cannot sign in (they set it up before it is
  required; docs/security.md) and cannot turn it off.

The functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import time

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import audit
from bot.domain.enums import StaffRole
from bot.domain.errors import Conflict, InvalidInput
from bot.storage.models import StaffUser, utcnow

ISSUER = "Shop support console"
MODES = ("optional", "required")
STEP_SECONDS = 30
DRIFT_STEPS = 1


def is_enabled(user: StaffUser) -> bool:
    return user.totp_enabled_at is not None and user.totp_secret is not None


def required_for(user: StaffUser, mode: str) -> bool:
    """Whether this user must use two-factor sign-in under STAFF_2FA=`mode`."""
    return mode == "required" and user.role is StaffRole.admin


def _matching_step(secret: str, code: object, now: float | None = None) -> int | None:
    """The time step whose code `code` is (within the allowed drift), or None."""
    if not isinstance(code, str):
        return None
    digits = code.replace(" ", "").strip()
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    at = time.time() if now is None else now
    current = int(at // STEP_SECONDS)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if pyotp.utils.strings_equal(totp.at(step * STEP_SECONDS), digits):
            return step
    return None


async def begin_setup(session: AsyncSession, user: StaffUser) -> tuple[str, str]:
    """A new pending secret for `user`: (secret, otpauth URI). Refused when already on."""
    if is_enabled(user):
        raise Conflict("Two-factor sign-in is already on. Turn it off first to set it up again.")
    secret = pyotp.random_base32()
    user.totp_secret = secret
    user.totp_enabled_at = None
    user.totp_last_step = None
    await session.flush()
    uri = pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=user.email, issuer_name=ISSUER
    )
    return secret, uri


async def confirm_setup(session: AsyncSession, user: StaffUser, code: object) -> None:
    """Turn two-factor sign-in on with a current code of the pending secret."""
    if is_enabled(user):
        raise Conflict("Two-factor sign-in is already on.")
    if user.totp_secret is None:
        raise Conflict("Start the set-up first.")
    step = _matching_step(user.totp_secret, code)
    if step is None:
        raise InvalidInput("That code is not right. Enter the 6 digits your app shows now.")
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    session.add(audit.staff_user_entry(user.id, "totp_enabled"))
    await session.flush()


async def disable(session: AsyncSession, user: StaffUser, code: object, mode: str) -> None:
    """Turn it off (a current code proves it is the user); refused where it is required."""
    if not is_enabled(user):
        raise Conflict("Two-factor sign-in is not on.")
    if required_for(user, mode):
        raise Conflict("Admins must use two-factor sign-in here (STAFF_2FA=required).")
    if not await check_code(session, user, code):
        raise InvalidInput("That code is not right. Enter the 6 digits your app shows now.")
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.add(audit.staff_user_entry(user.id, "totp_disabled"))
    await session.flush()


async def check_code(session: AsyncSession, user: StaffUser, code: object) -> bool:
    """Whether `code` is a current code of the user's secret not used before (then it is
    used up: its step is recorded)."""
    if not is_enabled(user) or user.totp_secret is None:
        return False
    step = _matching_step(user.totp_secret, code)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    await session.flush()
    return True
