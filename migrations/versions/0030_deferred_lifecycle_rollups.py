"""lifecycle roll-ups that a batch writer may defer to its end (issue #25 item 3)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 08:00:00

The statement triggers on `lifecycles` (journey_links, lifecycle_loyalty, journey_fix) do
nothing while the transaction has set `rollup.lifecycles_deferred = 'on'`
(bot/storage/rollup_journey.py): the shop events' batch apply sets it and refreshes the
customers it touched once, before it commits, so that several appliers can run in parallel
without deadlocking on the roll-ups' shared day rows. Nothing else changes (no data moves).
PostgreSQL only: SQLite has none of these statement triggers.
"""

from collections.abc import Sequence

from alembic import op

from bot.storage import rollup_fix, rollup_journey, rollup_loyalty

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _functions(deferrable: bool) -> list[str]:
    return [
        rollup_journey.function_ddl(deferrable),
        rollup_loyalty.lifecycles_function(deferrable),
        rollup_fix.lifecycles_function(deferrable),
    ]


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        rollup_fix.execute(connection, _functions(True))


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        rollup_fix.execute(connection, _functions(False))
