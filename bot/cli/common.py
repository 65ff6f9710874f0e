"""What every `python -m bot` command shares: the handler type, one engine per
database-backed command, clear messages for domain and database errors, exit code 1 on
failure."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from bot.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    Sessions = async_sessionmaker[AsyncSession]
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

# What a command's parser sets as `handler` (`set_defaults`): the exit code of the command.
Handler = Callable[[Settings, argparse.Namespace], int]


def blocking(run: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]) -> Handler:
    """The handler of an async command: `run` in an event loop of its own."""

    def handler(settings: Settings, args: argparse.Namespace) -> int:
        return asyncio.run(run(settings, args))

    return handler


def fail(message: str) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return 1


async def run_db_command(settings: Settings, body: Callable[[Sessions], Awaitable[int]]) -> int:
    """Run `body` with a session factory; DomainError and database errors become exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.domain.errors import DomainError
    from bot.storage.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        return await body(create_session_factory(engine))
    except DomainError as exc:
        return fail(exc.message)
    except SQLAlchemyError as exc:
        return fail(
            f"database problem ({type(exc).__name__}); has `python -m bot migrate` been run?"
        )
    finally:
        await engine.dispose()
