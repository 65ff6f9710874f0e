"""Shared fixtures: a fresh database per test on SQLite and, when reachable, PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Base
from bot.web.app import create_app

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
# Each pytest run gets its own database so parallel runs never see each other's tables.
RUN_DATABASE = f"feedback_test_{os.getpid()}"


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not (shown as the skip reason)."""

    async def probe() -> None:
        engine = create_engine(POSTGRES_URL)
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(probe(), timeout=5))
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc!r}"
    return None


_PG_PROBLEM = _postgres_reachable() if os.environ.get("SKIP_POSTGRES") != "1" else "SKIP_POSTGRES=1"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(_PG_PROBLEM is not None, reason=_PG_PROBLEM or ""),
    ),
]


def pytest_report_header() -> str:
    return f"postgresql: {'available' if _PG_PROBLEM is None else 'SKIPPED - ' + _PG_PROBLEM}"


async def _admin(statement: str) -> None:
    from sqlalchemy import text

    engine = create_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {RUN_DATABASE}"))
    asyncio.run(_admin(f"CREATE DATABASE {RUN_DATABASE}"))
    yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + RUN_DATABASE
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {RUN_DATABASE} WITH (FORCE)"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# --- empty tables for each test, without rebuilding the schema every time ------------------
#
# `Base.metadata.create_all` (about 35 tables, the rollup triggers and pg_trgm) took most of
# a unit test's time. The schema is now built once per pytest process (xdist worker):
# SQLite tests copy a template file made by create_all; PostgreSQL tests empty every table
# (DELETE with triggers off, sequences reset: ids start at 1 as in a new table). A test
# that changed the PostgreSQL schema (the migration tests run alembic on this database) is
# detected by a fingerprint of the catalogue (tables, columns, indexes, constraints,
# triggers, functions), and the schema is then dropped and created again as before.

