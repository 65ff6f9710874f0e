"""Daily pre-aggregates for the dashboard, kept current by database triggers.

`feedback_daily` holds, per UTC day x stage x channel, the counts and sums behind every
metric (the columns of `MetricCounts`); `survey_dispatch_daily` the surveys sent and answered per UTC day (of
sending) x trigger. Triggers on `feedback` and `survey_dispatches` update them on every
INSERT, UPDATE and DELETE (PostgreSQL: one PL/pgSQL function per table; SQLite: three
triggers per table), so they are always exact, also for rows written with an old
`created_at` (imports). Created by migration 0005 and, for `metadata.create_all()`
(tests), by `install()` on the metadata's after_create event.

Migration 0009 adds `survey_dispatch_sources` (surveys per UTC day x acquisition source),
`feedback_monthly_groups` (month totals of feedback_daily_groups), triggers that follow
later changes of a journey's or customer's source and of an order's items, and the journey
links of bot/storage/rollup_journey.py (PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection

from bot.storage import rollup_journey, rollup_loyalty

NEGATIVE = -0.05  # bot.domain.analysis.NEGATIVE (VADER's cut-off), kept here as SQL text
# The stage key of feedback from a reviewer who is not a known customer (no lifecycle, so
# `feedback.stage` is NULL; issue #23, migration 0019): its own journey-map column.
UNATTRIBUTED = "unattributed"
_STAGE = "COALESCE({r}.stage, '" + UNATTRIBUTED + "')"

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
)
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
        ("stage", _STAGE),
        ("channel", "{r}.channel"),
    ]


def _dispatch_keys(dialect: str) -> list[tuple[str, str]]:
    return [("day", _day(dialect, "{r}", "sent_at")), ("trigger", "{r}.trigger")]


_TABLES = (
    # (source table, rollup table, keys(dialect), values, the row only counts when)
    ("feedback", "feedback_daily", _feedback_keys, _FEEDBACK_VALUES, None),
    (
        "survey_dispatches",
        "survey_dispatch_daily",
        lambda d, _r: _dispatch_keys(d),
        _DISPATCH_VALUES,
        "sent_at",
    ),
)


# Bulk inserts (the web-review import, issue #23) on PostgreSQL: `SET LOCAL
# rollup.deferred = 'on'` makes the row triggers of feedback skip INSERTs of that
# transaction, which then adds the rows' totals in a few set-based statements
# (`delta_ddl`, with the inserted ids) before it commits. Only INSERTs are skipped.
DEFERRED_SETTING = "rollup.deferred"
_DEFERRED_SKIP = (
    f"  IF TG_OP = 'INSERT' AND current_setting('{DEFERRED_SETTING}', true) = 'on' THEN\n"
    "    RETURN NULL;\n  END IF;\n"
)


def trigger_ddl(dialect: str) -> list[str]:
    """The statements creating the maintenance triggers of migration 0005 on this dialect."""
    return _table_trigger_ddl(dialect, _TABLES) + _group_trigger_ddl(dialect)


def _table_trigger_ddl(dialect: str, tables: Any) -> list[str]:
    statements = []
    for source, table, keys_of, values, needs in tables:
        keys = keys_of(dialect, "{r}")
        old_ok = f"OLD.{needs} IS NOT NULL" if needs else "TRUE"
        new_ok = f"NEW.{needs} IS NOT NULL" if needs else "TRUE"
        subtract_old = _subtract(table, keys, values, "OLD")
        add_new = _add(dialect, table, keys, values, "NEW")
        if dialect == "postgresql":
            statements.append(
                f"CREATE OR REPLACE FUNCTION {table}_apply() RETURNS trigger AS $$\n"
                "BEGIN\n"
                + (_DEFERRED_SKIP if source == "feedback" else "")
                + f"  IF TG_OP IN ('UPDATE', 'DELETE') AND {old_ok} THEN {subtract_old}; END IF;\n"
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
    return statements


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
        (
            "trigger",
            trigger,
            trigger,
            f"(SELECT 1 AS one) AS one LEFT JOIN survey_dispatches d ON d.id = {row}.survey_dispatch_id WHERE 1 = 1",
            "",
        ),
        # Left joins: an unattributed review (no lifecycle) counts under 'unknown'.
        (
            "acquisition_source",
            source,
            source,
            f"(SELECT 1 AS one) AS one LEFT JOIN lifecycles l ON l.id = {row}.lifecycle_id "
            "LEFT JOIN customers c ON c.id = l.customer_id WHERE 1 = 1",
            "",
        ),
        # An order listing a product twice counts once for it.
        (
            "product",
            "oi.sku",
            "MAX(oi.name)",
            f"order_items oi WHERE oi.order_id = {row}.order_id",
            " GROUP BY oi.sku",
        ),
        # Themes of negative comments (journey map), key "<stage>:<theme>".
        (
            "negative_theme",
            _STAGE.format(r=row) + " || ':' || t.value",
            "t.value",
            _themes(dialect, row),
            "",
        ),
    ]


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
            + _DEFERRED_SKIP
            + f"  IF TG_OP IN ('UPDATE', 'DELETE') THEN {'; '.join(subtract_old)}; END IF;\n"
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
    ]


def _group_joins(dialect: str) -> dict[str, tuple[str, str, str]]:
    """Per dimension of feedback_daily_groups: (key, label, joins after `FROM feedback`)."""
    trigger = "COALESCE(d.trigger, 'unsolicited')"
    source = "COALESCE(l.acquisition_channel, c.acquisition_source, 'unknown')"
    joins = {
        "trigger": (
            trigger,
            trigger,
            "LEFT JOIN survey_dispatches d ON d.id = feedback.survey_dispatch_id",
        ),
        "acquisition_source": (
            source,
            source,
            "LEFT JOIN lifecycles l ON l.id = feedback.lifecycle_id "
            "LEFT JOIN customers c ON c.id = l.customer_id",
        ),
        "product": (
            "oi.sku",
            "MAX(oi.name)",
            "JOIN (SELECT order_id, sku, MAX(name) AS name FROM order_items GROUP BY order_id, sku) oi "
            "ON oi.order_id = feedback.order_id",
        ),
    }
    lateral = "CROSS JOIN LATERAL " if dialect == "postgresql" else ", "
    joins["negative_theme"] = (
        _STAGE.format(r="feedback") + " || ':' || t.value",
        "MAX(t.value)",
        lateral + _themes(dialect, "feedback"),
    )
    return joins


def _group_inserts(dialect: str, where: str | None) -> list[str]:
    day = _day(dialect, "feedback", "created_at")
    sums = ", ".join(f"SUM({e.format(r='feedback')})" for _, e in _FEEDBACK_VALUES)
    columns = ", ".join(["day", "dimension", "key", "label"] + [c for c, _ in _FEEDBACK_VALUES])
    statements = []
    joins = _group_joins(dialect)
    if where and dialect == "postgresql":
        # A few rows: their orders' products by index, not every order's grouped first.
        joins["product"] = (
            "oi.sku",
            "MAX(oi.name)",
            "CROSS JOIN LATERAL (SELECT sku, MAX(name) AS name FROM order_items "
            "WHERE order_items.order_id = feedback.order_id GROUP BY sku) oi",
        )
    for dimension, (key, label, join) in joins.items():
        condition = ""
        if where:
            # The themes join ends in its own WHERE (after its last parenthesis; a WHERE
            # inside a subquery does not count).
            own_where = " WHERE " in join.rsplit(")", 1)[-1]
            condition = f" {'AND' if own_where else 'WHERE'} {where}"
        statement = (
            f"INSERT INTO {GROUPS} ({columns}) SELECT {day}, '{dimension}', {key}, "
            f"{label if label.startswith('MAX') else 'MAX(' + label + ')'}, {sums} "
            f"FROM feedback {join}{condition} GROUP BY {day}, {key}"
        )
        if where:
            updates = ", ".join(
                ["label = excluded.label"]
                + [f"{c} = {GROUPS}.{c} + excluded.{c}" for c, _ in _FEEDBACK_VALUES]
            )
            statement += f" ON CONFLICT (day, dimension, key) DO UPDATE SET {updates}"
        statements.append(statement)
    return statements


def _group_backfill(dialect: str) -> list[str]:
    return [f"DELETE FROM {GROUPS}", *_group_inserts(dialect, None)]


def delta_ddl(dialect: str) -> list[str]:
    """Add the feedback rows `:ids` (inserted while `rollup.deferred` was on) to
    feedback_daily and feedback_daily_groups, as their row triggers would have; the
    monthly totals follow by their own trigger on feedback_daily_groups. PostgreSQL."""
    where = "feedback.id = ANY(:ids)"
    keys = _feedback_keys(dialect, "feedback")
    key_exprs = [e.format(r="feedback") for _, e in keys]
    sums = [f"SUM({e.format(r='feedback')})" for _, e in _FEEDBACK_VALUES]
    updates = ", ".join(f"{c} = feedback_daily.{c} + excluded.{c}" for c, _ in _FEEDBACK_VALUES)
    daily = (
        f"INSERT INTO feedback_daily ({', '.join([k for k, _ in keys] + [c for c, _ in _FEEDBACK_VALUES])}) "
        f"SELECT {', '.join(key_exprs + sums)} FROM feedback WHERE {where} "
        f"GROUP BY {', '.join(key_exprs)} "
        f"ON CONFLICT ({', '.join(k for k, _ in keys)}) DO UPDATE SET {updates}"
    )
    return [daily, *_group_inserts(dialect, where), rollup_loyalty.delta_ddl()]


def drop_ddl(dialect: str) -> list[str]:
    tables = [(source, table) for source, table, *_ in _TABLES] + [("feedback", GROUPS)]
    return _table_drop_ddl(dialect, tables)


def _table_drop_ddl(dialect: str, tables: list[tuple[str, str]]) -> list[str]:
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


# ---- migration 0009: acquisition sources of survey dispatches, re-keying on source changes --
#
# `survey_dispatch_sources`: surveys sent/answered per UTC day (of sending) x acquisition
# source of the journey (the response rate of the acquisition-source breakdown). A journey's
# source is read when a row is written, and the lifecycle's and the customer's source can
# change later (the "how did you hear about us" answer sets both after the answer's own
# feedback row was written), so triggers on `lifecycles` and `customers` move the rows of the
# affected journeys from the old to the new source in this table and in the
# `acquisition_source` rows of feedback_daily_groups: both stay exact.

SOURCES = "survey_dispatch_sources"
_SOURCE = (
    "COALESCE({l}.acquisition_channel, "
    "(SELECT c.acquisition_source FROM customers c WHERE c.id = {l}.customer_id), 'unknown')"
)


# A survey dispatch's source: its journey's, else the customer's (as in the raw query).
_DISPATCH_SOURCE = (
    "COALESCE((SELECT COALESCE(l.acquisition_channel, c.acquisition_source) FROM lifecycles l "
    "JOIN customers c ON c.id = l.customer_id WHERE l.id = {r}.lifecycle_id), 'unknown')"
)


def _dispatch_source_keys(dialect: str, _row: str) -> list[tuple[str, str]]:
    return [
        ("day", _day(dialect, "{r}", "sent_at")),
        ("source", _DISPATCH_SOURCE),
    ]


_SOURCE_TABLES = (
    ("survey_dispatches", SOURCES, _dispatch_source_keys, _DISPATCH_VALUES, "sent_at"),
)


def _source_key(row: str) -> str:
    """A lifecycle row's acquisition source as the dashboard groups it."""
    return _SOURCE.format(l=row)


