"""dashboard roll-ups for long ranges (issue #6)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 09:40:00

* `survey_dispatch_sources`: surveys sent/answered per UTC day x acquisition source (the
  response rate of the acquisition-source breakdown read 500 000 dispatches joined to their
  journeys and customers).
* Triggers on `lifecycles` and `customers` that move feedback and surveys to the new
  acquisition source when a journey's or a customer's source changes (bot/storage/rollup.py).
* `feedback_monthly_groups`: the month totals of feedback_daily_groups (kept by a trigger
  on it), so that long ranges read whole months (product breakdown of 2 years).
* `journey_links` (PostgreSQL): journeys per day and links between a customer's consecutive
  journeys, from which the journey map counts distinct customers per stage and source for
  any range (bot/storage/rollup_journey.py).
* `ix_feedback_stage_created`: the explorer filtered by stage (the journey map's pitfall
  links), newest first and counted from the index alone.
* `ix_feedback_text_trgm`: PostgreSQL `pg_trgm` GIN index for the free-text filter (a plain
  index on SQLite, where LIKE cannot use it, so that both databases match the models).

Every rollup is backfilled from the rows already there, the 0005 ones included (their
acquisition-source rows did not follow source changes before this revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import frozen_ddl

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = (
    "volume",
    "csat_responses",
    "csat_satisfied",
    "nps_responses",
    "nps_promoters",
    "nps_detractors",
    "ces_responses",
    "ces_sum",
    "sentiment_count",
)


def upgrade() -> None:
    connection = op.get_bind()
    dialect = connection.dialect.name
    op.create_table(
        "survey_dispatch_sources",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "source", name=op.f("pk_survey_dispatch_sources")),
    )
    op.create_table(
        "journey_links",
        sa.Column("grain", sa.String(length=2), nullable=False),
        sa.Column("m", sa.Date(), nullable=False),
        sa.Column("a", sa.Date(), nullable=False),
        sa.Column("b", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=48), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "m", "a", "b", "key", name=op.f("pk_journey_links")),
    )
    op.create_table(
        "feedback_monthly_groups",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("dimension", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.Column("sentiment_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month", "dimension", "key", name=op.f("pk_feedback_monthly_groups")
        ),
    )
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_feedback_stage_created",
        "feedback",
        ["stage", "created_at", "id"],
        postgresql_include=["channel", "kind", "score", "sentiment"],
    )
    op.create_index(
        "ix_feedback_text_trgm",
        "feedback",
        ["text"],
        postgresql_using="gin",
        postgresql_ops={"text": "gin_trgm_ops"},
    )
    # Backfilled before the new triggers exist (one transaction: no write comes between),
    # so that rebuilding feedback_daily_groups does not run the monthly trigger per row;
    # then the triggers (migrations/sql/0009/; the journey links on PostgreSQL only).
    frozen_ddl.run(connection, revision, "upgrade")


def downgrade() -> None:
    frozen_ddl.run(op.get_bind(), revision, "downgrade")
    op.drop_index("ix_feedback_text_trgm", table_name="feedback")
    op.drop_index("ix_feedback_stage_created", table_name="feedback")
    op.drop_table("feedback_monthly_groups")
    op.drop_table("journey_links")
    op.drop_table("survey_dispatch_sources")
