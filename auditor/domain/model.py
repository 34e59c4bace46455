"""The plain values that flow between collection, comparison, storage and reports.

Nothing here talks to AWS, a clock or a database. Instants are aware UTC datetimes; they become text
only in `to_json`, as interface.md writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from auditor.common.clock import iso
from auditor.domain.steps import StepResult

if TYPE_CHECKING:
    from auditor.domain.faults import Failure


class Check:
    """Names of the checks the core itself refers to; not a closed list. Every check and every finding
    code is declared by the kinds of resource (auditor/resources/kinds/*.toml), and a code names its check
    first: `trust_policy.widened` is a finding of the `trust_policy` check."""

    RESOURCE = "resource"
    TRUST_POLICY = "trust_policy"
    INLINE_POLICY = "inline_policy"
    MANAGED_POLICIES = "managed_policies"
    PERMISSIONS_BOUNDARY = "permissions_boundary"
    LAMBDA_CONFIG = "lambda_config"
    LAMBDA_CODE = "lambda_code"
    INVOKE = "invoke"
    LOG_GROUP = "log_group"
    EVENT_RULE = "event_rule"
    CHANGE_EVENTS = "change_events"


def check_of(code: str) -> str:
    """The check a finding code belongs to: the part before its dot (`trust_policy.widened`)."""
    return code.partition(".")[0]


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


class Side(StrEnum):
    """Which of two compared policies allows a witness request."""

    ACTUAL = "actual"
    EXPECTED = "expected"


@dataclass(frozen=True)
class Witness:
    """One concrete request that one side of a policy comparison allows and the other does not."""

    allowed_by: Side
    action: str
    resource: str
    principal: str | None = None
    # The context values that matter to the difference (a key the policies test and the request lacks
    # is left out); a tuple for a multi-valued key.
    context: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> Witness | None:
        """The witness as to_json wrote it (a stored finding); None for None."""
        if document is None:
            return None
        return cls(
            allowed_by=Side(document["allowed_by"]),
            action=document["action"],
            resource=document["resource"],
            principal=document.get("principal"),
            context={
                key: tuple(value) if isinstance(value, list) else value
                for key, value in (document.get("context") or {}).items()
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed_by": self.allowed_by.value,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "context": {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in sorted(self.context.items())
            },
        }


@dataclass(frozen=True)
class Actor:
    """Who made the API call behind a change (from CloudTrail); never guessed."""

    arn: str
    type: str
    event_name: str
    event_time: datetime | None  # CloudTrail always gives it; None only where a caller has none
    event_id: str
    source_ip: str = ""
    user_agent: str = ""
    session_issuer: str = ""

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> Actor | None:
        """The actor as to_json wrote it (a stored finding); None for None."""
        if document is None:
            return None
        fields = ("arn", "type", "event_name", "event_id", "source_ip", "user_agent")
        stamp = document.get("event_time")
        return cls(
            **{name: document[name] for name in fields},
            event_time=datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None,
            session_issuer=document.get("session_issuer", ""),
        )

    def to_json(self) -> dict[str, Any]:
        document = {
            "arn": self.arn,
            "type": self.type,
            "event_name": self.event_name,
            "event_time": iso(self.event_time) if self.event_time is not None else None,
            "event_id": self.event_id,
            "source_ip": self.source_ip,
            "user_agent": self.user_agent,
        }
        if self.session_issuer:
            document["session_issuer"] = self.session_issuer
        return document


@dataclass(frozen=True)
class Subject:
    """What a finding is about, keyed as the provisioner's steps are: the kind of resource, its account,
    its owner (the role of a policy; the rule's region; the resource's own name otherwise) and its name."""

    kind: str
    account: str
    owner: str
    name: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.account, self.owner, self.name)

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> Subject | None:
        if document is None:
            return None
        return cls(document["kind"], document["account"], document["owner"], document["name"])

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "account": self.account, "owner": self.owner, "name": self.name}


@dataclass(frozen=True)
class Finding:
    """One difference between the spec and the account, as interface.md's JSON shows it.

    `code` is what it means, stable, declared with its metadata beside the kind that reports it
    (auditor/resources/kinds/<kind>.toml); `subject` is the resource it is about, by the same key as the
    provisioner's steps. None only for a finding recorded before findings had one (database revision 0007).
    """

    code: str
    subject: Subject | None
    resource: str
    status: Status
    effect: Effect
    severity: Severity
    message: str
    expected: Any = None
    actual: Any = None
    # True when this finding means the lab cannot work (missing, narrowed on the access path, failed invoke).
    breaks_lab: bool = False
    # interface.md, "A witness and an actor": on every widened, narrowed or changed policy finding.
    witness: Witness | None = None
    changed_by: Actor | None = None
    # Whether `auditor provision` fixes it (the registry has a fix for it); not part of the JSON, not stored.
    fixable: bool = field(default=False, compare=False)

    @property
    def check(self) -> str:
        return check_of(self.code)

    def to_json(self) -> dict[str, Any]:
        document = {
            "check": self.check,
            "code": self.code,
            "resource": self.resource,
            "subject": self.subject.to_json() if self.subject is not None else None,
            "status": self.status.value,
            "effect": self.effect.value,
            "severity": self.severity.value,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
        }
        if self.witness is not None:
            document["witness"] = self.witness.to_json()
        if self.changed_by is not None:
            document["changed_by"] = self.changed_by.to_json()
        return document


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NO_CHANGE = "no change"


@dataclass(frozen=True)
class Step:
    """One change the provisioner makes (or would make) to one resource, and the finding it answers."""

    kind: str  # the name of the resource kind that carries it out (auditor/resources/kinds/)
    account_id: str
    owner: str  # the role a policy step belongs to; the resource's own name otherwise
    name: str
    action: Action
    reason: str = ""
    resource: str = ""  # the resource of the finding this step answers (interface.md's `resource`)

    @property
    def changes(self) -> bool:
        return self.action is not Action.NO_CHANGE

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.account_id, self.owner, self.name)

    def describe(self) -> str:
        target = f"{self.owner}/{self.name}" if self.owner != self.name else self.name
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.action.value:<9} {self.kind:<20} {self.account_id} {target}{reason}"


@dataclass(frozen=True)
class AwsCall:
    """One AWS call a function's run made: what it asked, never with what credentials."""

    service: str  # the endpoint prefix: sts, s3, logs
    operation: str  # AssumeRole, ListBuckets
    role_arn: str | None = None  # the role an AssumeRole asked for
    error: str | None = None  # the error code of a call that failed


@dataclass(frozen=True)
class InvokeResult:
    ok: bool
    cause: str  # "ok", "function_missing", "assume_denied", "listing_denied", "wrong_account", "timeout", ...
    detail: str = ""
    duration_ms: int = 0
    answer: Any = None
    # Cause "aws_fault": the run failed for AWS's fault (throttled, 5xx, a timeout, a reset), which the
    # audit retries and, past the lab's budget, reports as the lab's `error`, never as a finding.
    fault: Failure | None = None
    retries: int = 0  # the function's own botocore retries in this run, as it reported them
    # The AWS calls the run made, in order, where the stand-in could watch them (a local run); empty
    # for a run on Lambda itself.
    calls: tuple[AwsCall, ...] = ()


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
    # None only for an audit that failed before it could note the time.
    started_at: datetime | None = None
    finished_at: datetime | None = None
    requests: int = 0
    # With [class] built_by = "students": what this audit found of each step of the rubric.
    steps: tuple[StepResult, ...] = ()

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

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
            **({"steps": [step.to_json() for step in self.steps]} if self.steps else {}),
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

    started_at: datetime
    finished_at: datetime
    labs: tuple[LabAudit, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "auditor.audit/v1",
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "labs": [lab.to_json() for lab in self.labs],
        }
