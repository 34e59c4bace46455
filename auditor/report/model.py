"""What a report shows, as plain values: built once from the store, then rendered by pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from auditor.app.grading import LabGrade
from auditor.domain.config import LabConfig
from auditor.domain.model import Finding, InvokeResult, Severity, Verdict
from auditor.domain.urgency import urgency, worst_of
from auditor.store.records import LabState, LifecycleEntry, RecordedRun, TimeShare

# Worst last: a time bucket's colour is the worst verdict of its audits. An error says nothing about the
# lab itself, so a drifted or broken audit in the same bucket outranks it.
VERDICT_ORDER: tuple[Verdict, ...] = (Verdict.CONFORMANT, Verdict.ERROR, Verdict.DRIFTED, Verdict.BROKEN)
VERDICT_RANK = {verdict: rank for rank, verdict in enumerate(VERDICT_ORDER)}
SEVERITIES: tuple[Severity, ...] = tuple(sorted(Severity, key=lambda s: -s.rank))


@dataclass(frozen=True)
class SeverityCounts:
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    info: int = 0

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> SeverityCounts:
        counts = dict.fromkeys((s.value for s in Severity), 0)
        for finding in findings:
            counts[finding.severity.value] += 1
        return cls(**counts)

    def get(self, severity: Severity) -> int:
        count: int = getattr(self, severity.value)
        return count

    def items(self) -> tuple[tuple[Severity, int], ...]:
        """Most severe first."""
        return tuple((severity, self.get(severity)) for severity in SEVERITIES)

    @property
    def total(self) -> int:
        return sum(count for _, count in self.items())


class DiffKind(StrEnum):
    SAME = "same"
    CHANGED = "changed"  # a line of the expected document replaced by a line of the actual one
    REMOVED = "removed"  # only in the expected document
    ADDED = "added"  # only in the actual document


@dataclass(frozen=True)
class DiffRow:
    """One line of a side-by-side comparison; the side a line is missing from is None."""

    kind: DiffKind
    expected: str | None
    actual: str | None


@dataclass(frozen=True)
class DocumentDiff:
    """A finding's expected and actual values, line by line, aligned."""

    # True when both sides are IAM policies shown in auditor.policy's canonical form, so only
    # differences of meaning remain (order, Sids, case and spelling are gone).
    canonical_policy: bool
    rows: tuple[DiffRow, ...]
    has_expected: bool
    has_actual: bool

    @property
    def changed(self) -> bool:
        return any(row.kind is not DiffKind.SAME for row in self.rows)


@dataclass(frozen=True)
class FindingReport:
    finding: Finding
    diff: DocumentDiff | None  # None when the finding carries neither an expected nor an actual value


@dataclass(frozen=True)
class TimelineCell:
    """One time bucket of a lab's history."""

    start: datetime
    verdict: Verdict | None  # the worst verdict audited in the bucket; None without an audit
    audits: int
    # The verdict the lab stood at when the bucket ended, carried over buckets without an audit;
    # None before its first audit and after a teardown that followed its last one (it left the class).
    standing: Verdict | None


@dataclass(frozen=True)
class LabReport:
    name: str
    origin_account: str
    destination_account: str
    state: LabState
    expires_at: datetime | None
    # The latest run ever, whatever the period: the lab's current state.
    latest: RecordedRun | None
    findings: tuple[FindingReport, ...]
    severity_counts: SeverityCounts
    # The rest covers the report's period only.
    audits: int
    conformant_audits: int
    first_conformant_at: datetime | None
    # In the period if it has a conformant audit, else the last one before it.
    last_conformant_at: datetime | None
    timeline: tuple[TimelineCell, ...]
    lifecycle: tuple[LifecycleEntry, ...]
    # How long the lab stood at each verdict in the period (from each audit to the next).
    time_at_verdicts: TimeShare = field(default_factory=lambda: TimeShare({}))

    @property
    def verdict(self) -> Verdict | None:
        return self.latest.verdict if self.latest else None

    @property
    def invoke(self) -> InvokeResult | None:
        return self.latest.invoke if self.latest else None

    @property
    def error(self) -> str | None:
        return self.latest.error if self.latest else None

    @property
    def conformant_share(self) -> float | None:
        """The share of the period's audits that were conformant."""
        return self.conformant_audits / self.audits if self.audits else None

    @property
    def urgency(self) -> tuple[int, int, str]:
        """Its place worst first (auditor/domain/urgency.py): a torn-down lab's verdict is history."""
        worst = worst_of(item.finding for item in self.findings)
        return urgency(self.name, self.verdict, worst, gone=self.state is LabState.TORN_DOWN)

    @property
    def conformant_time_share(self) -> float | None:
        """The share of the period's judged time the lab stood conformant: from each audit to the next,
        the time under an audit that could not finish counted neither way."""
        return self.time_at_verdicts.without(Verdict.ERROR).share(Verdict.CONFORMANT)


