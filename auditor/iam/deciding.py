"""Deciding a request of the lab's access path: whether IAM allows it whatever the values the auditor
cannot know (works), for none of them (fails), or depending on them (cannot tell).

Answers are kept by content (a `Decider`, the engine's), so a class of labs with the same documents
is decided once per engine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import z3

from auditor.iam.automata import Atom, Found
from auditor.iam.budget import Budget, TimeUp
from auditor.iam.canonical import Renaming, accounts_in, renaming
from auditor.iam.catalogue import never_in_a_request_for
from auditor.iam.conditions import Family, address, epoch_seconds, number
from auditor.iam.document import Policy, Statement
from auditor.iam.evaluate import Request, allows, assume_role_allowed, identity_allowed
from auditor.iam.memo import Memo
from auditor.iam.patterns import Token, tokens
from auditor.iam.principals import TIED_KEYS, Kind, Principal, is_account_entry, is_role_entry
from auditor.iam.question import Asking, Problem, find_model, keys_and_families, texts
from auditor.iam.symbolic import RESOURCE, Encoder, TooComplex

# A value known but for some of its parts (auditor.iam.patterns' Run and Choice among the tokens).
Shape = tuple[Token, ...]


class Decision(StrEnum):
    WORKS = "works"
    FAILS = "fails"
    UNKNOWN = "cannot tell"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    unknown_keys: tuple[str, ...] = ()  # the keys whose values it depends on (UNKNOWN)
    in_time: bool = True


@dataclass(frozen=True)
class Hop:
    """One request of the lab's access path, with what the auditor knows of its context.

    `known`: keys AWS sets to these values; `partial`: keys that are present with a value matching a
    StringLike pattern, or of a shape (the User-Agent of the Lambda Python runtime, known but for its
    version numbers); every other key may be absent or hold anything. `resource_pattern`, when set,
    stands for a resource the auditor cannot name exactly (a log stream), any string matching it.
    """

    action: str
    resource: str
    principal: Principal
    known: tuple[tuple[str, tuple[str, ...]], ...] = ()
    partial: tuple[tuple[str, str | Shape], ...] = ()
    resource_pattern: str | None = None
    absent: frozenset[str] = frozenset()  # keys the request is known not to carry

    def request(self) -> Request:
        return Request(self.action.lower(), self.resource, self.principal, dict(self.known))


@dataclass(frozen=True)
class Policies:
    """The documents IAM evaluates for one hop."""

    identity: tuple[Policy, ...] = ()
    boundary: Policy | None = None
    trust: Policy | None = None
    same_account: bool = False
    # True: only the trust policy decides (a service principal such as Lambda assuming a role).
    trust_only: bool = False

    @property
    def statements(self) -> tuple[Statement, ...]:
        policies = [
            *self.identity,
            *([self.boundary] if self.boundary else []),
            *([self.trust] if self.trust else []),
        ]
        return tuple(s for p in policies for s in p.statements)


class Decider:
    """`decide`, each answer kept by content: for the class of labs (their account ids, and the role's
    id, as placeholders), and as each lab asked it (the next audit of the same lab skips the renaming)."""

    def __init__(self, class_size: int, lab_size: int) -> None:
        self._for_the_class: Memo[tuple[Hop, Policies], Verdict] = Memo(class_size)
        self._for_the_lab: Memo[tuple[Hop, Policies], Verdict] = Memo(lab_size)

    def decide(self, hop: Hop, policies: Policies, asking: Asking) -> Verdict:
        """Whether IAM allows the hop, for every value the auditor cannot know, for none, or it depends."""
        return self._for_the_lab.computed(
            (hop, policies), lambda: self._decided_for_the_class(hop, policies, asking)
        )

    def _decided_for_the_class(self, hop: Hop, policies: Policies, asking: Asking) -> tuple[Verdict, bool]:
        """Decided once for every lab that differs only in its account ids."""
        hop, policies = _canonical(hop, policies)
        verdict = self._for_the_class.computed((hop, policies), lambda: _decided(hop, policies, asking))
        return verdict, verdict.in_time


def _decided(hop: Hop, policies: Policies, asking: Asking) -> tuple[Verdict, bool]:
    """The verdict, and whether to keep it (not when the judgement's shared budget cut it)."""
    unknown = _unknown_keys(hop, policies)
    if not unknown and hop.resource_pattern is None:
        return Verdict(
            Decision.WORKS if _concretely_allowed(hop.request(), policies) else Decision.FAILS
        ), True
    with asking.budget() as budget:
        try:
            return _decide(hop, policies, unknown, budget, asking.found), True
        except (TimeUp, TooComplex):
            return Verdict(Decision.UNKNOWN, unknown, in_time=False), not budget.cut_by_share


def _canonical(hop: Hop, policies: Policies) -> tuple[Hop, Policies]:
    """The hop and its documents with the lab's account ids (and role id) as placeholders, where that
    changes no answer: a class of labs then shares one decision."""
    principal = hop.principal
    hop_texts = [
        hop.resource,
        principal.arn,
        *(v for _, vs in hop.known for v in vs),
        *(p for _, p in hop.partial if isinstance(p, str)),
    ]
    accounts = [principal.account, *accounts_in(hop_texts), *accounts_in(texts(policies.statements))]
    names = renaming(accounts, policies.statements, hop_texts)
    if names.identity:
        return hop, policies
    rename = names.to_placeholders
    known = tuple(
        (key, tuple(_without_role_id(key, rename(v), policies) for v in values)) for key, values in hop.known
    )
    renamed_hop = replace(
        hop,
        resource=rename(hop.resource),
        principal=replace(principal, arn=rename(principal.arn), account=rename(principal.account)),
        known=known,
        partial=tuple(
            (key, rename(pattern) if isinstance(pattern, str) else pattern) for key, pattern in hop.partial
        ),
        resource_pattern=None if hop.resource_pattern is None else rename(hop.resource_pattern),
    )
    return renamed_hop, _renamed_policies(policies, names)


def _without_role_id(key: str, value: str, policies: Policies) -> str:
    """aws:userid holds the role's unique id, different in every lab; unless a document names it."""
    role_id, colon, session = value.partition(":")
    if key != "aws:userid" or not colon or any(role_id in text for text in texts(policies.statements)):
        return value
    return f"AROAROLEIDPLACEHOLDER:{session}"


def _renamed_policies(policies: Policies, names: Renaming) -> Policies:
    def renamed(policy: Policy) -> Policy:
        return Policy(tuple(sorted({names.statement(s) for s in policy.statements})), policy.version)

    return replace(
        policies,
        identity=tuple(renamed(p) for p in policies.identity),
        boundary=None if policies.boundary is None else renamed(policies.boundary),
        trust=None if policies.trust is None else renamed(policies.trust),
    )


def _concretely_allowed(req: Request, policies: Policies) -> bool:
    if policies.trust_only:
        assert policies.trust is not None
        return allows([policies.trust], req)
    if policies.trust is not None:
        return assume_role_allowed(
            req, policies.identity, policies.boundary, policies.trust, same_account=policies.same_account
        )
    return identity_allowed(req, policies.identity, policies.boundary)


def _unknown_keys(hop: Hop, policies: Policies) -> tuple[str, ...]:
    """Condition keys the documents read whose values the hop does not fix."""
    fixed = {key for key, _ in hop.known} | set(TIED_KEYS) | _absent(hop, policies)
    read = keys_and_families(policies.statements)
    return tuple(sorted(key for key in read if key not in fixed))


def _absent(hop: Hop, policies: Policies) -> frozenset[str]:
    """Keys the request does not carry: those the hop knows of, and a service's own keys that a
    request for this action never has."""
    read = keys_and_families(policies.statements)
    families = tuple(key for key in hop.absent if key.endswith("/"))
    return frozenset(
        key
        for key in read
        if key in hop.absent or key.startswith(families) or never_in_a_request_for(hop.action, key)
    )


def _decide(hop: Hop, policies: Policies, unknown: tuple[str, ...], budget: Budget, found: Found) -> Verdict:
    problem = Problem(
        list(policies.statements),
        with_principal=True,
        extra_actions=(hop.action.lower(),),
        extra_atoms=_hop_atoms(hop),
        budget=budget,
        found=found,
    )
    allowed = _decision_formula(problem.encoder, policies)
    facts = [
        *_facts(problem, hop),
        *(z3.Not(problem.symbols.present(k)) for k in sorted(_absent(hop, policies))),
    ]
    budget.check()
    working = find_model(problem, [allowed, *facts], budget)
    failing = find_model(problem, [z3.Not(allowed), *facts], budget)
    if working is not None and failing is None:
        return Verdict(Decision.WORKS)
    if failing is not None and working is None:
        return Verdict(Decision.FAILS)
    if working is None or failing is None:
        return Verdict(Decision.FAILS)  # no request at all: the facts contradict each other
    return Verdict(Decision.UNKNOWN, _deciding_keys(problem, unknown, working, failing))


def _deciding_keys(
    problem: Problem, unknown: tuple[str, ...], working: z3.ModelRef, failing: z3.ModelRef
) -> tuple[str, ...]:
    """The unknown keys whose values differ between a request that gets through and one that does not."""
    request_working, request_failing = problem.request_from(working), problem.request_from(failing)
    differing = tuple(
        key for key in unknown if request_working.context.get(key) != request_failing.context.get(key)
    )
    return differing or unknown


def _decision_formula(encoder: Encoder, policies: Policies) -> z3.BoolRef:
    """IAM's decision over the hop's documents (mirrors auditor.iam.evaluate)."""
    ctx = encoder.ctx
    if policies.trust_only:
        assert policies.trust is not None
        return encoder.allows(policies.trust.statements)
    identity = [s for p in policies.identity for s in p.statements]
    boundary = policies.boundary.statements if policies.boundary else ()
    within_boundary = encoder.allows(boundary) if policies.boundary else z3.BoolVal(True, ctx)
    own = z3.And(encoder.allows(identity), within_boundary)
    if policies.trust is None:
        return own
    trust = policies.trust.statements
    denied = z3.Or(encoder.denied(identity), encoder.denied(boundary), encoder.denied(trust))
    granted = encoder.granted(trust)
    if not policies.same_account:
        return z3.And(z3.Not(denied), granted, own)
    direct_other = encoder.names_caller(trust, lambda e: not is_account_entry(e) and not is_role_entry(e))
    direct_role = encoder.names_caller(trust, is_role_entry)
    return z3.And(z3.Not(denied), granted, z3.Or(own, direct_other, z3.And(direct_role, within_boundary)))


def _facts(problem: Problem, hop: Hop) -> list[z3.BoolRef]:
    """What the auditor knows of the hop's request, as constraints on the symbols."""
    symbols = problem.symbols
    facts = [symbols.action == problem.universe.class_of(hop.action)]
    facts.append(problem.encoder.matches(symbols.resource, _hop_resource(hop).tokens))
    facts += _caller_facts(problem, hop.principal)
    for key, values in hop.known:
        facts += _known_facts(problem, key, values)
    for key, pattern in hop.partial:
        partial = _partial_atom(pattern)
        facts += [symbols.present(key), problem.encoder.matches(symbols.subject(key, 0), partial.tokens)]
    return facts


def _hop_resource(hop: Hop) -> Atom:
    if hop.resource_pattern is None:
        return Atom(tokens(hop.resource, arn_aware=True, variables=False, wildcards=False))
    return Atom(tokens(hop.resource_pattern, arn_aware=True, variables=False))


def _partial_atom(pattern: str | Shape) -> Atom:
    if isinstance(pattern, str):
        return Atom(tokens(pattern, arn_aware=False, variables=False))
    return Atom(pattern)


def _literal_atom(value: str) -> Atom:
    return Atom(tokens(value, arn_aware=False, variables=False, wildcards=False))


def _hop_atoms(hop: Hop) -> dict[str, list[Atom]]:
    """The patterns a hop adds on its string subjects (the resource, known and partial values)."""
    atoms: dict[str, list[Atom]] = {RESOURCE: [_hop_resource(hop)]}
    for key, values in hop.known:
        atoms.setdefault(key, []).extend(_literal_atom(v) for v in values)
    for key, pattern in hop.partial:
        atoms.setdefault(key, []).append(_partial_atom(pattern))
    return atoms


def _caller_facts(problem: Problem, principal: Principal) -> list[z3.BoolRef]:
    caller = problem.symbols.principal
    assert caller is not None
    text = problem.symbols.text
    facts = [caller.is_kind(principal.kind)]
    if principal.kind in (Kind.SERVICE, Kind.WEB_IDENTITY, Kind.CANONICAL_USER):
        return [*facts, caller.other == text(principal.arn)]
    if principal.kind is Kind.ANONYMOUS:
        return facts
    facts += [caller.partition == text(principal.partition), caller.account == text(principal.account)]
    resource_part = principal.arn.split(":", 5)[5]
    if principal.kind in (Kind.USER, Kind.ASSUMED_ROLE):
        path, _, name = resource_part.partition("/")[2].rpartition("/")
        facts += [caller.path == text(f"{path}/" if path else ""), caller.name == text(name)]
    if principal.kind is Kind.ASSUMED_ROLE:
        facts.append(caller.session == text(principal.session))
    if principal.kind is Kind.FEDERATED_USER:
        facts.append(caller.name == text(resource_part.removeprefix("federated-user/")))
    return facts


def _known_facts(problem: Problem, key: str, values: tuple[str, ...]) -> list[z3.BoolRef]:
    symbols = problem.symbols
    facts: list[z3.BoolRef] = [symbols.present(key)]
    slots = symbols.slots(key)
    for family in sorted(problem.families.get(key, set()) or {Family.STRING}):
        for slot in range(slots):
            there = symbols.slot_present(key, slot)
            if slot >= len(values):
                facts.append(z3.Not(there))
                continue
            facts.append(there)
            fact = _equals(problem, key, family, slot, values[slot])
            if fact is not None:
                facts.append(fact)
    return facts


def _equals(problem: Problem, key: str, family: Family, slot: int, value: str) -> z3.BoolRef | None:
    symbols = problem.symbols
    if family is Family.STRING:
        return problem.encoder.matches(symbols.subject(key, slot), _literal_atom(value).tokens)
    variable = symbols.value(key, family, slot)
    if family is Family.IP:
        parsed = address(value)
        if parsed is None:
            return None
        version6 = symbols.ip_versions[key, slot]
        return z3.And(variable == int(parsed), version6 if parsed.version == 6 else z3.Not(version6))
    read = number if family is Family.NUMERIC else epoch_seconds
    parsed_number = read(value)
    if parsed_number is None:
        return None
    return variable == z3.RealVal(repr(parsed_number), problem.ctx)
