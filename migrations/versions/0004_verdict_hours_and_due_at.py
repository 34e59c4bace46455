"""Hourly verdict counts for reports at scale, and the due time of a scheduled audit.

`verdict_hours` counts each lab's runs by hour and verdict as they are recorded, so that a report
of a month reads a row per lab and hour instead of every run; it is filled here from the runs
already recorded. `audit_runs.due_at` is the moment a schedule meant an audit for (daemon replicas).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00

"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from auditor.store.sql import truncate
from auditor.store.types import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERDICTS = ("conformant", "drifted", "broken", "error")


def upgrade() -> None:
    with op.batch_alter_table("audit_runs") as batch:
        batch.add_column(sa.Column("due_at", UtcDateTime(), nullable=True))
    verdict_hours = op.create_table(
        "verdict_hours",
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column(
            "verdict",
            sa.Enum(*VERDICTS, name="verdict", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("first_at", UtcDateTime(), nullable=False),
        sa.Column("last_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lab_id"], ["labs.id"], name=op.f("fk_verdict_hours_lab_id_labs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lab_id", "hour", "verdict", name=op.f("pk_verdict_hours")),
    )
    runs = sa.table(
        "audit_runs",
        sa.column("lab_id", sa.Integer()),
        sa.column("started_at", UtcDateTime()),
        sa.column("verdict", sa.String()),
    )
    hour = truncate(runs.c.started_at, timedelta(hours=1))
    counted = sa.select(
        runs.c.lab_id,
        hour,
        runs.c.verdict,
        sa.func.count(),
        sa.func.min(runs.c.started_at),
        sa.func.max(runs.c.started_at),
    ).group_by(runs.c.lab_id, hour, runs.c.verdict)
    op.execute(
        verdict_hours.insert().from_select(
            ["lab_id", "hour", "verdict", "runs", "first_at", "last_at"], counted
        )
    )


def downgrade() -> None:
    op.drop_table("verdict_hours")
    with op.batch_alter_table("audit_runs") as batch:
        batch.drop_column("due_at")
