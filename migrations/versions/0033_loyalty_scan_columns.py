"""Loyalty overview as a scan of plain columns (issue #25 item 4): generated band, support and
gap columns on `lifecycle_loyalty`, and its purchase index covering what the overview reads

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 14:00:00

`csat_band`, `nps_band`, `support` and `gap_days` are generated (stored) from the columns
the triggers of migration 0026 keep exact, so they follow every insert, move, score delta
and erasure with no trigger change. `ix_lifecycle_loyalty_opened` (purchase lifecycles by
opening time) now INCLUDEs every column the overview's grouped scan reads (PostgreSQL:
an index-only scan). The DDL text is this migration's own (bot/storage/models.py has the
same expressions); SQLite gets the columns too (the table stays empty there).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "lifecycle_loyalty"
INDEX = "ix_lifecycle_loyalty_opened"
CSAT_BAND = (
    "CASE WHEN csat_n = 0 THEN 3 WHEN csat_sum >= 4 * csat_n THEN 0 "
    "WHEN csat_sum <= 2 * csat_n THEN 2 ELSE 1 END"
)
NPS_BAND = (
    "CASE WHEN nps_n = 0 THEN 3 WHEN nps_sum >= 9 * nps_n THEN 0 "
    "WHEN nps_sum >= 7 * nps_n THEN 1 ELSE 2 END"
)
SUPPORT = "CASE WHEN escalated THEN 2 WHEN stage = 'support' THEN 1 ELSE 0 END"
# Whole days of 24 h rounded up: the next purchase opened at most W days later <=>
# gap_days <= W (exact: numeric epoch of the interval).
GAP_DAYS_POSTGRESQL = (
    "CAST(ceil(EXTRACT(epoch FROM next_opened_at - opened_at) / 86400) AS integer)"
)
GAP_DAYS_SQLITE = (
    "(CAST(strftime('%s', next_opened_at) AS INTEGER) "
    "- CAST(strftime('%s', opened_at) AS INTEGER) + 86399) / 86400"
)
COLUMNS = ("csat_band", "nps_band", "support", "gap_days")
INCLUDE = (
    "csat_band, nps_band, support, source, seq, gap_days, prev_opened_at, "
    "next_opened_at, next2_opened_at, next3_opened_at"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # One ALTER: one rewrite of the table.
        op.execute(
            f"ALTER TABLE {TABLE} "
            f"ADD COLUMN csat_band smallint GENERATED ALWAYS AS ({CSAT_BAND}) STORED NOT NULL, "
            f"ADD COLUMN nps_band smallint GENERATED ALWAYS AS ({NPS_BAND}) STORED NOT NULL, "
            f"ADD COLUMN support smallint GENERATED ALWAYS AS ({SUPPORT}) STORED NOT NULL, "
            f"ADD COLUMN gap_days integer GENERATED ALWAYS AS ({GAP_DAYS_POSTGRESQL}) STORED"
        )
        op.execute(f"DROP INDEX {INDEX}")
        op.execute(
            f"CREATE INDEX {INDEX} ON {TABLE} (opened_at) INCLUDE ({INCLUDE}) WHERE purchase"
        )
        return
    # SQLite adds no stored generated column with ALTER TABLE: the table is rebuilt.
    with op.batch_alter_table(TABLE, recreate="always") as batch_op:
        for name, expression, kind in (
            ("csat_band", CSAT_BAND, sa.SmallInteger()),
            ("nps_band", NPS_BAND, sa.SmallInteger()),
            ("support", SUPPORT, sa.SmallInteger()),
        ):
            batch_op.add_column(
                sa.Column(name, kind, sa.Computed(expression, persisted=True), nullable=False)
            )
        batch_op.add_column(
            sa.Column(
                "gap_days",
                sa.Integer(),
                sa.Computed(GAP_DAYS_SQLITE, persisted=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX {INDEX}")
        op.execute(f"CREATE INDEX {INDEX} ON {TABLE} (opened_at) WHERE purchase")
        op.execute(f"ALTER TABLE {TABLE} " + ", ".join(f"DROP COLUMN {c}" for c in COLUMNS))
        return
    with op.batch_alter_table(TABLE, recreate="always") as batch_op:
        for name in COLUMNS:
            batch_op.drop_column(name)
