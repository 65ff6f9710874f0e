"""`python -m bot staff create | list | demo | remove-demo`: staff console accounts."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from bot.cli.common import blocking, run_db_command
from bot.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.cli.common import Sessions, Subparsers

STAFF_ROLES = ("agent", "cx_manager", "admin", "bot_trainer")


def add_commands(sub: Subparsers) -> None:
    staff = sub.add_parser("staff", help="staff console accounts: create, list, demo, remove-demo")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    create = staff_sub.add_parser("create", help="create a staff account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True, help="display name shown to customers")
    create.add_argument("--role", required=True, choices=STAFF_ROLES)
    create.add_argument("--password", help="at least 10 characters; asked for (twice) when omitted")
    create.set_defaults(handler=_create)
    staff_sub.add_parser("list", help="list staff accounts").set_defaults(handler=blocking(_list))
    staff_sub.add_parser(
        "demo", help="create the demo accounts (not when APP_ENV=production)"
    ).set_defaults(handler=_demo)
    staff_sub.add_parser(
        "remove-demo",
        help="deactivate the demo accounts and end their sessions (production refuses to "
        "start while they are active)",
    ).set_defaults(handler=blocking(_remove_demo))


def _ask_password() -> str | None:
    password = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Repeat the password: ") != password:
        print("Error: the passwords do not match.", file=sys.stderr)
        return None
    return password


async def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[None]]) -> int:
    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            await work(session)
        return 0

    return await run_db_command(settings, body)


def _create(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import staff
    from bot.domain.enums import StaffRole

    password = args.password if args.password is not None else _ask_password()
    if password is None:
        return 1

    async def work(session: AsyncSession) -> None:
        user = await staff.create_user(
            session, args.email, args.name, StaffRole(args.role), password
        )
        await session.commit()
        print(f"Created {user.role.value} {user.email} ({user.display_name}).")

    return asyncio.run(_in_session(settings, work))


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import staff

    async def work(session: AsyncSession) -> None:
        _print_table(
            [("EMAIL", "NAME", "ROLE", "ACTIVE", "LAST SEEN")]
            + [
                (
                    u.email,
                    u.display_name,
                    u.role.value,
                    "yes" if u.is_active else "no",
                    u.last_seen_at.strftime("%Y-%m-%d %H:%M UTC") if u.last_seen_at else "never",
                )
                for u in await staff.list_users(session)
            ],
            "(no staff accounts; create one with `python -m bot staff create`)",
        )

    return await _in_session(settings, work)


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import staff

    if settings.is_production:
        print(
            "Refusing to create demo staff accounts (known passwords) when APP_ENV=production. "
            "Use `python -m bot staff create` instead.",
            file=sys.stderr,
        )
        return 2

    async def work(session: AsyncSession) -> None:
        logins = await staff.ensure_demo_users(session)
        await session.commit()
        url = f"http://{settings.web_host}:{settings.web_port}/console/login"
        print(f"Staff console demo logins ({url}):")
        for email, demo_password, role in logins:
            print(f"  {role:<11} {email:<20} password: {demo_password}")

    return asyncio.run(_in_session(settings, work))


async def _remove_demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import staff

    async def work(session: AsyncSession) -> None:
        removed = await staff.deactivate_demo_users(session, actor="cli")
        await session.commit()
        print(
            f"Deactivated the demo accounts {', '.join(removed)} and ended their sessions."
            if removed
            else "No active demo accounts."
        )

    return await _in_session(settings, work)


def _print_table(rows: Sequence[Sequence[str]], when_empty: str) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if len(rows) == 1:
        print(when_empty)
