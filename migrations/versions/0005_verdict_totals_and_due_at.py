"""Verdict totals by lab, verdict and span of time, for reports at scale; the due time of an audit.

`verdict_totals` counts each lab's runs by verdict over spans of one hour and of six hours, with how
long the lab stood at that verdict after them, so that a report of a month adds up a few rows per lab
and day instead of reading every run; it is filled here from the runs already recorded.
`audit_runs.due_at` is the moment a schedule meant an audit for (daemon replicas).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00

"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from auditor.store.history import recount_before
from auditor.store.types import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERDICTS = ("conformant", "drifted", "broken", "error")


def upgrade() -> None:
    with op.batch_alter_table("audit_runs") as batch:
        batch.add_column(sa.Column("due_at", UtcDateTime(), nullable=True))
    op.create_index(
        op.f("ix_audit_runs_lab_id_due_at"),
        "audit_runs",
        ["lab_id", "due_at"],
        sqlite_where=sa.text("due_at IS NOT NULL"),
        postgresql_where=sa.text("due_at IS NOT NULL"),
    )
    op.create_table(
        "verdict_totals",
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("span_hours", sa.Integer(), nullable=False),
        sa.Column("start", UtcDateTime(), nullable=False),
        sa.Column(
            "verdict",
            sa.Enum(*VERDICTS, name="verdict", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("first_at", UtcDateTime(), nullable=False),
        sa.Column("last_at", UtcDateTime(), nullable=False),
        sa.Column("standing_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lab_id"], ["labs.id"], name=op.f("fk_verdict_totals_lab_id_labs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lab_id", "span_hours", "start", "verdict", name=op.f("pk_verdict_totals")),
    )
    # The store's own recount over the runs already recorded (its queries name the tables of this revision).
    recount_before(Session(bind=op.get_bind()), None, datetime.max.replace(tzinfo=UTC))


def downgrade() -> None:
    op.drop_table("verdict_totals")
    op.drop_index(op.f("ix_audit_runs_lab_id_due_at"), table_name="audit_runs")
    with op.batch_alter_table("audit_runs") as batch:
        batch.drop_column("due_at")
