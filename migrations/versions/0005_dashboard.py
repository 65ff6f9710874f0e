"""CX dashboard indexes and daily pre-aggregates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 06:10:00

Indexes let PostgreSQL read a range's metrics from one index (index-only scans) and join
feedback to orders and survey dispatches, dispatches by send time and journeys by opening
time. `feedback_daily` and `survey_dispatch_daily` hold per-UTC-day aggregates that
triggers keep exact (bot/storage/rollup.py); they are backfilled here. See
docs/decisions.md (CX dashboard).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import frozen_ddl

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    (
        "ix_feedback_created_metrics",
        "feedback",
        ["created_at", "stage", "channel", "kind", "score", "sentiment"],
    ),
    ("ix_feedback_order", "feedback", ["order_id"]),
    ("ix_feedback_dispatch", "feedback", ["survey_dispatch_id"]),
    ("ix_survey_dispatches_sent", "survey_dispatches", ["sent_at", "answered_at"]),
    ("ix_feedback_created_id", "feedback", ["created_at", "id"]),
    (
        "ix_lifecycles_opened",
        "lifecycles",
        ["opened_at", "customer_id", "stage", "acquisition_channel"],
    ),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_table(
        "feedback_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("csat_responses", sa.Integer(), nullable=False),
        sa.Column("csat_satisfied", sa.Integer(), nullable=False),
        sa.Column("nps_responses", sa.Integer(), nullable=False),
        sa.Column("nps_promoters", sa.Integer(), nullable=False),
        sa.Column("nps_detractors", sa.Integer(), nullable=False),
        sa.Column("ces_responses", sa.Integer(), nullable=False),
        sa.Column("ces_sum", sa.Integer(), nullable=False),
        sa.Column("sentiment_count", sa.Integer(), nullable=False),
        sa.Column("sentiment_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "stage", "channel", name=op.f("pk_feedback_daily")),
    )
    op.create_table(
        "feedback_daily_groups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dimension", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("csat_responses", sa.Integer(), nullable=False),
        sa.Column("csat_satisfied", sa.Integer(), nullable=False),
        sa.Column("nps_responses", sa.Integer(), nullable=False),
        sa.Column("nps_promoters", sa.Integer(), nullable=False),
        sa.Column("nps_detractors", sa.Integer(), nullable=False),
        sa.Column("ces_responses", sa.Integer(), nullable=False),
        sa.Column("ces_sum", sa.Integer(), nullable=False),
        sa.Column("sentiment_count", sa.Integer(), nullable=False),
        sa.Column("sentiment_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "dimension", "key", name=op.f("pk_feedback_daily_groups")),
    )
    op.create_table(
        "survey_dispatch_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "trigger", name=op.f("pk_survey_dispatch_daily")),
    )
    # The triggers, then the backfill (migrations/sql/0005/).
    frozen_ddl.run(op.get_bind(), revision, "upgrade")


def downgrade() -> None:
    frozen_ddl.run(op.get_bind(), revision, "downgrade")
    op.drop_table("survey_dispatch_daily")
    op.drop_table("feedback_daily_groups")
    op.drop_table("feedback_daily")
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
