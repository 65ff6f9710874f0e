"""Synthetic shop history for the dashboard benchmark, written with PostgreSQL COPY (or,
for SQLite, multi-row INSERTs through `SQLiteWriter`, with the same rows).

100 000 customers, ~3 journeys each, an order per bought journey (1-3 of 200 products),
survey dispatches (60 % answered) and 1 000 000 feedback rows spread over two years,
with the kinds, scores, texts, sentiment and themes the dashboard aggregates.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bot.storage import rollup, rollup_fix

STAGES = ("discovery", "research", "purchase", "use", "support")
STAGE_WEIGHTS = (10, 8, 25, 45, 12)
CHANNELS = ("website_chat", "support", "call_center", "email", "social", "storefront")
SOURCES = ("search", "social", "friend", "ad", "affiliate", "marketing_email", "other")
TRIGGERS = ("order_placed", "order_delivered", "support_resolved", "subscription_renewed")
KINDS = ("csat", "nps", "ces", "comment", "complaint", "praise", "churn_reason")
KIND_WEIGHTS = (30, 10, 10, 25, 10, 10, 5)
SCALES = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
TEXTS: tuple[tuple[str, float, list[str]], ...] = (
    ("The parcel arrived late and the box was damaged.", -0.6, ["delivery", "product_quality"]),
    ("Great price and fast delivery, thank you!", 0.8, ["price", "delivery"]),
    ("Checkout page crashed twice before payment went through.", -0.5, ["website", "billing"]),
    ("Support agent was helpful and quick.", 0.7, ["support"]),
    ("Refund still not here after two weeks.", -0.4, ["returns"]),
    ("Subscription renewal price went up again, not happy.", -0.45, ["subscription", "price"]),
    ("Lovely quality, fits well.", 0.75, ["product_quality"]),
    ("It is ok.", 0.3, []),
)


CHUNK = 100_000
FEEDBACK_COLUMNS = [
    "id",
    "idempotency_key",
    "customer_id",
    "lifecycle_id",
    "stage",
    "channel",
    "source",
    "kind",
    "score",
    "text",
    "sentiment",
    "themes",
    "order_id",
    "survey_dispatch_id",
    "created_at",
]
DISPATCH_COLUMNS = [
    "id",
    "customer_id",
    "lifecycle_id",
    "trigger",
    "survey_kind",
    "created_at",
    "sent_at",
    "answered_at",
]


async def _copy_dispatches(connection: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await connection.copy_records_to_table(
            "survey_dispatches", records=rows, columns=DISPATCH_COLUMNS
        )


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


async def generate(
    connection: asyncpg.Connection,
    *,
    customers: int = 100_000,
    feedback: int = 1_000_000,
    days: int = 730,
    seed: int = 1,
    dialect: str = "postgresql",
) -> dict[str, Any]:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = (now - timedelta(days=days)).timestamp()
    span = now.timestamp() - start
    started = time.perf_counter()

    customer_rows = [
        (
            i,
            f"B{i}",
            f"c{i}@example.com",
            f"Customer {i}",
            False,
            rng.choice(SOURCES) if rng.random() < 0.9 else None,
            _utc(start + rng.random() * span * 0.5),
        )
        for i in range(1, customers + 1)
    ]
    await connection.copy_records_to_table(
        "customers",
        records=customer_rows,
        columns=[
            "id",
            "external_id",
            "email",
            "name",
            "is_anonymous",
            "acquisition_source",
            "created_at",
        ],
    )

    lifecycles: list[tuple[Any, ...]] = []
    orders: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    journeys: list[
        tuple[int, int, str, float, int | None]
    ] = []  # id, customer, stage, opened, order
    for customer_id in range(1, customers + 1):
        source = customer_rows[customer_id - 1][5]
        for _ in range(rng.choice((1, 2, 3, 3, 4, 5))):
            lifecycle_id = len(lifecycles) + 1
            opened = start + rng.random() * span
            stage = rng.choices(STAGES, STAGE_WEIGHTS)[0]
            channel = source if rng.random() < 0.7 else rng.choice(SOURCES)
            order_id = None
            if stage in ("purchase", "use", "support"):
                order_id = len(orders) + 1
                orders.append(
                    (
                        order_id,
                        f"B{order_id}",
                        customer_id,
                        "delivered",
                        Decimal("42.00"),
                        "EUR",
                        "Street 1, City",
                        _utc(opened + 3600),
                    )
                )
                for _ in range(rng.choice((1, 1, 2, 3))):
                    sku = rng.randrange(200)
                    items.append(
                        (
                            len(items) + 1,
                            order_id,
                            f"SKU-{sku:03d}",
                            f"Product {sku}",
                            1,
                            Decimal("21.00"),
                        )
                    )
            lifecycles.append((lifecycle_id, customer_id, "one_time", stage, _utc(opened), channel))
            journeys.append((lifecycle_id, customer_id, stage, opened, order_id))
    await connection.copy_records_to_table(
        "lifecycles",
        records=lifecycles,
        columns=["id", "customer_id", "kind", "stage", "opened_at", "acquisition_channel"],
    )
    await connection.copy_records_to_table(
        "orders",
        records=orders,
        columns=[
            "id",
            "number",
            "customer_id",
            "status",
            "total",
            "currency",
            "shipping_address",
            "placed_at",
        ],
    )
    await connection.copy_records_to_table(
        "order_items",
        records=items,
        columns=["id", "order_id", "sku", "name", "quantity", "unit_price"],
    )

    dispatches: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    dispatch_count = 0
    stage_rank = {s: i for i, s in enumerate(STAGES)}
    for feedback_id in range(1, feedback + 1):
        lifecycle_id, customer_id, stage, opened, order_id = journeys[rng.randrange(len(journeys))]
        created = min(opened + rng.random() * 60 * 86400, now.timestamp() - 1)
        # Feedback is given at the journey's stage or an earlier one.
        at_stage = STAGES[rng.randint(0, stage_rank[stage])]
        kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
        score = text = sentiment = None
        themes: list[str] = []
        dispatch_id = None
        if kind in SCALES:
            low, high = SCALES[kind]
            penalty = 1 if at_stage == "support" else 0
            score = max(low, min(high, round(rng.triangular(low, high, high - penalty * 2))))
            if rng.random() < 0.6:
                dispatch_count += 1
                dispatch_id = dispatch_count
                sent = created - rng.random() * 3600
                dispatches.append(
                    (
                        dispatch_id,
                        customer_id,
                        lifecycle_id,
                        rng.choice(TRIGGERS),
                        kind,
                        _utc(sent),
                        _utc(sent),
                        _utc(created),
                    )
                )
        else:
            text, sentiment, themes = rng.choice(TEXTS)
        rows.append(
            (
                feedback_id,
                f"bench:{feedback_id}",
                customer_id,
                lifecycle_id,
                at_stage,
                rng.choice(CHANNELS),
                "chat_survey" if score is not None else "free_text",
                kind,
                score,
                text,
                sentiment,
                json.dumps(themes),
                order_id,
                dispatch_id,
                _utc(created),
            )
        )
        if len(rows) == CHUNK or feedback_id == feedback:  # COPY in chunks: bounded memory
            await _copy_dispatches(connection, dispatches)
            await connection.copy_records_to_table(
                "feedback", records=rows, columns=FEEDBACK_COLUMNS
            )
            dispatches, rows = [], []
    # Surveys nobody answered: 40 % on top of the answered ones.
    for _ in range(dispatch_count * 2 // 3):
        lifecycle_id, customer_id, _stage, opened, _order = journeys[rng.randrange(len(journeys))]
        sent = min(opened + rng.random() * 30 * 86400, now.timestamp() - 1)
        dispatch_count += 1
        dispatches.append(
            (
                dispatch_count,
                customer_id,
                lifecycle_id,
                rng.choice(TRIGGERS),
                "csat",
                _utc(sent),
                _utc(sent),
                None,
            )
        )
    await _copy_dispatches(connection, dispatches)
    for table in (
        "customers",
        "lifecycles",
        "orders",
        "order_items",
        "survey_dispatches",
        "feedback",
    ):
        if dialect == "postgresql":
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    # COPY ran with the triggers off (session_replication_role; SQLite: dropped): fill the
    # rollups.
    for statement in (
        rollup.all_backfill_ddl(dialect)
        + rollup_fix.backfill_ddl(dialect)
        + rollup_fix.monthly_backfill_ddl(dialect)
    ):
        await connection.execute(statement)
    await connection.execute("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE")
    return {
        "customers": customers,
        "lifecycles": len(lifecycles),
        "orders": len(orders),
        "order_items": len(items),
        "survey_dispatches": dispatch_count,
        "feedback": feedback,
        "seconds": round(time.perf_counter() - started, 1),
    }


class SQLiteWriter:
    """The two calls `generate` makes of an asyncpg connection, on a sqlite3 file: values as
    SQLAlchemy stores them there (datetimes 'YYYY-MM-DD HH:MM:SS.ffffff', decimals as
    floats)."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = OFF")

    @staticmethod
    def _value(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, Decimal):
            return float(value)
        return value

    async def copy_records_to_table(
        self, table: str, *, records: list[tuple[Any, ...]], columns: list[str]
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        self.db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            ([self._value(v) for v in row] for row in records),
        )
        self.db.commit()

    async def execute(self, statement: str) -> None:
        self.db.execute(statement)
        self.db.commit()

    def close(self) -> None:
        self.db.close()
