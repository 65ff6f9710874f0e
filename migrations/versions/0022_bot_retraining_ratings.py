"""the bot's model per turn and "did this help?" on its answers (issue #24)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("turn_understandings") as batch_op:
        batch_op.add_column(sa.Column("model_id", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_turn_understandings_model", "turn_understandings", ["model_id", "created_at"]
    )
    op.create_table(
        "answer_ratings",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            ondelete="CASCADE",
            name=op.f("fk_answer_ratings_message_id_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            ondelete="CASCADE",
            name=op.f("fk_answer_ratings_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_answer_ratings")),
    )
    op.create_index("ix_answer_ratings_answered", "answer_ratings", ["answered_at"])


def downgrade() -> None:
    op.drop_index("ix_answer_ratings_answered", table_name="answer_ratings")
    op.drop_table("answer_ratings")
    op.drop_index("ix_turn_understandings_model", table_name="turn_understandings")
    with op.batch_alter_table("turn_understandings") as batch_op:
        batch_op.drop_column("model_id")
