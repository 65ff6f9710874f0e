"""security hardening (issue #22): staff sessions' idle timeout and owner's list; audit
log by actor (what an agent took part in)

Revision ID: 0017_security_hardening
Revises: 0016_console_round_two
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_security_hardening"
down_revision: str | None = "0016_console_round_two"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD/DROP COLUMN (SQLite ≥ 3.35, PostgreSQL), as in 0015.
    op.add_column(
        "staff_sessions", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("staff_sessions", sa.Column("user_agent", sa.String(length=200), nullable=True))
    op.add_column(
        "staff_sessions", sa.Column("client_address", sa.String(length=64), nullable=True)
    )
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_actor"), table_name="audit_log")
    op.drop_column("staff_sessions", "client_address")
    op.drop_column("staff_sessions", "user_agent")
    op.drop_column("staff_sessions", "last_used_at")
