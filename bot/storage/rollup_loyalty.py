"""Per-lifecycle loyalty summary (issue #25 item 4, PostgreSQL only), kept exact by triggers.

`lifecycle_loyalty` holds one row per lifecycle with everything the loyalty overview
(bot/domain/loyalty.py) used to derive from the raw rows on every request:

* its place among the customer's *purchase* lifecycles (order or subscription period),
  ordered by (opened_at, id): `seq`, `prev_opened_at`, `next_opened_at`, the 2nd and 3rd
  next (`next2_opened_at`, `next3_opened_at`: a customer's number of purchases inside a range
  is read from the first one in the range, with no GROUP BY customer) and `first_opened_at`;
* `period` / `renewed`: a subscription period followed by another of the same subscription;
* `stage`, `source` (the lifecycle's acquisition channel, else the customer's, else
  'unknown'), `escalated` (an escalation reached it through its feedback, its order's
  conversation, or by customer and time, as `loyalty._escalated_lifecycles` defines it);
* `csat_n`/`csat_sum`, `nps_n`/`nps_sum`: count and sum of its CSAT / NPS scores (integer
  sums, so the bands compare exactly: mean >= 4 <=> sum >= 4 n).
* generated from those (migration 0033, not written by anything here): `csat_band`,
  `nps_band`, `support` and `gap_days` (whole days to the next purchase, rounded up), which
  the overview groups and compares as plain columns.

Maintenance, in the writing transaction (no background job, nothing to drift):

* `lifecycles` (statement triggers with transition tables, as rollup_journey.py): the rows
  of every customer a statement touched are recomputed from the lifecycles (a window over
  that customer's few lifecycles) under a per-customer advisory lock, taken in id order;
  a moved lifecycle (customer_id changed) recomputes the old and the new customer;
* `feedback` (row trigger): adds / subtracts the score to / from its lifecycle's row; the
  bulk path (`rollup.deferred`, web reviews) adds the batch set-based (`delta_ddl`);
* `escalations`, `conversations.order_id`, `customers.acquisition_source` (row triggers):
  recompute the customers whose lifecycles they can reach.

The score columns are only ever changed by the feedback deltas (a recompute inserts a new
row with the scores read from feedback and never overwrites them), so concurrent writers of
feedback and of lifecycles do not lose each other's changes. `state_select()` computes the
whole table from the raw rows: the backfill (migration 0026, bench loads) and the tests,
which compare the table with it after inserts, moves and erasure.
SQLite keeps reading the raw rows (small shops; the table stays empty there).
"""

from __future__ import annotations

from bot.storage import rollup_journey

DEFERRED_SETTING = "rollup.deferred"  # bot.storage.rollup.DEFERRED_SETTING (no import cycle)

TABLE = "lifecycle_loyalty"
LOCK_CLASS = 6007  # pg_advisory_xact_lock(class, customer id); rollup_journey uses 6006
UNKNOWN = "unknown"
BULK_CUSTOMERS = 1000  # above: one table lock instead of an advisory lock per customer  # bot.domain.feedback_query.UNKNOWN_SOURCE

POSITION_COLUMNS = (
    "customer_id",
    "opened_at",
    "closed_at",
    "purchase",
    "period",
    "renewed",
    "stage",
    "source",
    "seq",
    "prev_opened_at",
    "next_opened_at",
    "next2_opened_at",
    "next3_opened_at",
    "first_opened_at",
    "escalated",
)
SCORE_COLUMNS = ("csat_n", "csat_sum", "nps_n", "nps_sum")
COLUMNS = ("lifecycle_id", *POSITION_COLUMNS, *SCORE_COLUMNS)


