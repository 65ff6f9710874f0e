"""Per-journey pre-aggregate for "what to fix first" (issue #21, migration 0028), kept exact
by database triggers on both SQLite and PostgreSQL.

Two tables:

* `journey_fix` (one row per journey x key): the journey's CSAT/NPS counts over all its
  feedback (`csat_n`, `csat_good` = scores >= 4, `nps_n`, `nps_net` = promoters -
  detractors), its opening (`opened_at`, `day` = its UTC day) and `returned` (1 when the same
  customer opened another purchase journey, an order or a subscription period, within
  `RETURN_DAYS` after it). Keys: `all` (every journey with feedback), `stage:<stage>` (has a
  feedback row at that stage), `cell:<stage>:<channel>` (at that stage through that channel)
  and `theme:<stage>:<theme>` (a negative comment, VADER < -0.05, with that theme at that
  stage). So one journey has a row per pitfall cell or negative theme it belongs to.
* `journey_fix_daily` (UTC day of opening x key): the sums of `journey_fix` (`journeys` =
  its row count). bot/domain/fix_first.py reads a range's candidates from here (a few
  thousand rows) instead of every journey with its feedback.
* `journey_fix_monthly` (migration 0029; first day of the month x key): the month totals of
  `journey_fix_daily`, kept by a row trigger on it; long ranges read whole months here.

Maintenance ("refresh" of a set of journeys, in the writing transaction): take the
journeys' rows out of the daily sums, delete them, recompute them from the raw rows
(`feedback`, `lifecycles`), add them to the daily sums again. Triggers refresh

* the journeys of the old and the new row on every INSERT / DELETE on `feedback` and every
  UPDATE of a column the figures read (lifecycle_id, stage, channel, kind, score, sentiment,
  themes): feedback moved between journeys, erased, anonymised;
* every journey of the customers of the old and the new row on every change of
  `lifecycles` (a new purchase journey makes an earlier one "returned"; a journey moved to
  another customer; a journey deleted by an erasure).

SQLite: row triggers with the statements inline (one writer at a time). PostgreSQL: statement
triggers with transition tables calling `journey_fix_refresh(journeys, customers)`, which
first takes a per-customer advisory lock (class `LOCK_CLASS`, in id order) so that two
writers of one customer's journeys take turns and each recomputes from a fresh snapshot;
the daily sums are changed by one INSERT ... ON CONFLICT in key order (no deadlock between
two writers of the same days). Bulk loads with triggers off call `backfill_ddl()`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection

from bot.storage import rollup, rollup_journey

TABLE = "journey_fix"
DAILY = "journey_fix_daily"
LOCK_CLASS = 6021  # pg_advisory_xact_lock(class, customer id); 6006 journey_links, 6007 loyalty
RETURN_DAYS = 90  # fix_first.FixRules.window_days default (loyalty's return window)
NEGATIVE = -0.05  # bot.domain.analysis.NEGATIVE
UNATTRIBUTED = "unattributed"  # bot.storage.rollup.UNATTRIBUTED
SUMS = ("returned", "csat_n", "csat_good", "nps_n", "nps_net")
# The feedback columns the figures read: an UPDATE of any other (erasure's text) is skipped.
FEEDBACK_COLUMNS = ("lifecycle_id", "stage", "channel", "kind", "score", "sentiment", "themes")
LIFECYCLE_COLUMNS = ("customer_id", "opened_at", "order_id", "subscription_id")


def _day(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"CAST(timezone('UTC', {column}) AS DATE)"
    return f"date({column})"


def _returned(dialect: str) -> str:
    """1 when the customer of lifecycle `l` opened a purchase journey in (opened, opened +
    RETURN_DAYS], as fix_first's raw path (its next purchase journey within the window)."""
    if dialect == "postgresql":
        until = f"l.opened_at + interval '{RETURN_DAYS * 24} hours'"
    else:
        # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff': add the days, keep the fraction.
        until = f"strftime('%Y-%m-%d %H:%M:%S', l.opened_at, '+{RETURN_DAYS} days') || substr(l.opened_at, 20)"
    return (
        "CASE WHEN EXISTS (SELECT 1 FROM lifecycles n WHERE n.customer_id = l.customer_id "
        f"AND n.opened_at > l.opened_at AND n.opened_at <= {until} "
        "AND (n.order_id IS NOT NULL OR n.subscription_id IS NOT NULL)) THEN 1 ELSE 0 END"
    )


