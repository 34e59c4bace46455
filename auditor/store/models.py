"""The tables of the history (SQLAlchemy 2 declarative models).

Compactness is the point of the layout: a class of labs audited every five minutes makes a row per
lab every five minutes, for months. So a run row holds only what differs from run to run (times,
verdict, request count) and points at a shared, content-addressed finding set; the findings of a set
point at content-addressed documents. An unchanged result costs one `audit_runs` row and one
`invoke_results` row, nothing else.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from auditor.domain.model import Effect, Severity, Status, Trigger, Verdict
from auditor.domain.steps import StepStatus
from auditor.store.records import LabState, LifecycleEvent, Outcome
from auditor.store.types import UtcDateTime, enum_of

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA256_HEX = 64


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class LabRow(Base):
    __tablename__ = "labs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    origin_account: Mapped[str] = mapped_column(String(12))
    destination_account: Mapped[str] = mapped_column(String(12))
    state: Mapped[LabState] = mapped_column(enum_of(LabState, "lab_state"))
    provisioned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The lab's lease (revision 0006): who changes or judges the lab now, what for, since when, and when
    # the holder last renewed it. Taken by a conditional UPDATE, so that two holders never overlap.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_purpose: Mapped[str | None] = mapped_column(String(20))
    lease_renewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LabResourceRow(Base):
    __tablename__ = "lab_resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(12))
    arn: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class DocumentRow(Base):
    """A policy document (or any expected/actual value), once, under the sha256 of its canonical JSON."""

    __tablename__ = "documents"

    digest: Mapped[str] = mapped_column(String(SHA256_HEX), primary_key=True)
    body: Mapped[str] = mapped_column(Text)


class FindingSetRow(Base):
    """The findings of one or more runs, under the sha256 of the findings in canonical order."""

    __tablename__ = "finding_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    size: Mapped[int]


class FindingRow(Base):
    __tablename__ = "findings"

    set_id: Mapped[int] = mapped_column(ForeignKey("finding_sets.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    # Plain text, as the kinds declare them (revision 0007): a new check needs no migration.
    check: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(128))
    resource: Mapped[str] = mapped_column(Text)
    status: Mapped[Status] = mapped_column(enum_of(Status, "status"))
    effect: Mapped[Effect] = mapped_column(enum_of(Effect, "effect"))
    severity: Mapped[Severity] = mapped_column(enum_of(Severity, "severity"))
    message: Mapped[str] = mapped_column(Text)
    expected_digest: Mapped[str | None] = mapped_column(ForeignKey("documents.digest"))
    actual_digest: Mapped[str | None] = mapped_column(ForeignKey("documents.digest"))
    breaks_lab: Mapped[bool]
    # interface.md 0.2: which request the difference allows, and who made the change (revision 0002).
    witness_digest: Mapped[str | None] = mapped_column(ForeignKey("documents.digest"))
    changed_by_digest: Mapped[str | None] = mapped_column(ForeignKey("documents.digest"))
    # What the finding is about, keyed as the provisioner's steps (revision 0007); NULL in rows recorded
    # before.
    subject_kind: Mapped[str | None] = mapped_column(String(64))
    subject_account: Mapped[str | None] = mapped_column(String(12))
    subject_owner: Mapped[str | None] = mapped_column(Text)
    subject_name: Mapped[str | None] = mapped_column(Text)


class AuditRunRow(Base):
    __tablename__ = "audit_runs"
    __table_args__ = (
        # Serves every per-lab query: latest run, timelines, conformance, retention.
        Index(None, "lab_id", "started_at"),
        # Garbage collection of finding sets looks runs up by set; most runs have none, hence partial.
        Index(
            None,
            "finding_set_id",
            sqlite_where=text("finding_set_id IS NOT NULL"),
            postgresql_where=text("finding_set_id IS NOT NULL"),
        ),
        # Replicas ask whether a lab's audit due at a tick is recorded; only scheduled replica runs have one.
        Index(
            None,
            "lab_id",
            "due_at",
            sqlite_where=text("due_at IS NOT NULL"),
            postgresql_where=text("due_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id", ondelete="CASCADE"))
    trigger: Mapped[Trigger] = mapped_column(enum_of(Trigger, "trigger"))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    verdict: Mapped[Verdict] = mapped_column(enum_of(Verdict, "verdict"))
    error: Mapped[str | None] = mapped_column(Text)
    requests: Mapped[int]
    finding_set_id: Mapped[int | None] = mapped_column(ForeignKey("finding_sets.id"))
    # The moment the schedule meant this audit for (revision 0005): with several daemon replicas, one
    # scheduled audit of a lab per due time, whoever ran it and however late. None off the schedule.
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class VerdictTotalRow(Base):
    """The runs of one lab with one verdict in one span of time (an hour, or six), counted as they are
    recorded (revision 0005), with how long the lab stood at that verdict after them.

    A report of a class over a month reads these (four rows a day per lab for its six-hour spans, instead
    of 288 runs) instead of every run; only the edges of its period are read run by run.
    """

    __tablename__ = "verdict_totals"

    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id", ondelete="CASCADE"), primary_key=True)
    span_hours: Mapped[int] = mapped_column(primary_key=True)  # 1 or 6: SPANS in auditor.store.history
    start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)  # a multiple of the span
    verdict: Mapped[Verdict] = mapped_column(enum_of(Verdict, "verdict"), primary_key=True)
    runs: Mapped[int]
    first_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Sum over these runs of (start of the lab's next run - their start), in microseconds; a run with no
    # next run yet adds nothing until one comes.
    standing_us: Mapped[int] = mapped_column(BigInteger)


class InvokeResultRow(Base):
    __tablename__ = "invoke_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"), primary_key=True)
    ok: Mapped[bool]
    cause: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    duration_ms: Mapped[int]


class StepResultRow(Base):
    """What one audit run found of each step of the rubric (revision 0008; `[class] built_by = "students"`),
    in the rubric's order. A run without steps (a class the provisioner builds, an audit that could not
    finish) has no rows."""

    __tablename__ = "step_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    step: Mapped[str] = mapped_column(String(64))  # the rubric step's id, as text: a rubric is data
    status: Mapped[StepStatus] = mapped_column(enum_of(StepStatus, "step_status"))
    feedback: Mapped[str | None] = mapped_column(Text)


class LifecycleEventRow(Base):
    __tablename__ = "lifecycle_events"
    __table_args__ = (Index(None, "lab_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    event: Mapped[LifecycleEvent] = mapped_column(enum_of(LifecycleEvent, "lifecycle_event"))
    outcome: Mapped[Outcome] = mapped_column(enum_of(Outcome, "outcome"))
    detail: Mapped[str] = mapped_column(Text)


__all__ = [
    "NAMING_CONVENTION",
    "AuditRunRow",
    "Base",
    "DocumentRow",
    "FindingRow",
    "FindingSetRow",
    "InvokeResultRow",
    "LabResourceRow",
    "LabRow",
    "LifecycleEventRow",
    "StepResultRow",
    "VerdictTotalRow",
]
