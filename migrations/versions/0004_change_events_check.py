"""One more kind of finding: `change_events` (with [events], a lab account whose changes no trail logs).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
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
    "log_group",
    "event_rule",
)
_AFTER = (*_BEFORE, "change_events")
_NAME = "ck_findings_check_kind"


def _allow(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_constraint(op.f(_NAME), type_="check")
        batch.create_check_constraint(op.f(_NAME), sa.column("check").in_(values))


def upgrade() -> None:
    _allow(_AFTER)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM findings WHERE \"check\" = 'change_events'"))
    _allow(_BEFORE)
