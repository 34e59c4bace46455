"""A lab's lease for every command that changes or judges it, not only for teardowns.

The teardown claim (`teardown_owner`, `teardown_claimed_at`) becomes the lab's lease: who holds it
(`lease_owner`), what for (`lease_purpose`: provision, teardown or audit), since when (`lease_since`)
and when its holder last said it is still at work (`lease_renewed_at`). A claim left by an earlier
version is a teardown's.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 17:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from auditor.store.types import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("labs") as batch:
        batch.alter_column("teardown_owner", new_column_name="lease_owner", existing_type=sa.String(200))
        batch.alter_column(
            "teardown_claimed_at", new_column_name="lease_since", existing_type=sa.DateTime(timezone=True)
        )
        batch.add_column(sa.Column("lease_purpose", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("lease_renewed_at", UtcDateTime(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE labs SET lease_purpose = 'teardown', lease_renewed_at = lease_since "
            "WHERE lease_owner IS NOT NULL"
        )
    )


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE labs SET lease_owner = NULL, lease_since = NULL "
            "WHERE lease_purpose IS NOT NULL AND lease_purpose <> 'teardown'"
        )
    )
    with op.batch_alter_table("labs") as batch:
        batch.drop_column("lease_renewed_at")
        batch.drop_column("lease_purpose")
        batch.alter_column(
            "lease_since", new_column_name="teardown_claimed_at", existing_type=sa.DateTime(timezone=True)
        )
        batch.alter_column("lease_owner", new_column_name="teardown_owner", existing_type=sa.String(200))
