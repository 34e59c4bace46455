"""`auditor provision` and `auditor teardown` through the real entry point against a moto server."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from conftest import labs_toml, pair, run_cli, solo, write_config

pytestmark = pytest.mark.slow  # the CLI in processes of its own, on a moto server


def roles_in(moto_server: str, account_id: str) -> set[str]:
    sts = boto3.client("sts", endpoint_url=moto_server, region_name="us-east-1")
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="test"
    )["Credentials"]
    iam = boto3.client(
        "iam",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return {role["RoleName"] for role in iam.list_roles()["Roles"]}


def test_a_classroom_of_20_pairs_is_provisioned_then_unchanged_then_torn_down(
    moto_server: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(*(pair(i) for i in range(1, 21)), solo(1)))
    first = run_cli("provision", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("7 changed, 0 unchanged") == 21
    second = run_cli("provision", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("0 changed, 7 unchanged") == 21
    assert roles_in(moto_server, "100000000020") == {"Lambda-Assume-Roles"}
    assert roles_in(moto_server, "300000000001") == {"Lambda-Assume-Roles", "LambdaS3ListBuckets"}
    down = run_cli("teardown", "--yes", "--config", str(config))
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("7 removed") == 21
    assert roles_in(moto_server, "100000000020") == set()
    again = run_cli("teardown", "--yes", "--config", str(config))
    assert again.returncode == 0 and again.stdout.count("0 removed") == 21


def test_dry_runs_print_the_plan_and_change_nothing(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1)))
    planned = run_cli("provision", "--dry-run", "--config", str(config))
    assert planned.returncode == 0, planned.stderr
    assert "pair-01: 7 to change, 0 unchanged" in planned.stdout
    assert "create    role" in planned.stdout
    assert roles_in(moto_server, "100000000001") == set()
    run_cli("provision", "--config", str(config))
    teardown_plan = run_cli("teardown", "--dry-run", "--config", str(config))
    assert "pair-01: 7 to remove" in teardown_plan.stdout
    assert roles_in(moto_server, "100000000001") == {"Lambda-Assume-Roles"}


def test_one_failing_lab_is_reported_and_the_others_go_on(moto_server: str, tmp_path: Path) -> None:
    # The operator's own credentials reach moto's default account, not 999999999999.
    broken = '\n[[labs]]\nname = "wrong-account"\norigin = { account_id = "999999999999" }\n'
    config = write_config(tmp_path, moto_server, labs_toml(pair(1), pair(2)) + broken)
    result = run_cli("provision", "--config", str(config))
    assert result.returncode == 1
    assert "wrong-account: FAILED: " in result.stdout
    assert "reach account 123456789012, but the configuration says 999999999999" in result.stdout
    assert "pair-01: 7 changed" in result.stdout and "pair-02: 7 changed" in result.stdout


def test_the_lab_option_limits_the_work(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1), pair(2)))
    result = run_cli("provision", "--config", str(config), "--lab", "pair-02")
    assert result.returncode == 0, result.stderr
    assert "pair-01" not in result.stdout
    assert roles_in(moto_server, "100000000001") == set()
    assert roles_in(moto_server, "100000000002") == {"Lambda-Assume-Roles"}
