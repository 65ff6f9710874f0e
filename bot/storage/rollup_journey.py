"""Journey-map pre-aggregate (migration 0009, PostgreSQL only): customers reached per stage
and per acquisition source for any range of UTC days, exactly, without reading every journey.

"Customers reached" counts *distinct* customers with a journey opened in the range, which
does not add up day by day. It is counted as journeys minus links instead: for every key
(`reach:<rank>` = journeys at that stage or later, `source:<source>` = journeys from that
source) a customer's qualifying journeys form a chain ordered by opening time, and a customer
with k journeys in the range has k - 1 consecutive pairs ("links") inside it, so

    customers(start..end) = journeys opened in start..end - links with start <= p and d <= end

(p, d: the UTC days of the two journeys of a link). Journeys per day are a daily count
(grain `n`). Links are a two-dimensional count, kept at four grains so that any range reads
a few hundred rows: by month of p x month of d (`mm`), day of p x month of d (`dm`), month of
p x day of d (`md`) and day x day (`dd`, read only for the range's first and last month):

    links = mm(p month > first month, d month < last month)
          + dm(p in first month from start, d month < last month)
          + md(p month > first month, d in last month up to end)
          + dd(p in first month from start, d in last month up to end)

(one month: only `dd`, the other three are empty by construction). Table `journey_links`
(grain, m, a, b, key, n): `m` is the month the index scan fixes or starts at, `a`/`b` the
other coordinates (see `_GRAINS`).

Statement-level triggers on `lifecycles` (transition tables) recompute the chains of the
customers a statement touched, old state minus, new state plus, under a per-customer
advisory lock so concurrent writers for one customer see each other's journeys.
SQLite keeps reading the journeys themselves (the test data are small).
"""

from __future__ import annotations

TABLE = "journey_links"
LOCK_CLASS = 6006  # pg_advisory_xact_lock(class, customer id): one lock space per purpose
RANK = (
    "CASE {s}.stage WHEN 'discovery' THEN 0 WHEN 'research' THEN 1 WHEN 'purchase' THEN 2 "
    "WHEN 'use' THEN 3 WHEN 'support' THEN 4 END"
)
_COLUMNS = "id, customer_id, opened_at, stage, acquisition_channel"
# Deferred maintenance (migration 0030): a transaction that writes many customers' journeys in
# several statements (the shop events' batch apply) sets this (SET LOCAL ... = 'on'); the
# statement triggers on `lifecycles` of this module, rollup_loyalty and rollup_fix then do
# nothing, and the transaction refreshes the customers it touched once, before it commits
# (`deferred_refresh_sql`, lifecycle_loyalty_refresh, journey_fix_refresh). One statement per
# roll-up and transaction, each in key order: two such writers cannot deadlock on the shared
# day rows, as they did when every statement of both locked some of them.
LIFECYCLES_DEFERRED = "rollup.lifecycles_deferred"


def deferred_skip(deferrable: bool) -> str:
    """The first lines of a lifecycles trigger function that obeys `LIFECYCLES_DEFERRED`."""
    if not deferrable:
        return ""
    return f"  IF current_setting('{LIFECYCLES_DEFERRED}', true) = 'on' THEN RETURN NULL; END IF;\n"


def _month(day: str) -> str:
    return f"({day} - CAST(EXTRACT(DAY FROM {day}) AS integer) + 1)"


# grain: (m, a, b) in terms of the link's days p (earlier journey) and d (later journey).
_GRAINS = {
    "mm": (_month("k.p"), _month("k.d"), _month("k.d")),
    "dm": (_month("k.p"), "k.p", _month("k.d")),
    "md": (_month("k.d"), "k.d", _month("k.p")),
    "dd": (_month("k.d"), "k.p", "k.d"),
}


def contributions(state: str, sign: int) -> str:
    """SELECT grain, m, a, b, key, n: what the journeys of `state` (a SELECT of
    `_COLUMNS`) add to journey_links, times `sign`."""
    rank = RANK.format(s="s")
    day = "CAST(timezone('UTC', s.opened_at) AS date)"
    grains = ",\n  ".join(f"('{g}', {m}, {a}, {b})" for g, (m, a, b) in _GRAINS.items())
    return f"""SELECT g.grain, g.m, g.a, g.b, k.key, {sign} AS n
FROM (
  SELECT keyed.key, keyed.d,
         lag(keyed.d) OVER (PARTITION BY keyed.customer_id, keyed.key
                            ORDER BY keyed.opened_at, keyed.id) AS p
  FROM (
    SELECT s.customer_id, s.id, s.opened_at, {day} AS d, 'reach:' || r.rank AS key
    FROM ({state}) AS s JOIN generate_series(0, 4) AS r(rank) ON r.rank <= {rank}
    UNION ALL
    SELECT s.customer_id, s.id, s.opened_at, {day},
           'source:' || COALESCE(s.acquisition_channel, 'unknown')
    FROM ({state}) AS s
  ) AS keyed
) AS k
CROSS JOIN LATERAL (VALUES
  ('n', k.d, k.d, k.d),
  {grains}
) AS g(grain, m, a, b)
WHERE g.grain = 'n' OR k.p IS NOT NULL"""


