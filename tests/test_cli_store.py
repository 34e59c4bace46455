"""The CLI and the history: recording, `auditor status`, `auditor db upgrade`, a database that is down."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from auditor.app.context import open_context
from auditor.store import Store
from conftest import labs_toml, make_config, pair, run_cli, write_config

pytestmark = pytest.mark.slow  # the CLI in processes of its own

DOWN = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nowhere"


def test_provision_audit_and_status_are_recorded(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1), pair(2)))
    assert run_cli("provision", "--config", str(config), "--lab", "pair-01").returncode == 0
    audit = run_cli("audit", "--config", str(config), "--no-invoke", "--format", "json")
    assert audit.returncode == 3  # pair-02 was never provisioned: broken
    status = run_cli("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    database, header, *lines = status.stdout.splitlines()
    assert database == f"database: sqlite:///{tmp_path / 'auditor.db'}"
    assert header.split()[:5] == ["LAB", "STATE", "EXPIRES", "VERDICT", "AUDITED"]
    assert re.match(r"pair-02\s+planned\s+-\s+broken", lines[0])  # worst first
    assert re.match(r"pair-01\s+active\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+conformant\s+\d{4}-", lines[1])
    store = Store.from_url(f"sqlite:///{tmp_path / 'auditor.db'}")
    try:
        events = [entry.event.value for entry in store.lifecycle("pair-01")]
        assert events == ["provisioned"]
        assert store.latest_runs(["pair-02"])["pair-02"].findings
    finally:
        store.close()


def test_a_reset_and_a_teardown_are_life_cycle_events(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1)))
    run_cli("provision", "--config", str(config))
    run_cli("provision", "--config", str(config))  # nothing to change: nothing to record
    context = open_context(make_config((pair(1),), endpoint_url=moto_server))
    context.sessions.client(pair(1).destination, "iam").delete_role_policy(
        RoleName="LambdaS3ListBuckets", PolicyName="LambdaS3ListBucketsPolicy"
    )
    run_cli("provision", "--config", str(config))  # the operator's "reset this lab"
    assert run_cli("teardown", "--yes", "--config", str(config)).returncode == 0
    store = Store.from_url(f"sqlite:///{tmp_path / 'auditor.db'}")
    try:
        events = [entry.event.value for entry in store.lifecycle("pair-01")]
        assert events == ["provisioned", "reset", "teardown_started", "torn_down"]
        assert {s.name: s.state.value for s in store.status()} == {"pair-01": "torn_down"}
    finally:
        store.close()


def test_db_upgrade_migrates_an_empty_database(tmp_path: Path) -> None:
    config = write_config(tmp_path, "embedded", labs_toml(pair(1)))
    result = run_cli("db", "upgrade", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "is at the latest migration" in result.stdout
    assert (tmp_path / "auditor.db").exists()


def test_an_audit_with_the_database_down_prints_its_result_and_exits_1(
    moto_server: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1)))
    result = run_cli(
        "audit",
        "--config",
        str(config),
        "--no-invoke",
        "--format",
        "json",
        env={"AUDITOR_DATABASE_URL": DOWN},
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["labs"][0]["lab"] == "pair-01"
    assert "could not be recorded" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_provisioning_with_the_database_down_changes_no_account(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1)))
    result = run_cli("provision", "--config", str(config), env={"AUDITOR_DATABASE_URL": DOWN})
    assert result.returncode == 1
    assert "is unavailable" in result.stderr
    planned = run_cli("provision", "--dry-run", "--config", str(config))
    assert "pair-01: 7 to change, 0 unchanged" in planned.stdout
