"""A finding's witness and actor (interface.md 0.2), each a content-addressed document.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("witness_digest", "changed_by_digest")


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.String(length=64), nullable=True))
            batch.create_foreign_key(
                op.f(f"fk_findings_{column}_documents"), "documents", [column], ["digest"]
            )


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        for column in COLUMNS:
            batch.drop_constraint(op.f(f"fk_findings_{column}_documents"), type_="foreignkey")
            batch.drop_column(column)
