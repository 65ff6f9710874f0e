"""per-journey roll-up of "what to fix first" (issue #21)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 05:00:00

* `journey_fix`: one row per journey x key (every journey with feedback, each stage, each
  stage x channel cell and each negative theme by stage it has feedback in) with the
  journey's CSAT/NPS counts, its opening and whether the customer came back within 90 days.
* `journey_fix_daily`: their sums per UTC day of opening x key, which the ranking reads.

Kept by triggers on `feedback` and `lifecycles` (bot/storage/rollup_fix.py) on SQLite and
PostgreSQL; backfilled here from the rows already there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import frozen_ddl

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ("returned", "csat_n", "csat_good", "nps_n", "nps_net")


def upgrade() -> None:
    connection = op.get_bind()
    op.create_table(
        "journey_fix",
        sa.Column("lifecycle_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in SUMS),
        sa.PrimaryKeyConstraint("lifecycle_id", "key", name=op.f("pk_journey_fix")),
    )
    op.create_index("ix_journey_fix_day", "journey_fix", ["day", "opened_at"], unique=False)
    op.create_table(
        "journey_fix_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("journeys", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in SUMS),
        sa.PrimaryKeyConstraint("day", "key", name=op.f("pk_journey_fix_daily")),
    )
    # Backfilled before the triggers exist, in the migration's transaction.
    frozen_ddl.run(connection, revision, "upgrade")


def downgrade() -> None:
    connection = op.get_bind()
    frozen_ddl.run(connection, revision, "downgrade")
    op.drop_index("ix_journey_fix_day", table_name="journey_fix")
    op.drop_table("journey_fix_daily")
    op.drop_table("journey_fix")
