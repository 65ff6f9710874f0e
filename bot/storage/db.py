"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def _driver_errors() -> tuple[type[Exception], ...]:
    # asyncpg raises some errors while connecting unwrapped by SQLAlchemy, e.g.
    # CannotConnectNowError ("the database system is starting up") after a restart.
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is in the lock file
        return ()
    return (asyncpg.PostgresError, asyncpg.InterfaceError)


# What a database outage can raise: callers answer "try again in a moment".
STORAGE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, OSError, *_driver_errors())


def create_engine(database_url: str) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        # No rollback when a connection goes back to the pool: SQLAlchemy has ended its
        # transaction already (commit, or rollback on close), and with aiosqlite every
        # statement, even that no-op, is a hop to the driver's thread and back.
        engine = create_async_engine(
            database_url, connect_args={"timeout": 30}, pool_reset_on_return=None
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Fail fast while the database is down or restarting (asyncpg waits 60 s to connect by
    # default, holding a pool slot): callers answer "try again in a moment".
    return create_async_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=10,
        connect_args={"timeout": 5},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web service and the action server write the same file concurrently.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the database; it only skips the fsync of every
    # commit (the last commits can be lost on power failure, not on a process crash).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
