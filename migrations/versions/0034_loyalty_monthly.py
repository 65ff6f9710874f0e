"""Loyalty overview over months (issue #25 item 4): the monthly roll-up
`lifecycle_loyalty_monthly`, kept by statement triggers on `lifecycle_loyalty`
(PostgreSQL), and the summary's index on the previous purchase

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 20:00:00

The table is created on both databases (the models match), filled and maintained on
PostgreSQL only (SQLite reads the raw rows). The functions, the backfill from
`lifecycle_loyalty` and the triggers are this migration's own text (migrations/sql/0034/,
written from bot/storage/rollup_loyalty_monthly.py on that day).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations import frozen_ddl

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "lifecycle_loyalty_monthly"
PREV_INDEX = "ix_lifecycle_loyalty_prev"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("basis", sa.SmallInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("csat_band", sa.SmallInteger(), nullable=False),
        sa.Column("nps_band", sa.SmallInteger(), nullable=False),
        sa.Column("support", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("first", sa.Boolean(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("n", "next_null", "next2_null", "next3_null")
        ),
        sa.Column(
            "returned",
            sa.JSON().with_variant(postgresql.ARRAY(sa.Integer()), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_loyalty_monthly")),
    )
    op.create_index(
        "ix_lifecycle_loyalty_monthly_key",
        TABLE,
        ["basis", "month", "csat_band", "nps_band", "support", "source", "first"],
    )
    op.create_index(
        PREV_INDEX,
        "lifecycle_loyalty",
        ["prev_opened_at"],
        postgresql_include=["next_opened_at", "next2_opened_at", "next3_opened_at"],
        postgresql_where=sa.text("purchase"),
        sqlite_where=sa.text("purchase"),
    )
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        frozen_ddl.run(connection, revision, "upgrade")  # storage, functions, backfill, triggers


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        frozen_ddl.run(connection, revision, "downgrade")
    op.drop_index(PREV_INDEX, table_name="lifecycle_loyalty")
    op.drop_index("ix_lifecycle_loyalty_monthly_key", table_name=TABLE)
    op.drop_table(TABLE)