def recompute(dialect: str, ids: str | None) -> str:
    """SELECT of journey_fix's rows for the journeys `ids` (a SELECT of lifecycle ids; None:
    every journey) from the raw rows."""
    scope = f"f.lifecycle_id IN ({ids})" if ids else "f.lifecycle_id IS NOT NULL"
    stage = f"COALESCE(f.stage, '{UNATTRIBUTED}')"
    if dialect == "postgresql":
        themes = "CROSS JOIN LATERAL json_array_elements_text(f.themes) AS t(value)"
    else:
        themes = ", json_each(f.themes) AS t"
    keys = (
        f"SELECT f.lifecycle_id, 'all' AS key FROM feedback f WHERE {scope} "
        f"UNION SELECT f.lifecycle_id, 'stage:' || {stage} FROM feedback f WHERE {scope} "
        f"UNION SELECT f.lifecycle_id, 'cell:' || {stage} || ':' || f.channel "
        f"FROM feedback f WHERE {scope} "
        f"UNION SELECT f.lifecycle_id, 'theme:' || {stage} || ':' || t.value FROM feedback f "
        f"{themes} WHERE {scope} AND f.sentiment < {NEGATIVE}"
    )
    totals = (
        "SELECT f.lifecycle_id, "
        "SUM(CASE WHEN f.kind = 'csat' AND f.score IS NOT NULL THEN 1 ELSE 0 END) AS csat_n, "
        "SUM(CASE WHEN f.kind = 'csat' AND f.score >= 4 THEN 1 ELSE 0 END) AS csat_good, "
        "SUM(CASE WHEN f.kind = 'nps' AND f.score IS NOT NULL THEN 1 ELSE 0 END) AS nps_n, "
        "SUM(CASE WHEN f.kind = 'nps' AND f.score >= 9 THEN 1 "
        "WHEN f.kind = 'nps' AND f.score <= 6 THEN -1 ELSE 0 END) AS nps_net "
        f"FROM feedback f WHERE {scope} GROUP BY f.lifecycle_id"
    )
    return (
        f"SELECT l.id AS lifecycle_id, k.key, {_day(dialect, 'l.opened_at')} AS day, "
        f"l.opened_at, {_returned(dialect)} AS returned, "
        "s.csat_n, s.csat_good, s.nps_n, s.nps_net "
        f"FROM lifecycles l JOIN ({totals}) AS s ON s.lifecycle_id = l.id "
        f"JOIN ({keys}) AS k ON k.lifecycle_id = l.id"
    )


_COLUMNS = "lifecycle_id, key, day, opened_at, returned, csat_n, csat_good, nps_n, nps_net"


def _daily_change(rows: str, sign: str) -> str:
    """Add (sign '') or take away (sign '-') the journey_fix rows `rows` (a FROM ... WHERE
    tail) in journey_fix_daily, in key order."""
    sums = ", ".join(f"{sign}SUM({c})" for c in SUMS)
    updates = ", ".join(f"{c} = {DAILY}.{c} + excluded.{c}" for c in ("journeys", *SUMS))
    return (
        f"INSERT INTO {DAILY} (day, key, journeys, {', '.join(SUMS)}) "
        f"SELECT day, key, {sign}COUNT(*), {sums} {rows} GROUP BY day, key ORDER BY day, key "
        f"ON CONFLICT (day, key) DO UPDATE SET {updates}"
    )