def _moves(dialect: str, scope: str, key: str, sign: str) -> list[str]:
    """Add (sign '+') or take away ('-') the feedback and the sent surveys of the journeys in
    `scope` (a FROM/WHERE tail over `f` = feedback or `d` = survey_dispatches, with `x` the
    row) under acquisition source `key`, in feedback_daily_groups and survey_dispatch_sources.
    """
    fday, dday = _day(dialect, "f", "created_at"), _day(dialect, "d", "sent_at")
    fsums = ", ".join(f"SUM({e.format(r='f')}) AS x_{c}" for c, e in _FEEDBACK_VALUES)
    dsums = ", ".join(f"SUM({e.format(r='d')}) AS x_{c}" for c, e in _DISPATCH_VALUES)
    fscope, dscope = scope.format(x="f"), scope.format(x="d") + " AND d.sent_at IS NOT NULL"
    if sign == "-":
        fsets = ", ".join(f"{c} = {GROUPS}.{c} - s.x_{c}" for c, _ in _FEEDBACK_VALUES)
        dsets = ", ".join(f"{c} = {SOURCES}.{c} - s.x_{c}" for c, _ in _DISPATCH_VALUES)
        return [
            f"UPDATE {GROUPS} SET {fsets} FROM (SELECT {fday} AS day, {fsums} FROM feedback f "
            f"{fscope} GROUP BY {fday}) AS s WHERE {GROUPS}.day = s.day "
            f"AND {GROUPS}.dimension = 'acquisition_source' AND {GROUPS}.key = {key}",
            f"UPDATE {SOURCES} SET {dsets} FROM (SELECT {dday} AS day, {dsums} "
            f"FROM survey_dispatches d {dscope} GROUP BY {dday}) AS s "
            f"WHERE {SOURCES}.day = s.day AND {SOURCES}.source = {key}",
        ]
    fcols = ", ".join(c for c, _ in _FEEDBACK_VALUES)
    dcols = ", ".join(c for c, _ in _DISPATCH_VALUES)
    fadd = ", ".join(f"{c} = {GROUPS}.{c} + excluded.{c}" for c, _ in _FEEDBACK_VALUES)
    dadd = ", ".join(f"{c} = {SOURCES}.{c} + excluded.{c}" for c, _ in _DISPATCH_VALUES)
    fvalues = ", ".join(f"SUM({e.format(r='f')})" for _, e in _FEEDBACK_VALUES)
    dvalues = ", ".join(f"SUM({e.format(r='d')})" for _, e in _DISPATCH_VALUES)
    return [
        f"INSERT INTO {GROUPS} (day, dimension, key, label, {fcols}) "
        f"SELECT {fday}, 'acquisition_source', {key}, {key}, {fvalues} FROM feedback f {fscope} "
        f"GROUP BY {fday} ON CONFLICT (day, dimension, key) DO UPDATE SET {fadd}",
        f"INSERT INTO {SOURCES} (day, source, {dcols}) SELECT {dday}, {key}, {dvalues} "
        f"FROM survey_dispatches d {dscope} GROUP BY {dday} "
        f"ON CONFLICT (day, source) DO UPDATE SET {dadd}",
    ]