_PG_SCHEMA_FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                     || ':' || a.attnotnull::text, ',' ORDER BY c.relname, a.attnum)
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'),
  (SELECT string_agg(t.tgname || ':' || t.tgrelid::regclass::text || ':' || t.tgenabled::text, ','
                     ORDER BY t.tgname, t.tgrelid::regclass::text)
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND NOT t.tgisinternal),
  (SELECT string_agg(p.proname || ':' || md5(p.prosrc), ',' ORDER BY p.proname, md5(p.prosrc))
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'),
  (SELECT string_agg(conname || ':' || md5(pg_get_constraintdef(oid)), ',' ORDER BY conname)
     FROM pg_constraint WHERE connamespace = 'public'::regnamespace)
))
"""
_PG_SCHEMAS: dict[str, str] = {}  # database url → fingerprint right after create_all


async def _pg_fingerprint(connection: Any) -> str:
    from sqlalchemy import text

    return str((await connection.execute(text(_PG_SCHEMA_FINGERPRINT))).scalar_one())


def _pg_empty_statement() -> str:
    """One round trip: every table emptied with triggers and foreign-key checks off (so the
    rollup triggers do not fire and the order does not matter), every sequence back at its
    start. TRUNCATE took 60-400 ms for the ~35 tables, this 2-7 ms."""
    deletes = " ".join(f'DELETE FROM "{table.name}";' for table in Base.metadata.sorted_tables)
    return (
        "DO $$ BEGIN SET LOCAL session_replication_role = replica; "
        f"{deletes} "
        "PERFORM setval(format('%I.%I', schemaname, sequencename), start_value, false) "
        "FROM pg_sequences WHERE schemaname = 'public'; END $$"
    )


async def _pg_empty_tables(engine: AsyncEngine, database_url: str) -> None:
    from sqlalchemy import text

    async with engine.begin() as connection:
        if _PG_SCHEMAS.get(database_url) == await _pg_fingerprint(connection):
            await connection.execute(text(_pg_empty_statement()))
            return
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
        _PG_SCHEMAS[database_url] = await _pg_fingerprint(connection)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the empty schema (create_all), copied by each SQLite test."""
    import sqlite3

    path = tmp_path_factory.mktemp("schema") / "template.db"

    async def build() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # requested from async fixtures: a loop is running
        pool.submit(asyncio.run, build()).result()
    with sqlite3.connect(path) as connection:  # everything in the main file, no -wal left
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
async def engine(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    import shutil

    sqlite_file = (
        Path(database_url.split("///", 1)[1]) if database_url.startswith("sqlite") else None
    )
    if sqlite_file is not None and not sqlite_file.exists():
        shutil.copyfile(request.getfixturevalue("sqlite_template"), sqlite_file)
        engine = create_engine(database_url)
    elif sqlite_file is None:
        engine = create_engine(database_url)
        await _pg_empty_tables(engine, database_url)
    else:  # a SQLite file the test made before: as before, drop and create
        engine = create_engine(database_url)
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def session(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session


@pytest.fixture
def settings(database_url: str) -> Settings:
    return replace(Settings(), database_url=database_url)


@pytest.fixture
async def action_services(settings: Settings, engine: AsyncEngine) -> AsyncIterator[object]:
    """Point the Rasa actions at the test database."""
    from actions.services import Services, use_services

    services = Services(settings, engine, create_session_factory(engine))
    use_services(services)
    yield services
    use_services(None)


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real stack (trained model, action server, web service) on a fresh demo database."""
    import subprocess
    import sys

    from bot.launcher import StackPorts, running

    workdir = tmp_path_factory.mktemp("stack")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'e2e.db'}",
        "ACTION_SERVER_URL": "http://127.0.0.1:15055/webhook",
        "SURVEY_FATIGUE_DAYS": "0",  # every flow in these tests ends in its survey
        "TRANSACTIONAL_SURVEY_QUIET_HOURS": "0",  # ... even right after another one
        # The e2e suite is one client address opening hundreds of conversations in minutes;
        # the per-address limits are tested in test_client_limits.py (issue #22).
        "CLIENT_NEW_CONVERSATIONS": "0",
        "CLIENT_WEBSOCKETS": "0",
    }
    for command in (["migrate"], ["demo"], ["staff", "demo"]):
        subprocess.run(
            [sys.executable, "-m", "bot", *command],
            env={**os.environ, **env},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    ports = StackPorts(web=18000, rasa=15005, actions=15055)
    with running(ports, env=env, log_dir=workdir / "logs") as stack:
        stack.database_url = env["DATABASE_URL"]  # type: ignore[attr-defined]
        yield stack


# --- the web service against a stand-in for Rasa's HTTP API (Rasa itself is tested e2e) -----


class StubRasa:
    """Rasa's REST channel as seen from the web service: echo, or fail on demand."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.channel_secrets: list[str | None] = []  # X-Channel-Secret of each webhook call
        self.slot_events: list[tuple[str, list[dict[str, Any]]]] = []
        self.triggered: list[tuple[str, str]] = []
        self.trigger_entities: list[dict[str, Any]] = []  # the entities of each trigger
        # What GET /conversations/<id>/tracker answers (an idle bot unless a test says otherwise).
        self.state: dict[str, Any] = {"paused": False, "active_loop": {}, "slots": {}}
        self.fail = False
        self.delay = 0.0
        self.paused: set[str] = set()  # like Rasa: a paused tracker logs messages, answers none
        # The NLU result appended as rasa_ext.channels does (issue #24), when a test sets it.
        self.nlu: dict[str, Any] | None = None
        self.buttons: list[dict[str, str]] = [{"title": "Yes", "payload": "yes"}]

    def pause(self, sender: str) -> None:
        """What the handoff action's ConversationPaused does to Rasa's tracker."""
        self.paused.add(sender)

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        self.channel_secrets.append(request.headers.get("X-Channel-Secret"))
        await asyncio.sleep(self.delay)
        if self.fail:
            return web.Response(status=500)
        if body["sender"] in self.paused:
            return web.json_response([])
        replies: list[dict[str, Any]] = [
            {
                "recipient_id": body["sender"],
                "text": f"echo: {body['message']}",
                "buttons": self.buttons,
            }
        ]
        if self.nlu is not None:
            replies.append({"recipient_id": body["sender"], "custom": {"nlu": self.nlu}})
        return web.json_response(replies)

    async def tracker_events(self, request: web.Request) -> web.Response:
        assert request.query["token"] == "dev-rasa-token"
        if self.fail:
            return web.Response(status=500)
        sender, events = request.match_info["sender"], await request.json()
        self.slot_events.append((sender, events))
        for event in events:
            if event["event"] == "pause":
                self.paused.add(sender)
            elif event["event"] == "resume":
                self.paused.discard(sender)
        return web.json_response({})

    async def trigger_intent(self, request: web.Request) -> web.Response:
        assert request.query["token"] == "dev-rasa-token"
        body = await request.json()
        self.triggered.append((request.match_info["sender"], body["name"]))
        self.trigger_entities.append(body.get("entities") or {})
        return web.json_response(
            {
                "tracker": {},
                "messages": [
                    {"recipient_id": request.match_info["sender"], "text": "How satisfied are you?"}
                ],
            }
        )

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response({"model_file": "models/current.tar.gz"})

    async def tracker_state(self, request: web.Request) -> web.Response:
        assert request.query["token"] == "dev-rasa-token"
        return web.json_response({"sender_id": request.match_info["sender"], **self.state})


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[StubRasa, str]]:
    stub = StubRasa()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", stub.webhook)
    app.router.add_get("/status", stub.status)
    app.router.add_get("/conversations/{sender}/tracker", stub.tracker_state)
    app.router.add_post("/conversations/{sender}/tracker/events", stub.tracker_events)
    app.router.add_post("/conversations/{sender}/trigger_intent", stub.trigger_intent)
    server = TestServer(app)
    await server.start_server()
    yield stub, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def client(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str]
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(
        replace(settings, rasa_url=rasa[1], max_message_chars=2000, rasa_timeout_seconds=1.0)
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


# --- browser tests: Debian's chromium driven by Playwright (no downloaded browsers) ------

# Without the background-networking flags chromium keeps dialling out of this closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed (make browser-deps installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
