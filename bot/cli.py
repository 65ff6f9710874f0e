"""`python -m bot COMMAND`: serve, migrate, demo, run (the whole stack), staff (accounts)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from bot import (
    alerts_cli,
    cli_privacy,
    knowledge_cli,
    proactive_cli,
    report,
    review_cli,
    shop_cli,
)
from bot.cli_support import run_db_command
from bot.config import PROJECT_ROOT, ConfigError, Settings

if TYPE_CHECKING:
    from bot.cli_support import Sessions


async def _demo_staff_refusal(settings: Settings) -> str | None:
    """In production, why the web service must not start (active demo staff accounts)."""
    if not settings.is_production:
        return None
    from sqlalchemy.exc import SQLAlchemyError

    from bot.domain import staff
    from bot.storage.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            users = await staff.active_demo_users(session)
    except SQLAlchemyError:
        return None  # not migrated yet: no accounts; the web service checks again at start
    finally:
        await engine.dispose()
    return staff.demo_users_refusal(users) if users else None


def _refuse_demo_staff(settings: Settings) -> bool:
    refusal = asyncio.run(_demo_staff_refusal(settings))
    if refusal:
        print(refusal, file=sys.stderr)
    return refusal is not None


def _serve(settings: Settings) -> int:
    from bot.web.app import create_app
    from bot.web.ops import configure_logging
    from bot.web.server import serve

    if _refuse_demo_staff(settings):  # create_app() refuses too; this says it without a trace
        return 2
    configure_logging(settings.log_format)
    serve(create_app(settings), settings)  # hardened aiohttp errors, optional ops port
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
    if settings.is_production:
        print(
            "Refusing to load the demo shop (sample customers and orders) when APP_ENV=production.",
            file=sys.stderr,
        )
        return 2
    from bot.demo import load_demo_data
    from bot.domain import knowledge
    from bot.storage.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        sessions = create_session_factory(engine)
        summary = await load_demo_data(sessions, crowd=settings.demo_crowd_customers)
        # The shop's products and help centre (issue #19); only what changed is re-embedded.
        async with sessions() as session, session.begin():
            products, articles = await knowledge.load_demo(session)
    finally:
        await engine.dispose()
    state = "loaded" if summary.created else "already present"
    print(
        f"Demo data {state}: {summary.customers} customers, {summary.orders} orders, "
        f"{summary.feedback} feedback rows."
    )
    print(
        f"Knowledge base: {products.added} products added, {products.updated} updated; "
        f"{articles.added} articles added, {articles.updated} updated."
    )
    return 0


# ---- python -m bot staff ... (console accounts) -------------------------------------------

STAFF_ROLES = ("agent", "cx_manager", "admin", "bot_trainer")


def _add_staff_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    staff = sub.add_parser("staff", help="staff console accounts: create, list, demo, remove-demo")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    create = staff_sub.add_parser("create", help="create a staff account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True, help="display name shown to customers")
    create.add_argument("--role", required=True, choices=STAFF_ROLES)
    create.add_argument("--password", help="at least 10 characters; asked for (twice) when omitted")
    staff_sub.add_parser("list", help="list staff accounts")
    staff_sub.add_parser("demo", help="create the demo accounts (not when APP_ENV=production)")
    staff_sub.add_parser(
        "remove-demo",
        help="deactivate the demo accounts and end their sessions (production refuses to "
        "start while they are active)",
    )


def _ask_password() -> str | None:
    password = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Repeat the password: ") != password:
        print("Error: the passwords do not match.", file=sys.stderr)
        return None
    return password


def _staff(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.staff_command == "demo" and settings.is_production:
        print(
            "Refusing to create demo staff accounts (known passwords) when APP_ENV=production. "
            "Use `python -m bot staff create` instead.",
            file=sys.stderr,
        )
        return 2
    password: str | None = None
    if args.staff_command == "create":
        password = args.password if args.password is not None else _ask_password()
        if password is None:
            return 1
    return asyncio.run(_staff_async(settings, args, password))


async def _staff_async(settings: Settings, args: argparse.Namespace, password: str | None) -> int:
    from bot.domain import staff
    from bot.storage.models import StaffRole

    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            if args.staff_command == "create":
                assert password is not None
                user = await staff.create_user(
                    session, args.email, args.name, StaffRole(args.role), password
                )
                await session.commit()
                print(f"Created {user.role.value} {user.email} ({user.display_name}).")
            elif args.staff_command == "list":
                _print_table(
                    [("EMAIL", "NAME", "ROLE", "ACTIVE", "LAST SEEN")]
                    + [
                        (
                            u.email,
                            u.display_name,
                            u.role.value,
                            "yes" if u.is_active else "no",
                            u.last_seen_at.strftime("%Y-%m-%d %H:%M UTC")
                            if u.last_seen_at
                            else "never",
                        )
                        for u in await staff.list_users(session)
                    ],
                    "(no staff accounts; create one with `python -m bot staff create`)",
                )
            elif args.staff_command == "remove-demo":
                removed = await staff.deactivate_demo_users(session, actor="cli")
                await session.commit()
                print(
                    f"Deactivated the demo accounts {', '.join(removed)} and ended their sessions."
                    if removed
                    else "No active demo accounts."
                )
            else:
                logins = await staff.ensure_demo_users(session)
                await session.commit()
                url = f"http://{settings.web_host}:{settings.web_port}/console/login"
                print(f"Staff console demo logins ({url}):")
                for email, demo_password, role in logins:
                    print(f"  {role:<11} {email:<20} password: {demo_password}")
        return 0

    return await run_db_command(settings, body)


def _print_table(rows: Sequence[Sequence[str]], when_empty: str) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if len(rows) == 1:
        print(when_empty)


# ---- python -m bot token ... (API tokens) -------------------------------------------------


def _add_token_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="API tokens: create, list, revoke")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create an API token (printed once)")
    create.add_argument("--name", required=True, help="who uses it, e.g. 'shop backend'")
    create.add_argument("--role", required=True, choices=STAFF_ROLES)
    token_sub.add_parser("list", help="list API tokens")
    revoke = token_sub.add_parser("revoke", help="revoke an API token")
    revoke.add_argument("id", type=int)


async def _token(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import api_tokens
    from bot.storage.models import StaffRole

    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            if args.token_command == "create":
                token, plaintext = await api_tokens.create_token(
                    session, args.name, StaffRole(args.role)
                )
                await session.commit()
                print(f"Created API token {token.id} ({token.role.value}, {token.name}).")
                print("Send it as 'Authorization: Bearer <token>'; it is shown only now:")
                print(plaintext)
            elif args.token_command == "list":
                for t in await api_tokens.list_tokens(session):
                    state = "revoked" if t.revoked_at else "active"
                    print(f"{t.id:>4}  {t.role.value:<10}  {state:<7}  {t.name}")
            else:
                await api_tokens.revoke(session, args.id)
                await session.commit()
                print(f"Revoked API token {args.id}.")
        return 0

    return await run_db_command(settings, body)


async def _close_lifecycles(settings: Settings) -> int:
    from bot.domain import lifecycle as lifecycles
    from bot.storage.models import utcnow

    window = timedelta(days=settings.return_window_days)

    async def body(sessions: Sessions) -> int:
        closed = await lifecycles.close_all_completed(sessions, utcnow(), window)
        print(
            f"Closed {closed} completed lifecycle(s) "
            f"(delivered more than {settings.return_window_days} days ago, no support)."
        )
        return 0

    return await run_db_command(settings, body)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web service")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    sub.add_parser("demo", help="load the demo shop (idempotent)")
    run = sub.add_parser("run", help="start Rasa, the action server and the web service")
    run.add_argument("--prod", action="store_true", help="production profile (docs/deploy.md)")
    sub.add_parser("analytics-consumer", help="bot analytics from Rasa's event broker")
    sub.add_parser(
        "close-lifecycles",
        help="close the lifecycles of delivered purchases whose return window has passed "
        "(the web service also does it every LIFECYCLE_SWEEP_SECONDS)",
    )
    _add_staff_commands(sub)
    _add_token_commands(sub)
    cli_privacy.add_commands(sub)
    shop_cli.add_commands(sub)
    proactive_cli.add_commands(sub)
    report.add_commands(sub)
    review_cli.add_commands(sub)
    alerts_cli.add_commands(sub)
    knowledge_cli.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "staff":
        return _staff(args)
    settings = Settings.from_env()
    if args.command == "token":
        return asyncio.run(_token(settings, args))
    if args.command in cli_privacy.PRIVACY_COMMANDS:
        return asyncio.run(cli_privacy.run(settings, args))
    if args.command in ("send-event", "import-feedback"):
        return shop_cli.run(settings, args)
    if args.command == proactive_cli.COMMAND:
        return asyncio.run(proactive_cli.run(settings, args))
    if args.command == "report":
        return report.run(settings, args)
    if args.command == review_cli.COMMAND:
        return asyncio.run(review_cli.run(settings, args))
    if args.command == alerts_cli.COMMAND:
        return asyncio.run(alerts_cli.run(settings, args))
    if args.command == knowledge_cli.COMMAND:
        return asyncio.run(knowledge_cli.run(settings, args))
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "demo":
        return asyncio.run(_demo(settings))
    if args.command == "close-lifecycles":
        return asyncio.run(_close_lifecycles(settings))
    if args.command == "analytics-consumer":
        from bot.analytics_consumer import main as consume

        return consume(settings)
    from bot.launcher import run_forever, run_prod_forever

    if _refuse_demo_staff(settings):
        return 2
    return run_prod_forever() if args.prod else run_forever()


if __name__ == "__main__":
    sys.exit(main())
