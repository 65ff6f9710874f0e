"""identity token uses (issue #16): an identity token with a `jti` is single-use

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_token_uses",
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("customer_external_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_identity_token_uses")),
    )
    with op.batch_alter_table("identity_token_uses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_token_uses_customer_external_id"),
            ["customer_external_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_identity_token_uses_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_token_uses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_token_uses_expires_at"))
        batch_op.drop_index(batch_op.f("ix_identity_token_uses_customer_external_id"))
    op.drop_table("identity_token_uses")
