"""Daily pre-aggregates for the dashboard, kept current by database triggers.

`feedback_daily` holds, per UTC day x stage x channel, the counts and sums behind every
metric (the columns of `MetricCounts`); `survey_dispatch_daily` the surveys sent and answered per UTC day (of
sending) x trigger. Triggers on `feedback` and `survey_dispatches` update them on every
INSERT, UPDATE and DELETE (PostgreSQL: one PL/pgSQL function per table; SQLite: three
triggers per table), so they are always exact, also for rows written with an old
`created_at` (imports). Created by migration 0005 and, for `metadata.create_all()`
(tests), by `install()` on the metadata's after_create event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection

NEGATIVE = -0.05  # bot.domain.analysis.NEGATIVE (VADER's cut-off), kept here as SQL text

# Aggregated columns of feedback_daily and the per-row value each one adds.
_FEEDBACK_VALUES = (
    ("volume", "1"),
    ("csat_responses", "CASE WHEN {r}.kind = 'csat' AND {r}.score IS NOT NULL THEN 1 ELSE 0 END"),
    ("csat_satisfied", "CASE WHEN {r}.kind = 'csat' AND {r}.score >= 4 THEN 1 ELSE 0 END"),
    ("nps_responses", "CASE WHEN {r}.kind = 'nps' AND {r}.score IS NOT NULL THEN 1 ELSE 0 END"),
    ("nps_promoters", "CASE WHEN {r}.kind = 'nps' AND {r}.score >= 9 THEN 1 ELSE 0 END"),
    ("nps_detractors", "CASE WHEN {r}.kind = 'nps' AND {r}.score <= 6 THEN 1 ELSE 0 END"),
    ("ces_responses", "CASE WHEN {r}.kind = 'ces' AND {r}.score IS NOT NULL THEN 1 ELSE 0 END"),
    ("ces_sum", "CASE WHEN {r}.kind = 'ces' AND {r}.score IS NOT NULL THEN {r}.score ELSE 0 END"),
    ("sentiment_count", "CASE WHEN {r}.sentiment IS NULL THEN 0 ELSE 1 END"),
    ("sentiment_sum", "COALESCE({r}.sentiment, 0)"),
)  # fmt: skip
_DISPATCH_VALUES = (
    ("sent", "1"),
    ("answered", "CASE WHEN {r}.answered_at IS NULL THEN 0 ELSE 1 END"),
)


def _day(dialect: str, row: str, column: str) -> str:
    if dialect == "postgresql":
        return f"CAST(timezone('UTC', {row}.{column}) AS DATE)"
    return f"date({row}.{column})"


def _add(dialect: str, table: str, keys: list[tuple[str, str]], values: Any, row: str) -> str:
    """INSERT ... ON CONFLICT DO UPDATE adding one row's values (an UPSERT)."""
    columns = [k for k, _ in keys] + [c for c, _ in values]
    exprs = [e.format(r=row) for _, e in keys] + [e.format(r=row) for _, e in values]
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c, _ in values)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(exprs)}) "
        f"ON CONFLICT ({', '.join(k for k, _ in keys)}) DO UPDATE SET {updates}"
    )


def _subtract(table: str, keys: list[tuple[str, str]], values: Any, row: str) -> str:
    sets = ", ".join(f"{c} = {c} - ({e.format(r=row)})" for c, e in values)
    where = " AND ".join(f"{k} = {e.format(r=row)}" for k, e in keys)
    return f"UPDATE {table} SET {sets} WHERE {where}"


def _feedback_keys(dialect: str, row: str) -> list[tuple[str, str]]:
    return [
        ("day", _day(dialect, "{r}", "created_at")),
        ("stage", "{r}.stage"),
        ("channel", "{r}.channel"),
    ]


def _dispatch_keys(dialect: str) -> list[tuple[str, str]]:
    return [("day", _day(dialect, "{r}", "sent_at")), ("trigger", "{r}.trigger")]


_TABLES = (
    # (source table, rollup table, keys(dialect), values, the row only counts when)
    ("feedback", "feedback_daily", _feedback_keys, _FEEDBACK_VALUES, None),
    ("survey_dispatches", "survey_dispatch_daily", lambda d, _r: _dispatch_keys(d), _DISPATCH_VALUES, "sent_at"),
)  # fmt: skip


