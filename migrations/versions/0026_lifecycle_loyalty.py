"""Loyalty at scale (issue #25 item 4): the per-lifecycle summary `lifecycle_loyalty`, kept
by triggers (PostgreSQL; bot/storage/rollup_loyalty.py), and the indexes its escalation
lookups use

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 05:00:00

The table is created on both databases (the models match), filled and maintained on
PostgreSQL only: SQLite keeps computing the loyalty figures from the raw rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import frozen_ddl

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOMENT = sa.DateTime(timezone=True)
SCORE_COLUMNS = ("csat_n", "csat_sum", "nps_n", "nps_sum")


def upgrade() -> None:
    op.create_table(
        "lifecycle_loyalty",
        sa.Column("lifecycle_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("opened_at", _MOMENT, nullable=False),
        sa.Column("closed_at", _MOMENT, nullable=True),
        sa.Column("purchase", sa.Boolean(), nullable=False),
        sa.Column("period", sa.Boolean(), nullable=False),
        sa.Column("renewed", sa.Boolean(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        *(
            sa.Column(name, _MOMENT, nullable=True)
            for name in (
                "prev_opened_at",
                "next_opened_at",
                "next2_opened_at",
                "next3_opened_at",
                "first_opened_at",
            )
        ),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in SCORE_COLUMNS),
        sa.PrimaryKeyConstraint("lifecycle_id", name=op.f("pk_lifecycle_loyalty")),
    )
    op.create_index(
        "ix_lifecycle_loyalty_opened",
        "lifecycle_loyalty",
        ["opened_at"],
        postgresql_where=sa.text("purchase"),
        sqlite_where=sa.text("purchase"),
    )
    op.create_index(
        "ix_lifecycle_loyalty_closed",
        "lifecycle_loyalty",
        ["closed_at"],
        postgresql_where=sa.text("period"),
        sqlite_where=sa.text("period"),
    )
    op.create_index("ix_lifecycle_loyalty_customer", "lifecycle_loyalty", ["customer_id"])
    op.create_index("ix_escalations_customer_id", "escalations", ["customer_id"])
    op.create_index("ix_escalations_feedback_id", "escalations", ["feedback_id"])
    op.create_index("ix_conversations_order_id", "conversations", ["order_id"])
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        frozen_ddl.run(connection, revision, "upgrade")  # backfill, then the triggers


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        frozen_ddl.run(connection, revision, "downgrade")
    op.drop_index("ix_conversations_order_id", table_name="conversations")
    op.drop_index("ix_escalations_feedback_id", table_name="escalations")
    op.drop_index("ix_escalations_customer_id", table_name="escalations")
    op.drop_index("ix_lifecycle_loyalty_customer", table_name="lifecycle_loyalty")
    op.drop_index("ix_lifecycle_loyalty_closed", table_name="lifecycle_loyalty")
    op.drop_index("ix_lifecycle_loyalty_opened", table_name="lifecycle_loyalty")
    op.drop_table("lifecycle_loyalty")
