"""`python -m bot token create | list | revoke`: API tokens."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.cli.common import blocking, run_db_command
from bot.cli.staff import STAFF_ROLES
from bot.config import Settings

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers


def add_commands(sub: Subparsers) -> None:
    token = sub.add_parser("token", help="API tokens: create, list, revoke")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create an API token (printed once)")
    create.add_argument("--name", required=True, help="who uses it, e.g. 'shop backend'")
    create.add_argument("--role", required=True, choices=STAFF_ROLES)
    create.set_defaults(handler=blocking(_create))
    token_sub.add_parser("list", help="list API tokens").set_defaults(handler=blocking(_list))
    revoke = token_sub.add_parser("revoke", help="revoke an API token")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=blocking(_revoke))


async def _create(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import api_tokens
    from bot.domain.enums import StaffRole

    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            token, plaintext = await api_tokens.create_token(
                session, args.name, StaffRole(args.role)
            )
            await session.commit()
            print(f"Created API token {token.id} ({token.role.value}, {token.name}).")
            print("Send it as 'Authorization: Bearer <token>'; it is shown only now:")
            print(plaintext)
        return 0

    return await run_db_command(settings, body)


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import api_tokens

    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            for t in await api_tokens.list_tokens(session):
                state = "revoked" if t.revoked_at else "active"
                print(f"{t.id:>4}  {t.role.value:<10}  {state:<7}  {t.name}")
        return 0

    return await run_db_command(settings, body)


async def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import api_tokens

    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            await api_tokens.revoke(session, args.id)
            await session.commit()
            print(f"Revoked API token {args.id}.")
        return 0

    return await run_db_command(settings, body)
