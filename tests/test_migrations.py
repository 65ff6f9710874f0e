"""Alembic: upgrade to head and back to base on both databases; head matches the models."""

from __future__ import annotations

import ast
import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bot.config import PROJECT_ROOT
from bot.storage.db import create_engine
from bot.storage.models import Base


def _config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


async def _inspect(database_url: str) -> tuple[set[str], list[object]]:
    def read(connection: Connection) -> tuple[set[str], list[object]]:
        tables = set(inspect(connection).get_table_names())
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return tables, compare_metadata(context, Base.metadata)

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def test_migrations_import_no_app_code() -> None:
    # An old migration must do the same when the app changes: its DDL is its own text
    # (migrations/frozen_ddl.py, migrations/sql/), never the roll-up code of today.
    found = []
    for path in sorted((PROJECT_ROOT / "migrations" / "versions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "bot"]
    assert found == []


def test_upgrade_head_matches_models_and_downgrade_base_empties(database_url: str) -> None:
    asyncio.run(_drop_everything(database_url))
    config = _config(database_url)

    command.upgrade(config, "head")
    tables, differences = asyncio.run(_inspect(database_url))
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert differences == []

    command.downgrade(config, "base")
    tables, _ = asyncio.run(_inspect(database_url))
    assert tables == {"alembic_version"}


async def _drop_everything(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    finally:
        await engine.dispose()