def _apply(parts: list[str]) -> str:
    union = "\nUNION ALL\n".join(parts)
    return (
        f"INSERT INTO {TABLE} (grain, m, a, b, key, n) "
        f"SELECT grain, m, a, b, key, SUM(n) FROM ({union}) AS c "
        "GROUP BY grain, m, a, b, key HAVING SUM(n) <> 0 "
        # Rows are locked in key order, so two writers of the same days cannot deadlock.
        "ORDER BY grain, m, a, b, key "
        f"ON CONFLICT (grain, m, a, b, key) DO UPDATE SET n = {TABLE}.n + excluded.n"
    )


def backfill_ddl() -> list[str]:
    return [
        f"DELETE FROM {TABLE}",
        _apply([contributions(f"SELECT {_COLUMNS} FROM lifecycles", 1)]),
    ]


def deferred_refresh_sql() -> str:
    """The change of journey_links for the customers `:customers` (integer[]) whose journeys
    were `:before_*` (parallel arrays of id, customer_id, opened_at, stage, source: their
    lifecycles when the transaction took their `LOCK_CLASS` locks) and are now what
    `lifecycles` holds. The writer holds those locks from its snapshot until it commits."""
    now = (
        f"SELECT {_COLUMNS} FROM lifecycles WHERE customer_id = ANY(CAST(:customers AS integer[]))"
    )
    before = (
        f"SELECT {_COLUMNS} FROM unnest(CAST(:before_id AS integer[]), "
        "CAST(:before_customer AS integer[]), CAST(:before_opened AS timestamptz[]), "
        "CAST(:before_stage AS text[]), CAST(:before_channel AS text[])) "
        f"AS b({_COLUMNS})"
    )
    return _apply([contributions(now, 1), contributions(before, -1)])


def _function(deferrable: bool = True) -> str:
    changed = (
        "SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id "
        "WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM "
        "(n.customer_id, n.opened_at, n.stage, n.acquisition_channel) "
        "UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id "
        "WHERE o.customer_id <> n.customer_id"
    )
    touched_by = {  # the customers whose chains the statement may have changed
        "INSERT": "SELECT customer_id FROM new_rows",
        "UPDATE": changed,
        "DELETE": "SELECT customer_id FROM old_rows",
    }
    branches = []
    for op, touched in touched_by.items():
        now = f"SELECT {_COLUMNS} FROM lifecycles WHERE customer_id IN ({touched})"
        others = f"{now} AND id NOT IN (SELECT id FROM new_rows)"
        old_rows = f"SELECT {_COLUMNS} FROM old_rows WHERE customer_id IN ({touched})"
        before = {
            "INSERT": others,
            "UPDATE": f"{others} UNION ALL {old_rows}",
            "DELETE": f"{now} UNION ALL {old_rows}",
        }[op]
        apply = _apply([contributions(now, 1), contributions(before, -1)])
        branches.append(
            f"IF TG_OP = '{op}' THEN\n"
            f"    IF NOT EXISTS ({touched}) THEN RETURN NULL; END IF;\n"
            # Writers of one customer's journeys take turns (fresh snapshot after the lock).
            f"    PERFORM pg_advisory_xact_lock({LOCK_CLASS}, customer_id)\n"
            f"      FROM (SELECT DISTINCT customer_id FROM ({touched}) AS t ORDER BY 1) AS o;\n"
            f"    {apply};\n"
            "  END IF;"
        )
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_apply() RETURNS trigger AS $$\n"
        "BEGIN\n"
        + deferred_skip(deferrable)
        + "  "
        + "\n  ".join(branches)
        + "\n  RETURN NULL;\nEND $$ LANGUAGE plpgsql"
    )


def function_ddl(deferrable: bool = True) -> str:
    """The trigger function alone (migration 0030 replaces it)."""
    return _function(deferrable)


def trigger_ddl() -> list[str]:
    transitions = {
        "INSERT": "REFERENCING NEW TABLE AS new_rows",
        "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "REFERENCING OLD TABLE AS old_rows",
    }
    return [_function()] + [
        f"CREATE TRIGGER {TABLE}_{op.lower()} AFTER {op} ON lifecycles {tables} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_apply()"
        for op, tables in transitions.items()
    ]


def drop_ddl() -> list[str]:
    return [
        *(
            f"DROP TRIGGER IF EXISTS {TABLE}_{op} ON lifecycles"
            for op in ("insert", "update", "delete")
        ),
        f"DROP FUNCTION IF EXISTS {TABLE}_apply()",
    ]
