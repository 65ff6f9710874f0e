"""insight board: insights, their feedback, customer notices; loyalty index on lifecycles

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 06:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("lifecycles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lifecycles_customer_history", ["customer_id", "opened_at", "id"], unique=False
        )
    op.create_table(
        "insights",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "owner_team",
            _enum("insight_team", "product", "support", "logistics", "marketing", "web"),
            nullable=False,
        ),
        sa.Column(
            "status",
            _enum("insight_status", "new", "accepted", "in_progress", "applied", "wont_do"),
            nullable=False,
        ),
        sa.Column(
            "origin", _enum("insight_origin", "theme", "pitfall", "feedback"), nullable=False
        ),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("customer_message", sa.Text(), nullable=True),
        sa.Column("notify_until", _time(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("applied_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insights")),
    )
    with op.batch_alter_table("insights", schema=None) as batch_op:
        batch_op.create_index("ix_insights_status", ["status", "updated_at"], unique=False)

    op.create_table(
        "insight_feedback",
        sa.Column("insight_id", sa.Integer(), nullable=False),
        sa.Column("feedback_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["feedback.id"],
            name=op.f("fk_insight_feedback_feedback_id_feedback"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["insight_id"],
            ["insights.id"],
            name=op.f("fk_insight_feedback_insight_id_insights"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("insight_id", "feedback_id", name=op.f("pk_insight_feedback")),
    )
    with op.batch_alter_table("insight_feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_insight_feedback_feedback_id"), ["feedback_id"], unique=False
        )

    op.create_table(
        "insight_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("insight_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("delivered_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_insight_notices_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_insight_notices_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["insight_id"],
            ["insights.id"],
            name=op.f("fk_insight_notices_insight_id_insights"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_insight_notices_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_notices")),
        sa.UniqueConstraint(
            "insight_id", "customer_id", name="uq_insight_notices_insight_customer"
        ),
    )
    with op.batch_alter_table("insight_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_insight_notices_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("insight_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_insight_notices_customer_id"))
    op.drop_table("insight_notices")
    with op.batch_alter_table("insight_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_insight_feedback_feedback_id"))
    op.drop_table("insight_feedback")
    with op.batch_alter_table("insights", schema=None) as batch_op:
        batch_op.drop_index("ix_insights_status")
    op.drop_table("insights")
    with op.batch_alter_table("lifecycles", schema=None) as batch_op:
        batch_op.drop_index("ix_lifecycles_customer_history")
