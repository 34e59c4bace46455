"""What each audit run found of each step of the rubric, when students build the lab (`[class]`).

`step_results` holds a run's step results in the rubric's order: the step's id, its status (done,
hardened, wrong or missing as the audit judged it) and the sentence a student can act on. `auditor
grade` reads them back over time. Runs recorded before have none: a class graded from them starts
with its first audit after this revision.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 09:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The statuses as they are at this revision, not imported: a later change needs its own migration.
STEP_STATUSES = ("done", "hardened", "wrong", "missing", "blocked", "late", "pending")


def upgrade() -> None:
    op.create_table(
        "step_results",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(*STEP_STATUSES, name="step_status", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["audit_runs.id"], name=op.f("fk_step_results_run_id_audit_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "position", name=op.f("pk_step_results")),
    )


def downgrade() -> None:
    op.drop_table("step_results")
