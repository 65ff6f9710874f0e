"""Monthly loyalty roll-up (issue #25 item 4, PostgreSQL only), kept exact by a trigger on
the per-lifecycle summary `lifecycle_loyalty` (bot/storage/rollup_loyalty.py).

`lifecycle_loyalty_monthly` lets the loyalty overview of a long range read a few hundred
rows instead of every purchase lifecycle of the range (design: docs/decisions.md,
"Loyalty overview over months"). Two kinds of rows (`basis`):

* **0, by the UTC month the purchase lifecycle opened**, per (csat band, nps band, support,
  source, first purchase of the customer): `n` lifecycles, how many have no next / 2nd next
  / 3rd next purchase (`next_null`, `next2_null`, `next3_null`), and `returned`, an array of
  `MAX_GAP_DAYS + 1` cumulative counts: `returned[W + 1]` = lifecycles whose next purchase
  opened at most W days later (`gap_days <= W`), for any window W of the page.
* **1, by the UTC month of the customer's previous purchase** (`prev_opened_at`; keys 0 and
  ''): `n` and the three null counts, for the customer counts (lifecycles per customer):
  with nothing opened after the range, a range [start, end) holds
  `O_k - P_k` lifecycles "at most k purchases from their customer's last", where `O_k`
  counts the lifecycles opened at or after `start` whose k-th next purchase does not exist
  and `P_k` those whose previous purchase opened at or after `start` (bot/domain/loyalty.py).

Maintenance: statement triggers (INSERT, UPDATE, DELETE with transition tables) on
`lifecycle_loyalty` append, per statement, the difference the old and new rows make to
each key (rows of deltas: a key has several rows, readers add them up); about one in
`COMPACT_EVERY` such statements adds up the rows of the keys it wrote that have
`COMPACT_AT` rows or more into one row, under a try-lock (a writer busy with a key is
skipped, never waited for). Writers therefore never
wait for each other here and cannot deadlock on this table: nothing is updated in place,
unlike the day rows of the other roll-ups (the shop events' appliers run in parallel,
docs/decisions.md). Every change of the summary — the refresh of a customer's lifecycles
(insert, move, erasure), a feedback score delta, the bulk delta, the backfill — reaches
this table in the same transaction, so the table added up per key (`kept_select()`) is
always `state_select()` of the summary. A change that leaves a lifecycle's contribution
unchanged (most score deltas) writes nothing here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection

TABLE = "lifecycle_loyalty_monthly"
SUMMARY = "lifecycle_loyalty"  # rollup_loyalty.TABLE
MAX_GAP_DAYS = 730  # bot.domain.loyalty.MAX_WINDOW_DAYS: the largest window of the page
KEYS = ("basis", "month", "csat_band", "nps_band", "support", "source", "first")
COUNTS = ("n", "next_null", "next2_null", "next3_null")
COLUMNS = (*KEYS, *COUNTS, "returned")
_KEY_TYPES = {
    "basis": "smallint",
    "month": "date",
    "csat_band": "smallint",
    "nps_band": "smallint",
    "support": "smallint",
    "source": "varchar(32)",
    "first": "boolean",
}
COMPACT_AT = 4  # rows of one key before they are added up into one
COMPACT_EVERY = 4  # statements that wrote deltas, one of which looks for keys to compact
LOCK_CLASS = 6008  # pg_try_advisory_xact_lock(class, hash of a key); 6006, 6007 are taken
_ZEROS = f"array_fill(0, ARRAY[{MAX_GAP_DAYS + 1}])"


def _month(column: str) -> str:
    return f"CAST(date_trunc('month', {column} AT TIME ZONE 'UTC') AS date)"


def _contributions(rows: str) -> str:
    """One row per (basis, lifecycle) of the summary rows `rows` (a SELECT with a `sign`
    column and the summary's columns)."""
    nulls = (
        "d.next_opened_at IS NULL AS n1, d.next2_opened_at IS NULL AS n2, "
        "d.next3_opened_at IS NULL AS n3"
    )
    return (
        f"SELECT 0 AS basis, {_month('d.opened_at')} AS month, d.csat_band, d.nps_band, "
        "d.support, CAST(d.source AS varchar(32)) AS source, (d.seq = 1) AS first, d.sign, "
        f"d.gap_days, {nulls} FROM ({rows}) AS d WHERE d.purchase "
        f"UNION ALL SELECT 1, {_month('d.prev_opened_at')}, CAST(0 AS smallint), "
        "CAST(0 AS smallint), CAST(0 AS smallint), CAST('' AS varchar(32)), false, d.sign, "
        f"NULL, {nulls} FROM ({rows}) AS d WHERE d.purchase AND d.prev_opened_at IS NOT NULL"
    )


def _grouped(rows: str) -> str:
    """The table's rows (deltas when `rows` has negative signs) for the summary rows `rows`.

    Contributions that cancel out (a lifecycle whose key, gap and next purchases did not
    change: most score deltas) are dropped first, so such a statement writes nothing.
    `returned` is NULL where no lifecycle returned within MAX_GAP_DAYS."""
    keys = ", ".join(KEYS)
    in_array = f"gap_days BETWEEN 0 AND {MAX_GAP_DAYS}"
    return (
        f"SELECT {keys}, CAST(sum(s) AS integer) AS n, "
        + ", ".join(
            f"CAST(COALESCE(sum(s) FILTER (WHERE {flag}), 0) AS integer) AS {name}"
            for flag, name in (("n1", "next_null"), ("n2", "next2_null"), ("n3", "next3_null"))
        )
        + f", CASE WHEN basis = 0 THEN {TABLE}_cum(array_agg(gap_days) FILTER (WHERE "
        f"{in_array}), CAST(array_agg(s) FILTER (WHERE {in_array}) AS integer[])) END "
        f"AS returned FROM (SELECT {keys}, gap_days, n1, n2, n3, sum(sign) AS s "
        f"FROM ({_contributions(rows)}) AS c GROUP BY {keys}, gap_days, n1, n2, n3 "
        f"HAVING sum(sign) <> 0) AS c GROUP BY {keys}"
    )


def state_select() -> str:
    """The whole table computed from `lifecycle_loyalty` (backfill, tests, the bench)."""
    return (
        f"SELECT {', '.join(COLUMNS)} FROM ("
        f"{_grouped(f'SELECT 1 AS sign, s.* FROM {SUMMARY} s')}) AS g WHERE g.n <> 0"
    )


def _apply(rows: str) -> str:
    """Append the deltas of `rows` (plpgsql: their keys into the arrays `k_*`, the last
    new id into `last_id`)."""
    columns = ", ".join(COLUMNS)
    into = ", ".join(f"array_agg({k})" for k in KEYS)
    return (
        f"WITH ins AS (INSERT INTO {TABLE} ({columns}) "
        f"SELECT {columns} FROM ({_grouped(rows)}) AS g "
        f"RETURNING id, {', '.join(KEYS)}) "
        f"SELECT max(id), {into} INTO last_id, {', '.join(f'k_{k}' for k in KEYS)} FROM ins;"
    )


def _compact() -> str:
    """Replace the rows of each key `k_*` (arrays, one element a key) that has `COMPACT_AT`
    rows or more by their sum (the function `..._compact`, called after `_apply`). Only one transaction compacts a key at a time (a
    try-lock: the others skip it, never wait); rows other transactions add meanwhile are
    not visible to the DELETE and stay as they are, so the sums stay exact."""
    keys = ", ".join(KEYS)
    match = " AND ".join(f"t.{k} = d.{k}" for k in KEYS)
    arrays = ", ".join(f"k_{k}" for k in KEYS)
    sums = ", ".join(f"CAST(sum({c}) AS integer)" for c in COUNTS)
    return (
        f"WITH k AS (SELECT DISTINCT * FROM unnest({arrays}) AS k({keys})), "
        f"due AS (SELECT {', '.join(f't.{k}' for k in KEYS)} FROM {TABLE} t "
        f"JOIN k USING ({keys}) GROUP BY {', '.join(f't.{k}' for k in KEYS)} "
        f"HAVING count(*) >= {COMPACT_AT} AND pg_try_advisory_xact_lock({LOCK_CLASS}, "
        f"hashtext(CAST(ROW({', '.join(f't.{k}' for k in KEYS)}) AS text)))), "
        f"gone AS (DELETE FROM {TABLE} t USING due d WHERE {match} RETURNING t.*) "
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT {keys}, {sums}, "
        f"NULLIF({TABLE}_sum(returned), {_ZEROS}) FROM gone GROUP BY {keys} HAVING sum(n) <> 0"
    )


def kept_select() -> str:
    """The table's content, its delta rows added up per key (compare with `state_select`)."""
    keys = ", ".join(KEYS)
    sums = ", ".join(f"CAST(sum({c}) AS integer) AS {c}" for c in COUNTS)
    return (
        f"SELECT {keys}, {sums}, NULLIF({TABLE}_sum(returned), {_ZEROS}) AS returned "
        f"FROM {TABLE} "
        f"GROUP BY {keys} HAVING sum(n) <> 0"
    )


def _functions() -> list[str]:
    width = MAX_GAP_DAYS + 1
    cum = (
        f"CREATE OR REPLACE FUNCTION {TABLE}_cum(gaps integer[], signs integer[]) "
        "RETURNS integer[] AS $$\n"
        f"DECLARE h integer[] := array_fill(0, ARRAY[{width}]); i integer; total integer := 0;\n"
        "BEGIN\n"
        "  IF COALESCE(cardinality(gaps), 0) = 0 THEN RETURN NULL; END IF;\n"
        "  IF cardinality(gaps) = 1 THEN\n"  # the usual delta: one lifecycle, one gap
        f"    RETURN array_fill(0, ARRAY[gaps[1]]) || array_fill(signs[1], ARRAY[{width} - gaps[1]]);\n"
        "  END IF;\n"
        "  FOR i IN 1 .. cardinality(gaps) LOOP\n"
        "    h[gaps[i] + 1] := h[gaps[i] + 1] + signs[i];\n"
        "  END LOOP;\n"
        f"  FOR i IN 1 .. {width} LOOP total := total + h[i]; h[i] := total; END LOOP;\n"
        "  RETURN h;\n"
        "END $$ LANGUAGE plpgsql IMMUTABLE"
    )
    add = (
        f"CREATE OR REPLACE FUNCTION {TABLE}_add(a integer[], b integer[]) RETURNS integer[] AS $$\n"
        "  SELECT array_agg(x + y ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)\n"
        "$$ LANGUAGE sql IMMUTABLE STRICT"
    )
    aggregate = (
        f"CREATE OR REPLACE AGGREGATE {TABLE}_sum(integer[]) "
        f"(SFUNC = {TABLE}_add, STYPE = integer[])"
    )
    new = "SELECT 1 AS sign, n.* FROM new_rows n"
    old = "SELECT -1 AS sign, o.* FROM old_rows o"
    declare = " ".join(f"k_{k} {kind}[];" for k, kind in _KEY_TYPES.items())
    apply = (
        f"CREATE OR REPLACE FUNCTION {TABLE}_apply() RETURNS trigger AS $$\n"
        f"DECLARE last_id bigint; {declare}\n"
        "BEGIN\n"
        # Nothing written (the refresh's DELETE of no row, an upsert with no conflict):
        # no work at all.
        "  IF TG_OP = 'INSERT' THEN\n"
        "    IF NOT EXISTS (SELECT FROM new_rows) THEN RETURN NULL; END IF;\n"
        f"    {_apply(new)}\n"
        "  ELSIF TG_OP = 'UPDATE' THEN\n"
        "    IF NOT EXISTS (SELECT FROM new_rows) THEN RETURN NULL; END IF;\n"
        f"    {_apply(f'{new} UNION ALL {old}')}\n"
        "  ELSE\n"
        "    IF NOT EXISTS (SELECT FROM old_rows) THEN RETURN NULL; END IF;\n"
        f"    {_apply(old)}\n"
        "  END IF;\n"
        # About one in COMPACT_EVERY statements that wrote compacts its keys (by a hash of
        # its last id: the ids alone fell into patterns, e.g. always odd).
        f"  IF hashint8(last_id) % {COMPACT_EVERY} = 0 THEN\n"
        f"    PERFORM {TABLE}_compact({', '.join(f'k_{k}' for k in KEYS)});\n"
        "  END IF;\n"
        "  RETURN NULL;\n"
        "END $$ LANGUAGE plpgsql"
    )
    parameters = ", ".join(f"k_{k} {kind}[]" for k, kind in _KEY_TYPES.items())
    compact = (
        f"CREATE OR REPLACE FUNCTION {TABLE}_compact({parameters}) RETURNS void AS $$\n"
        f"BEGIN\n  {_compact()};\nEND $$ LANGUAGE plpgsql"
    )
    return [cum, add, aggregate, compact, apply]


_TRANSITIONS = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}


