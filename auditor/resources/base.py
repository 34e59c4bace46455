"""What a kind of resource declares, in the way Cloud Custodian declares its resources.

A `Kind` says, for one kind of the lab's resources: what the lab must have of it (render), what it reads
(collect), each by the resource's key, how it differs from the
spec (compare: its findings, each with a code and a subject), how it carries out a step (apply) and
removes the resource (removals, delete), and which AWS API calls each of those makes (`calls`: the data
`auditor permissions` builds its policies from). What its findings mean, and which step answers each,
is data beside its module (<module>.toml, auditor/domain/declarations.py). The registry
(auditor/resources/registry.py) finds every kind in auditor/resources/kinds/ with its data file and
derives the audit, the provisioner's plan, the teardown and the permissions from them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

from auditor.domain.actual import ActualLab
from auditor.domain.config import AccountAccess, Config, LabConfig, LabSettings, unvalidated
from auditor.domain.model import Effect, Finding, Severity, Status, Step, Subject, Witness, check_of
from auditor.domain.spec import ExpectedLab, LabShape, ResourceKey, render
from auditor.policy import Policy, PolicyEngine, PolicyError

Sleep = Callable[[float], None]
T = TypeVar("T")
R = TypeVar("R")

# ----------------------------------------------------------------------------------------- API calls


class Part(StrEnum):
    """The part of the program that makes a call."""

    PROVISION = "provision"
    AUDIT = "audit"
    TEARDOWN = "teardown"
    INVOKE = "invoke"  # the audit's run of the lab's function
    EVENTS = "events"  # the daemon's change events: EventBridge rules in the labs, the operator's SQS queue
    DOCTOR = "doctor"  # `auditor doctor`'s check of the daemon's role: IAM's policy simulator on it


class Caller(StrEnum):
    """Whose credentials make the call."""

    LAB_ACCOUNT = "lab account"  # the role assumed in a lab account (or a profile of that account)
    OPERATOR = "operator"  # the operator's own credentials


class Coverage(StrEnum):
    """Where the permissions test sees the call made."""

    MOTO = "moto"  # tests/test_permissions.py runs it on moto: it must be called there
    REAL_AWS = "real AWS"  # only on real AWS (moto cannot run a function here, and has no policy simulator)
    EMULATOR = "emulator"  # only against an emulator endpoint: left out of the real-AWS policies
    DAEMON = "daemon"  # only the daemon's listener makes it
    STUDENTS = "students"  # only when students build the lab (tests/test_steps.py sees it made)


@dataclass(frozen=True)
class Scope:
    """Resources (and a condition) that one policy statement grants its actions on."""

    sid: str
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Grant:
    action: str
    scope: Scope


@dataclass(frozen=True)
class ApiCall:
    """One AWS API operation the code calls, and what it takes to be allowed to."""

    operation: str  # "service:OperationName" as botocore names it, e.g. "s3:HeadBucket"
    grants: tuple[Grant, ...]
    parts: frozenset[Part]
    used_by: str
    caller: Caller = Caller.LAB_ACCOUNT
    coverage: Coverage = Coverage.MOTO

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(grant.action for grant in self.grants)


def call(
    operation: str,
    scope: Scope,
    *parts: Part,
    used_by: str,
    also: Iterable[Grant] = (),
    action: str | None = None,
    caller: Caller = Caller.LAB_ACCOUNT,
    coverage: Coverage = Coverage.MOTO,
) -> ApiCall:
    """A call whose IAM action is named like the operation (unless `action` says otherwise)."""
    service, _, name = operation.partition(":")
    grant = Grant(action or f"{service}:{name}", scope)
    return ApiCall(operation, (grant, *also), frozenset(parts), used_by, caller, coverage)


# Every kind's collection runs for the audit, for the provisioner's plan and for the teardown's.
READ = (Part.PROVISION, Part.AUDIT, Part.TEARDOWN)

# The kinds of resource the project owns when students build the lab (`[class] built_by = "students"`):
# the only ones it then creates, changes or deletes (provisioner/scope.py; `auditor permissions`).
PROJECT_PARTS: tuple[str, ...] = ("marker_bucket", "event_role", "event_rule")

# None: every kind of the registry.
Kinds = Collection[str] | None


def provisioned_kinds(config: Config) -> Kinds:
    """The kinds `auditor provision` (and the daemon) may create, change or delete: what the plan
    changes, and what an audit's finding may offer provisioning as the fix of."""
    return PROJECT_PARTS if config.classroom.students_build else None


# The lab spec rendered for any account and any region: its names, with "*" where a lab's own values go,
# so that the policies name exactly what the spec names.
_ANY_ACCOUNT = unvalidated(AccountAccess, account_id="*")
ANY_LAB = render(LabConfig("any", _ANY_ACCOUNT, _ANY_ACCOUNT), unvalidated(LabSettings, region="*"))
# These actions take no resource narrower than "*".
UNSCOPED = Scope("NoResourceLevelPermissions", ("*",))


