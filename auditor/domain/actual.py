"""The actual state of a lab, as plain values: what the resource kinds collect and compare.

Missing resources are values (`exists=False`), not errors. Nothing here talks to AWS.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, TypeVar

from auditor.domain.spec import ExpectedLab, RoleSpec

D = TypeVar("D")


@dataclass(frozen=True)
class ActualRole:
    account_id: str
    name: str
    exists: bool
    arn: str = ""
    unique_id: str = ""
    trust_policy: Any = None
    inline_policies: dict[str, Any] = field(default_factory=dict)
    # ARN -> default version document (None when it could not be read)
    managed_policies: dict[str, Any] = field(default_factory=dict)
    boundary_arn: str | None = None
    boundary_policy: Any = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def as_specified(cls, spec: RoleSpec) -> ActualRole:
        """A role exactly as the provisioner builds it."""
        return cls(
            account_id=spec.account_id,
            name=spec.name,
            exists=True,
            arn=spec.arn,
            trust_policy=copy.deepcopy(spec.trust_policy),
            inline_policies=copy.deepcopy(spec.inline_policies),
        )


@dataclass(frozen=True)
class ActualFunction:
    name: str
    exists: bool
    arn: str = ""
    role: str = ""
    runtime: str = ""
    handler: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    code_sha256: str = ""
    state: str = ""
    timeout: int = 0
    memory: int = 0
    code_location: str = ""


@dataclass(frozen=True)
class ActualBucket:
    name: str
    exists: bool


@dataclass(frozen=True)
class ActualLogGroup:
    name: str
    exists: bool
    retention_days: int | None = None


@dataclass(frozen=True)
class ActualEventRule:
    account_id: str
    region: str
    name: str
    exists: bool
    pattern: Any = None
    target_arns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActualLab:
    destination_role: ActualRole
    origin_role: ActualRole
    function: ActualFunction
    marker_bucket: ActualBucket
    log_group: ActualLogGroup | None = None  # None: not collected
    event_rules: tuple[ActualEventRule, ...] = ()
    # The state of a kind that no other part of the program reads, by the kind's name: a kind added
    # later keeps what it collects here and needs no field of its own.
    more: dict[str, Any] = field(default_factory=dict)

    @property
    def roles(self) -> tuple[ActualRole, ActualRole]:
        return (self.destination_role, self.origin_role)

    @classmethod
    def as_specified(cls, expected: ExpectedLab, code_sha256: str) -> ActualLab:
        """The lab exactly as the provisioner builds it (plain data), its code having this digest: what
        the judge sees of a conformant lab (tests and benchmarks start from it)."""
        function = expected.function
        return cls(
            destination_role=ActualRole.as_specified(expected.destination_role),
            origin_role=ActualRole.as_specified(expected.origin_role),
            function=ActualFunction(
                name=function.name,
                exists=True,
                arn=function.arn,
                role=function.role_arn,
                runtime=function.runtime,
                handler=function.handler,
                environment=dict(function.environment),
                code_sha256=code_sha256,
                state="Active",
                timeout=function.timeout_seconds,
                memory=function.memory_mb,
            ),
            marker_bucket=ActualBucket(expected.marker_bucket.name, True),
        )

    @classmethod
    def before_collection(cls, expected: ExpectedLab) -> ActualLab:
        """Where collection starts: the kinds fill in what they read, in their order."""
        return cls(
            destination_role=ActualRole(
                expected.destination_role.account_id, expected.destination_role.name, False
            ),
            origin_role=ActualRole(expected.origin_role.account_id, expected.origin_role.name, False),
            function=ActualFunction(expected.function.name, exists=False),
            marker_bucket=ActualBucket(expected.marker_bucket.name, exists=False),
        )

    def with_role(self, role: ActualRole) -> ActualLab:
        destination = self.destination_role
        if (role.account_id, role.name) == (destination.account_id, destination.name):
            return replace(self, destination_role=role)
        return replace(self, origin_role=role)

    def role_of(self, account_id: str, name: str) -> ActualRole:
        return next(role for role in self.roles if (role.account_id, role.name) == (account_id, name))


def merged(base: D, versions: Iterable[D]) -> D:
    """`base` with what each version changed in it, the later versions last: the state that the kinds
    reading from the same `base` at once would have given one after another.

    A change is a field that is no longer the same object (`replace` keeps the others); two versions
    that change one field of a dataclass, or keys of one dict, each keep their part.
    """
    result = base
    for version in versions:
        result = _with_changes(base, version, result)
    return result


def _with_changes(base: D, version: D, into: D) -> D:
    changes = {}
    for each in fields(base):  # type: ignore[arg-type]
        old, new = getattr(base, each.name), getattr(version, each.name)
        if new is old:
            continue
        current = getattr(into, each.name)
        if current is old:
            changes[each.name] = new
        elif is_dataclass(old) and type(new) is type(old) is type(current):
            changes[each.name] = _with_changes(old, new, current)
        elif isinstance(old, dict) and isinstance(new, dict) and isinstance(current, dict):
            changes[each.name] = {
                **current,
                **{key: value for key, value in new.items() if old.get(key) is not value},
            }
        else:
            changes[each.name] = new
    return replace(into, **changes) if changes else into  # type: ignore[type-var]