def refresh_statements(dialect: str, ids: str) -> list[str]:
    """Recompute the journeys `ids` (a SELECT of lifecycle ids, evaluated afresh by each
    statement: it must not depend on journey_fix)."""
    mine = f"FROM {TABLE} WHERE lifecycle_id IN ({ids})"
    return [
        _daily_change(mine, "-"),
        f"DELETE {mine}",
        f"INSERT INTO {TABLE} ({_COLUMNS}) {recompute(dialect, ids)}",
        _daily_change(mine, ""),
    ]


def backfill_ddl(dialect: str) -> list[str]:
    """Fill both tables from the rows already there (migration, bulk loads)."""
    return [
        f"DELETE FROM {DAILY}",
        f"DELETE FROM {TABLE}",
        f"INSERT INTO {TABLE} ({_COLUMNS}) {recompute(dialect, None)}",
        f"INSERT INTO {DAILY} (day, key, journeys, {', '.join(SUMS)}) "
        f"SELECT day, key, COUNT(*), {', '.join(f'SUM({c})' for c in SUMS)} FROM {TABLE} "
        "GROUP BY day, key",
    ]


# ---- migration 0029: journey_fix_monthly, the month totals of journey_fix_daily -----------
#
# A long range reads its whole months here (2 years: ~1 700 rows instead of ~51 000 at the
# benchmark's 1 M feedback rows). Kept by a row trigger on journey_fix_daily itself.

MONTHLY = "journey_fix_monthly"


def _monthly_change(dialect: str, row: str, sign: str) -> str:
    columns = ("journeys", *SUMS)
    updates = ", ".join(f"{c} = {MONTHLY}.{c} + excluded.{c}" for c in columns)
    return (
        f"INSERT INTO {MONTHLY} (month, key, {', '.join(columns)}) "
        f"VALUES ({rollup.month_of(dialect, f'{row}.day')}, {row}.key, "
        f"{', '.join(f'{sign}{row}.{c}' for c in columns)}) "
        f"ON CONFLICT (month, key) DO UPDATE SET {updates}"
    )


def monthly_trigger_ddl(dialect: str) -> list[str]:
    subtract_old = _monthly_change(dialect, "OLD", "-")
    add_new = _monthly_change(dialect, "NEW", "")
    return rollup.month_triggers(dialect, MONTHLY, DAILY, subtract_old, add_new)


def monthly_drop_ddl(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {MONTHLY}_trigger ON {DAILY}",
            f"DROP FUNCTION IF EXISTS {MONTHLY}_apply()",
        ]
    return [
        f"DROP TRIGGER IF EXISTS {MONTHLY}_{op}"
        for op in ("insert", "delete", "update_old", "update_new")
    ]


def monthly_backfill_ddl(dialect: str) -> list[str]:
    columns = ("journeys", *SUMS)
    month = rollup.month_of(dialect, "day")
    return [
        f"DELETE FROM {MONTHLY}",
        f"INSERT INTO {MONTHLY} (month, key, {', '.join(columns)}) "
        f"SELECT {month}, key, {', '.join(f'SUM({c})' for c in columns)} FROM {DAILY} "
        f"GROUP BY {month}, key",
    ]


# ---- triggers ----------------------------------------------------------------------------


