"""The plain values the store hands back: no sessions, no lazy loading, safe to keep after a transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from auditor.domain.model import Finding, InvokeResult, Trigger, Verdict
from auditor.domain.steps import StepResult


class LabState(StrEnum):
    PLANNED = "planned"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    EXPIRED = "expired"
    TORN_DOWN = "torn_down"
    FAILED = "failed"


class LifecycleEvent(StrEnum):
    PROVISIONED = "provisioned"
    RESET = "reset"
    PROVISION_FAILED = "provision_failed"
    EXPIRED = "expired"
    TEARDOWN_STARTED = "teardown_started"
    TORN_DOWN = "torn_down"
    TEARDOWN_FAILED = "teardown_failed"


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    STARTED = "started"


OUTCOME_OF: dict[LifecycleEvent, Outcome] = {
    LifecycleEvent.PROVISIONED: Outcome.OK,
    LifecycleEvent.RESET: Outcome.OK,
    LifecycleEvent.PROVISION_FAILED: Outcome.FAILED,
    LifecycleEvent.EXPIRED: Outcome.OK,
    LifecycleEvent.TEARDOWN_STARTED: Outcome.STARTED,
    LifecycleEvent.TORN_DOWN: Outcome.OK,
    LifecycleEvent.TEARDOWN_FAILED: Outcome.FAILED,
}


@dataclass(frozen=True)
class LabStatus:
    """One line of `auditor status`."""

    name: str
    state: LabState
    expires_at: datetime | None
    last_verdict: Verdict | None
    last_audit_at: datetime | None
    origin: str
    destination: str
    # When its latest teardown finished, for a lab torn down (its history ends there).
    torn_down_at: datetime | None = None


@dataclass(frozen=True)
class Lease:
    """Who holds a lab's lease now, what for, and since when (auditor.app.leases)."""

    lab: str
    owner: str
    purpose: str
    since: datetime
    renewed_at: datetime


class RunPoint(NamedTuple):
    """One audit run on a lab's verdict timeline (a tuple: a month of a class is 864,000 of them)."""

    run_id: int
    started_at: datetime
    verdict: Verdict
    trigger: Trigger


@dataclass(frozen=True)
class RecordedRun:
    """An audit run as recorded, with its findings (documents decoded) and its invoke result."""

    run_id: int
    lab: str
    trigger: Trigger
    started_at: datetime
    finished_at: datetime | None
    verdict: Verdict
    error: str | None
    requests: int
    findings: tuple[Finding, ...]
    invoke: InvokeResult | None


class StepsAt(NamedTuple):
    """What one recorded audit found of each step of the rubric, and when (the run's end, else its start)."""

    at: datetime
    steps: tuple[StepResult, ...]


@dataclass(frozen=True)
class LifecycleEntry:
    at: datetime
    event: LifecycleEvent
    outcome: Outcome
    detail: str


class VerdictCount(NamedTuple):
    """A lab's runs of one verdict in one time bucket (a tuple: a class's month is tens of thousands)."""

    bucket: int  # the bucket's index on the report's grid
    verdict: Verdict
    runs: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class TimeShare:
    """How long a lab stood at each verdict in a period: from each audit to the next (or the period's
    end), at that audit's verdict; and before its first audit in the period, at the last one before."""

    standing: dict[Verdict, timedelta]

    @property
    def known(self) -> timedelta:
        return sum(self.standing.values(), timedelta())

    def share(self, verdict: Verdict = Verdict.CONFORMANT) -> float | None:
        """The fraction of the known time at that verdict; None when nothing is known of the period."""
        known = self.known
        return self.standing.get(verdict, timedelta()) / known if known else None

    def without(self, verdict: Verdict) -> TimeShare:
        """The time at the other verdicts (the time under an audit that could not finish judges nothing)."""
        return TimeShare({v: t for v, t in self.standing.items() if v is not verdict})

    def less(self, verdict: Verdict, time: timedelta) -> TimeShare:
        """Without `time` counted at `verdict` (e.g. the time after a teardown, which is not the lab's)."""
        kept = max(self.standing.get(verdict, timedelta()) - time, timedelta())
        return TimeShare({**self.standing, verdict: kept})
