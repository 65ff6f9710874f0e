"""the bot's review inbox: NLU results of customer turns, their flags, bot_trainer role
(issue #24)

Revision ID: 0020
Revises: 0018_staff_totp
Create Date: 2026-12-07 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0018_staff_totp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE_CHECK = "ck_staff_users_staff_role"
OLD_ROLES = ("agent", "cx_manager", "admin")
NEW_ROLES = (*OLD_ROLES, "bot_trainer")


def _role_check(roles: Sequence[str]) -> None:
    allowed = ", ".join(f"'{role}'" for role in roles)
    # SQLite cannot alter a CHECK constraint: batch mode copies the table.
    with op.batch_alter_table("staff_users", recreate="auto") as batch_op:
        batch_op.drop_constraint(op.f(ROLE_CHECK), type_="check")
        batch_op.create_check_constraint(op.f(ROLE_CHECK), sa.text(f"role IN ({allowed})"))


def upgrade() -> None:
    _role_check(NEW_ROLES)
    op.create_table(
        "turn_understandings",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("runner_up_intent", sa.String(length=64), nullable=True),
        sa.Column("runner_up_confidence", sa.Float(), nullable=True),
        sa.Column("entities", sa.JSON(), nullable=True),
        sa.Column("bot_steps", sa.JSON(), nullable=True),
        sa.Column("sentiment", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "review_status",
            sa.Enum(
                "confirmed",
                "corrected",
                "dismissed",
                name="turn_review_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("reviewed_intent", sa.String(length=64), nullable=True),
        sa.Column("reviewed_entities", sa.JSON(), nullable=True),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            ondelete="CASCADE",
            name=op.f("fk_turn_understandings_message_id_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            ondelete="CASCADE",
            name=op.f("fk_turn_understandings_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_id"],
            ["staff_users.id"],
            name=op.f("fk_turn_understandings_reviewed_by_id_staff_users"),
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_turn_understandings")),
    )
    op.create_index(
        "ix_turn_understandings_conversation",
        "turn_understandings",
        ["conversation_id", "message_id"],
    )
    op.create_index("ix_turn_understandings_created", "turn_understandings", ["created_at"])
    op.create_table(
        "turn_flags",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["turn_understandings.message_id"],
            ondelete="CASCADE",
            name=op.f("fk_turn_flags_message_id_turn_understandings"),
        ),
        sa.PrimaryKeyConstraint("message_id", "reason", name=op.f("pk_turn_flags")),
    )
    op.create_index("ix_turn_flags_reason", "turn_flags", ["reason", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_turn_flags_reason", table_name="turn_flags")
    op.drop_table("turn_flags")
    op.drop_index("ix_turn_understandings_created", table_name="turn_understandings")
    op.drop_index("ix_turn_understandings_conversation", table_name="turn_understandings")
    op.drop_table("turn_understandings")
    op.execute("DELETE FROM staff_users WHERE role = 'bot_trainer'")
    _role_check(OLD_ROLES)
