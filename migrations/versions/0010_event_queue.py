"""shop events queue (issue #7): events are accepted as pending and applied by a worker

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.Enum(
    "pending",
    "applied",
    "failed",
    name="shop_event_status",
    native_enum=False,
    create_constraint=True,
    length=32,
)
PENDING = "status = 'pending'"


def upgrade() -> None:
    # Rows from before the queue were applied when they were received.
    with op.batch_alter_table("shop_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", STATUS, nullable=False, server_default="applied"))
        batch_op.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("customer_ref", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.alter_column("result", existing_type=sa.JSON(), nullable=True)
    # The application always sets them; the defaults only filled the existing rows.
    with op.batch_alter_table("shop_events", schema=None) as batch_op:
        batch_op.alter_column("status", existing_type=STATUS, server_default=None)
        batch_op.alter_column("attempts", existing_type=sa.Integer(), server_default=None)
        batch_op.create_index(
            "ix_shop_events_pending",
            ["received_at", "id"],
            unique=False,
            postgresql_where=sa.text(PENDING),
            sqlite_where=sa.text(PENDING),
        )
        batch_op.create_index(
            "ix_shop_events_pending_customer",
            ["customer_ref", "received_at", "id"],
            unique=False,
            postgresql_where=sa.text(PENDING),
            sqlite_where=sa.text(PENDING),
        )


def downgrade() -> None:
    # Pending events cannot be represented before the queue: they are dropped.
    op.execute("DELETE FROM shop_events WHERE status <> 'applied'")
    with op.batch_alter_table("shop_events", schema=None) as batch_op:
        batch_op.drop_index("ix_shop_events_pending_customer")
        batch_op.drop_index("ix_shop_events_pending")
        batch_op.alter_column("result", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("attempts")
        batch_op.drop_column("applied_at")
        batch_op.drop_column("customer_ref")
        batch_op.drop_column("payload")
        # SQLite's table copy would otherwise keep the CHECK naming the dropped column.
        batch_op.drop_constraint(op.f("ck_shop_events_shop_event_status"), type_="check")
        batch_op.drop_column("status")