def _rekey_triggers(dialect: str) -> list[tuple[str, str, str, str, list[str]]]:
    """(name, table, columns, when, statements) of the two re-keying triggers."""
    journey = "WHERE {x}.lifecycle_id = NEW.id"
    customer = (
        "JOIN lifecycles l ON l.id = {x}.lifecycle_id "
        "WHERE l.customer_id = NEW.id AND l.acquisition_channel IS NULL"
    )
    old_l, new_l = _source_key("OLD"), _source_key("NEW")
    old_c, new_c = (
        "COALESCE(OLD.acquisition_source, 'unknown')",
        "COALESCE(NEW.acquisition_source, 'unknown')",
    )
    old_journey = "WHERE {x}.lifecycle_id = OLD.id"
    return [
        (
            "lifecycles_source",
            "lifecycles",
            "acquisition_channel, customer_id",
            f"{old_l} IS DISTINCT FROM {new_l}",
            _moves(dialect, old_journey, old_l, "-") + _moves(dialect, journey, new_l, "+"),
        ),
        (
            "customers_source",
            "customers",
            "acquisition_source",
            f"{old_c} IS DISTINCT FROM {new_c}",
            _moves(dialect, customer, old_c, "-") + _moves(dialect, customer, new_c, "+"),
        ),
    ]


