"""`auditor audit` end to end: a moto server, one lab per case of lab.md, the CLI's JSON output.

Every case gets its own lab (its own account pair), drifted behind the auditor's back with plain
boto3 calls, then a single `auditor audit --format json` run judges them all.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from auditor.app.context import Context, open_context
from auditor.domain.config import LabConfig
from auditor.domain.spec import (
    DESTINATION_POLICY,
    DESTINATION_ROLE,
    FUNCTION,
    ORIGIN_POLICY,
    ORIGIN_ROLE,
    render,
)
from conftest import labs_toml, make_config, pair, run_cli, write_config
from provisioner.provision import provision_targets

pytestmark = pytest.mark.slow  # the CLI in processes of its own, on a moto server

Mutation = Callable[["Lab"], None]


@dataclass
class Lab:
    context: Context
    config: LabConfig

    def iam(self, side: str) -> Any:
        return self.context.sessions.client(getattr(self.config, side), "iam")

    def client(self, side: str, service: str) -> Any:
        return self.context.sessions.client(getattr(self.config, side), service)

    @property
    def expected(self) -> Any:
        return render(self.config, self.context.config.lab)

    @property
    def origin(self) -> str:
        return self.config.origin.account_id

    @property
    def destination(self) -> str:
        return self.config.destination.account_id

    def trust(self, document: dict[str, Any]) -> None:
        self.iam("destination").update_assume_role_policy(
            RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(document)
        )

    def destination_policy(self, document: dict[str, Any], name: str = DESTINATION_POLICY) -> None:
        self.iam("destination").put_role_policy(
            RoleName=DESTINATION_ROLE, PolicyName=name, PolicyDocument=json.dumps(document)
        )

    def origin_policy(self, document: dict[str, Any] | str) -> None:
        text = document if isinstance(document, str) else json.dumps(document)
        self.iam("origin").put_role_policy(
            RoleName=ORIGIN_ROLE, PolicyName=ORIGIN_POLICY, PolicyDocument=text
        )

    def spec_origin_policy(self) -> dict[str, Any]:
        return copy.deepcopy(self.expected.origin_role.inline_policies[ORIGIN_POLICY])

    def spec_trust(self) -> dict[str, Any]:
        return copy.deepcopy(self.expected.destination_role.trust_policy)


def statement(effect: str = "Allow", **fields: Any) -> dict[str, Any]:
    return {"Effect": effect, **fields}


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# ------------------------------------------------------------------------------------- not drift


def reorder_statements(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"].reverse()
    lab.origin_policy(policy)


def change_sids(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    for number, item in enumerate(policy["Statement"]):
        item["Sid"] = f"Renamed{number}"
    del policy["Statement"][0]["Sid"]
    lab.origin_policy(policy)


def action_as_list(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    for item in policy["Statement"]:
        if isinstance(item["Action"], str):
            item["Action"] = [item["Action"]]
    lab.origin_policy(policy)


def lower_case_actions(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][0]["Action"] = "sts:assumerole"
    policy["Statement"][1]["Action"] = ["LOGS:createlogstream", "logs:putlogevents"]
    lab.origin_policy(policy)


def principal_as_account_id(lab: Lab) -> None:
    lab.trust(document(statement(Principal={"AWS": lab.origin}, Action="sts:AssumeRole")))


def empty_condition(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][2]["Condition"] = {}
    lab.origin_policy(policy)


def duplicate_statements(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    copies = copy.deepcopy(policy["Statement"])
    for item in copies:
        del item["Sid"]  # IAM refuses two statements with one Sid
    policy["Statement"] += copies
    lab.origin_policy(policy)


def whitespace_and_key_order(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    lab.origin_policy(json.dumps(policy, indent=7, sort_keys=True).replace("\n", "\n\t  "))


def trust_hardened_to_the_origin_role(lab: Lab) -> None:
    lab.trust(
        document(
            statement(
                Principal={"AWS": f"arn:aws:iam::{lab.origin}:role/{ORIGIN_ROLE}"}, Action="sts:AssumeRole"
            )
        )
    )


# ------------------------------------------------------------------------------------- widened


def trust_open_to_everyone(lab: Lab) -> None:
    lab.trust(document(statement(Principal={"AWS": "*"}, Action="sts:AssumeRole")))


def trust_another_account_too(lab: Lab) -> None:
    trust = lab.spec_trust()
    trust["Statement"][0]["Principal"]["AWS"] = [
        f"arn:aws:iam::{lab.origin}:root",
        "arn:aws:iam::999999999999:root",
    ]
    lab.trust(trust)


def s3_wildcard(lab: Lab) -> None:
    lab.destination_policy(document(statement(Action="s3:*", Resource="*")))


def every_action(lab: Lab) -> None:
    lab.destination_policy(document(statement(Action="*", Resource="*")))


def wider_resource(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][0]["Resource"] = "*"
    lab.origin_policy(policy)


def condition_removed(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    del policy["Statement"][0]["Condition"]
    lab.origin_policy(policy)


def extra_inline_policy(lab: Lab) -> None:
    lab.destination_policy(document(statement(Action="s3:GetObject", Resource="*")), name="student-extra")


def managed_policy_attached(lab: Lab) -> None:
    iam = lab.iam("destination")
    arn = iam.create_policy(
        PolicyName="StudentAdmin", PolicyDocument=json.dumps(document(statement(Action="*", Resource="*")))
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=DESTINATION_ROLE, PolicyArn=arn)


# ------------------------------------------------------------------------------------- narrowed


def logs_statement_missing(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "logsstreamevent"]
    lab.origin_policy(policy)


def inline_policy_deleted(lab: Lab) -> None:
    lab.iam("destination").delete_role_policy(RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY)


def deny_added(lab: Lab) -> None:
    lab.destination_policy(
        document(
            statement(Sid="S3ListAllMyBuckets", Action=["s3:ListAllMyBuckets"], Resource="*"),
            statement("Deny", Action="s3:List*", Resource="*"),
        )
    )


def boundary_added(lab: Lab) -> None:
    iam = lab.iam("destination")
    arn = iam.create_policy(
        PolicyName="OnlyEc2", PolicyDocument=json.dumps(document(statement(Action="ec2:*", Resource="*")))
    )["Policy"]["Arn"]
    iam.put_role_permissions_boundary(RoleName=DESTINATION_ROLE, PermissionsBoundary=arn)


def narrower_resource(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][1]["Resource"] = (
        f"arn:aws:logs:us-east-1:{lab.origin}:log-group:/aws/lambda/{FUNCTION}/2026/*"
    )
    lab.origin_policy(policy)


def resource_swapped(lab: Lab) -> None:
    policy = lab.spec_origin_policy()
    policy["Statement"][0]["Resource"] = f"arn:aws:iam::{lab.destination}:role/SomethingElse"
    lab.origin_policy(policy)


def trust_to_another_account_only(lab: Lab) -> None:
    lab.trust(
        document(statement(Principal={"AWS": "arn:aws:iam::999999999999:root"}, Action="sts:AssumeRole"))
    )


def trust_to_a_deleted_role(lab: Lab) -> None:
    lab.trust(document(statement(Principal={"AWS": "AROAQXYZEXAMPLE123456"}, Action="sts:AssumeRole")))


# ------------------------------------------------------------------------------------- function


def code_replaced(lab: Lab) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    return {'stolen': True}\n")
    lab.client("origin", "lambda").update_function_code(FunctionName=FUNCTION, ZipFile=buffer.getvalue())


def variable_points_elsewhere(lab: Lab) -> None:
    lab.client("origin", "lambda").update_function_configuration(
        FunctionName=FUNCTION,
        Environment={"Variables": {"DESTINATION_ROLE_ARN": f"arn:aws:iam::{lab.origin}:role/{ORIGIN_ROLE}"}},
    )


def function_runs_as_another_role(lab: Lab) -> None:
    iam = lab.iam("origin")
    trust = document(statement(Principal={"Service": "lambda.amazonaws.com"}, Action="sts:AssumeRole"))
    arn = iam.create_role(RoleName="OtherRole", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    lab.client("origin", "lambda").update_function_configuration(FunctionName=FUNCTION, Role=arn)


def function_deleted(lab: Lab) -> None:
    lab.client("origin", "lambda").delete_function(FunctionName=FUNCTION)


def deprecated_runtime(lab: Lab) -> None:
    lab.client("origin", "lambda").update_function_configuration(FunctionName=FUNCTION, Runtime="python3.9")


def marker_bucket_deleted(lab: Lab) -> None:
    lab.client("destination", "s3").delete_bucket(Bucket=lab.expected.marker_bucket.name)


def destination_role_deleted(lab: Lab) -> None:
    iam = lab.iam("destination")
    iam.delete_role_policy(RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY)
    iam.delete_role(RoleName=DESTINATION_ROLE)


def untouched(lab: Lab) -> None:
    pass


@dataclass(frozen=True)
class Case:
    mutate: Mutation
    verdict: str
    # (check, status, effect, severity) that must all be among the findings of severity low and above
    findings: tuple[tuple[str, str, str, str], ...] = ()
    invoke_cause: str | None = "ok"
    message_has: str = ""
    info: tuple[str, ...] = field(default=())


CASES: dict[str, Case] = {
    "untouched": Case(untouched, "conformant"),
    "statement_order": Case(reorder_statements, "conformant"),
    "sid_values": Case(change_sids, "conformant"),
    "action_string_vs_list": Case(action_as_list, "conformant"),
    "action_letter_case": Case(lower_case_actions, "conformant"),
    "principal_account_id_vs_root_arn": Case(principal_as_account_id, "conformant"),
    "empty_condition": Case(empty_condition, "conformant"),
    "duplicate_statements": Case(duplicate_statements, "conformant"),
    "whitespace_and_key_order": Case(whitespace_and_key_order, "conformant"),
    # lab.md: a hardening is narrowed with a low severity, so the lab is drifted (it still works).
    "trust_hardened_to_origin_role": Case(
        trust_hardened_to_the_origin_role,
        "drifted",
        (("trust_policy", "modified", "narrowed", "low"),),
        message_has="hardening",
    ),
    "trust_open_to_everyone": Case(
        trust_open_to_everyone,
        "drifted",
        (("trust_policy", "modified", "widened", "critical"),),
        message_has="any principal",
    ),
    "trust_another_account": Case(
        trust_another_account_too,
        "drifted",
        (("trust_policy", "modified", "widened", "high"),),
        message_has="999999999999",
    ),
    "s3_wildcard_action": Case(
        s3_wildcard, "drifted", (("inline_policy", "modified", "widened", "critical"),)
    ),
    "every_action": Case(every_action, "drifted", (("inline_policy", "modified", "widened", "critical"),)),
    "wider_resource": Case(wider_resource, "drifted", (("inline_policy", "modified", "widened", "high"),)),
    "condition_removed": Case(
        condition_removed, "drifted", (("inline_policy", "modified", "widened", "high"),)
    ),
    "extra_inline_policy": Case(
        extra_inline_policy, "drifted", (("inline_policy", "unexpected", "widened", "high"),)
    ),
    "managed_policy_attached": Case(
        managed_policy_attached, "drifted", (("managed_policies", "unexpected", "widened", "critical"),)
    ),
    # Hop 4 of lab.md's access path: IAM refuses the function's own log writes, so the lab is broken
    # (the invoke itself still lists the buckets).
    "missing_statement": Case(
        logs_statement_missing,
        "broken",
        (("inline_policy", "modified", "narrowed", "medium"),),
        message_has="can no longer write its logs",
    ),
    "inline_policy_deleted": Case(
        inline_policy_deleted,
        "broken",
        (("inline_policy", "missing", "narrowed", "medium"),),
        invoke_cause=None,
    ),
    "deny_added": Case(
        deny_added, "broken", (("inline_policy", "modified", "narrowed", "medium"),), invoke_cause=None
    ),
    "permissions_boundary": Case(
        boundary_added,
        "broken",
        (("permissions_boundary", "unexpected", "narrowed", "medium"),),
        invoke_cause=None,
    ),
    "narrower_resource": Case(
        narrower_resource,
        "broken",
        (("inline_policy", "modified", "narrowed", "medium"),),
        message_has="can no longer write its logs",
    ),
    "assume_resource_swapped": Case(
        resource_swapped, "broken", (("inline_policy", "modified", "changed", "high"),), invoke_cause=None
    ),
    "trust_changed_to_another_account": Case(
        trust_to_another_account_only,
        "broken",
        (("trust_policy", "modified", "changed", "high"),),
        invoke_cause=None,
    ),
    "trust_to_a_deleted_role": Case(
        trust_to_a_deleted_role,
        "broken",
        (("trust_policy", "modified", "narrowed", "medium"),),
        invoke_cause=None,
        message_has="deleted",
    ),
    "code_replaced": Case(
        code_replaced,
        "broken",
        (("lambda_code", "modified", "changed", "high"),),
        # The embedded emulator serves the replaced code, which runs, as it would on Lambda, and
        # answers no listing.
        invoke_cause="bad_answer",
    ),
    "variable_points_elsewhere": Case(
        variable_points_elsewhere,
        "broken",
        (("lambda_config", "modified", "changed", "high"),),
        invoke_cause="wrong_account",
    ),
    "function_runs_as_another_role": Case(
        function_runs_as_another_role,
        "broken",
        (("lambda_config", "modified", "changed", "high"),),
        invoke_cause=None,
    ),
    "function_deleted": Case(
        function_deleted,
        "broken",
        (("resource", "missing", "narrowed", "medium"),),
        invoke_cause="function_missing",
    ),
    "deprecated_runtime": Case(
        deprecated_runtime, "drifted", (("lambda_config", "modified", "none", "medium"),)
    ),
    "marker_bucket_deleted": Case(
        marker_bucket_deleted,
        "broken",
        (("resource", "missing", "narrowed", "medium"),),
        invoke_cause="marker_missing",
    ),
    "destination_role_deleted": Case(
        destination_role_deleted,
        "broken",
        (("resource", "missing", "narrowed", "medium"),),
        invoke_cause=None,
    ),
}


def lab_for(index: int) -> LabConfig:
    return pair(50 + index)


@pytest.fixture(scope="module")
def audited(moto_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Provision one lab a case, drift each, then audit them all once through the CLI."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")).close()
    labs = tuple(lab_for(i) for i in range(len(CASES)))
    context = open_context(make_config(labs, endpoint_url=moto_server_url))
    assert all(outcome.ok for outcome in provision_targets(context, context.targets(), dry_run=False))
    for lab, case in zip(labs, CASES.values(), strict=True):
        case.mutate(Lab(context, lab))
    tmp_path = tmp_path_factory.mktemp("audit")
    config = write_config(tmp_path, moto_server_url, labs_toml(*labs))
    result = run_cli("audit", "--format", "json", "--no-record", "--config", str(config))
    assert result.returncode == 3, result.stderr
    yield {"document": json.loads(result.stdout), "labs": dict(zip(CASES, labs, strict=True))}


@pytest.mark.parametrize("name", CASES)
def test_each_case_of_lab_md_gets_its_verdict_and_findings(audited: dict[str, Any], name: str) -> None:
    case = CASES[name]
    lab_name = audited["labs"][name].name
    result = next(lab for lab in audited["document"]["labs"] if lab["lab"] == lab_name)
    significant = [f for f in result["findings"] if f["severity"] != "info"]
    summary = {(f["check"], f["status"], f["effect"], f["severity"]) for f in significant}
    assert result["verdict"] == case.verdict, significant
    assert set(case.findings) <= summary, significant
    if case.verdict == "conformant":
        assert significant == []
    if case.message_has:
        assert any(case.message_has in f["message"] for f in significant), significant
    for check in case.info:
        assert any(f["check"] == check and f["severity"] == "info" for f in result["findings"])
    if case.invoke_cause is not None:
        assert result["invoke"]["cause"] == case.invoke_cause


def test_the_json_document_follows_the_interface(audited: dict[str, Any]) -> None:
    document = audited["document"]
    assert document["schema"] == "auditor.audit/v1"
    assert document["started_at"].endswith("Z") and document["finished_at"].endswith("Z")
    findings = [f for lab in document["labs"] for f in lab["findings"]]
    required = {"check", "resource", "status", "effect", "severity", "message", "expected", "actual"}
    added = {"code", "subject"}  # interface.md 0.3: a finding is data
    assert findings and all(
        required | added <= set(f) <= required | added | {"witness", "changed_by"} for f in findings
    )
    assert all(
        f["code"].startswith(f["check"] + ".") and set(f["subject"]) == {"kind", "account", "owner", "name"}
        for f in findings
    )
    policy_checks = {"trust_policy", "inline_policy", "managed_policies", "permissions_boundary"}
    differences = [
        f
        for f in findings
        if f["check"] in policy_checks
        and f["effect"] in ("widened", "narrowed", "changed")
        and "witness" in f
    ]
    assert differences
    for found in differences:
        assert set(found["witness"]) == {"allowed_by", "principal", "action", "resource", "context"}
        assert found["witness"]["allowed_by"] in ("actual", "expected")
    assert {lab["verdict"] for lab in document["labs"]} <= {"conformant", "drifted", "broken", "error"}


def test_a_conformant_class_exits_0_and_prints_a_table(moto_server: str, tmp_path: Path) -> None:
    labs = (pair(1), pair(2))
    context = open_context(make_config(labs, endpoint_url=moto_server))
    provision_targets(context, context.targets(), dry_run=False)
    config = write_config(tmp_path, moto_server, labs_toml(*labs))
    result = run_cli("audit", "--no-record", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "pair-01" in result.stdout and "conformant" in result.stdout


def test_a_lab_that_cannot_be_reached_is_an_error_and_the_others_go_on(
    moto_server: str, tmp_path: Path
) -> None:
    labs = (pair(1),)
    context = open_context(make_config(labs, endpoint_url=moto_server))
    provision_targets(context, context.targets(), dry_run=False)
    broken = '\n[[labs]]\nname = "wrong-account"\norigin = { account_id = "999999999999" }\n'
    config = write_config(tmp_path, moto_server, labs_toml(*labs) + broken)
    result = run_cli("audit", "--format", "json", "--no-record", "--config", str(config))
    assert result.returncode == 1
    verdicts = {
        lab["lab"]: (lab["verdict"], lab.get("error", "")) for lab in json.loads(result.stdout)["labs"]
    }
    assert verdicts["pair-01"][0] == "conformant"
    assert verdicts["wrong-account"][0] == "error"
    assert "999999999999" in verdicts["wrong-account"][1]


def test_no_invoke_judges_the_policies_only(moto_server: str, tmp_path: Path) -> None:
    labs = (pair(1),)
    context = open_context(make_config(labs, endpoint_url=moto_server))
    provision_targets(context, context.targets(), dry_run=False)
    config = write_config(tmp_path, moto_server, labs_toml(*labs))
    result = run_cli("audit", "--format", "json", "--no-invoke", "--no-record", "--config", str(config))
    assert result.returncode == 0
    assert "invoke" not in json.loads(result.stdout)["labs"][0]
