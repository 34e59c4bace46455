"""A finding is data: its check is plain text (no CHECK constraint: a new check needs no migration), and it
gains its code (`trust_policy.widened`) and its subject (kind, account, owner, name).

Rows recorded before get the code their check, status, effect and sentence mean (below); their subject
stays NULL (it is read back as unknown).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 09:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The checks as they were before this revision, not imported: a later change needs its own migration.
_CHECKS = (
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
    "change_events",
)
_CONSTRAINT = "ck_findings_check_kind"
_SUBJECT = (
    ("subject_kind", sa.String(length=64)),
    ("subject_account", sa.String(length=12)),
    ("subject_owner", sa.Text()),
    ("subject_name", sa.Text()),
)
_UNREADABLE = "cannot be read as an IAM policy"

# The code of a finding recorded before codes existed, from what the row holds (the sentences as the
# code of revisions 0001 to 0006 wrote them; a blamed finding's sentence may go on with "; so ...").
_CODE_OF_ROW = f"""
CASE
  WHEN "check" = 'resource' AND status = 'failed' THEN 'resource.inactive'
  WHEN "check" = 'resource' THEN 'resource.missing'
  WHEN "check" IN ('trust_policy', 'inline_policy') AND message LIKE 'the lab cannot work:%'
    THEN "check" || '.denies_lab'
  WHEN "check" IN ('trust_policy', 'inline_policy') AND message LIKE 'cannot prove that %'
    THEN "check" || '.unproven'
  WHEN "check" = 'trust_policy' AND message LIKE '%{_UNREADABLE}%' THEN 'trust_policy.unreadable'
  WHEN "check" = 'inline_policy' AND status = 'missing' THEN 'inline_policy.missing'
  WHEN "check" = 'inline_policy' AND status = 'unexpected' THEN 'inline_policy.unexpected'
  WHEN "check" = 'inline_policy' AND message LIKE '%{_UNREADABLE}%' AND expected_digest IS NULL
    THEN 'inline_policy.unexpected_unreadable'
  WHEN "check" = 'inline_policy' AND message LIKE '%{_UNREADABLE}%' THEN 'inline_policy.unreadable'
  WHEN "check" IN ('trust_policy', 'inline_policy') AND effect IN ('widened', 'narrowed', 'changed')
    THEN "check" || '.' || effect
  WHEN "check" IN ('trust_policy', 'inline_policy') THEN "check" || '.changed'
  WHEN "check" IN ('managed_policies', 'permissions_boundary')
    AND message LIKE '%its document could not be read%' THEN "check" || '.unreadable'
  WHEN "check" IN ('managed_policies', 'permissions_boundary') THEN "check" || '.attached'
  WHEN "check" IN ('lambda_config', 'lambda_code') THEN "check" || '.modified'
  WHEN "check" = 'invoke' THEN 'invoke.failed'
  WHEN "check" = 'log_group' AND status = 'missing' THEN 'log_group.missing'
  WHEN "check" = 'log_group' THEN 'log_group.retention'
  WHEN "check" = 'event_rule' AND status = 'missing' THEN 'event_rule.missing'
  WHEN "check" = 'event_rule' THEN 'event_rule.modified'
  WHEN "check" = 'change_events' THEN 'change_events.missing'
  ELSE "check" || '.' || status
END
"""


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_constraint(op.f(_CONSTRAINT), type_="check")
        batch.alter_column(
            "check", type_=sa.String(length=64), existing_type=sa.String(length=20), existing_nullable=False
        )
        batch.add_column(sa.Column("code", sa.String(length=128), nullable=True))
        for name, kind in _SUBJECT:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.execute(sa.text(f"UPDATE findings SET code = {_CODE_OF_ROW}"))
    with op.batch_alter_table("findings") as batch:
        batch.alter_column("code", existing_type=sa.String(length=128), nullable=False)


def downgrade() -> None:
    allowed = ", ".join(f"'{check}'" for check in _CHECKS)
    op.execute(sa.text(f'DELETE FROM findings WHERE "check" NOT IN ({allowed})'))
    with op.batch_alter_table("findings") as batch:
        for name, _ in reversed(_SUBJECT):
            batch.drop_column(name)
        batch.drop_column("code")
        batch.alter_column(
            "check", type_=sa.String(length=20), existing_type=sa.String(length=64), existing_nullable=False
        )
        batch.create_check_constraint(op.f(_CONSTRAINT), sa.column("check").in_(_CHECKS))