# An order's items can arrive after feedback about the order (an order first seen in an
# event without its items): the product rows follow the (order, SKU) pairs that appear or go.


def _product_moves(dialect: str, pairs: str, sign: str) -> str:
    """Add ('+') or take away ('-') the feedback of the orders in `pairs` (a SELECT of
    order_id, sku, name) under their SKU in feedback_daily_groups."""
    day = _day(dialect, "f", "created_at")
    join = f"FROM feedback f JOIN ({pairs}) AS p ON p.order_id = f.order_id"
    if sign == "-":
        sums = ", ".join(f"SUM({e.format(r='f')}) AS x_{c}" for c, e in _FEEDBACK_VALUES)
        sets = ", ".join(f"{c} = {GROUPS}.{c} - s.x_{c}" for c, _ in _FEEDBACK_VALUES)
        return (
            f"UPDATE {GROUPS} SET {sets} FROM (SELECT {day} AS day, p.sku AS sku, {sums} "
            f"{join} GROUP BY {day}, p.sku) AS s WHERE {GROUPS}.day = s.day "
            f"AND {GROUPS}.dimension = 'product' AND {GROUPS}.key = s.sku"
        )
    columns = ", ".join(c for c, _ in _FEEDBACK_VALUES)
    sums = ", ".join(f"SUM({e.format(r='f')})" for _, e in _FEEDBACK_VALUES)
    adds = ", ".join(
        ["label = excluded.label"]
        + [f"{c} = {GROUPS}.{c} + excluded.{c}" for c, _ in _FEEDBACK_VALUES]
    )
    return (
        f"INSERT INTO {GROUPS} (day, dimension, key, label, {columns}) "
        f"SELECT {day}, 'product', p.sku, MAX(p.name), {sums} {join} GROUP BY {day}, p.sku "
        f"ON CONFLICT (day, dimension, key) DO UPDATE SET {adds}"
    )


