"""The plain values that flow between collection, comparison, storage and reports.

Nothing here talks to AWS, a clock or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Check(StrEnum):
    RESOURCE = "resource"
    TRUST_POLICY = "trust_policy"
    INLINE_POLICY = "inline_policy"
    MANAGED_POLICIES = "managed_policies"
    PERMISSIONS_BOUNDARY = "permissions_boundary"
    LAMBDA_CONFIG = "lambda_config"
    LAMBDA_CODE = "lambda_code"
    INVOKE = "invoke"


class Status(StrEnum):
    MISSING = "missing"
    MODIFIED = "modified"
    UNEXPECTED = "unexpected"
    FAILED = "failed"


class Effect(StrEnum):
    WIDENED = "widened"
    NARROWED = "narrowed"
    CHANGED = "changed"
    NONE = "none"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class Verdict(StrEnum):
    CONFORMANT = "conformant"
    DRIFTED = "drifted"
    BROKEN = "broken"
    ERROR = "error"


class Trigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    EVENT = "event"


@dataclass(frozen=True)
class Finding:
    """One difference between the spec and the account, as interface.md's JSON shows it."""

    check: Check
    resource: str
    status: Status
    effect: Effect
    severity: Severity
    message: str
    expected: Any = None
    actual: Any = None
    # True when this finding means the lab cannot work (missing, narrowed on the access path, failed invoke).
    breaks_lab: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check.value,
            "resource": self.resource,
            "status": self.status.value,
            "effect": self.effect.value,
            "severity": self.severity.value,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass(frozen=True)
class InvokeResult:
    ok: bool
    cause: str  # "ok", "function_missing", "assume_denied", "listing_denied", "wrong_account", "timeout", ...
    detail: str = ""
    duration_ms: int = 0
    answer: Any = None


@dataclass(frozen=True)
class LabAudit:
    """The result of auditing one lab once."""

    lab: str
    origin_account: str
    destination_account: str
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    invoke: InvokeResult | None = None
    error: str | None = None
    started_at: str = ""
    finished_at: str = ""
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "origin_account": self.origin_account,
            "destination_account": self.destination_account,
            "verdict": self.verdict.value,
            "findings": [f.to_json() for f in self.findings],
            **({"error": self.error} if self.error else {}),
            **(
                {"invoke": {"ok": self.invoke.ok, "cause": self.invoke.cause, "detail": self.invoke.detail}}
                if self.invoke
                else {}
            ),
        }


def verdict_of(findings: tuple[Finding, ...] | list[Finding]) -> Verdict:
    """interface.md: broken if the lab cannot work, drifted on any finding of severity low or above."""
    if any(f.breaks_lab for f in findings):
        return Verdict.BROKEN
    if any(f.severity.rank >= Severity.LOW.rank for f in findings):
        return Verdict.DRIFTED
    return Verdict.CONFORMANT


@dataclass(frozen=True)
class AuditRun:
    """One `auditor audit` (or daemon cycle) over several labs."""

    started_at: str
    finished_at: str
    labs: tuple[LabAudit, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "auditor.audit/v1",
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "labs": [lab.to_json() for lab in self.labs],
        }
