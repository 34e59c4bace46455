"""IAM policy documents by meaning: the face of the engine in `auditor.iam` for the rest of the program.

- `PolicyEngine`: one a command's context (`policy_engine(config.audit)`), with its answers, its
  places on the CPUs and its time limit (`auditor.iam.engine`); `for_one_lab()` gives it one lab's
  share of the limit. Every comparison and decision below is asked of it.
- `parse_policy`, `to_json`: documents as normalised values (`auditor.iam.document`); `engine.parse`
  keeps them by content.
- `compare_trust`, `compare_permissions`: the exact comparison of the sets of requests two documents
  allow (principal, action, resource, context), decided by the SMT solver, each difference with a
  witness request the concrete evaluator confirms (`auditor.iam.comparing`), worded statement by
  statement (`auditor.iam.explain`), and a severity from what the wider side newly allows. A
  `Setting` (where the documents apply: the role's account, the lab's region, names and User-Agent)
  makes the witness the lab's own (`auditor.iam.ranking`).
- `compare_narrowing`: only what the expected documents allow and what remains does not (a deleted
  inline policy, a permissions boundary).
- `engine.decide`: a request of the lab's access path (a `Hop` and its `Policies`), works, fails or
  cannot tell (`auditor.iam.deciding`).
- `is_allowed`, `permission_boundary_allows`: IAM's evaluation of one concrete request
  (`auditor.iam.evaluate`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from auditor.domain.config import AuditSettings
from auditor.domain.model import Effect, Severity, Side, Witness
from auditor.iam.catalogue import display_action, expand_action
from auditor.iam.comparing import Comparison, Difference
from auditor.iam.deciding import Decision, Hop, Policies, Shape, Verdict
from auditor.iam.document import (
    Condition,
    Policy,
    PolicyError,
    Statement,
    is_unique_id,
    parse_policy,
    to_json,
)
from auditor.iam.engine import PolicyEngine
from auditor.iam.evaluate import Request, allows, request
from auditor.iam.explain import admitted_accounts
from auditor.iam.keys import display_key
from auditor.iam.patterns import Choice, Literal, Run, Token
from auditor.iam.principals import Kind, Principal, parse_principal
from auditor.iam.ranking import NOWHERE, Setting

__all__ = [
    "NOWHERE",
    "Choice",
    "Condition",
    "Decision",
    "Hop",
    "Kind",
    "Literal",
    "Policies",
    "Policy",
    "PolicyDiff",
    "PolicyEngine",
    "PolicyError",
    "Principal",
    "Run",
    "Setting",
    "Shape",
    "Statement",
    "Token",
    "Verdict",
    "compare_narrowing",
    "compare_permissions",
    "compare_trust",
    "display_key",
    "expand_action",
    "is_allowed",
    "is_unique_id",
    "parse_policy",
    "permission_boundary_allows",
    "policy_engine",
    "severity_for",
    "to_json",
    "witness_of",
]

_MAX_DETAILS = 3
_MAX_CONTEXT_SHOWN = 3
UNDECIDED = "could not be decided in time"


@dataclass(frozen=True)
class PolicyDiff:
    """How an actual policy differs in meaning from the expected one."""

    effect: Effect
    widened: tuple[str, ...] = ()
    narrowed: tuple[str, ...] = ()
    grants_everything: bool = False
    public: bool = False
    other_accounts: tuple[str, ...] = ()
    hardening: bool = False
    recreated_principal: bool = False
    unique_ids: tuple[str, ...] = ()
    message: str = ""
    administrative: bool = False
    decided: bool = True
    # One request each side allows and the other does not (interface.md's witness).
    wider: Witness | None = None
    narrower: Witness | None = None

    @property
    def witness(self) -> Witness | None:
        """The witness a finding carries: what is newly allowed, else what is no longer allowed."""
        return self.wider or self.narrower


# ------------------------------------------------------------------------------------------- engine


def policy_engine(audit: AuditSettings | None = None) -> PolicyEngine:
    """A new engine with the [audit] settings' policy_time_limit (the configuration's default without)."""
    settings = AuditSettings() if audit is None else audit
    return PolicyEngine(settings.policy_time_limit.total_seconds())


# ----------------------------------------------------------------------------------------- comparing


def compare_permissions(
    engine: PolicyEngine,
    expected: Sequence[Policy],
    actual: Sequence[Policy],
    *,
    setting: Setting = NOWHERE,
) -> PolicyDiff:
    """Compare by meaning the union of the expected permission policies with the union of the actual ones.

    `setting`: where the documents apply (the role's account, the lab's region and names), so that a
    witness names a resource there (auditor.iam.ranking).
    """
    comparison = engine.compare(
        _statements_of(expected), _statements_of(actual), trust=False, setting=setting
    )
    widened, narrowed = _worded(comparison, trust=False)
    effect = _effect_of(comparison)
    message = _message("policy", effect, widened, narrowed, comparison.decided)
    if comparison.grants_everything:
        message = f"policy grants whole services or every action: {_details([*widened, *narrowed])}; remove that access"
    elif comparison.administrative:
        message = f"policy newly grants permissions management (who may do what): {_details(widened)}; remove that access"
    return PolicyDiff(
        effect,
        widened,
        narrowed,
        grants_everything=comparison.grants_everything,
        message=message,
        administrative=comparison.administrative,
        decided=comparison.decided,
        wider=witness_of(comparison.wider, Side.ACTUAL, trust=False),
        narrower=witness_of(comparison.narrower, Side.EXPECTED, trust=False),
    )


def compare_narrowing(
    engine: PolicyEngine,
    expected: Sequence[Policy],
    actual: Sequence[Policy],
    *,
    setting: Setting = NOWHERE,
) -> PolicyDiff:
    """Only what the expected policies allow and the actual ones do not (a deleted document against
    what remains, the spec's access against a boundary): narrowed with its witness, none, or
    undecided (changed); what the actual ones allow beyond is another finding's."""
    comparison = engine.compare(
        _statements_of(expected), _statements_of(actual), trust=False, setting=setting
    )
    lost = comparison.narrower
    if not lost.decided:
        return PolicyDiff(Effect.CHANGED, decided=False, message=UNDECIDED)
    narrower = witness_of(lost, Side.EXPECTED, trust=False)
    if narrower is None:
        return PolicyDiff(Effect.NONE)
    return PolicyDiff(
        Effect.NARROWED,
        narrowed=comparison.narrowed,
        message=describe_witness(narrower, trust=False),
        narrower=narrower,
    )


def compare_trust(
    engine: PolicyEngine,
    expected: Policy,
    actual: Policy,
    *,
    hardening_principals: Collection[str] = (),
    role_arn: str | None = None,
    setting: Setting = NOWHERE,
) -> PolicyDiff:
    """Compare two trust policies by meaning over (principal, action, context).

    `hardening_principals`: callers the lab needs (e.g. the origin role); a trust that admits fewer
    callers than the spec but still every one of these is flagged as a hardening. `role_arn`: the
    role the trust belongs to, shown as the witness's resource.
    """
    comparison = engine.compare(expected.statements, actual.statements, trust=True, setting=setting)
    widened, narrowed = _worded(comparison, trust=True)
    effect = _effect_of(comparison)
    unique_ids = tuple(p for p in actual.unique_id_principals if p not in expected.unique_id_principals)
    hardening = effect is Effect.NARROWED and _still_admits(actual, hardening_principals)
    other_accounts = (
        tuple(sorted(admitted_accounts(actual.statements) - admitted_accounts(expected.statements)))
        if comparison.wider.found
        else ()
    )
    return PolicyDiff(
        effect,
        widened,
        narrowed,
        public=comparison.public,
        other_accounts=other_accounts,
        hardening=hardening,
        recreated_principal=bool(unique_ids),
        unique_ids=unique_ids,
        message=_trust_message(effect, widened, narrowed, comparison, unique_ids, hardening),
        decided=comparison.decided,
        wider=witness_of(comparison.wider, Side.ACTUAL, trust=True, role_arn=role_arn),
        narrower=witness_of(comparison.narrower, Side.EXPECTED, trust=True, role_arn=role_arn),
    )


def _statements_of(policies: Sequence[Policy]) -> tuple[Statement, ...]:
    return tuple(sorted({s for policy in policies for s in policy.statements}))


def _effect_of(comparison: Comparison) -> Effect:
    if not comparison.decided:
        return Effect.CHANGED
    wider, narrower = comparison.wider.found, comparison.narrower.found
    if wider and narrower:
        return Effect.CHANGED
    if wider:
        return Effect.WIDENED
    return Effect.NARROWED if narrower else Effect.NONE


def _still_admits(trust: Policy, principals: Collection[str]) -> bool:
    """Whether the trust admits a session of each of these roles (or these callers) on who they are
    alone, with no other context (the lab judge then evaluates the lab's own requests)."""
    return bool(principals) and all(
        allows([trust], request("sts:AssumeRole", "*", principal=_caller(p))) for p in principals
    )


def _caller(principal: str) -> Principal:
    parsed = parse_principal(principal)
    if parsed.kind is Kind.ASSUMED_ROLE and not parsed.session:
        return Principal(parsed.kind, parsed.arn, parsed.account, parsed.partition, "lab-auditor")
    return parsed


# ------------------------------------------------------------------------------------------ witnesses


def witness_of(
    difference: Difference, side: Side, *, trust: bool, role_arn: str | None = None
) -> Witness | None:
    """interface.md's witness object for one difference (a trust's resource is its role)."""
    found = difference.witness
    if found is None:
        return None
    principal = found.principal if trust else None
    context: dict[str, str | tuple[str, ...]] = {
        display_key(key): values[0] if len(values) == 1 else values for key, values in found.context.items()
    }
    if principal is not None and principal.kind is Kind.ASSUMED_ROLE:
        context["aws:PrincipalArn"] = principal.arn
    return Witness(
        allowed_by=side,
        action=display_action(found.action),
        resource=(role_arn or "*") if trust else found.resource,
        principal=principal.display() if principal else None,
        context=context,
    )


def witness_request(witness: Witness) -> Request:
    """The concrete request a witness names, for IAM's evaluator (tests check witnesses with it)."""
    context = {
        key: (value,) if isinstance(value, str) else tuple(value) for key, value in witness.context.items()
    }
    principal = None
    if witness.principal is not None:
        role_arn = witness.context.get("aws:PrincipalArn")
        principal = parse_principal(
            witness.principal, principal_arn=role_arn if isinstance(role_arn, str) else None
        )
    return Request(
        witness.action.lower(), witness.resource, principal, {k.lower(): v for k, v in context.items()}
    )


def describe_witness(witness: Witness, *, trust: bool) -> str:
    """One line a person reads: 'admits arn:aws:iam::999999999999:root to sts:AssumeRole'."""
    gained = witness.allowed_by is Side.ACTUAL
    if trust:
        verb = "admits" if gained else "no longer admits"
        text = f"{verb} {witness.principal} to {witness.action}"
    else:
        verb = "allows" if gained else "no longer allows"
        text = f"{verb} {witness.action} on {witness.resource}"
    shown = [
        f"{key} = {value if isinstance(value, str) else ', '.join(value)}"
        for key, value in witness.context.items()
        if key != "aws:PrincipalArn"
    ][:_MAX_CONTEXT_SHOWN]
    return text + (f" (with {'; '.join(shown)})" if shown else "")


# -------------------------------------------------------------------------------------------- wording


def _worded(comparison: Comparison, *, trust: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The confirmed statement-level sentences; the witness itself where none was confirmed."""
    widened, narrowed = comparison.widened, comparison.narrowed
    wider = witness_of(comparison.wider, Side.ACTUAL, trust=trust)
    narrower = witness_of(comparison.narrower, Side.EXPECTED, trust=trust)
    if wider is not None and not widened:
        widened = (describe_witness(wider, trust=trust),)
    if narrower is not None and not narrowed:
        narrowed = (describe_witness(narrower, trust=trust),)
    return widened, narrowed


_SUMMARY = {
    Effect.WIDENED: ("grants more than expected", "remove the extra access"),
    Effect.NARROWED: ("grants less than expected", "restore the missing access"),
    Effect.CHANGED: ("differs from the expected document both ways", "restore the expected document"),
}


def _message(
    subject: str, effect: Effect, widened: Sequence[str], narrowed: Sequence[str], decided: bool
) -> str:
    if not decided:
        return f"{subject} differs from the expected document, but how {UNDECIDED}; restore the expected document"
    if effect is Effect.NONE:
        return f"{subject} means the same as the expected document"
    summary, advice = _SUMMARY[effect]
    return f"{subject} {summary}: {_details([*widened, *narrowed])}; {advice}"


def _details(sentences: Sequence[str]) -> str:
    shown = "; ".join(sentences[:_MAX_DETAILS])
    extra = len(sentences) - _MAX_DETAILS
    return f"{shown}; and {extra} more" if extra > 0 else shown


def _trust_message(
    effect: Effect,
    widened: Sequence[str],
    narrowed: Sequence[str],
    comparison: Comparison,
    unique_ids: Sequence[str],
    hardening: bool,
) -> str:
    if unique_ids:
        return (
            f"the trusted role or user was deleted (and maybe recreated): IAM shows its unique id "
            f"{', '.join(unique_ids)} instead of its ARN, and the trust no longer admits anyone through it; "
            f"put the ARN back in the trust policy"
        )
    if comparison.public:
        return f"trust policy lets any principal assume the role: {_details(widened)}; remove that access"
    if hardening:
        return f"trust policy admits fewer callers than the spec but still the lab's own: {_details(narrowed)}; a hardening, not a breakage"
    return _message("trust policy", effect, widened, narrowed, comparison.decided)


def severity_for(diff: PolicyDiff, *, is_trust: bool) -> Severity:
    """The severity of a policy difference, from what the wider side newly allows.

    Anyone or any account admitted, whole services, every action or permissions management granted:
    critical; anything else newly allowed (another account, another action, a wider resource, a
    condition removed or loosened): high; a narrowing: medium (the lab judge lowers it to low when
    the lab still works: a hardening); the same meaning: info.
    """
    if not diff.decided:
        return Severity.HIGH
    if diff.effect is Effect.NONE:
        return Severity.INFO
    if diff.effect is Effect.NARROWED:
        return Severity.LOW if diff.hardening else Severity.MEDIUM
    opens_everything = diff.public if is_trust else diff.grants_everything or diff.administrative
    return Severity.CRITICAL if opens_everything else Severity.HIGH


# ----------------------------------------------------------------------------------------- evaluating


def is_allowed(
    policies: Sequence[Policy],
    action: str,
    resource: str,
    context: Mapping[str, str | Sequence[str]] | None = None,
    principal: str | None = None,
) -> bool:
    """IAM's verdict over these policies: an explicit Deny wins, else any Allow, else the implicit deny."""
    caller = parse_principal(principal) if principal is not None else None
    return allows(policies, request(action, resource, context, caller))


def permission_boundary_allows(
    boundary: Policy | None, action: str, resource: str, context: Mapping[str, str] | None = None
) -> bool:
    """Whether a permissions boundary lets the action through; no boundary lets everything through."""
    return boundary is None or is_allowed([boundary], action, resource, context)
