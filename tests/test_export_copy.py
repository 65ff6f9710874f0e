"""The CSV export made by PostgreSQL (COPY) is byte for byte the one Python writes."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import feedback_query, staff
from bot.domain.enums import Channel, FeedbackKind, FeedbackSource, LifecycleKind, StaffRole, Stage
from bot.domain.feedback_query import FeedbackFilter
from bot.storage.models import Customer, Feedback, Lifecycle
from bot.web.api import dashboard
from tests.dashboard_data import at, seed
from tests.staff_helpers import create_staff, sign_in

Client = TestClient[Any, Any]
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
# (text, name, score, sentiment, themes, created_at): the awkward cells of the export.
AWKWARD: list[tuple[str | None, str | None, int | None, float | None, Any, str]] = [
    (
        'commas, "quotes"\nand a newline 😀',
        'Zoë, "Z"',
        5,
        0.5,
        ["delivery", "price"],
        "2026-03-05T10:00:00.123456",
    ),
    ("=cmd|' /C calc'!A0", "=Eve", 1, -0.1234, ["support"], "2026-03-05T11:00:00"),
    ("-1", "-1", 0, -0.00004, [], "2026-03-05T12:00:00.000001"),
    ("+x", "+x", 10, 1.0, ["website", "billing", "delivery"], "2026-03-06T00:00:00"),
    ("@x", "@x", None, None, [], "2026-03-06T01:02:03.500000"),
    ("\tstarts with a tab", "\ttab", 3, 0.0, ["price"], "2026-03-06T02:00:00"),
    ("\rstarts with CR\r\nand CRLF", None, 4, -1.0, ["product_quality"], "2026-03-07T03:00:00"),
    (None, None, None, 0.12345, None, "2026-03-07T04:00:00"),
    ("", "", 2, -0.0, [], "2026-03-07T05:00:00"),
    ('"', ",", 7, 0.99999, ["=sum(A1)", 'a,"b"', "é\n", "delivery"], "2026-03-07T06:00:00"),
    (
        "trailing newline\n",
        " leading space",
        8,
        0.0001,
        ["support", "price"],
        "2026-03-08T07:00:00",
    ),
    ("plain, late parcel", "Al", 9, -0.5, ["delivery"], "2026-03-31T23:59:59.999999"),
]


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


async def _fill(session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed(session_factory)
    async with session_factory() as db, db.begin():
        for i, (text, name, score, sentiment, themes, created) in enumerate(AWKWARD):
            customer = Customer(external_id=f"+awk-{i}" if i % 2 else f"awk-{i}", name=name)
            db.add(customer)
            await db.flush()
            lifecycle = Lifecycle(
                customer_id=customer.id,
                kind=LifecycleKind.one_time,
                stage=Stage.support,
                opened_at=at("2026-03-01T00:00:00"),
            )
            db.add(lifecycle)
            await db.flush()
            db.add(
                Feedback(
                    idempotency_key=f"awk-{i}",
                    customer_id=customer.id,
                    lifecycle_id=lifecycle.id,
                    stage=Stage.support if i % 3 else Stage.use,
                    channel=Channel.email if i % 2 else Channel.website_chat,
                    source=FeedbackSource.free_text,
                    kind=FeedbackKind.csat if score is not None else FeedbackKind.complaint,
                    score=score,
                    text=text,
                    sentiment=sentiment,
                    themes=themes,
                    created_at=at(created),
                )
            )


async def _python_csv(db: AsyncSession, flt: FeedbackFilter) -> bytes:
    chunks = [dashboard.csv_chunk([], header=True)]
    async for batch in feedback_query.stream_rows(db, flt, batch_size=5):
        chunks.append(dashboard.csv_chunk(batch))
    return b"".join(chunks)


async def _copy_csv(db: AsyncSession, flt: FeedbackFilter) -> bytes:
    chunks: list[bytes] = []

    async def write(data: bytes) -> None:
        chunks.append(data)

    await dashboard.copy_csv(db, flt, write)
    return b"".join(chunks)


@pytest.fixture
async def filled(database_url: str, session_factory: async_sessionmaker[AsyncSession]) -> Any:
    if not database_url.startswith("postgresql"):
        pytest.skip("COPY is PostgreSQL only")
    await _fill(session_factory)
    return session_factory


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"from": "2026-01-01", "to": "2026-04-30"}, id="unfiltered"),
        pytest.param(
            {**MARCH, "tz": "Europe/Berlin", "stage": "support,use", "score_min": "0", "q": "e"},
            id="filtered",
        ),
        pytest.param({**MARCH, "theme": "delivery"}, id="theme"),
        pytest.param({**MARCH, "q": "' OR 1=1 --"}, id="quote-in-parameter"),
        pytest.param({**MARCH, "q": "\\'%_$1"}, id="like-escapes-in-parameter"),
        pytest.param({**MARCH, "product": "SKU-A", "kind": "csat,nps,complaint"}, id="product"),
        pytest.param({**MARCH, "acquisition": "search", "sentiment": "neutral"}, id="acquisition"),
        pytest.param({**MARCH, "trigger": "unsolicited", "score_max": "5"}, id="trigger"),
        pytest.param({"from": "2020-01-01", "to": "2020-01-02"}, id="empty"),
    ],
)
async def test_copy_csv_is_byte_identical_to_the_python_csv(
    filled: async_sessionmaker[AsyncSession], query: dict[str, str]
) -> None:
    flt = feedback_query.parse_filter(query)
    async with filled() as db:
        assert await dashboard.copy_applies(db)
        expected = await _python_csv(db, flt)
    async with filled() as db:
        got = await _copy_csv(db, flt)
    assert got == expected
    if query.get("from") == "2026-01-01":
        assert expected.count(b"awk-") == len(AWKWARD)  # the awkward rows are all in it
        assert b"'=cmd" in got and b"'-1" in got and b"'@x" in got and b"'+x" in got
    if "stage" in query:
        assert 1 < expected.count(b"\r\n") < 20  # a real subset


async def test_http_export_on_postgresql_streams_the_copy_csv(
    filled: async_sessionmaker[AsyncSession], client: Client
) -> None:
    await create_staff(filled)
    await sign_in(client, StaffRole.cx_manager)
    response = await client.get("/api/export?from=2026-03-01&to=2026-03-31&format=csv")
    assert response.status == 200
    async with filled() as db:
        expected = await _python_csv(db, feedback_query.parse_filter(MARCH))
    assert await response.read() == expected


async def test_sqlite_keeps_the_python_path(
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("about SQLite")

    async def no_copy(*args: Any) -> None:
        raise AssertionError("COPY used on SQLite")

    monkeypatch.setattr(dashboard, "copy_csv", no_copy)
    await _fill(session_factory)
    await create_staff(session_factory)
    await sign_in(client, StaffRole.cx_manager)
    async with session_factory() as db:
        assert not await dashboard.copy_applies(db)
        expected = await _python_csv(db, feedback_query.parse_filter(MARCH))
    response = await client.get("/api/export?from=2026-03-01&to=2026-03-31&format=csv")
    assert response.status == 200
    assert await response.read() == expected
