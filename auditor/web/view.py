"""What the live page shows, read from the store: the report's values, built per request.

Read-only: nothing here writes. The store comes from a callable so that the page can answer (503)
while the daemon is still waiting for its database. With a configuration whose students build the
lab (`[class] built_by = "students"`), the view also grades the class as of the request, from the
same store (no connection of its own): the progress board and `/api/class`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from auditor.app.grading import LabGrade, grade_document
from auditor.app.reading import grades_in
from auditor.common.clock import utc_now
from auditor.domain.config import Config
from auditor.domain.model import AuditRun, LabAudit
from auditor.domain.steps import Rubric
from auditor.report import ClassReport, LabReport, build_report
from auditor.report.model import roster_of
from auditor.report.text import student_label
from auditor.store import LabStatus, RecordedRun, RunPoint, Store

OVERVIEW_PERIOD = timedelta(days=1)
HISTORY_PERIOD = timedelta(days=7)
HISTORY_CHANGES = 100


@dataclass(frozen=True)
class LabPage:
    lab: LabReport
    changes: tuple[RunPoint, ...]  # the changes of verdict, latest first
    more_changes: bool
    student: str = ""  # the roster's student, as the report shows them ("" without one)


@dataclass(frozen=True)
class ClassBoard:
    """The class's progress as of an instant: a row a lab, the stuck first, then the fewest points,
    then by name."""

    rubric: Rubric
    as_of: datetime
    stuck_after: timedelta
    rows: tuple[LabGrade, ...]

    @property
    def stuck(self) -> int:
        return sum(1 for row in self.rows if row.stuck_since is not None)


def board_order(grade: LabGrade) -> tuple[bool, int, str, str]:
    return (grade.stuck_since is None, grade.points, (grade.student_name or grade.lab).casefold(), grade.lab)


class ClassView:
    def __init__(
        self,
        store: Callable[[], Store],
        clock: Callable[[], datetime] = utc_now,
        *,
        config: Config | None = None,
    ) -> None:
        self._store, self._clock = store, clock
        # Only a class the students build is graded; without one the page has no board.
        self._graded = config if config is not None and config.classroom.students_build else None
        # The roster's student columns, shown beside each lab (none without a configuration).
        self._roster = roster_of(config.labs) if config is not None else {}

    @property
    def graded(self) -> bool:
        return self._graded is not None

    def now(self) -> datetime:
        return self._clock()

    def version(self, now: datetime) -> str:
        """Changes whenever something the page shows does: a write, or the minute ("3 min ago")."""
        marker = (*self._store().change_marker(), now.strftime("%Y%m%d%H%M"))
        return hashlib.sha256(repr(marker).encode()).hexdigest()[:20]

    def overview(self, now: datetime) -> ClassReport:
        return replace(build_report(self._store(), None, now - OVERVIEW_PERIOD, now), roster=self._roster)

    def lab(self, name: str, now: datetime) -> LabPage | None:
        store = self._store()
        report = build_report(store, [name], now - HISTORY_PERIOD, now)
        if not report.labs:
            return None
        changes = store.verdict_changes(None, [name]).get(name, [])
        latest_first = tuple(reversed(changes))
        entry = self._roster.get(name)
        student = student_label(entry.info) if entry is not None else ""
        return LabPage(
            report.labs[0], latest_first[:HISTORY_CHANGES], len(changes) > HISTORY_CHANGES, student
        )

    def grades(self, now: datetime) -> list[LabGrade] | None:
        """Each lab's grade as of `now`, in the configuration's order; None unless students build."""
        if self._graded is None:
            return None
        return grades_in(self._store(), self._graded, self._graded.labs, now)

    def board(self, now: datetime) -> ClassBoard | None:
        grades = self.grades(now)
        if grades is None or self._graded is None:
            return None
        settings = self._graded.classroom
        rows = tuple(sorted(grades, key=board_order))
        return ClassBoard(self._graded.rubric, now, settings.stuck_after, rows)

    def grade_document(self, now: datetime) -> dict[str, Any] | None:
        """interface.md's `auditor.grade/v1` document as of `now`, as `auditor grade --format json`."""
        grades = self.grades(now)
        if grades is None or self._graded is None:
            return None
        return grade_document(grades, self._graded.rubric, now, now)

    def latest_audits(self) -> AuditRun:
        """Every lab's latest audit, as `auditor audit --format json` writes a run (interface.md)."""
        store = self._store()
        statuses = {status.name: status for status in store.status()}
        runs = store.latest_runs()
        labs = tuple(lab_audit(run, statuses[name]) for name, run in runs.items() if name in statuses)
        started = [lab.started_at for lab in labs if lab.started_at is not None]
        finished = [lab.finished_at for lab in labs if lab.finished_at is not None]
        now = utc_now()
        return AuditRun(
            started_at=min(started, default=now), finished_at=max(finished, default=now), labs=labs
        )


def lab_audit(run: RecordedRun, status: LabStatus) -> LabAudit:
    return LabAudit(
        lab=run.lab,
        origin_account=status.origin,
        destination_account=status.destination,
        verdict=run.verdict,
        findings=run.findings,
        invoke=run.invoke,
        error=run.error,
        started_at=run.started_at,
        finished_at=run.finished_at or run.started_at,
        requests=run.requests,
    )