def _sqlite_triggers() -> list[str]:
    def body(ids: str) -> str:
        return "; ".join(refresh_statements("sqlite", ids))

    feedback_ids = {
        "insert": "SELECT NEW.lifecycle_id",
        "delete": "SELECT OLD.lifecycle_id",
        "update": "SELECT OLD.lifecycle_id UNION SELECT NEW.lifecycle_id",
    }
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in FEEDBACK_COLUMNS)
    when = {
        "insert": " WHEN NEW.lifecycle_id IS NOT NULL",
        "delete": " WHEN OLD.lifecycle_id IS NOT NULL",
        "update": f" WHEN ({changed}) AND (OLD.lifecycle_id IS NOT NULL OR NEW.lifecycle_id IS NOT NULL)",
    }
    statements = [
        f"CREATE TRIGGER {TABLE}_feedback_{op} AFTER {op.upper()} ON feedback{when[op]} "
        f"BEGIN {body(ids)}; END"
        for op, ids in feedback_ids.items()
    ]
    customers = {
        "insert": "NEW.customer_id",
        "delete": "OLD.customer_id",
        "update": "OLD.customer_id, NEW.customer_id",
    }
    old_id = {"insert": "", "delete": " UNION SELECT OLD.id", "update": ""}
    lifecycle_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in LIFECYCLE_COLUMNS)
    lifecycle_when = {"insert": "", "delete": "", "update": f" WHEN {lifecycle_changed}"}
    for op, who in customers.items():
        ids = f"SELECT id FROM lifecycles WHERE customer_id IN ({who}){old_id[op]}"
        statements.append(
            f"CREATE TRIGGER {TABLE}_lifecycles_{op} AFTER {op.upper()} ON lifecycles"
            f"{lifecycle_when[op]} BEGIN {body(ids)}; END"
        )
    return statements


def _pg_function() -> str:
    ids = "SELECT unnest(journeys)"
    statements = ";\n  ".join(refresh_statements("postgresql", ids))
    return (
        "CREATE OR REPLACE FUNCTION journey_fix_refresh(journeys integer[], customers integer[]) "
        "RETURNS void AS $$\n"
        "BEGIN\n"
        "  IF cardinality(journeys) = 0 THEN RETURN; END IF;\n"
        f"  PERFORM pg_advisory_xact_lock({LOCK_CLASS}, c) FROM "
        "(SELECT DISTINCT c FROM unnest(customers) AS u(c) WHERE c IS NOT NULL ORDER BY c) AS o;\n"
        f"  {statements};\n"
        "END $$ LANGUAGE plpgsql"
    )


def lifecycles_function(deferrable: bool = True) -> str:
    """PostgreSQL: the statement trigger function on lifecycles (migration 0030 replaces it:
    it obeys rollup_journey.LIFECYCLES_DEFERRED)."""
    lifecycle_changed = (
        "SELECT o.customer_id, n.customer_id AS other FROM old_rows o JOIN new_rows n "
        "ON n.id = o.id WHERE ("
        + ", ".join(f"o.{c}" for c in LIFECYCLE_COLUMNS)
        + ") IS DISTINCT FROM ("
        + ", ".join(f"n.{c}" for c in LIFECYCLE_COLUMNS)
        + ")"
    )
    touched = {
        "INSERT": "SELECT customer_id FROM new_rows",
        "DELETE": "SELECT customer_id FROM old_rows",
        "UPDATE": f"SELECT customer_id FROM ({lifecycle_changed}) AS c "
        f"UNION SELECT other FROM ({lifecycle_changed}) AS c",
    }
    branches = []
    for op, who in touched.items():
        gone = " UNION SELECT id FROM old_rows" if op == "DELETE" else ""
        branches.append(
            f"IF TG_OP = '{op}' THEN\n"
            f"    customers := ARRAY(SELECT DISTINCT c FROM ({who}) AS s(c));\n"
            "    PERFORM journey_fix_refresh(ARRAY(SELECT id FROM lifecycles "
            f"WHERE customer_id = ANY(customers){gone}), customers);\n"
            "  END IF;"
        )
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_lifecycles_apply() RETURNS trigger AS $$\n"
        "DECLARE customers integer[];\n"
        "BEGIN\n"
        + rollup_journey.deferred_skip(deferrable)
        + "  "
        + "\n  ".join(branches)
        + "\n  RETURN NULL;\nEND $$ LANGUAGE plpgsql"
    )