# --------------------------------------------------------------------------------------------- kinds


class Clients(Protocol):
    """The clients of one lab's accounts (auditor.app.target.LabClients)."""

    def client(self, account_id: str, service: str, region: str | None = None) -> Any:
        """A client of the account's `service`, in `region` (the configured region when None)."""

    def each(self, job: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`job` of every item, in order; independent reads, so their requests may be made at once."""


@dataclass(frozen=True)
class Facts:
    """What a comparison needs besides the two states: the packaged code's digest, today, and the
    policy engine for this lab's judgement (its context's, with the lab's share of its time limit).

    `code_sha256` is None when the function is a student's own (`[class] built_by = "students"`): it is
    judged by what its run does, not against the project's code, handler, variables or sizes.

    `log_group_expected`: whether the function's log group should exist by now. The provisioner makes it
    with the lab; when students build, Lambda makes it on the function's first run, so before an audit
    has once found it, its absence says nothing (lab.md: "created by Lambda on first run if absent")."""

    code_sha256: str | None
    today: date
    engine: PolicyEngine
    log_group_expected: bool = True


class Kind:
    """One kind of resource of the lab. Subclasses override what applies to them."""

    name: ClassVar[str]  # as the plan and the teardown name it ("role", "inline_policy", ...)
    # Order of collection and of the provisioner's steps: (stage, order within the stage's owner).
    apply_rank: ClassVar[tuple[int, int]]
    # Order of the teardown's steps.
    removal_rank: ClassVar[tuple[int, int]]
    calls: ClassVar[tuple[ApiCall, ...]] = ()
    # The kinds whose collected state this kind's `collect` reads: it runs after them; the kinds that
    # read only the spec are collected at once.
    collects_after: ClassVar[tuple[str, ...]] = ()

    def render(self, shape: LabShape) -> Mapping[ResourceKey, Any]:
        """This kind's expected resources of a lab, by key (pure: everything it needs is in the shape)."""
        return {}

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        """What this kind reads of the lab, by key; `actual` holds what the kinds it `collects_after` read."""
        return {}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        return []

    def subject(self, account_id: str, owner: str, name: str) -> Subject:
        """What a finding of this kind is about: the key of the step that would answer it."""
        return Subject(self.name, account_id, owner, name)

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        """The resources of this kind the provisioner manages in the lab, each as a `no change` step."""
        return []

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        raise NotImplementedError(f"{self.name} has no {step.action.value}")

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        """What the teardown removes of this kind: only what the spec names and exists."""
        return []

    def delete(self, step: Step, clients: Clients) -> None:
        raise NotImplementedError(f"{self.name} deletes nothing")

    def owner_rank(self, step: Step, expected: ExpectedLab, *, removal: bool) -> int:
        """Among the steps of one stage, whose come first (see role_rank)."""
        return 0


def role_rank(step: Step, expected: ExpectedLab, *, removal: bool) -> int:
    """Built destination role first, the origin role that depends on it next; torn down the other way."""
    roles = expected.roles[::-1] if removal else expected.roles
    for rank, role in enumerate(roles):
        if (role.account_id, role.name) == (step.account_id, step.owner):
            return rank
    return len(roles)


# ------------------------------------------------------------------------------------------ findings


def finding(
    code: str,
    subject: Subject,
    resource: str,
    status: Status,
    effect: Effect,
    severity: Severity,
    message: str,
    expected: Any = None,
    actual: Any = None,
    breaks_lab: bool = False,
    witness: Witness | None = None,
) -> Finding:
    """A finding of a code its subject's kind declares (auditor/resources/kinds/<kind>.toml)."""
    return Finding(
        code, subject, resource, status, effect, severity, message, expected, actual, breaks_lab, witness
    )


def parse_or_none(engine: PolicyEngine, document: Any) -> Policy | None:
    try:
        return engine.parse(document)
    except PolicyError:
        return None


def unreadable(code: str, subject: Subject, resource: str, document: Any, expected: Any) -> Finding:
    return finding(
        code,
        subject,
        resource,
        Status.MODIFIED,
        Effect.CHANGED,
        Severity.HIGH,
        f"{check_of(code).replace('_', ' ')} cannot be read as an IAM policy",
        expected,
        str(document)[:2000],
    )


def missing(subject: Subject, resource: str, what: str) -> Finding:
    return finding(
        "resource.missing",
        subject,
        resource,
        Status.MISSING,
        Effect.NARROWED,
        Severity.MEDIUM,
        f"{what} is missing",
        breaks_lab=True,
    )
