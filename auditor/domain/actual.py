"""The actual state of a lab, as plain values by resource key: what the resource kinds collect and compare.

Missing resources are values (`exists=False`), not errors. Nothing here talks to AWS.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from auditor.domain.spec import (
    DESTINATION_ROLE,
    EVENT_ROLE_KIND,
    EVENT_RULE_KIND,
    FUNCTION_KIND,
    INLINE_POLICY_KIND,
    LOG_GROUP_KIND,
    MANAGED_POLICY_KIND,
    MARKER_BUCKET_KIND,
    ORIGIN_ROLE,
    PERMISSIONS_BOUNDARY_KIND,
    ROLE_KIND,
    ExpectedLab,
    ResourceKey,
    RoleSpec,
)


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
    # A missing role's near name in its account (auditor/domain/near_names.py), when the audit looked.
    near_name: str | None = None

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
    # A missing function's near name in its account and region, when the audit looked.
    near_name: str | None = None


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
    # Each target as (its ARN, its execution role's ARN or None), sorted.
    targets: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class ActualEventRole:
    """The change-event rules' execution role of a lab account: its trust and its inline policies."""

    account_id: str
    name: str
    exists: bool
    trust_policy: Any = None
    inline_policies: dict[str, Any] = field(default_factory=dict)


# The kinds read role by role whose entries belong to a role (their owner): put back together with it.
_ROLE_ASPECTS = (INLINE_POLICY_KIND, MANAGED_POLICY_KIND, PERMISSIONS_BOUNDARY_KIND)


