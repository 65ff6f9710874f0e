"""feedback from the open web (issue #23): reviewers who are not known customers

* `reviewers`: one per channel and handle (the platform's author name or id), email when
  the export has one.
* `feedback.customer_id`, `lifecycle_id` and `stage` become nullable (NULL only for a web
  review from a reviewer who is not a known customer, who is in `reviewer_id` instead);
  new `platform`, `source_url`, `content_hash`.
* Channel `review_site` (Trustpilot, Google Business Profile) in the feedback and reviewer
  CHECK constraints.
* The rollup triggers on feedback are re-created: they key a NULL stage as
  'unattributed' and count an unattributed review under acquisition source 'unknown'
  (bot/storage/rollup.py). Existing rows all have a stage, so nothing is backfilled.

SQLite cannot drop NOT NULL in place: the feedback table is rebuilt (batch mode) with
foreign keys off (or deferred) and the insight links kept aside, since dropping the old
table may cascade to `insight_feedback`.

Revision ID: 0019
Revises: 0020 (the review inbox of issue #24, committed first and chained after 0018)
Create Date: 2026-12-07 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import frozen_ddl

revision: str = "0019"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CHANNELS = ("website_chat", "support", "call_center", "email", "social", "storefront")
NEW_CHANNELS = (*OLD_CHANNELS, "review_site")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _rebuild_feedback(*, upgrade: bool) -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    frozen_ddl.run(bind, revision, "drop_triggers")
    sqlite = dialect == "sqlite"
    if sqlite:
        op.execute("CREATE TEMP TABLE _insight_feedback_0019 AS SELECT * FROM insight_feedback")
    nullable = upgrade
    channels = NEW_CHANNELS if upgrade else OLD_CHANNELS
    with op.batch_alter_table("feedback", recreate="always" if sqlite else "auto") as batch:
        batch.alter_column("customer_id", existing_type=sa.Integer(), nullable=nullable)
        batch.alter_column("lifecycle_id", existing_type=sa.Integer(), nullable=nullable)
        batch.alter_column("stage", existing_type=sa.String(length=32), nullable=nullable)
        if upgrade:
            batch.add_column(sa.Column("reviewer_id", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("platform", sa.String(length=32), nullable=True))
            batch.add_column(sa.Column("source_url", sa.String(length=2000), nullable=True))
            batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
            batch.create_foreign_key(
                op.f("fk_feedback_reviewer_id_reviewers"), "reviewers", ["reviewer_id"], ["id"]
            )
            batch.create_index(op.f("ix_feedback_reviewer_id"), ["reviewer_id"], unique=False)
        else:
            batch.drop_index(op.f("ix_feedback_reviewer_id"))
            batch.drop_constraint(op.f("fk_feedback_reviewer_id_reviewers"), type_="foreignkey")
            batch.drop_column("content_hash")
            batch.drop_column("source_url")
            batch.drop_column("platform")
            batch.drop_column("reviewer_id")
        if not sqlite:
            batch.drop_constraint(op.f("ck_feedback_feedback_channel"), type_="check")
        batch.create_check_constraint("feedback_channel", sa.text(_in("channel", channels)))
    if sqlite:
        op.execute(
            "INSERT OR IGNORE INTO insight_feedback SELECT * FROM _insight_feedback_0019 "
            "WHERE feedback_id IN (SELECT id FROM feedback)"
        )
        op.execute("DROP TABLE _insight_feedback_0019")
    frozen_ddl.run(bind, revision, "create_triggers")


def _foreign_keys(on: bool) -> None:
    """SQLite: foreign keys off while feedback is rebuilt. Set before any DML of this
    migration: pysqlite runs DDL outside a transaction, where the PRAGMA applies (inside
    one it is a no-op; the deferral then applies instead)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
        if not on:
            op.execute("PRAGMA defer_foreign_keys = ON")


def upgrade() -> None:
    _foreign_keys(False)
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                *NEW_CHANNELS,
                name="reviewer_channel",
                native_enum=False,
                length=32,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("handle", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewers")),
        sa.UniqueConstraint("channel", "handle", name="uq_reviewers_channel_handle"),
    )
    op.create_index(op.f("ix_reviewers_email"), "reviewers", ["email"], unique=False)
    _rebuild_feedback(upgrade=True)
    _foreign_keys(True)


def downgrade() -> None:
    _foreign_keys(False)
    # Feedback without a customer cannot go back into the old schema: it is deleted.
    op.execute(
        "DELETE FROM escalations WHERE feedback_id IN "
        "(SELECT id FROM feedback WHERE customer_id IS NULL)"
    )
    op.execute("DELETE FROM feedback WHERE customer_id IS NULL OR channel = 'review_site'")
    _rebuild_feedback(upgrade=False)
    op.drop_index(op.f("ix_reviewers_email"), table_name="reviewers")
    op.drop_table("reviewers")
    _foreign_keys(True)
