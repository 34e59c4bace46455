"""`auditor doctor` end to end: the real entry point against a moto server, as an operator runs it
before class. A line a check, a line a problem with its fix, the summary; exit 0 ready, 1 problems, 2
bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.app.context import open_context
from auditor.cli.main import main
from auditor.domain.config import load_config
from auditor.domain.spec import EVENT_RULE
from auditor.resources.permissions import lab_account_policy, lab_account_trust_policy
from conftest import run_cli, write_config
from provisioner.provision import provision_targets

OPERATOR_ACCOUNT = "123456789012"  # moto's, for the fake credentials
ROLE = "LabAuditorAccess"


def side(account_id: str, external_id: str = "class-2026") -> str:
    return (
        f'{{ account_id = "{account_id}", role_arn = "arn:aws:iam::{account_id}:role/{ROLE}", '
        f'external_id = "{external_id}" }}'
    )


def class_of(*pairs: tuple[str, str, str], external_id: str = "class-2026") -> str:
    return "".join(
        f'\n[[labs]]\nname = "{name}"\norigin = {side(origin, external_id)}\n'
        f"destination = {side(destination, external_id)}\n"
        for name, origin, destination in pairs
    )


CLASS = (("pair-01", "111111111111", "222222222222"), ("pair-02", "333333333333", "444444444444"))


def roll_out(config: Path, accounts: list[str], external_id: str = "class-2026") -> None:
    """The lab-account role in each account, as the StackSet makes it."""
    with open_context(load_config(config)) as context:
        for lab in context.config.labs:
            for access in {lab.origin, lab.destination}:
                if access.account_id not in accounts:
                    continue
                iam = context.sessions.client(access, "iam")
                trust = lab_account_trust_policy(OPERATOR_ACCOUNT, external_id)
                iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
                iam.put_role_policy(
                    RoleName=ROLE, PolicyName="lab-auditor", PolicyDocument=json.dumps(lab_account_policy())
                )


def problem_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("problem: ")]


@pytest.mark.slow
def test_a_class_rolled_out_as_documented_exits_0(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, class_of(*CLASS))
    roll_out(config, ["111111111111", "222222222222", "333333333333", "444444444444"])
    result = run_cli("doctor", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("auditor doctor: 2 labs in 4 accounts on the emulator at ")
    assert any(line.strip().startswith("permissions") and "policy engine" in line for line in lines)
    assert lines[-1] == "No problems: 2 labs in 4 accounts ready for the daemon."
    assert problem_lines(result.stdout) == []


@pytest.mark.slow
def test_a_missing_role_and_a_wrong_external_id_are_a_line_each_with_its_fix(
    moto_server: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, moto_server, class_of(*CLASS))
    roll_out(config, ["111111111111", "222222222222", "333333333333"])  # 444444444444 never got it
    with open_context(load_config(config)) as context:  # pair-01's roles trust another external id
        for account in ("111111111111", "222222222222"):
            access = next(
                a
                for lab in context.config.labs
                for a in (lab.origin, lab.destination)
                if a.account_id == account
            )
            context.sessions.client(access, "iam").update_assume_role_policy(
                RoleName=ROLE, PolicyDocument=json.dumps(lab_account_trust_policy(OPERATOR_ACCOUNT, "other"))
            )
    result = run_cli("doctor", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    trust, missing = problem_lines(result.stdout)
    assert trust.startswith(
        "problem: role: account 111111111111 (pair-01 origin) and account 222222222222 (pair-01 destination): "
        f"the trust policy of role {ROLE} does not let "
    )
    assert "with the configured external id; fix: set the account's external_id" in trust
    assert missing.startswith(
        f"problem: role: account 444444444444 (pair-02 destination): role {ROLE} does not exist"
    )
    assert "; fix: roll out the lab-account role (auditor permissions --config " in missing
    assert result.stdout.splitlines()[-1] == "2 problems (2 role): fix them, then run auditor doctor again."

    as_json = CliRunner().invoke(main, ["doctor", "--config", str(config), "--format", "json"])
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    assert document["schema"] == "auditor.doctor/v1" and document["ok"] is False
    assert [p["check"] for p in document["problems"]] == ["role", "role"]
    assert document["problems"][1]["subjects"] == ["account 444444444444 (pair-02 destination)"]


@pytest.mark.slow
def test_without_credentials_on_aws_one_line_says_how_to_supply_them(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real AWS as the configuration says (endpoint_url = ""), its answers from the moto server
    (AWS_ENDPOINT_URL), and no credentials anywhere."""
    config = write_config(tmp_path, "", class_of(*CLASS))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    result = run_cli(
        "doctor",
        "--config",
        str(config),
        env={"AWS_ENDPOINT_URL": moto_server, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = problem_lines(result.stdout)
    assert line.startswith("problem: credentials: the operator: no AWS credentials found")
    assert "fix: sign in with aws sso login --profile NAME and export AWS_PROFILE=NAME" in line
    assert "4 accounts" in result.stdout.splitlines()[0] and "real AWS (us-east-1)" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_with_events_a_rule_deleted_after_provisioning_is_found(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, class_of(CLASS[0]), extra="[events]\nwait_seconds = 0\n")
    roll_out(config, ["111111111111", "222222222222"])
    with open_context(load_config(config)) as context:  # as `auditor provision` does it, in process
        outcomes = provision_targets(context, context.targets(), dry_run=False)
        assert [outcome.error for outcome in outcomes if not outcome.ok] == []
        lab = context.config.labs[0]
        for access in (lab.origin, lab.destination):  # each account logs its management events
            bucket = f"trail-{access.account_id}"
            context.sessions.client(access, "s3").create_bucket(Bucket=bucket)
            cloudtrail = context.sessions.client(access, "cloudtrail")
            cloudtrail.create_trail(Name="management", S3BucketName=bucket, IsMultiRegionTrail=True)
            cloudtrail.start_logging(Name="management")
        events = context.sessions.client(lab.destination, "events")
        targets = events.list_targets_by_rule(Rule=EVENT_RULE)["Targets"]
        events.remove_targets(Rule=EVENT_RULE, Ids=[target["Id"] for target in targets])
        events.delete_rule(Name=EVENT_RULE)
    result = run_cli("doctor", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = problem_lines(result.stdout)
    assert line.startswith(
        f"problem: events: account 222222222222 (pair-01 destination): change-event rule {EVENT_RULE} is missing"
    )
    assert line.endswith(f"; fix: auditor provision --config {config} --lab pair-01")


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "embedded", class_of(*CLASS), extra="[events]\nwait_seconds = 99\n")
    result = CliRunner().invoke(main, ["doctor", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {config}: ")
    assert isinstance(result.exception, SystemExit)  # handled: no traceback
    good = tmp_path / "good"
    good.mkdir()
    config = write_config(good, "embedded", class_of(*CLASS))
    unknown = CliRunner().invoke(main, ["doctor", "--config", str(config), "--lab", "pair-03"])
    assert unknown.exit_code == 2 and "no lab named 'pair-03'" in unknown.stderr
    assert CliRunner().invoke(main, ["doctor", "--config", str(config), "--format", "yaml"]).exit_code == 2


def test_the_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["doctor", "--help"])
    assert result.exit_code == 0 and "Example" in result.output
    assert "auditor doctor --config config.toml" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [("provision", "--dry-run"), ("provision", "--yes"), ("audit",), ("teardown", "--yes")],
    ids=["provision-dry-run", "provision", "audit", "teardown"],
)
def test_without_credentials_a_command_says_once_how_to_supply_them_and_records_nothing(
    command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real AWS (endpoint_url = ""), no credentials anywhere: one line, exit 1, no lab failed one by one,
    no database written (before: a FAILED line and a warning a lab, and an `error` run recorded each)."""
    config = write_config(tmp_path, "", class_of(*CLASS))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    result = run_cli(*command, "--config", str(config), env={"AWS_EC2_METADATA_DISABLED": "true"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: no AWS credentials found for the operator"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "aws sso login --profile NAME" in result.stderr and "auditor doctor" in result.stderr
    assert "FAILED" not in result.stdout + result.stderr
    assert not (tmp_path / "auditor.db").exists()


@pytest.mark.slow
def test_a_profile_that_is_not_there_is_said_not_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, "", class_of(*CLASS))
    result = run_cli(
        "audit",
        "--config",
        str(config),
        env={
            "AWS_PROFILE": "no-such-profile",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    assert result.returncode == 2, result.stdout + result.stderr  # bad input: the environment's
    assert result.stderr.startswith("error: environment: AWS_PROFILE: The config profile (no-such-profile)")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "auditor.db").exists()