@dataclass(frozen=True)
class ConformanceBucket:
    """The class in one time bucket: each lab counted with its latest verdict known by the bucket's end."""

    start: datetime
    end: datetime
    verdicts: dict[Verdict, int] = field(default_factory=dict)

    @property
    def labs(self) -> int:
        return sum(self.verdicts.values())

    @property
    def conformant(self) -> int:
        return self.verdicts.get(Verdict.CONFORMANT, 0)

    @property
    def share(self) -> float | None:
        return self.conformant / self.labs if self.labs else None


@dataclass(frozen=True)
class RosterEntry:
    """A lab as the configuration has it: for the labs the history has not seen, and the student columns."""

    origin_account: str
    destination_account: str
    info: Mapping[str, str] = field(default_factory=dict)


def roster_of(labs: Iterable[LabConfig]) -> dict[str, RosterEntry]:
    """What the configuration says of each lab (its accounts, the roster's student columns), by name."""
    return {
        lab.name: RosterEntry(lab.origin.account_id, lab.destination.account_id, dict(lab.info))
        for lab in labs
    }


@dataclass(frozen=True)
class ClassReport:
    generated_at: datetime
    since: datetime | None
    # From `since` (or the first audit) to `generated_at`; no start when nothing was audited in it.
    period_start: datetime | None
    bucket_width: timedelta
    labs: tuple[LabReport, ...]
    conformance: tuple[ConformanceBucket, ...]
    # Labs asked for that the store has never heard of (never provisioned, never audited).
    unrecorded: tuple[str, ...] = ()
    # The configured labs (the command fills it in), by name.
    roster: Mapping[str, RosterEntry] = field(default_factory=dict)
    # The database the history was read from, without its password (the command fills it in).
    database: str = ""
    # When students build the labs: each lab's grade as of `generated_at` (the command fills it in);
    # empty otherwise. The HTML report then links a page per student (html_report.student_pages).
    grades: tuple[LabGrade, ...] = ()

    def info_of(self, lab: str) -> Mapping[str, str]:
        entry = self.roster.get(lab)
        return entry.info if entry is not None else {}

    def student_name(self, lab: str) -> str:
        """The roster's `student_name` of the lab; "" without one."""
        return self.info_of(lab).get("student_name", "")

    def worst_first(self) -> tuple[LabReport, ...]:
        """The labs as the HTML and Markdown reports and the live page list them (auditor/domain/urgency.py)."""
        return tuple(sorted(self.labs, key=lambda lab: lab.urgency))

    def info_columns(self) -> tuple[str, ...]:
        """The roster's own columns (student_name, student_email, ...), in the order they first appear."""
        return tuple(dict.fromkeys(key for entry in self.roster.values() for key in entry.info))

    @property
    def period_end(self) -> datetime:
        return self.generated_at

    def verdict_counts(self) -> dict[Verdict | None, int]:
        """How many labs have each latest verdict (None: never audited), worst first."""
        counts: dict[Verdict | None, int] = {verdict: 0 for verdict in reversed(VERDICT_ORDER)}
        counts[None] = 0
        for lab in self.labs:
            counts[lab.verdict] += 1
        return counts