def _product_trigger_ddl(dialect: str) -> list[str]:
    if dialect != "postgresql":
        # SQLite runs row triggers as each row is written, so "no other item of this order
        # has the SKU" is right also for several items in one statement.
        def alone(row: str, other: str) -> str:
            return (
                f"NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = {row}.order_id "
                f"AND i.sku = {row}.sku{other})"
            )

        new = _product_moves(
            dialect, "SELECT NEW.order_id AS order_id, NEW.sku AS sku, NEW.name AS name", "+"
        )
        old = _product_moves(
            dialect, "SELECT OLD.order_id AS order_id, OLD.sku AS sku, OLD.name AS name", "-"
        )
        moved = "(OLD.order_id IS NOT NEW.order_id OR OLD.sku IS NOT NEW.sku)"
        return [
            f"CREATE TRIGGER order_items_product_insert AFTER INSERT ON order_items "
            f"WHEN {alone('NEW', ' AND i.id <> NEW.id')} BEGIN {new}; END",
            f"CREATE TRIGGER order_items_product_delete AFTER DELETE ON order_items "
            f"WHEN {alone('OLD', '')} BEGIN {old}; END",
            f"CREATE TRIGGER order_items_product_update_old AFTER UPDATE OF order_id, sku "
            f"ON order_items WHEN {moved} AND {alone('OLD', '')} BEGIN {old}; END",
            f"CREATE TRIGGER order_items_product_update_new AFTER UPDATE OF order_id, sku "
            f"ON order_items WHEN {moved} AND {alone('NEW', ' AND i.id <> NEW.id')} "
            f"BEGIN {new}; END",
        ]
    # PostgreSQL runs row triggers after the statement: compare the (order, SKU) pairs
    # before and after it instead (transition tables, one trigger per operation).
    touched = {
        "INSERT": "SELECT order_id, sku FROM new_rows",
        "UPDATE": "SELECT order_id, sku FROM new_rows UNION SELECT order_id, sku FROM old_rows",
        "DELETE": "SELECT order_id, sku FROM old_rows",
    }
    branches = []
    for op, pairs in touched.items():
        current = (
            "SELECT i.order_id, i.sku, i.name FROM order_items i "
            f"WHERE (i.order_id, i.sku) IN ({pairs})"
        )
        others = current + (" AND i.id NOT IN (SELECT id FROM new_rows)" if op != "DELETE" else "")
        before = others + (
            " UNION ALL SELECT order_id, sku, name FROM old_rows" if op != "INSERT" else ""
        )
        appeared = (
            f"SELECT a.order_id, a.sku, MAX(a.name) AS name FROM ({current}) AS a "
            f"WHERE (a.order_id, a.sku) NOT IN (SELECT b.order_id, b.sku FROM ({before}) AS b) "
            "GROUP BY a.order_id, a.sku"
        )
        gone = (
            f"SELECT b.order_id, b.sku, MAX(b.name) AS name FROM ({before}) AS b "
            f"WHERE (b.order_id, b.sku) NOT IN (SELECT a.order_id, a.sku FROM ({current}) AS a) "
            "GROUP BY b.order_id, b.sku"
        )
        body = [_product_moves(dialect, appeared, "+")]
        if op != "INSERT":
            body.insert(0, _product_moves(dialect, gone, "-"))
        branches.append(f"IF TG_OP = '{op}' THEN {'; '.join(body)}; END IF;")
    transitions = {
        "INSERT": "REFERENCING NEW TABLE AS new_rows",
        "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "REFERENCING OLD TABLE AS old_rows",
    }
    return [
        "CREATE OR REPLACE FUNCTION order_items_product_apply() RETURNS trigger AS $$\n"
        "BEGIN\n  " + "\n  ".join(branches) + "\n  RETURN NULL;\nEND $$ LANGUAGE plpgsql"
    ] + [
        f"CREATE TRIGGER order_items_product_{op.lower()} AFTER {op} ON order_items {tables} "
        "FOR EACH STATEMENT EXECUTE FUNCTION order_items_product_apply()"
        for op, tables in transitions.items()
    ]