def trigger_ddl(dialect: str) -> list[str]:
    """The statements creating the maintenance triggers on this dialect."""
    statements = []
    for source, table, keys_of, values, needs in _TABLES:
        keys = keys_of(dialect, "{r}")
        old_ok = f"OLD.{needs} IS NOT NULL" if needs else "TRUE"
        new_ok = f"NEW.{needs} IS NOT NULL" if needs else "TRUE"
        subtract_old = _subtract(table, keys, values, "OLD")
        add_new = _add(dialect, table, keys, values, "NEW")
        if dialect == "postgresql":
            statements.append(
                f"CREATE OR REPLACE FUNCTION {table}_apply() RETURNS trigger AS $$\n"
                "BEGIN\n"
                f"  IF TG_OP IN ('UPDATE', 'DELETE') AND {old_ok} THEN {subtract_old}; END IF;\n"
                f"  IF TG_OP IN ('INSERT', 'UPDATE') AND {new_ok} THEN {add_new}; END IF;\n"
                "  RETURN NULL;\n"
                "END $$ LANGUAGE plpgsql"
            )
            statements.append(
                f"CREATE TRIGGER {table}_trigger AFTER INSERT OR UPDATE OR DELETE ON {source} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_apply()"
            )
        else:
            when_old = f" WHEN {old_ok}" if needs else ""
            when_new = f" WHEN {new_ok}" if needs else ""
            statements += [
                f"CREATE TRIGGER {table}_insert AFTER INSERT ON {source}{when_new} "
                f"BEGIN {add_new}; END",
                f"CREATE TRIGGER {table}_delete AFTER DELETE ON {source}{when_old} "
                f"BEGIN {subtract_old}; END",
                # Two triggers for an update: SQLite has no IF inside a trigger body.
                f"CREATE TRIGGER {table}_update_old AFTER UPDATE ON {source}{when_old} "
                f"BEGIN {subtract_old}; END",
                f"CREATE TRIGGER {table}_update_new AFTER UPDATE ON {source}{when_new} "
                f"BEGIN {add_new}; END",
            ]
    return statements + _group_trigger_ddl(dialect)


# ---- feedback_daily_groups: per UTC day x (trigger | acquisition source | product) ---------

GROUPS = "feedback_daily_groups"


def _themes(dialect: str, row: str) -> str:
    """The negative row's themes as a table with a `value` column."""
    if dialect == "postgresql":
        return (
            f"json_array_elements_text({row}.themes) AS t(value) WHERE {row}.sentiment < {NEGATIVE}"
        )
    return f"json_each({row}.themes) AS t WHERE {row}.sentiment < {NEGATIVE}"


def _group_dimensions(dialect: str, row: str) -> list[tuple[str, str, str, str, str]]:
    """(dimension, key, label, FROM ... WHERE ... for one feedback row, GROUP BY)."""
    trigger = "COALESCE(d.trigger, 'unsolicited')"
    source = "COALESCE(l.acquisition_channel, c.acquisition_source, 'unknown')"
    return [
        ("trigger", trigger, trigger,
         f"(SELECT 1 AS one) AS one LEFT JOIN survey_dispatches d ON d.id = {row}.survey_dispatch_id WHERE 1 = 1", ""),
        ("acquisition_source", source, source,
         f"lifecycles l JOIN customers c ON c.id = l.customer_id WHERE l.id = {row}.lifecycle_id", ""),
        # An order listing a product twice counts once for it.
        ("product", "oi.sku", "MAX(oi.name)",
         f"order_items oi WHERE oi.order_id = {row}.order_id", " GROUP BY oi.sku"),
        # Themes of negative comments (journey map), key "<stage>:<theme>".
        ("negative_theme", f"{row}.stage || ':' || t.value", "t.value", _themes(dialect, row), ""),
    ]  # fmt: skip


def _group_add(dialect: str, row: str) -> list[str]:
    columns = ["day", "dimension", "key", "label"] + [c for c, _ in _FEEDBACK_VALUES]
    values = [e.format(r=row) for _, e in _FEEDBACK_VALUES]
    updates = ", ".join(
        ["label = excluded.label"]
        + [f"{c} = {GROUPS}.{c} + excluded.{c}" for c, _ in _FEEDBACK_VALUES]
    )
    day = _day(dialect, row, "created_at")
    return [
        f"INSERT INTO {GROUPS} ({', '.join(columns)}) "
        f"SELECT {day}, '{dimension}', {key}, {label}, {', '.join(values)} FROM {source}{group} "
        f"ON CONFLICT (day, dimension, key) DO UPDATE SET {updates}"
        for dimension, key, label, source, group in _group_dimensions(dialect, row)
    ]


def _group_subtract(dialect: str, row: str) -> list[str]:
    sets = ", ".join(f"{c} = {c} - ({e.format(r=row)})" for c, e in _FEEDBACK_VALUES)
    day = _day(dialect, row, "created_at")
    return [
        f"UPDATE {GROUPS} SET {sets} WHERE day = {day} AND dimension = '{dimension}' "
        f"AND key IN (SELECT {key} FROM {source})"
        for dimension, key, _label, source, _group in _group_dimensions(dialect, row)
    ]


