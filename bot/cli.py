"""`python -m bot COMMAND`: serve, migrate, demo, run (the whole stack), staff (accounts)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys

from bot.config import PROJECT_ROOT, Settings


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from bot.web.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(create_app(settings), host=settings.web_host, port=settings.web_port, print=None)
    return 0


def _migrate(settings: Settings) -> int:
    from alembic import command
    from alembic.config import Config

    if settings.database_url.startswith("sqlite"):
        (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = settings.database_url
    command.upgrade(config, "head")
    return 0


async def _demo(settings: Settings) -> int:
    from bot.demo import load_demo_data
    from bot.storage.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        summary = await load_demo_data(create_session_factory(engine))
    finally:
        await engine.dispose()
    state = "loaded" if summary.created else "already present"
    print(f"Demo data {state}: {summary.customers} customers, {summary.orders} orders.")
    return 0


# ---- python -m bot staff ... (console accounts) -------------------------------------------

STAFF_ROLES = ("agent", "cx_manager", "admin")


def _add_staff_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    staff = sub.add_parser("staff", help="staff console accounts: create, list, demo")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    create = staff_sub.add_parser("create", help="create a staff account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True, help="display name shown to customers")
    create.add_argument("--role", required=True, choices=STAFF_ROLES)
    create.add_argument("--password", help="at least 10 characters; asked for (twice) when omitted")
    staff_sub.add_parser("list", help="list staff accounts")
    staff_sub.add_parser("demo", help="create the demo accounts (not when APP_ENV=production)")


def _ask_password() -> str | None:
    password = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Repeat the password: ") != password:
        print("Error: the passwords do not match.", file=sys.stderr)
        return None
    return password


def _staff(args: argparse.Namespace) -> int:
    if args.staff_command == "demo" and os.environ.get("APP_ENV") == "production":
        print(
            "Refusing to create demo staff accounts (known passwords) when APP_ENV=production. "
            "Use `python -m bot staff create` instead.",
            file=sys.stderr,
        )
        return 2
    settings = Settings.from_env()
    password: str | None = None
    if args.staff_command == "create":
        password = args.password if args.password is not None else _ask_password()
        if password is None:
            return 1
    return asyncio.run(_staff_async(settings, args, password))


async def _staff_async(settings: Settings, args: argparse.Namespace, password: str | None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.domain import staff
    from bot.domain.errors import DomainError
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import StaffRole

    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            if args.staff_command == "create":
                assert password is not None
                user = await staff.create_user(
                    session, args.email, args.name, StaffRole(args.role), password
                )
                await session.commit()
                print(f"Created {user.role.value} {user.email} ({user.display_name}).")
            elif args.staff_command == "list":
                users = await staff.list_users(session)
                rows = [("EMAIL", "NAME", "ROLE", "ACTIVE", "LAST SEEN")] + [
                    (
                        u.email,
                        u.display_name,
                        u.role.value,
                        "yes" if u.is_active else "no",
                        u.last_seen_at.strftime("%Y-%m-%d %H:%M UTC")
                        if u.last_seen_at
                        else "never",
                    )
                    for u in users
                ]
                widths = [max(len(row[i]) for row in rows) for i in range(5)]
                for row in rows:
                    print(
                        "  ".join(
                            cell.ljust(w) for cell, w in zip(row, widths, strict=True)
                        ).rstrip()
                    )
                if not users:
                    print("(no staff accounts; create one with `python -m bot staff create`)")
            else:
                logins = await staff.ensure_demo_users(session)
                await session.commit()
                url = f"http://{settings.web_host}:{settings.web_port}/console/login"
                print(f"Staff console demo logins ({url}):")
                for email, demo_password, role in logins:
                    print(f"  {role:<11} {email:<20} password: {demo_password}")
    except DomainError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(
            f"Error: database problem ({type(exc).__name__}); "
            "has `python -m bot migrate` been run?",
            file=sys.stderr,
        )
        return 1
    finally:
        await engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web service")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    sub.add_parser("demo", help="load the demo shop (idempotent)")
    sub.add_parser("run", help="start Rasa, the action server and the web service")
    _add_staff_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "staff":
        return _staff(args)
    settings = Settings.from_env()
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "demo":
        return asyncio.run(_demo(settings))
    from bot.launcher import run_forever

    return run_forever()


if __name__ == "__main__":
    sys.exit(main())
