"""Initial schema: labs, their resources and lifecycle, audit runs with shared finding sets and documents.

Revision ID: 0001
Revises:
Create Date: 2026-11-29 01:33:56

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from auditor.store.types import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    # The values as they were at this revision, not imported: a later change to an enum needs its own migration.
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_documents")),
    )
    op.create_table(
        "finding_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_sets")),
        sa.UniqueConstraint("digest", name=op.f("uq_finding_sets_digest")),
    )
    op.create_table(
        "labs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("origin_account", sa.String(length=12), nullable=False),
        sa.Column("destination_account", sa.String(length=12), nullable=False),
        sa.Column(
            "state",
            _enum("lab_state", "planned", "provisioning", "active", "expired", "torn_down", "failed"),
            nullable=False,
        ),
        sa.Column("provisioned_at", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("teardown_owner", sa.String(length=200), nullable=True),
        sa.Column("teardown_claimed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labs")),
        sa.UniqueConstraint("name", name=op.f("uq_labs_name")),
    )
    op.create_table(
        "audit_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("trigger", _enum("trigger", "manual", "schedule", "event"), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("verdict", _enum("verdict", "conformant", "drifted", "broken", "error"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("finding_set_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["finding_set_id"], ["finding_sets.id"], name=op.f("fk_audit_runs_finding_set_id_finding_sets")
        ),
        sa.ForeignKeyConstraint(
            ["lab_id"], ["labs.id"], name=op.f("fk_audit_runs_lab_id_labs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_runs")),
    )
    op.create_index(op.f("ix_audit_runs_lab_id_started_at"), "audit_runs", ["lab_id", "started_at"])
    op.create_index(
        op.f("ix_audit_runs_finding_set_id"),
        "audit_runs",
        ["finding_set_id"],
        sqlite_where=sa.text("finding_set_id IS NOT NULL"),
        postgresql_where=sa.text("finding_set_id IS NOT NULL"),
    )
    op.create_table(
        "findings",
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "check",
            _enum(
                "check_kind",
                "resource",
                "trust_policy",
                "inline_policy",
                "managed_policies",
                "permissions_boundary",
                "lambda_config",
                "lambda_code",
                "invoke",
            ),
            nullable=False,
        ),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("status", _enum("status", "missing", "modified", "unexpected", "failed"), nullable=False),
        sa.Column("effect", _enum("effect", "widened", "narrowed", "changed", "none"), nullable=False),
        sa.Column("severity", _enum("severity", "critical", "high", "medium", "low", "info"), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("expected_digest", sa.String(length=64), nullable=True),
        sa.Column("actual_digest", sa.String(length=64), nullable=True),
        sa.Column("breaks_lab", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actual_digest"], ["documents.digest"], name=op.f("fk_findings_actual_digest_documents")
        ),
        sa.ForeignKeyConstraint(
            ["expected_digest"], ["documents.digest"], name=op.f("fk_findings_expected_digest_documents")
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["finding_sets.id"], name=op.f("fk_findings_set_id_finding_sets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("set_id", "position", name=op.f("pk_findings")),
    )
    op.create_table(
        "lab_resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=12), nullable=False),
        sa.Column("arn", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lab_id"], ["labs.id"], name=op.f("fk_lab_resources_lab_id_labs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lab_resources")),
    )
    op.create_index(op.f("ix_lab_resources_lab_id"), "lab_resources", ["lab_id"])
    op.create_table(
        "lifecycle_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column(
            "event",
            _enum(
                "lifecycle_event",
                "provisioned",
                "reset",
                "provision_failed",
                "expired",
                "teardown_started",
                "torn_down",
                "teardown_failed",
            ),
            nullable=False,
        ),
        sa.Column("outcome", _enum("outcome", "ok", "failed", "started"), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lab_id"], ["labs.id"], name=op.f("fk_lifecycle_events_lab_id_labs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_events")),
    )
    op.create_index(op.f("ix_lifecycle_events_lab_id_at"), "lifecycle_events", ["lab_id", "at"])
    op.create_table(
        "invoke_results",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["audit_runs.id"],
            name=op.f("fk_invoke_results_run_id_audit_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_invoke_results")),
    )


def downgrade() -> None:
    op.drop_table("invoke_results")
    op.drop_index(op.f("ix_lifecycle_events_lab_id_at"), table_name="lifecycle_events")
    op.drop_table("lifecycle_events")
    op.drop_index(op.f("ix_lab_resources_lab_id"), table_name="lab_resources")
    op.drop_table("lab_resources")
    op.drop_table("findings")
    op.drop_index(op.f("ix_audit_runs_finding_set_id"), table_name="audit_runs")
    op.drop_index(op.f("ix_audit_runs_lab_id_started_at"), table_name="audit_runs")
    op.drop_table("audit_runs")
    op.drop_table("labs")
    op.drop_table("finding_sets")
    op.drop_table("documents")