def state_select(scope: str) -> str:
    """SELECT of `COLUMNS` for the lifecycles `scope` (a condition on lifecycles `l`; whole
    customers, so that the window sees all their purchases) computed from the raw rows."""
    return f"""
WITH l AS (
  SELECT l.id, l.customer_id, l.opened_at, l.closed_at, l.order_id, l.subscription_id,
         CAST(l.stage AS text) AS stage,
         (l.order_id IS NOT NULL OR l.subscription_id IS NOT NULL) AS purchase,
         (l.kind = 'subscription_period') AS period,
         COALESCE(CAST(l.acquisition_channel AS text), CAST(c.acquisition_source AS text),
                  '{UNKNOWN}') AS source
  FROM lifecycles l JOIN customers c ON c.id = l.customer_id
  WHERE {scope}
), p AS (
  SELECT id, row_number() OVER w AS seq, lag(opened_at) OVER w AS prev_opened_at,
         lead(opened_at) OVER w AS next_opened_at, lead(opened_at, 2) OVER w AS next2_opened_at,
         lead(opened_at, 3) OVER w AS next3_opened_at,
         min(opened_at) OVER (PARTITION BY customer_id) AS first_opened_at
  FROM l WHERE purchase
  WINDOW w AS (PARTITION BY customer_id ORDER BY opened_at, id)
), r AS (
  SELECT id, lead(id) OVER (PARTITION BY subscription_id ORDER BY opened_at, id) AS next_id
  FROM l WHERE period
), sc AS (
  SELECT f.lifecycle_id,
         count(*) FILTER (WHERE f.kind = 'csat') AS csat_n,
         COALESCE(sum(f.score) FILTER (WHERE f.kind = 'csat'), 0) AS csat_sum,
         count(*) FILTER (WHERE f.kind = 'nps') AS nps_n,
         COALESCE(sum(f.score) FILTER (WHERE f.kind = 'nps'), 0) AS nps_sum
  FROM feedback f JOIN lifecycles l ON l.id = f.lifecycle_id
  WHERE {scope} AND f.kind IN ('csat', 'nps') AND f.score IS NOT NULL
  GROUP BY f.lifecycle_id
), esc AS (
  SELECT f.lifecycle_id AS id FROM escalations e JOIN feedback f ON f.id = e.feedback_id
  JOIN lifecycles l ON l.id = f.lifecycle_id
  WHERE {scope}
  UNION
  SELECT l.id FROM lifecycles l JOIN conversations v ON v.order_id = l.order_id
  JOIN escalations e ON e.conversation_id = v.id
  WHERE {scope}
  UNION
  SELECT l.id FROM lifecycles l JOIN escalations e ON e.customer_id = l.customer_id
  LEFT JOIN conversations v ON v.id = e.conversation_id
  WHERE {scope} AND e.feedback_id IS NULL AND v.order_id IS NULL
    AND e.created_at >= l.opened_at AND (l.closed_at IS NULL OR e.created_at < l.closed_at)
)
SELECT l.id AS lifecycle_id, l.customer_id, l.opened_at, l.closed_at, l.purchase, l.period,
       (r.next_id IS NOT NULL) AS renewed, l.stage, l.source, CAST(p.seq AS integer) AS seq,
       p.prev_opened_at, p.next_opened_at, p.next2_opened_at, p.next3_opened_at,
       p.first_opened_at, (esc.id IS NOT NULL) AS escalated,
       CAST(COALESCE(sc.csat_n, 0) AS integer) AS csat_n,
       CAST(COALESCE(sc.csat_sum, 0) AS integer) AS csat_sum,
       CAST(COALESCE(sc.nps_n, 0) AS integer) AS nps_n,
       CAST(COALESCE(sc.nps_sum, 0) AS integer) AS nps_sum
FROM l LEFT JOIN p ON p.id = l.id LEFT JOIN r ON r.id = l.id
LEFT JOIN sc ON sc.lifecycle_id = l.id LEFT JOIN esc ON esc.id = l.id"""


def backfill_ddl() -> list[str]:
    return [
        f"DELETE FROM {TABLE}",
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) {state_select('TRUE')}",
    ]


