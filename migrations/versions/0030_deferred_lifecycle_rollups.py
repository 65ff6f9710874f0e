"""lifecycle roll-ups that a batch writer may defer to its end; shop events in order per
order or subscription (issue #25 item 3)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 08:00:00

The statement triggers on `lifecycles` (journey_links, lifecycle_loyalty, journey_fix) do
nothing while the transaction has set `rollup.lifecycles_deferred = 'on'`
(bot/storage/rollup_journey.py): the shop events' batch apply sets it and refreshes the
customers it touched once, before it commits, so that several appliers can run in parallel
without deadlocking on the roll-ups' shared day rows (PostgreSQL only: SQLite has none of
these statement triggers).

`shop_events.subject_ref` ("o:<order number>" / "s:<subscription id>", set while pending)
with its partial index: an event is claimed only when no earlier pending event names the
same order or subscription, so two customers' events naming one order are applied in the
order received by parallel appliers too. Events pending from before have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import frozen_ddl

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
PENDING = "status = 'pending'"


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        # The three lifecycle trigger functions, deferrable (migrations/sql/0030/).
        frozen_ddl.run(connection, revision, "upgrade")
    with op.batch_alter_table("shop_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_ref", sa.String(length=70), nullable=True))
        batch_op.create_index(
            "ix_shop_events_pending_subject",
            ["subject_ref", "received_at", "id"],
            unique=False,
            postgresql_where=sa.text(PENDING),
            sqlite_where=sa.text(PENDING),
        )


def downgrade() -> None:
    connection = op.get_bind()
    with op.batch_alter_table("shop_events", schema=None) as batch_op:
        batch_op.drop_index("ix_shop_events_pending_subject")
        batch_op.drop_column("subject_ref")
    if connection.dialect.name == "postgresql":
        frozen_ddl.run(connection, revision, "downgrade")
