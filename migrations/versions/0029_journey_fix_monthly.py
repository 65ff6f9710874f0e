"""month totals of the "what to fix first" roll-up (issue #21)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 05:00:00

`journey_fix_monthly`: the sums of `journey_fix_daily` per month (its first day) x key, kept
by a row trigger on journey_fix_daily (bot/storage/rollup_fix.py), so that a range of two
years reads its whole months (about 1 700 rows at 1 M feedback rows) instead of every day.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import frozen_ddl

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("journeys", "returned", "csat_n", "csat_good", "nps_n", "nps_net")


def upgrade() -> None:
    connection = op.get_bind()
    op.create_table(
        "journey_fix_monthly",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COLUMNS),
        sa.PrimaryKeyConstraint("month", "key", name=op.f("pk_journey_fix_monthly")),
    )
    frozen_ddl.run(connection, revision, "upgrade")  # backfill, then the trigger


def downgrade() -> None:
    connection = op.get_bind()
    frozen_ddl.run(connection, revision, "downgrade")
    op.drop_table("journey_fix_monthly")