def _product_drop_ddl(dialect: str) -> list[str]:
    if dialect != "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS order_items_product_{suffix}"
            for suffix in ("insert", "delete", "update_old", "update_new")
        ]
    return [
        *(
            f"DROP TRIGGER IF EXISTS order_items_product_{op} ON order_items"
            for op in ("insert", "update", "delete")
        ),
        "DROP FUNCTION IF EXISTS order_items_product_apply()",
    ]


def source_trigger_ddl(dialect: str) -> list[str]:
    """Triggers of migration 0009 (survey_dispatch_sources, the source re-keying and
    feedback_monthly_groups)."""
    statements = _table_trigger_ddl(dialect, _SOURCE_TABLES) + monthly_trigger_ddl(dialect)
    statements += _product_trigger_ddl(dialect)
    for name, table, columns, when, body in _rekey_triggers(dialect):
        if dialect == "postgresql":
            statements += [
                f"CREATE OR REPLACE FUNCTION {name}_apply() RETURNS trigger AS $$\n"
                f"BEGIN\n  IF {when} THEN {'; '.join(body)}; END IF;\n  RETURN NULL;\n"
                "END $$ LANGUAGE plpgsql",
                f"CREATE TRIGGER {name}_trigger AFTER UPDATE OF {columns} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}_apply()",
            ]
        else:
            sqlite_when = when.replace("IS DISTINCT FROM", "IS NOT")
            statements.append(
                f"CREATE TRIGGER {name}_update AFTER UPDATE OF {columns} ON {table} "
                f"WHEN {sqlite_when} BEGIN {'; '.join(body)}; END"
            )
    return statements