def _refresh_function() -> str:
    positions = ", ".join(POSITION_COLUMNS)
    excluded = ", ".join(f"excluded.{c}" for c in POSITION_COLUMNS)
    current = ", ".join(f"{TABLE}.{c}" for c in POSITION_COLUMNS)
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_refresh(customers integer[]) RETURNS void AS $$\n"
        "DECLARE cs integer[];\n"
        "BEGIN\n"
        # With the customers sharing a subscription with them (a renewal spans its periods).
        "  SELECT array_agg(x ORDER BY x) INTO cs FROM (\n"
        "    SELECT unnest(customers) AS x\n"
        "    UNION SELECT o.customer_id FROM lifecycles m\n"
        "      JOIN lifecycles o ON o.subscription_id = m.subscription_id\n"
        "     WHERE m.customer_id IN (SELECT unnest(customers)) AND m.subscription_id IS NOT NULL\n"
        "  ) AS t WHERE x IS NOT NULL;\n"
        "  IF cs IS NULL THEN RETURN; END IF;\n"
        # Writers of one customer's lifecycles take turns (fresh snapshot after the lock); a
        # bulk statement (more customers than the lock table holds) locks the summary
        # instead, which the per-customer writers wait for before they read.
        f"  IF cardinality(cs) > {BULK_CUSTOMERS} THEN\n"
        f"    LOCK TABLE {TABLE} IN EXCLUSIVE MODE;\n"
        "  ELSE\n"
        f"    LOCK TABLE {TABLE} IN ROW EXCLUSIVE MODE;\n"
        f"    PERFORM pg_advisory_xact_lock({LOCK_CLASS}, x) FROM unnest(cs) AS x ORDER BY x;\n"
        "  END IF;\n"
        f"  DELETE FROM {TABLE} s WHERE s.customer_id IN (SELECT x FROM unnest(cs) AS x)\n"
        "    AND NOT EXISTS (SELECT 1 FROM lifecycles l WHERE l.id = s.lifecycle_id);\n"
        f"  INSERT INTO {TABLE} ({', '.join(COLUMNS)})\n"
        f"  {state_select('l.customer_id IN (SELECT x FROM unnest(cs) AS x)')}\n"
        f"  ON CONFLICT (lifecycle_id) DO UPDATE SET ({positions}) = ({excluded})\n"
        f"  WHERE ({current}) IS DISTINCT FROM ({excluded});\n"
        "END $$ LANGUAGE plpgsql"
    )


def lifecycles_function(deferrable: bool = True) -> str:
    """The statement trigger function on lifecycles (migration 0030 replaces it: it obeys
    rollup_journey.LIFECYCLES_DEFERRED)."""
    changed = (
        "SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id "
        "WHERE (o.customer_id, o.opened_at, o.closed_at, o.order_id, o.subscription_id, "
        "o.stage, o.kind, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, "
        "n.closed_at, n.order_id, n.subscription_id, n.stage, n.kind, n.acquisition_channel) "
        "UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id "
        "WHERE o.customer_id <> n.customer_id"
    )
    touched_by = {
        "INSERT": "SELECT customer_id FROM new_rows",
        "UPDATE": changed,
        "DELETE": "SELECT customer_id FROM old_rows",
    }
    branches = [
        f"IF TG_OP = '{op}' THEN PERFORM {TABLE}_refresh(ARRAY(SELECT DISTINCT customer_id "
        f"FROM ({touched}) AS t)); END IF;"
        for op, touched in touched_by.items()
    ]
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_lifecycles() RETURNS trigger AS $$\n"
        "BEGIN\n"
        + rollup_journey.deferred_skip(deferrable)
        + "  "
        + "\n  ".join(branches)
        + "\n  RETURN NULL;\nEND $$ LANGUAGE plpgsql"
    )


