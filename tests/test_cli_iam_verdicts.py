"""Hardening exercises and student changes judged as IAM evaluates the lab's requests, end to end:
a moto server, one lab a case changed with plain boto3 calls, one `auditor audit --format json`.

The first five are issue 11's: a class hardening the lab must not be told it broke it, and a Deny
the lab's own requests meet must not pass for drift. Every policy finding's witness is checked with
IAM's evaluator against the documents the finding shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from test_cli_audit import Lab, Mutation, document, statement

from auditor.app.context import open_context
from auditor.domain.config import LabConfig
from auditor.domain.model import Side, Witness
from auditor.domain.spec import DESTINATION_POLICY, DESTINATION_ROLE, FUNCTION, ORIGIN_ROLE
from auditor.iam.evaluate import allows
from auditor.policy import parse_policy, witness_request
from conftest import labs_toml, make_config, pair, run_cli, write_config
from provisioner.provision import provision_targets

pytestmark = pytest.mark.slow  # the CLI in processes of its own, on a moto server

POLICY_CHECKS = {"trust_policy", "inline_policy", "managed_policies", "permissions_boundary"}


def origin_role(lab: Lab) -> str:
    return f"arn:aws:iam::{lab.origin}:role/{ORIGIN_ROLE}"


def hardened_trust(lab: Lab, condition: dict[str, Any]) -> None:
    trust = lab.spec_trust()
    trust["Statement"][0]["Condition"] = condition
    lab.trust(trust)


def origin_trust(lab: Lab, condition: dict[str, Any]) -> None:
    trust = document(
        statement(Principal={"Service": "lambda.amazonaws.com"}, Action="sts:AssumeRole", Condition=condition)
    )
    lab.iam("origin").update_assume_role_policy(RoleName=ORIGIN_ROLE, PolicyDocument=json.dumps(trust))


def listing_with(lab: Lab, *extra: dict[str, Any], resource: str = "*") -> None:
    lab.destination_policy(document(statement(Action="s3:ListAllMyBuckets", Resource=resource), *extra))


def listing_and_s3_denied_when(lab: Lab, condition: dict[str, Any]) -> None:
    listing_with(lab, statement("Deny", Action="s3:*", Resource="*", Condition=condition))


# ------------------------------------------------------------------------------- issue 11's five


def principal_arn_is_the_origin_role(lab: Lab) -> None:
    hardened_trust(lab, {"ArnEquals": {"aws:PrincipalArn": origin_role(lab)}})


def principal_account_is_the_origin(lab: Lab) -> None:
    hardened_trust(lab, {"StringEquals": {"aws:PrincipalAccount": lab.origin}})


def source_account_on_the_execution_role(lab: Lab) -> None:
    origin_trust(lab, {"StringEquals": {"aws:SourceAccount": lab.origin}})


def deny_s3_over_tls(lab: Lab) -> None:
    listing_and_s3_denied_when(lab, {"Bool": {"aws:SecureTransport": "true"}})


def trust_narrowed_to_the_origin_role(lab: Lab) -> None:
    lab.trust(document(statement(Principal={"AWS": origin_role(lab)}, Action="sts:AssumeRole")))


# ------------------------------------------------------------------------------- more exercises


def deny_plain_http(lab: Lab) -> None:
    listing_and_s3_denied_when(lab, {"Bool": {"aws:SecureTransport": "false"}})


def deny_other_accounts(lab: Lab) -> None:
    trust = lab.spec_trust()
    trust["Statement"].append(
        statement(
            "Deny",
            Principal={"AWS": "*"},
            Action="sts:AssumeRole",
            Condition={"StringNotEquals": {"aws:PrincipalAccount": lab.origin}},
        )
    )
    lab.trust(trust)


def source_ip_on_the_trust(lab: Lab) -> None:
    hardened_trust(lab, {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})


def principal_tag_on_the_assume(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][0]["Condition"]["StringEquals"] = {"aws:PrincipalTag/team": "lab"}
    lab.origin_policy(policy)


def user_agent_pinned_to_the_runtime(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][0]["Condition"] = {
        "StringLike": {"aws:UserAgent": "*exec-env/AWS_Lambda_python3.12*"}
    }
    lab.origin_policy(policy)


def list_all_my_buckets_on_arns(lab: Lab) -> None:
    listing_with(lab, resource="arn:aws:s3:::*")


def external_id_required(lab: Lab) -> None:
    hardened_trust(lab, {"StringEquals": {"sts:ExternalId": "class-secret"}})


def deny_when_the_user_agent_is_not_lambdas(lab: Lab) -> None:
    listing_and_s3_denied_when(lab, {"StringNotLike": {"aws:UserAgent": "*AWS_Lambda_python*"}})


def logs_limited_to_the_group(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][1]["Resource"] = (
        f"arn:aws:logs:us-east-1:{lab.origin}:log-group:/aws/lambda/{FUNCTION}:log-stream:*/*"
    )
    lab.origin_policy(policy)


def logs_to_any_stream_of_the_group(lab: Lab) -> None:
    """Looks like a hardening, but the spec's `...Roles*/*` needs a slash that `log-stream:*` does
    not: a stream named without one is newly allowed. IAM says changed, and so must the auditor."""
    policy = lab.spec_origin_policy()
    policy["Statement"][1]["Resource"] = (
        f"arn:aws:logs:us-east-1:{lab.origin}:log-group:/aws/lambda/{FUNCTION}:log-stream:*"
    )
    lab.origin_policy(policy)


def create_log_group_dropped(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "logsgroup"]
    lab.origin_policy(policy)


def deny_with_condition_split(lab: Lab) -> None:
    listing_with(
        lab,
        statement(
            "Deny",
            Action="s3:ListAllMyBuckets",
            Resource="*",
            Condition={"NumericLessThanEquals": {"s3:max-keys": "10"}},
        ),
        statement(
            "Deny",
            Action="s3:ListAllMyBuckets",
            Resource="*",
            Condition={"NumericGreaterThan": {"s3:max-keys": "10"}},
        ),
    )


def secure_transport_required_on_the_assume(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][0]["Condition"]["Bool"] = {"aws:SecureTransport": "true"}
    lab.origin_policy(policy)


def deny_calls_through_services(lab: Lab) -> None:
    listing_and_s3_denied_when(lab, {"Bool": {"aws:ViaAWSService": "true"}})


def deny_direct_calls(lab: Lab) -> None:
    listing_and_s3_denied_when(lab, {"Bool": {"aws:ViaAWSService": "false"}})


def listing_only_through_cloudformation(lab: Lab) -> None:
    condition = {"ForAnyValue:StringEquals": {"aws:CalledVia": "cloudformation.amazonaws.com"}}
    lab.destination_policy(
        document(statement(Action="s3:ListAllMyBuckets", Resource="*", Condition=condition))
    )


def trust_until(lab: Lab) -> None:
    hardened_trust(lab, {"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})


def trust_from(lab: Lab) -> None:
    hardened_trust(lab, {"DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})


@dataclass(frozen=True)
class Case:
    mutate: Mutation
    verdict: str
    check: str | None = None  # the finding to look at (None: no finding of severity low or above)
    effect: str | None = None
    severity: str | None = None
    message_has: str = ""


CASES: dict[str, Case] = {
    # issue 11's five
    "principal_arn_is_the_origin_role": Case(
        principal_arn_is_the_origin_role, "drifted", "trust_policy", "narrowed", "low", "hardening"
    ),
    "principal_account_is_the_origin": Case(principal_account_is_the_origin, "conformant"),
    "source_account_on_the_execution_role": Case(
        source_account_on_the_execution_role, "drifted", "trust_policy", "narrowed", "low", "hardening"
    ),
    "deny_s3_over_tls": Case(
        deny_s3_over_tls, "broken", "inline_policy", "narrowed", "medium", "list buckets"
    ),
    "trust_narrowed_to_the_origin_role": Case(
        trust_narrowed_to_the_origin_role, "drifted", "trust_policy", "narrowed", "low", "hardening"
    ),
    # more hardening exercises and student changes
    "deny_plain_http": Case(deny_plain_http, "drifted", "inline_policy", "narrowed", "low", "hardening"),
    "deny_other_accounts": Case(deny_other_accounts, "conformant"),
    # The trust is what leaves hop 2 in doubt, so the finding that says so is the trust's.
    "source_ip_on_the_trust": Case(
        source_ip_on_the_trust, "drifted", "trust_policy", "none", "medium", "aws:SourceIp"
    ),
    "principal_tag_on_the_assume": Case(
        principal_tag_on_the_assume, "drifted", "inline_policy", "none", "medium", "aws:PrincipalTag/team"
    ),
    "user_agent_pinned_to_the_runtime": Case(
        user_agent_pinned_to_the_runtime, "drifted", "inline_policy", "narrowed", "low", "hardening"
    ),
    "list_all_my_buckets_on_arns": Case(
        list_all_my_buckets_on_arns, "broken", "inline_policy", "narrowed", "medium", "list buckets"
    ),
    "external_id_required": Case(
        external_id_required, "broken", "trust_policy", "narrowed", "medium", "assume the destination role"
    ),
    "deny_when_the_user_agent_is_not_lambdas": Case(
        deny_when_the_user_agent_is_not_lambdas, "drifted", "inline_policy", "narrowed", "low", "hardening"
    ),
    "logs_limited_to_the_group": Case(
        logs_limited_to_the_group, "drifted", "inline_policy", "narrowed", "low", "hardening"
    ),
    "logs_to_any_stream_of_the_group": Case(
        logs_to_any_stream_of_the_group, "drifted", "inline_policy", "changed", "high", "log-stream"
    ),
    "create_log_group_dropped": Case(
        create_log_group_dropped, "drifted", "inline_policy", "narrowed", "low", "hardening"
    ),
    # s3:ListAllMyBuckets never carries s3:max-keys (the service's condition keys), so neither Deny
    # applies to the lab's request: a narrowing the lab gets through, a hardening.
    "deny_with_condition_split": Case(
        deny_with_condition_split, "drifted", "inline_policy", "narrowed", "low", "hardening"
    ),
    "secure_transport_required_on_the_assume": Case(
        secure_transport_required_on_the_assume, "drifted", "inline_policy", "narrowed", "low", "hardening"
    ),
    # The function calls S3 itself: aws:ViaAWSService is false and aws:CalledVia absent (IAM's global keys).
    "deny_calls_through_services": Case(
        deny_calls_through_services, "drifted", "inline_policy", "narrowed", "low", "hardening"
    ),
    "deny_direct_calls": Case(
        deny_direct_calls, "broken", "inline_policy", "narrowed", "medium", "list buckets"
    ),
    # aws:CurrentTime is the audit's moment.
    "trust_until_2099": Case(trust_until, "drifted", "trust_policy", "narrowed", "low", "hardening"),
    "trust_from_2099": Case(
        trust_from, "broken", "trust_policy", "narrowed", "medium", "assume the destination role"
    ),
    "listing_only_through_cloudformation": Case(
        listing_only_through_cloudformation, "broken", "inline_policy", "narrowed", "medium", "list buckets"
    ),
}


def lab_for(index: int) -> LabConfig:
    return pair(80 + index)


@pytest.fixture(scope="module")
def audited(moto_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Provision one lab a case, change each, then audit them all once through the CLI."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")).close()
    labs = tuple(lab_for(i) for i in range(len(CASES)))
    with open_context(make_config(labs, endpoint_url=moto_server_url)) as context:
        assert all(outcome.ok for outcome in provision_targets(context, context.targets(), dry_run=False))
        for lab, case in zip(labs, CASES.values(), strict=True):
            case.mutate(Lab(context, lab))
    config = write_config(tmp_path_factory.mktemp("iam"), moto_server_url, labs_toml(*labs))
    result = run_cli("audit", "--format", "json", "--no-record", "--no-invoke", "--config", str(config))
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    yield {
        case: next(lab for lab in document["labs"] if lab["lab"] == config_lab.name)
        for case, config_lab in zip(CASES, labs, strict=True)
    }


@pytest.mark.parametrize("name", CASES)
def test_the_verdict_is_iams(audited: dict[str, Any], name: str) -> None:
    case, result = CASES[name], audited[name]
    significant = [f for f in result["findings"] if f["severity"] != "info"]
    assert result["verdict"] == case.verdict, significant
    if case.check is None:
        assert significant == []
        return
    chosen = [
        f
        for f in significant
        if (f["check"], f["effect"], f["severity"]) == (case.check, case.effect, case.severity)
        and case.message_has in f["message"]
    ]
    assert chosen, [(f["check"], f["effect"], f["severity"], f["message"]) for f in significant]


@pytest.mark.parametrize("name", CASES)
def test_every_policy_finding_has_a_witness_iam_confirms(audited: dict[str, Any], name: str) -> None:
    for finding in audited[name]["findings"]:
        if finding["check"] not in POLICY_CHECKS or finding["effect"] == "none":
            continue
        assert "witness" in finding, finding
        witness = Witness.from_json(finding["witness"])
        assert witness is not None
        if finding["check"] in ("managed_policies", "permissions_boundary"):
            continue  # their documents are checked in tests/test_policy_pairs.py
        expected, actual = parse_policy(finding["expected"]), parse_policy(finding["actual"])
        allowing, refusing = (actual, expected) if witness.allowed_by is Side.ACTUAL else (expected, actual)
        request = witness_request(witness)
        assert allows([allowing], request), finding
        assert not allows([refusing], request), finding


def test_the_tls_deny_names_the_request_it_refuses(audited: dict[str, Any]) -> None:
    finding = next(f for f in audited["deny_s3_over_tls"]["findings"] if f["check"] == "inline_policy")
    witness = finding["witness"]
    assert (witness["allowed_by"], witness["action"], witness["resource"]) == (
        "expected",
        "s3:ListAllMyBuckets",
        "*",
    )
    assert witness["context"]["aws:SecureTransport"] == "true"


def test_a_stream_without_a_slash_is_what_the_any_stream_policy_newly_allows(audited: dict[str, Any]) -> None:
    finding = next(
        f for f in audited["logs_to_any_stream_of_the_group"]["findings"] if f["check"] == "inline_policy"
    )
    witness = finding["witness"]
    group, _, stream = witness["resource"].partition(":log-stream:")
    assert witness["allowed_by"] == "actual"
    assert witness["action"] in ("logs:CreateLogStream", "logs:PutLogEvents")
    assert group.endswith(f":log-group:/aws/lambda/{FUNCTION}")
    assert "/" not in stream


def test_an_unprovable_hop_names_the_key_it_depends_on(audited: dict[str, Any]) -> None:
    messages = [f["message"] for f in audited["source_ip_on_the_trust"]["findings"]]
    assert any("cannot prove" in m and "aws:SourceIp" in m and "aws:UserAgent" not in m for m in messages), (
        messages
    )


def test_the_destination_policy_name_is_kept(audited: dict[str, Any]) -> None:
    finding = next(
        f for f in audited["list_all_my_buckets_on_arns"]["findings"] if f["check"] == "inline_policy"
    )
    assert finding["resource"].endswith(f"{DESTINATION_ROLE}/inline-policy/{DESTINATION_POLICY}")
