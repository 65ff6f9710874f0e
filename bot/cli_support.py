"""What every database-backed `python -m bot` command shares: one engine for the command,
clear messages for domain and database errors, exit code 1 on failure."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    Sessions = async_sessionmaker[AsyncSession]


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