def _score_update(row: str, sign: str) -> str:
    return (
        f"UPDATE {TABLE} SET "
        f"csat_n = csat_n {sign} CASE WHEN {row}.kind = 'csat' THEN 1 ELSE 0 END, "
        f"csat_sum = csat_sum {sign} CASE WHEN {row}.kind = 'csat' THEN {row}.score ELSE 0 END, "
        f"nps_n = nps_n {sign} CASE WHEN {row}.kind = 'nps' THEN 1 ELSE 0 END, "
        f"nps_sum = nps_sum {sign} CASE WHEN {row}.kind = 'nps' THEN {row}.score ELSE 0 END "
        f"WHERE lifecycle_id = {row}.lifecycle_id"
    )


def _counted(row: str) -> str:
    return (
        f"{row}.lifecycle_id IS NOT NULL AND {row}.kind IN ('csat', 'nps') "
        f"AND {row}.score IS NOT NULL"
    )


def _feedback_function() -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_feedback() RETURNS trigger AS $$\n"
        "BEGIN\n"
        f"  IF TG_OP = 'INSERT' AND current_setting('{DEFERRED_SETTING}', true) = 'on' THEN\n"
        "    RETURN NULL;\n  END IF;\n"
        "  IF TG_OP = 'UPDATE' AND (OLD.lifecycle_id, OLD.kind, OLD.score)\n"
        "     IS NOT DISTINCT FROM (NEW.lifecycle_id, NEW.kind, NEW.score) THEN\n"
        "    RETURN NULL;\n  END IF;\n"
        f"  IF TG_OP IN ('UPDATE', 'DELETE') AND {_counted('OLD')} THEN\n"
        f"    {_score_update('OLD', '-')};\n  END IF;\n"
        f"  IF TG_OP IN ('INSERT', 'UPDATE') AND {_counted('NEW')} THEN\n"
        f"    {_score_update('NEW', '+')};\n  END IF;\n"
        # Feedback moved to another lifecycle takes its escalation along.
        "  IF TG_OP = 'UPDATE' AND OLD.lifecycle_id IS DISTINCT FROM NEW.lifecycle_id\n"
        "     AND EXISTS (SELECT 1 FROM escalations WHERE feedback_id = NEW.id) THEN\n"
        f"    PERFORM {TABLE}_refresh(ARRAY(SELECT customer_id FROM lifecycles\n"
        "      WHERE id IN (OLD.lifecycle_id, NEW.lifecycle_id)));\n  END IF;\n"
        "  RETURN NULL;\n"
        "END $$ LANGUAGE plpgsql"
    )


def _escalations_function() -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_escalations() RETURNS trigger AS $$\n"
        "DECLARE o escalations; n escalations;\n"
        "BEGIN\n"
        "  IF TG_OP <> 'INSERT' THEN o := OLD; END IF;\n"
        "  IF TG_OP <> 'DELETE' THEN n := NEW; END IF;\n"
        f"  PERFORM {TABLE}_refresh(ARRAY(\n"
        "    SELECT x FROM (VALUES (o.customer_id), (n.customer_id)) AS v(x)\n"
        "    UNION SELECT l.customer_id FROM feedback f JOIN lifecycles l ON l.id = f.lifecycle_id\n"
        "     WHERE f.id IN (o.feedback_id, n.feedback_id)\n"
        "    UNION SELECT l.customer_id FROM conversations v JOIN lifecycles l\n"
        "      ON l.order_id = v.order_id WHERE v.id IN (o.conversation_id, n.conversation_id)));\n"
        "  RETURN NULL;\n"
        "END $$ LANGUAGE plpgsql"
    )


def _conversations_function() -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_conversations() RETURNS trigger AS $$\n"
        "BEGIN\n"
        "  IF EXISTS (SELECT 1 FROM escalations WHERE conversation_id = NEW.id) THEN\n"
        f"    PERFORM {TABLE}_refresh(ARRAY(\n"
        "      SELECT customer_id FROM lifecycles WHERE order_id IN (OLD.order_id, NEW.order_id)\n"
        "      UNION SELECT customer_id FROM escalations WHERE conversation_id = NEW.id));\n"
        "  END IF;\n"
        "  RETURN NULL;\n"
        "END $$ LANGUAGE plpgsql"
    )