def trigger_ddl() -> list[str]:
    return [
        *_functions(),
        *(
            f"CREATE TRIGGER {TABLE}_{op.lower()} AFTER {op} ON {SUMMARY} {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_apply()"
            for op, tables in _TRANSITIONS.items()
        ),
    ]


def drop_ddl() -> list[str]:
    return [
        *(
            f"DROP TRIGGER IF EXISTS {TABLE}_{op} ON {SUMMARY}"
            for op in ("insert", "update", "delete")
        ),
        f"DROP FUNCTION IF EXISTS {TABLE}_apply()",
        f"DROP FUNCTION IF EXISTS {TABLE}_compact({', '.join(f'{t}[]' for t in _KEY_TYPES.values())})",
        f"DROP AGGREGATE IF EXISTS {TABLE}_sum(integer[])",
        f"DROP FUNCTION IF EXISTS {TABLE}_add(integer[], integer[])",
        f"DROP FUNCTION IF EXISTS {TABLE}_cum(integer[], integer[])",
    ]


def storage_ddl() -> list[str]:
    """The arrays stay in the row, uncompressed (731 integers, 2.9 kB: a row fits a page):
    reading one element of a compressed array decompressed all of it, ~9 us a row, 34 of
    the 2-year overview's ms for its 3 700 rows (bench/loyalty.py); 3 ms this way."""
    return [f"ALTER TABLE {TABLE} ALTER COLUMN returned SET STORAGE PLAIN"]


def backfill_ddl() -> list[str]:
    columns = ", ".join(COLUMNS)
    return [f"DELETE FROM {TABLE}", f"INSERT INTO {TABLE} ({columns}) {state_select()}"]


def _execute(connection: Connection, statements: list[str]) -> None:
    for statement in statements:
        connection.execute(text(statement))


def install(metadata: MetaData) -> None:
    """Create the trigger whenever `metadata.create_all()` creates the tables (PostgreSQL)."""

    def after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
        if connection.dialect.name == "postgresql" and {TABLE, SUMMARY} <= set(metadata.tables):
            _execute(connection, storage_ddl() + drop_ddl() + trigger_ddl())

    def before_drop(_target: Any, connection: Connection, **_kw: Any) -> None:
        if connection.dialect.name == "postgresql":
            _execute(connection, drop_ddl())

    event.listen(metadata, "after_create", after_create)
    event.listen(metadata, "before_drop", before_drop)
