"""chat widget: client message ids, agent author, identity source

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 03:43:20.557454
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identified_by", sa.String(length=16), nullable=True))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_message_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("author", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(
            "uq_messages_conversation_client_id", ["conversation_id", "client_message_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_conversation_client_id", type_="unique")
        batch_op.drop_column("author")
        batch_op.drop_column("client_message_id")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("identified_by")
