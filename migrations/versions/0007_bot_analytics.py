"""bot analytics from Rasa's event broker

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("conversation_id", sa.String(length=100), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "user_turn",
                "fallback",
                "handoff",
                name="bot_event_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_bot_events_event_key")),
    )
    with op.batch_alter_table("bot_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bot_events_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index("ix_bot_events_occurred", ["occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bot_events", schema=None) as batch_op:
        batch_op.drop_index("ix_bot_events_occurred")
        batch_op.drop_index(batch_op.f("ix_bot_events_conversation_id"))
    op.drop_table("bot_events")