def _customers_function() -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_customers() RETURNS trigger AS $$\n"
        f"BEGIN\n  PERFORM {TABLE}_refresh(ARRAY[NEW.id]);\n  RETURN NULL;\n"
        "END $$ LANGUAGE plpgsql"
    )


_TRANSITIONS = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}


def trigger_ddl() -> list[str]:
    return [
        _refresh_function(),
        lifecycles_function(),
        *(
            f"CREATE TRIGGER {TABLE}_lifecycles_{op.lower()} AFTER {op} ON lifecycles {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_lifecycles()"
            for op, tables in _TRANSITIONS.items()
        ),
        _feedback_function(),
        f"CREATE TRIGGER {TABLE}_feedback AFTER INSERT OR DELETE OR UPDATE OF lifecycle_id, "
        f"kind, score ON feedback FOR EACH ROW EXECUTE FUNCTION {TABLE}_feedback()",
        _escalations_function(),
        f"CREATE TRIGGER {TABLE}_escalations AFTER INSERT OR DELETE OR UPDATE OF customer_id, "
        f"feedback_id, conversation_id, created_at ON escalations "
        f"FOR EACH ROW EXECUTE FUNCTION {TABLE}_escalations()",
        _conversations_function(),
        f"CREATE TRIGGER {TABLE}_conversations AFTER UPDATE OF order_id ON conversations "
        "FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id) "
        f"EXECUTE FUNCTION {TABLE}_conversations()",
        _customers_function(),
        f"CREATE TRIGGER {TABLE}_customers AFTER UPDATE OF acquisition_source ON customers "
        "FOR EACH ROW WHEN (OLD.acquisition_source IS DISTINCT FROM NEW.acquisition_source) "
        f"EXECUTE FUNCTION {TABLE}_customers()",
    ]


def drop_ddl() -> list[str]:
    triggers = [
        *((f"{TABLE}_lifecycles_{op}", "lifecycles") for op in ("insert", "update", "delete")),
        (f"{TABLE}_feedback", "feedback"),
        (f"{TABLE}_escalations", "escalations"),
        (f"{TABLE}_conversations", "conversations"),
        (f"{TABLE}_customers", "customers"),
    ]
    functions = ("lifecycles", "feedback", "escalations", "conversations", "customers")
    return [
        *(f"DROP TRIGGER IF EXISTS {name} ON {table}" for name, table in triggers),
        *(f"DROP FUNCTION IF EXISTS {TABLE}_{name}()" for name in functions),
        f"DROP FUNCTION IF EXISTS {TABLE}_refresh(integer[])",
    ]


def delta_ddl() -> str:
    """Add the feedback rows `:ids` inserted while `rollup.deferred` was on."""
    return (
        f"UPDATE {TABLE} s SET csat_n = s.csat_n + d.csat_n, csat_sum = s.csat_sum + d.csat_sum, "
        "nps_n = s.nps_n + d.nps_n, nps_sum = s.nps_sum + d.nps_sum FROM ("
        "SELECT lifecycle_id, count(*) FILTER (WHERE kind = 'csat') AS csat_n, "
        "COALESCE(sum(score) FILTER (WHERE kind = 'csat'), 0) AS csat_sum, "
        "count(*) FILTER (WHERE kind = 'nps') AS nps_n, "
        "COALESCE(sum(score) FILTER (WHERE kind = 'nps'), 0) AS nps_sum "
        "FROM feedback WHERE id = ANY(:ids) AND lifecycle_id IS NOT NULL "
        "AND kind IN ('csat', 'nps') AND score IS NOT NULL GROUP BY lifecycle_id) AS d "
        "WHERE s.lifecycle_id = d.lifecycle_id"
    )