def _group_trigger_ddl(dialect: str) -> list[str]:
    add_new, subtract_old = _group_add(dialect, "NEW"), _group_subtract(dialect, "OLD")
    if dialect == "postgresql":
        return [
            f"CREATE OR REPLACE FUNCTION {GROUPS}_apply() RETURNS trigger AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP IN ('UPDATE', 'DELETE') THEN {'; '.join(subtract_old)}; END IF;\n"
            f"  IF TG_OP IN ('INSERT', 'UPDATE') THEN {'; '.join(add_new)}; END IF;\n"
            "  RETURN NULL;\n"
            "END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {GROUPS}_trigger AFTER INSERT OR UPDATE OR DELETE ON feedback "
            f"FOR EACH ROW EXECUTE FUNCTION {GROUPS}_apply()",
        ]
    return [
        f"CREATE TRIGGER {GROUPS}_insert AFTER INSERT ON feedback BEGIN {'; '.join(add_new)}; END",
        f"CREATE TRIGGER {GROUPS}_delete AFTER DELETE ON feedback BEGIN {'; '.join(subtract_old)}; END",
        f"CREATE TRIGGER {GROUPS}_update_old AFTER UPDATE ON feedback BEGIN {'; '.join(subtract_old)}; END",
        f"CREATE TRIGGER {GROUPS}_update_new AFTER UPDATE ON feedback BEGIN {'; '.join(add_new)}; END",
    ]  # fmt: skip


def _group_backfill(dialect: str) -> list[str]:
    day = _day(dialect, "feedback", "created_at")
    sums = ", ".join(f"SUM({e.format(r='feedback')})" for _, e in _FEEDBACK_VALUES)
    columns = ", ".join(["day", "dimension", "key", "label"] + [c for c, _ in _FEEDBACK_VALUES])
    trigger = "COALESCE(d.trigger, 'unsolicited')"
    source = "COALESCE(l.acquisition_channel, c.acquisition_source, 'unknown')"
    joins = {
        "trigger": (trigger, trigger, "LEFT JOIN survey_dispatches d ON d.id = feedback.survey_dispatch_id"),
        "acquisition_source": (source, source,
            "JOIN lifecycles l ON l.id = feedback.lifecycle_id JOIN customers c ON c.id = l.customer_id"),
        "product": ("oi.sku", "MAX(oi.name)",
            "JOIN (SELECT order_id, sku, MAX(name) AS name FROM order_items GROUP BY order_id, sku) oi "
            "ON oi.order_id = feedback.order_id"),
    }  # fmt: skip
    lateral = "CROSS JOIN LATERAL " if dialect == "postgresql" else ", "
    joins["negative_theme"] = (
        "feedback.stage || ':' || t.value",
        "MAX(t.value)",
        lateral + _themes(dialect, "feedback"),
    )
    return [f"DELETE FROM {GROUPS}"] + [
        f"INSERT INTO {GROUPS} ({columns}) SELECT {day}, '{dimension}', {key}, "
        f"{label if label.startswith('MAX') else 'MAX(' + label + ')'}, {sums} "
        f"FROM feedback {join} GROUP BY {day}, {key}"
        for dimension, (key, label, join) in joins.items()
    ]


def drop_ddl(dialect: str) -> list[str]:
    tables = [(source, table) for source, table, *_ in _TABLES] + [("feedback", GROUPS)]
    if dialect == "postgresql":
        return [
            stmt
            for source, table in tables
            for stmt in (
                f"DROP TRIGGER IF EXISTS {table}_trigger ON {source}",
                f"DROP FUNCTION IF EXISTS {table}_apply()",
            )
        ]
    return [
        f"DROP TRIGGER IF EXISTS {table}_{suffix}"
        for _source, table in tables
        for suffix in ("insert", "delete", "update_old", "update_new")
    ]


def backfill_ddl(dialect: str) -> list[str]:
    """Fill the rollups from the rows already there (migration, bulk loads)."""
    statements = []
    for source, table, keys_of, values, needs in _TABLES:
        keys = keys_of(dialect, "{r}")
        key_exprs = [e.format(r=source) for _, e in keys]
        sums = [f"SUM({e.format(r=source)})" for _, e in values]
        where = f" WHERE {source}.{needs} IS NOT NULL" if needs else ""
        statements += [
            f"DELETE FROM {table}",
            f"INSERT INTO {table} ({', '.join([k for k, _ in keys] + [c for c, _ in values])}) "
            f"SELECT {', '.join(key_exprs + sums)} FROM {source}{where} "
            f"GROUP BY {', '.join(key_exprs)}",
        ]
    return statements + _group_backfill(dialect)


def execute(connection: Connection, statements: list[str]) -> None:
    for statement in statements:
        connection.execute(text(statement))


def install(metadata: MetaData) -> None:
    """Create the triggers whenever `metadata.create_all()` creates the tables."""

    def after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
        names = set(metadata.tables)
        needed = {
            "feedback",
            "feedback_daily",
            GROUPS,
            "survey_dispatches",
            "survey_dispatch_daily",
        }
        if needed <= names:
            execute(connection, drop_ddl(connection.dialect.name))
            execute(connection, trigger_ddl(connection.dialect.name))

    def before_drop(_target: Any, connection: Connection, **_kw: Any) -> None:
        execute(connection, drop_ddl(connection.dialect.name))

    event.listen(metadata, "after_create", after_create)
    event.listen(metadata, "before_drop", before_drop)