@dataclass(frozen=True)
class ActualLab:
    """What was collected of a lab, by the key of each resource (its kind, account, owner and name): each
    kind of resource reads its own entries, and two collections of one lab merge as the union of theirs.

    A role's own entry is what GetRole says of it; its inline policies, managed policies and boundary are
    entries of their own (read at once by their kinds, each document under the role as its owner), which
    the role accessors put back into one `ActualRole`.
    """

    resources: Mapping[ResourceKey, Any] = field(default_factory=dict)
    # What the accessors worked out of `resources` (which a lab never changes): a judgement reads its
    # roles and kinds many times.
    _worked_out: dict[tuple[str, str], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def with_entries(self, entries: Mapping[ResourceKey, Any]) -> ActualLab:
        """This lab with these entries read (a later reading of a key replaces the earlier one)."""
        return ActualLab({**self.resources, **entries})

    def __or__(self, other: ActualLab) -> ActualLab:
        return self.with_entries(other.resources)

    def of_kind(self, kind: str) -> dict[ResourceKey, Any]:
        return dict(
            self._once(("kind", kind), lambda: {k: v for k, v in self.resources.items() if k.kind == kind})
        )

    def _once(self, key: tuple[str, str], work: Callable[[], Any]) -> Any:
        if key not in self._worked_out:
            self._worked_out[key] = work()
        return self._worked_out[key]

    # ------------------------------------------------------------------------------- the lab's own

    @property
    def roles(self) -> tuple[ActualRole, ActualRole]:
        return (self.destination_role, self.origin_role)

    @property
    def destination_role(self) -> ActualRole:
        return self._role_named(DESTINATION_ROLE)

    @property
    def origin_role(self) -> ActualRole:
        return self._role_named(ORIGIN_ROLE)

    @property
    def function(self) -> ActualFunction:
        return self._only(FUNCTION_KIND)

    @property
    def marker_bucket(self) -> ActualBucket:
        return self._only(MARKER_BUCKET_KIND)

    @property
    def log_group(self) -> ActualLogGroup | None:
        """None: not collected."""
        groups = list(self.of_kind(LOG_GROUP_KIND).values())
        return groups[0] if groups else None

    @property
    def event_rules(self) -> tuple[ActualEventRule, ...]:
        return tuple(self.of_kind(EVENT_RULE_KIND).values())

    @property
    def event_roles(self) -> tuple[ActualEventRole, ...]:
        return tuple(self.of_kind(EVENT_ROLE_KIND).values())

    def role_of(self, account_id: str, name: str) -> ActualRole:
        return self._assembled(self.resources[ResourceKey(ROLE_KIND, account_id, name, name)])

    # ------------------------------------------------------------------------------------ changing

    def with_role(self, role: ActualRole) -> ActualLab:
        """This lab with the role as given, its policies and boundary included (those read before go)."""
        owner = (role.account_id, role.name)
        kept = {
            key: value
            for key, value in self.resources.items()
            if not (key.kind in _ROLE_ASPECTS and (key.account, key.owner) == owner)
        }
        return ActualLab(kept).with_entries(role_entries(role))

    def with_function(self, function: ActualFunction) -> ActualLab:
        return self.with_entries({self._only_key(FUNCTION_KIND): function})

    def with_marker_bucket(self, bucket: ActualBucket) -> ActualLab:
        return self.with_entries({self._only_key(MARKER_BUCKET_KIND): bucket})

    # --------------------------------------------------------------------------------- as built

    @classmethod
    def as_specified(cls, expected: ExpectedLab, code_sha256: str) -> ActualLab:
        """The lab exactly as the provisioner builds it (plain data), its code having this digest: what
        the judge sees of a conformant lab (tests and benchmarks start from it)."""
        function = expected.function
        built = cls(
            {
                function.key: ActualFunction(
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
                expected.marker_bucket.key: ActualBucket(expected.marker_bucket.name, True),
            }
        )
        for spec in expected.roles:
            built = built.with_role(ActualRole.as_specified(spec))
        return built

    @classmethod
    def before_collection(cls, expected: ExpectedLab) -> ActualLab:
        """Where collection starts: the lab's roles, function and marker bucket not found yet."""
        function, bucket = expected.function, expected.marker_bucket
        return cls(
            {
                **{spec.key: ActualRole(spec.account_id, spec.name, False) for spec in expected.roles},
                function.key: ActualFunction(function.name, exists=False),
                bucket.key: ActualBucket(bucket.name, exists=False),
            }
        )

    # -------------------------------------------------------------------------------------- lookup

    def _role_named(self, name: str) -> ActualRole:
        roles = [role for role in self.of_kind(ROLE_KIND).values() if role.name == name]
        if len(roles) != 1:
            raise LookupError(f"no single role {name} was collected")
        assembled: ActualRole = self._once(("role", name), lambda: self._assembled(roles[0]))
        return assembled

    def _assembled(self, role: ActualRole) -> ActualRole:
        """The role with the entries of its aspects."""
        owner = (role.account_id, role.name)

        def documents(kind: str) -> dict[str, Any]:
            return {
                key.name: value
                for key, value in self.of_kind(kind).items()
                if (key.account, key.owner) == owner
            }

        boundary = documents(PERMISSIONS_BOUNDARY_KIND)
        return replace(
            role,
            inline_policies=documents(INLINE_POLICY_KIND),
            managed_policies=documents(MANAGED_POLICY_KIND),
            boundary_policy=boundary.get(role.boundary_arn) if role.boundary_arn else None,
        )

    def _only_key(self, kind: str) -> ResourceKey:
        keys = list(self.of_kind(kind))
        if len(keys) != 1:
            raise LookupError(f"no single {kind} was collected")
        return keys[0]

    def _only(self, kind: str) -> Any:
        return self.resources[self._only_key(kind)]


def role_entries(role: ActualRole) -> dict[ResourceKey, Any]:
    """A role as entries: its own (what GetRole says), then each inline policy, managed policy and
    boundary document under it."""
    account, name = role.account_id, role.name
    own = replace(role, inline_policies={}, managed_policies={}, boundary_policy=None)
    entries: dict[ResourceKey, Any] = {ResourceKey(ROLE_KIND, account, name, name): own}
    for policy, document in role.inline_policies.items():
        entries[ResourceKey(INLINE_POLICY_KIND, account, name, policy)] = document
    for arn, document in role.managed_policies.items():
        entries[ResourceKey(MANAGED_POLICY_KIND, account, name, arn)] = document
    if role.boundary_arn and role.boundary_policy is not None:
        entries[ResourceKey(PERMISSIONS_BOUNDARY_KIND, account, name, role.boundary_arn)] = (
            role.boundary_policy
        )
    return entries
