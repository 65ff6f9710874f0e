"""`python -m bot COMMAND`: serve, migrate, demo, run (the whole stack)."""

from __future__ import annotations

import argparse
import asyncio
import logging
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web service")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    sub.add_parser("demo", help="load the demo shop (idempotent)")
    sub.add_parser("run", help="start Rasa, the action server and the web service")
    args = parser.parse_args(argv)
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
