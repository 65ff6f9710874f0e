"""staff TOTP two-factor sign-in (issue #22)

Revision ID: 0018_staff_totp
Revises: 0017_security_hardening
Create Date: 2026-12-06 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_staff_totp"
down_revision: str | None = "0017_security_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD/DROP COLUMN (SQLite ≥ 3.35, PostgreSQL), as in 0015.
    op.add_column("staff_users", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    op.add_column(
        "staff_users", sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("staff_users", sa.Column("totp_last_step", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("staff_users", "totp_last_step")
    op.drop_column("staff_users", "totp_enabled_at")
    op.drop_column("staff_users", "totp_secret")
