"""`python -m bot serve | migrate | demo | run [--prod] | analytics-consumer`: the services
and their set-up (the web service refuses production with active demo staff accounts)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from bot.cli.common import blocking
from bot.config import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from bot.cli.common import Subparsers


def add_commands(sub: Subparsers) -> None:
    sub.add_parser("serve", help="run the web service").set_defaults(handler=_serve)
    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(
        handler=_migrate
    )
    sub.add_parser("demo", help="load the demo shop (idempotent)").set_defaults(
        handler=blocking(_demo)
    )
    run = sub.add_parser("run", help="start Rasa, the action server and the web service")
    run.add_argument("--prod", action="store_true", help="production profile (docs/deploy.md)")
    run.set_defaults(handler=_run)
    sub.add_parser(
        "analytics-consumer", help="bot analytics from Rasa's event broker"
    ).set_defaults(handler=_analytics_consumer)


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


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.web.app import create_app
    from bot.web.ops import configure_logging
    from bot.web.server import serve

    if _refuse_demo_staff(settings):  # create_app() refuses too; this says it without a trace
        return 2
    configure_logging(settings.log_format)
    serve(create_app(settings), settings)  # hardened aiohttp errors, optional ops port
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.config import Config

    if settings.database_url.startswith("sqlite"):
        (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = settings.database_url
    command.upgrade(config, "head")
    return 0


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
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


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.launcher import run_forever, run_prod_forever

    if _refuse_demo_staff(settings):
        return 2
    return run_prod_forever() if args.prod else run_forever()


def _analytics_consumer(settings: Settings, args: argparse.Namespace) -> int:
    from bot.analytics_consumer import main as consume

    return consume(settings)