def source_drop_ddl(dialect: str) -> list[str]:
    tables = [(s, t) for s, t, *_ in _SOURCE_TABLES] + [(GROUPS, MONTHLY)]
    statements = _table_drop_ddl(dialect, tables) + _product_drop_ddl(dialect)
    for name, table, *_rest in _rekey_triggers(dialect):
        if dialect == "postgresql":
            statements += [
                f"DROP TRIGGER IF EXISTS {name}_trigger ON {table}",
                f"DROP FUNCTION IF EXISTS {name}_apply()",
            ]
        else:
            statements.append(f"DROP TRIGGER IF EXISTS {name}_update")
    return statements


def source_backfill_ddl(dialect: str) -> list[str]:
    day = _day(dialect, "d", "sent_at")
    source = "COALESCE(l.acquisition_channel, c.acquisition_source, 'unknown')"
    sums = ", ".join(f"SUM({e.format(r='d')})" for _, e in _DISPATCH_VALUES)
    return [
        f"DELETE FROM {SOURCES}",
        f"INSERT INTO {SOURCES} (day, source, {', '.join(c for c, _ in _DISPATCH_VALUES)}) "
        f"SELECT {day}, {source}, {sums} FROM survey_dispatches d "
        "JOIN lifecycles l ON l.id = d.lifecycle_id JOIN customers c ON c.id = l.customer_id "
        "WHERE d.sent_at IS NOT NULL "
        f"GROUP BY {day}, {source}",
    ]


# ---- migration 0009: feedback_monthly_groups, the month totals of feedback_daily_groups ----
#
# A long range reads its whole months here and only its first and last partial months from
# the daily rows (2 years of 200 products: ~11 000 rows instead of ~146 000). Kept by a
# trigger on feedback_daily_groups itself, so it follows every change of the daily rows
# (feedback written, re-keyed, deleted) without a second copy of that logic.

MONTHLY = "feedback_monthly_groups"


def month_of(dialect: str, day: str) -> str:
    """The first day of the month of a DATE expression."""
    if dialect == "postgresql":
        return f"({day} - CAST(EXTRACT(DAY FROM {day}) AS integer) + 1)"
    return f"date({day}, 'start of month')"


def _monthly_statements(dialect: str, row: str, sign: str) -> str:
    values = [c for c, _ in _FEEDBACK_VALUES]
    month = month_of(dialect, f"{row}.day")
    if sign == "-":
        sets = ", ".join(f"{c} = {c} - {row}.{c}" for c in values)
        return (
            f"UPDATE {MONTHLY} SET {sets} WHERE month = {month} "
            f"AND dimension = {row}.dimension AND key = {row}.key"
        )
    updates = ", ".join(
        ["label = excluded.label"] + [f"{c} = {MONTHLY}.{c} + excluded.{c}" for c in values]
    )
    return (
        f"INSERT INTO {MONTHLY} (month, dimension, key, label, {', '.join(values)}) "
        f"VALUES ({month}, {row}.dimension, {row}.key, {row}.label, "
        f"{', '.join(f'{row}.{c}' for c in values)}) "
        f"ON CONFLICT (month, dimension, key) DO UPDATE SET {updates}"
    )


