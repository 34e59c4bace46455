"""Two more kinds of finding: `log_group` and `event_rule` (what the provisioner manages besides lab.md's).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as they are at this revision, not imported: a later change needs its own migration.
_BEFORE = (
    "resource",
    "trust_policy",
    "inline_policy",
    "managed_policies",
    "permissions_boundary",
    "lambda_config",
    "lambda_code",
    "invoke",
)
_AFTER = (*_BEFORE, "log_group", "event_rule")
_NAME = "ck_findings_check_kind"


def _allow(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_constraint(op.f(_NAME), type_="check")
        batch.create_check_constraint(op.f(_NAME), sa.column("check").in_(values))


def upgrade() -> None:
    _allow(_AFTER)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM findings WHERE \"check\" IN ('log_group', 'event_rule')"))
    _allow(_BEFORE)
