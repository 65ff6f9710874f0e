"""survey consent (issue #18): proactive surveys are offered with a yes / not-now question

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("survey_dispatches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("offer_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
    # Surveys offered before consent existed were shown once and started at once.
    op.execute(
        "UPDATE survey_dispatches SET offer_count = 1, accepted_at = sent_at "
        "WHERE sent_at IS NOT NULL"
    )


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35, PostgreSQL): a batch copy of the table
    # would trip the dashboard's roll-up triggers that read survey_dispatches on SQLite.
    op.drop_column("survey_dispatches", "accepted_at")
    op.drop_column("survey_dispatches", "offer_count")
