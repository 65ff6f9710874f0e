"""Exchanges for another size and items missing from a delivered parcel (issue #19, tester
round two): `return_lines.exchange_size`, the size a customer wants instead of the one that
doesn't fit (reason `doesnt_fit`, resolution `replacement`); null on every other line and on
the lines stored before. A missing item is a line with reason `missing` (no new column).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("return_lines", sa.Column("exchange_size", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("return_lines") as batch:
        batch.drop_column("exchange_size")