def _pg_triggers() -> list[str]:
    changed = (
        "SELECT o.lifecycle_id, n.lifecycle_id AS other FROM old_rows o JOIN new_rows n "
        "ON n.id = o.id WHERE ("
        + ", ".join(f"o.{c}" for c in FEEDBACK_COLUMNS[:-1])
        + ", CAST(o.themes AS text)) IS DISTINCT FROM ("
        + ", ".join(f"n.{c}" for c in FEEDBACK_COLUMNS[:-1])
        + ", CAST(n.themes AS text))"
    )
    feedback_ids = {
        "INSERT": "SELECT lifecycle_id FROM new_rows",
        "DELETE": "SELECT lifecycle_id FROM old_rows",
        "UPDATE": f"SELECT lifecycle_id FROM ({changed}) AS c UNION SELECT other FROM ({changed}) AS c",
    }
    branches = []
    for op, ids in feedback_ids.items():
        journeys = f"ARRAY(SELECT DISTINCT j FROM ({ids}) AS s(j) WHERE j IS NOT NULL)"
        branches.append(
            f"IF TG_OP = '{op}' THEN\n"
            f"    journeys := {journeys};\n"
            "    PERFORM journey_fix_refresh(journeys, ARRAY(SELECT customer_id FROM lifecycles "
            "WHERE id = ANY(journeys)));\n"
            "  END IF;"
        )
    feedback_function = (
        f"CREATE OR REPLACE FUNCTION {TABLE}_feedback_apply() RETURNS trigger AS $$\n"
        "DECLARE journeys integer[];\n"
        "BEGIN\n  " + "\n  ".join(branches) + "\n  RETURN NULL;\nEND $$ LANGUAGE plpgsql"
    )
    transitions = {
        "INSERT": "REFERENCING NEW TABLE AS new_rows",
        "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "REFERENCING OLD TABLE AS old_rows",
    }
    statements = [_pg_function(), feedback_function, lifecycles_function()]
    for source in ("feedback", "lifecycles"):
        statements += [
            f"CREATE TRIGGER {TABLE}_{source}_{op.lower()} AFTER {op} ON {source} {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_{source}_apply()"
            for op, tables in transitions.items()
        ]
    return statements


def trigger_ddl(dialect: str) -> list[str]:
    return _pg_triggers() if dialect == "postgresql" else _sqlite_triggers()


def drop_ddl(dialect: str) -> list[str]:
    names = [
        f"{TABLE}_{s}_{op}"
        for s in ("feedback", "lifecycles")
        for op in ("insert", "update", "delete")
    ]
    if dialect != "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in names]
    return [
        *(f"DROP TRIGGER IF EXISTS {name} ON {name.split('_')[2]}" for name in names),
        f"DROP FUNCTION IF EXISTS {TABLE}_feedback_apply()",
        f"DROP FUNCTION IF EXISTS {TABLE}_lifecycles_apply()",
        "DROP FUNCTION IF EXISTS journey_fix_refresh(integer[], integer[])",
    ]


def execute(connection: Connection, statements: list[str]) -> None:
    for statement in statements:
        connection.execute(text(statement))


def install(metadata: MetaData) -> None:
    """Create the triggers whenever `metadata.create_all()` creates the tables (tests)."""

    def after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
        dialect = connection.dialect.name
        if {"feedback", "lifecycles", TABLE, DAILY, MONTHLY} <= set(metadata.tables):
            execute(connection, drop_ddl(dialect) + monthly_drop_ddl(dialect))
            execute(connection, trigger_ddl(dialect) + monthly_trigger_ddl(dialect))

    def before_drop(_target: Any, connection: Connection, **_kw: Any) -> None:
        dialect = connection.dialect.name
        execute(connection, drop_ddl(dialect) + monthly_drop_ddl(dialect))

    event.listen(metadata, "after_create", after_create)
    event.listen(metadata, "before_drop", before_drop)