def month_triggers(
    dialect: str, monthly: str, source: str, subtract_old: str, add_new: str
) -> list[str]:
    """The triggers that keep the month table `monthly` in step with the day table `source`:
    a changed or deleted day row takes its old values off (`subtract_old`, a statement on
    OLD), an inserted or changed one adds its new ones (`add_new`, on NEW)."""
    if dialect == "postgresql":
        return [
            f"CREATE OR REPLACE FUNCTION {monthly}_apply() RETURNS trigger AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP IN ('UPDATE', 'DELETE') THEN {subtract_old}; END IF;\n"
            f"  IF TG_OP IN ('INSERT', 'UPDATE') THEN {add_new}; END IF;\n"
            "  RETURN NULL;\n"
            "END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {monthly}_trigger AFTER INSERT OR UPDATE OR DELETE ON {source} "
            f"FOR EACH ROW EXECUTE FUNCTION {monthly}_apply()",
        ]
    return [
        f"CREATE TRIGGER {monthly}_insert AFTER INSERT ON {source} BEGIN {add_new}; END",
        f"CREATE TRIGGER {monthly}_delete AFTER DELETE ON {source} BEGIN {subtract_old}; END",
        f"CREATE TRIGGER {monthly}_update_old AFTER UPDATE ON {source} BEGIN {subtract_old}; END",
        f"CREATE TRIGGER {monthly}_update_new AFTER UPDATE ON {source} BEGIN {add_new}; END",
    ]


def monthly_trigger_ddl(dialect: str) -> list[str]:
    subtract_old = _monthly_statements(dialect, "OLD", "-")
    add_new = _monthly_statements(dialect, "NEW", "+")
    return month_triggers(dialect, MONTHLY, GROUPS, subtract_old, add_new)


def monthly_backfill_ddl(dialect: str) -> list[str]:
    values = [c for c, _ in _FEEDBACK_VALUES]
    month = month_of(dialect, "day")
    return [
        f"DELETE FROM {MONTHLY}",
        f"INSERT INTO {MONTHLY} (month, dimension, key, label, {', '.join(values)}) "
        f"SELECT {month}, dimension, key, MAX(label), {', '.join(f'SUM({c})' for c in values)} "
        f"FROM {GROUPS} GROUP BY {month}, dimension, key",
    ]


def execute(connection: Connection, statements: list[str]) -> None:
    for statement in statements:
        connection.execute(text(statement))


def all_trigger_ddl(dialect: str) -> list[str]:
    """Every rollup trigger of the current schema (migrations 0005 and 0009)."""
    statements = trigger_ddl(dialect) + source_trigger_ddl(dialect)
    if dialect == "postgresql":
        statements += rollup_journey.trigger_ddl()
    return statements


def all_drop_ddl(dialect: str) -> list[str]:
    statements = drop_ddl(dialect) + source_drop_ddl(dialect)
    if dialect == "postgresql":
        statements += rollup_journey.drop_ddl()
    return statements


def all_backfill_ddl(dialect: str) -> list[str]:
    """Fill every rollup from the rows already there (bulk loads with triggers off)."""
    statements = backfill_ddl(dialect) + source_backfill_ddl(dialect)
    statements += monthly_backfill_ddl(dialect)
    if dialect == "postgresql":
        statements += rollup_journey.backfill_ddl() + rollup_loyalty.backfill_ddl()
    return statements


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
            "lifecycles",
            "customers",
            "order_items",
            SOURCES,
            MONTHLY,
            rollup_journey.TABLE,
        }
        if needed <= names:
            execute(connection, all_drop_ddl(connection.dialect.name))
            execute(connection, all_trigger_ddl(connection.dialect.name))
            # Migration 0026's (all_* are what migration 0019 recreates).
            if connection.dialect.name == "postgresql" and rollup_loyalty.TABLE in names:
                execute(connection, rollup_loyalty.drop_ddl() + rollup_loyalty.trigger_ddl())

    def before_drop(_target: Any, connection: Connection, **_kw: Any) -> None:
        execute(connection, all_drop_ddl(connection.dialect.name))
        if connection.dialect.name == "postgresql":
            execute(connection, rollup_loyalty.drop_ddl())

    def before_create(_target: Any, connection: Connection, **_kw: Any) -> None:
        if connection.dialect.name == "postgresql":  # for ix_feedback_text_trgm
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))

    event.listen(metadata, "before_create", before_create)
    event.listen(metadata, "after_create", after_create)
    event.listen(metadata, "before_drop", before_drop)
