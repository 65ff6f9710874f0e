"""conversation language (issue #17): the language a customer wrote in, for the agents

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD/DROP COLUMN (SQLite ≥ 3.35, PostgreSQL): no batch copy of the
    # table under the dashboard's roll-up triggers (as in 0011).
    op.add_column("conversations", sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "language")
