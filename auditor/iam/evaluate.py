"""IAM's policy evaluation logic on one concrete request (pure).

This is the referee: the solver's witnesses are checked against it, never trusted. It follows AWS's
documented logic: an explicit Deny in any policy wins; otherwise an identity-based policy and,
within its limits, the permissions boundary must allow; for `sts:AssumeRole` the role's trust
policy must allow too; across accounts both sides must allow, while within one account a trust
policy that names the caller itself (not its account) is enough on its own (a role ARN there still
leaves the caller's permissions boundary in force).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from auditor.iam.conditions import holds
from auditor.iam.document import ALLOW, DENY, Policy, Statement
from auditor.iam.patterns import pattern_matches
from auditor.iam.principals import (
    Principal,
    derived_context,
    entry_matches,
    is_account_entry,
    is_role_entry,
    not_principal_excludes,
)

Context = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Request:
    """One request as IAM sees it. Context keys are lower-case; every value is a tuple (a set)."""

    action: str
    resource: str
    principal: Principal | None = None
    context: Context = field(default_factory=dict)

    @property
    def effective_context(self) -> dict[str, tuple[str, ...]]:
        """The context with the keys the caller's identity sets (they win over anything given)."""
        merged = {key.lower(): value for key, value in self.context.items()}
        if self.principal is not None:
            merged.update(derived_context(self.principal))
        return merged


def request(
    action: str,
    resource: str,
    context: Mapping[str, str | Sequence[str]] | None = None,
    principal: Principal | None = None,
) -> Request:
    """A request from plain values: a context value may be one string or several."""
    values = {
        key.lower(): (value,) if isinstance(value, str) else tuple(value)
        for key, value in (context or {}).items()
    }
    return Request(action.lower(), resource, principal, values)


# -------------------------------------------------------------------------------------- statements


def action_matches(statement: Statement, action: str) -> bool:
    named = any(
        pattern_matches(p, action, arn_aware=False, variables=False, ignore_case=True)
        for p in statement.actions
    )
    return not named if statement.not_action else named


def resource_matches(statement: Statement, resource: str, context: Context, variables: bool) -> bool:
    if not statement.resources:
        return True  # a trust policy names no resource: the role it is attached to
    named = any(pattern_matches(p, resource, context, variables=variables) for p in statement.resources)
    return not named if statement.not_resource else named


def principal_entries_matching(statement: Statement, principal: Principal) -> tuple[str, ...]:
    return tuple(entry for entry in statement.principals if entry_matches(entry, principal))


def principal_matches(statement: Statement, principal: Principal | None) -> bool:
    if not statement.principals or principal is None:
        return True  # an identity-based policy, or a caller the question leaves open
    if statement.not_principal:
        return not not_principal_excludes(statement.principals, principal)
    return bool(principal_entries_matching(statement, principal))


def applies(statement: Statement, req: Request, *, variables: bool = True) -> bool:
    context = req.effective_context
    return (
        action_matches(statement, req.action)
        and resource_matches(statement, req.resource, context, variables and not statement.verbatim)
        and principal_matches(statement, req.principal)
        and all(
            holds(c, context, variables=variables and not statement.verbatim) for c in statement.conditions
        )
    )


# ---------------------------------------------------------------------------------------- policies


def statements(policies: Sequence[Policy]) -> tuple[Statement, ...]:
    return tuple(s for policy in policies for s in policy.statements)


def denies(policies: Sequence[Policy], req: Request) -> bool:
    return any(s.effect == DENY and applies(s, req) for s in statements(policies))


def allows(policies: Sequence[Policy], req: Request) -> bool:
    """One kind of policy on its own: an explicit Deny wins, else any Allow, else the implicit deny."""
    matching = [s for s in statements(policies) if applies(s, req)]
    return not any(s.effect == DENY for s in matching) and any(s.effect == ALLOW for s in matching)


@dataclass(frozen=True)
class TrustGrant:
    """How a trust policy lets the caller in: at all, by naming it (not its account), by its role ARN."""

    allows: bool
    names_caller: bool = False
    only_by_role_arn: bool = False


def trust_grant(trust: Policy, req: Request) -> TrustGrant:
    granting = [s for s in trust.statements if s.effect == ALLOW and applies(s, req)]
    if not granting or denies([trust], req):
        return TrustGrant(False)
    if req.principal is None:
        return TrustGrant(True)
    direct = [
        entry
        for s in granting
        for entry in (("*",) if s.not_principal else principal_entries_matching(s, req.principal))
        if not is_account_entry(entry)
    ]
    return TrustGrant(True, bool(direct), bool(direct) and all(is_role_entry(e) for e in direct))


def assume_role_allowed(
    req: Request,
    identity: Sequence[Policy],
    boundary: Policy | None,
    trust: Policy,
    *,
    same_account: bool,
) -> bool:
    """sts:AssumeRole by an IAM caller: its own policies and the role's trust policy together."""
    if denies([*identity, *([boundary] if boundary else []), trust], req):
        return False
    grant = trust_grant(trust, req)
    if not grant.allows:
        return False
    within_boundary = boundary is None or allows([boundary], req)
    own_policies = allows(identity, req) and within_boundary
    if not same_account or not grant.names_caller:
        return own_policies
    return own_policies or (within_boundary if grant.only_by_role_arn else True)


def identity_allowed(req: Request, identity: Sequence[Policy], boundary: Policy | None) -> bool:
    """A request with no resource-based policy: identity policies within the permissions boundary."""
    return allows(identity, req) and (boundary is None or allows([boundary], req))
