"""Issue 13, "The operator's day", in the pure parts: what the commands print, the roster, the grade sheet.

The same behaviours end to end, through the CLI on a moto server, are in test_operator_day.py.
"""

from __future__ import annotations

import csv
import io
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs
from test_web import lab_audit, opened_trust

from auditor.app.health import Metrics
from auditor.aws.invoke import judge_answer
from auditor.cli.main import main
from auditor.cli.render import (
    attribute_diff,
    plain_audit_lines,
    plan_lines,
    plan_summary,
    teardown_summary,
    worst_first,
)
from auditor.domain.actual import ActualLab
from auditor.domain.changes import LabChange, described_changes
from auditor.domain.config import ConfigError, LabSettings, load_config
from auditor.domain.model import (
    Action,
    AuditRun,
    Check,
    Effect,
    Finding,
    InvokeResult,
    LabAudit,
    Severity,
    Status,
    Step,
    Trigger,
    Verdict,
)
from auditor.domain.spec import render
from auditor.policy import policy_engine
from auditor.report import build_report, render_csv
from auditor.report.diff import document_diff
from auditor.report.model import RosterEntry
from auditor.resources.compare import judge_lab
from auditor.resources.registry import REGISTRY
from auditor.store import Store
from conftest import pair, subject_of_role

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::200000000002:role/LambdaS3ListBuckets"


def finding(
    severity: Severity,
    message: str,
    *,
    breaks: bool = False,
    fixable: bool = True,
    code: str = "trust_policy.narrowed",
) -> Finding:
    return Finding(
        code,
        subject_of_role(ROLE),
        ROLE,
        Status.MODIFIED,
        Effect.NARROWED,
        severity,
        message,
        breaks_lab=breaks,
        fixable=fixable,
    )


# -------------------------------------------------------------------------------- urgency (Why 3)


def test_the_worst_labs_come_first_broken_and_critical_before_the_rest() -> None:
    labs = [
        lab_audit(1, Verdict.CONFORMANT, NOW),
        lab_audit(2, Verdict.BROKEN, NOW, finding(Severity.MEDIUM, "policy deleted", breaks=True)),
        lab_audit(3, Verdict.DRIFTED, NOW, opened_trust()),
        lab_audit(4, Verdict.DRIFTED, NOW, finding(Severity.LOW, "timeout")),
        lab_audit(5, Verdict.ERROR, NOW, error="AccessDenied"),
    ]
    order = [lab.lab for lab in worst_first(labs)]
    assert order[:2] == ["pair-03", "pair-02"]  # the critical drift first, then the broken lab
    assert order[2:] == ["pair-04", "pair-05", "pair-01"]


def test_each_finding_line_names_account_and_resource_and_ends_with_its_fix() -> None:
    run = AuditRun(NOW, NOW, (lab_audit(2, Verdict.BROKEN, NOW, finding(Severity.MEDIUM, "policy deleted")),))
    lines = plain_audit_lines(run, fix=lambda lab: f"auditor provision --lab {lab}")
    assert lines[1].split() == ["lab", "origin", "destination", "verdict", "worst", "findings"]
    assert lines[2].split()[3:] == ["broken", "medium", "1"]
    line = next(line for line in lines if "policy deleted" in line)
    assert "(account 200000000002, role/LambdaS3ListBuckets)" in line
    assert line.endswith("; fix: auditor provision --lab pair-02")


def test_a_finding_no_provisioning_fixes_has_its_code_s_remediation_instead_of_a_fix_command() -> None:
    unfixable = finding(Severity.MEDIUM, "refused", fixable=False, code="inline_policy.denies_lab")
    run = AuditRun(NOW, NOW, (lab_audit(2, Verdict.BROKEN, NOW, unfixable),))
    line = next(line for line in plain_audit_lines(run, fix=lambda lab: "FIX") if "refused" in line)
    assert "FIX" not in line
    remediation = REGISTRY.catalogue.code("role", "inline_policy.denies_lab")
    assert remediation is not None and line.endswith(f"; fix: {remediation.remediation}")


def test_the_registry_knows_which_findings_the_provisioner_fixes() -> None:
    expected = render(pair(1), LabSettings())
    failed = InvokeResult(False, "function_missing", "gone")
    before = ActualLab.before_collection(expected)
    judgement = judge_lab(expected, before, "sha", NOW.date(), failed, engine=policy_engine())
    fixable = {(f.check, f.fixable) for f in judgement.findings}
    assert (Check.RESOURCE, True) in fixable and (Check.RESOURCE, False) not in fixable
    assert (Check.INVOKE, False) in fixable


def test_a_failed_run_with_no_error_code_prints_no_empty_field() -> None:
    expected = render(pair(1), LabSettings())
    raw = b'{"ok": false, "stage": "configuration", "error_code": "", "error": "DESTINATION_ROLE_ARN is not set"}'
    result = judge_answer(raw, expected, 10)
    assert result.detail == "configuration: DESTINATION_ROLE_ARN is not set"


def test_counts_are_singular_and_plural_right() -> None:
    expected = render(pair(1), LabSettings())
    marker = expected.marker_bucket.name
    raw = f'{{"destination_account": "{expected.destination_account}", "buckets": ["{marker}"]}}'.encode()
    assert "listed 1 bucket of" in judge_answer(raw, expected, 10).detail
    step = Step("role", "1", "R", "R", Action.UPDATE)
    assert described_changes([step]) == "1 change: update role R"
    assert teardown_summary([LabChange((step,))], dry_run=False) == "Teardown: 1 resource removed in 1 lab."


# ---------------------------------------------------------------------------------- plans (Why 5)


def test_a_no_op_plan_lists_no_unchanged_resource_and_ends_with_totals() -> None:
    unchanged = LabChange(tuple(Step("role", "1", f"R{i}", f"R{i}", Action.NO_CHANGE) for i in range(8)))
    lines = plan_lines("pair-01", unchanged.steps, "{changing} changed, {unchanged} unchanged")
    assert lines == ["pair-01: 0 changed, 8 unchanged"]
    assert plan_summary([unchanged] * 20, dry_run=True) == "No changes: 20 labs as the spec says."


def test_a_dry_run_summary_counts_creates_updates_and_deletes() -> None:
    change = LabChange(
        (
            Step("role", "1", "R", "R", Action.CREATE),
            Step("inline_policy", "1", "R", "P", Action.CREATE),
            Step("function", "1", "F", "F", Action.UPDATE),
            Step("log_group", "1", "L", "L", Action.NO_CHANGE),
        )
    )
    summary = plan_summary([change, LabChange(())], dry_run=True)
    assert summary == "Plan: 2 to create, 1 to update, 0 to delete (1 lab to change, 1 unchanged)."


def test_the_attribute_diff_goes_from_the_account_to_the_spec_as_written() -> None:
    actual = {"Statement": [{"Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    expected = {"Statement": [{"Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "sts:AssumeRole"}]}
    lines = attribute_diff(actual, expected)
    assert '-         "AWS": "*"' in lines
    assert '+         "AWS": "arn:aws:iam::1:root"' in lines
    assert '        "Action": "sts:AssumeRole"' in lines


def test_the_report_diff_shows_actions_as_the_policy_wrote_them() -> None:
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    diff = document_diff(
        {"Version": "2012-10-17", "Statement": [{**statement, "Principal": {"AWS": "arn:aws:iam::1:root"}}]},
        {"Version": "2012-10-17", "Statement": [{**statement, "Principal": {"AWS": "*"}}]},
    )
    assert diff is not None and diff.canonical_policy
    shown = " ".join(row.actual or "" for row in diff.rows)
    assert "sts:AssumeRole" in shown and "sts:assumerole" not in shown


# ---------------------------------------------------------------------------------- history (Why 4)


def test_durations_keep_their_fractions() -> None:
    metrics = Metrics()
    for milliseconds in (123, 180):
        audit = lab_audit(1, Verdict.CONFORMANT, NOW)
        metrics.observe_audit(
            LabAudit(**{**audit.__dict__, "finished_at": NOW + timedelta(milliseconds=milliseconds)})
        )
    exposition = metrics.exposition().decode()
    total = next(
        line for line in exposition.splitlines() if line.startswith("auditor_audit_duration_seconds_sum")
    )
    assert float(total.split()[1]) == pytest.approx(0.303)


def test_the_lab_verdict_gauge_follows_each_lab() -> None:
    metrics = Metrics()
    metrics.observe_audit(lab_audit(1, Verdict.DRIFTED, NOW, opened_trust()))
    metrics.observe_audit(lab_audit(2, Verdict.CONFORMANT, NOW))
    exposition = metrics.exposition().decode()
    assert 'auditor_lab_verdict{lab="pair-01"} 1.0' in exposition
    assert 'auditor_lab_verdict{lab="pair-02"} 0.0' in exposition


def test_a_reset_is_recorded_with_what_it_changed(tmp_path: Path) -> None:
    store = Store.from_url("sqlite://")
    store.ensure_lab("pair-01", "111111111111", "222222222222", None)
    steps = [Step("role", "2", "LambdaS3ListBuckets", "LambdaS3ListBuckets", Action.UPDATE)]
    store.record_provisioned(
        "pair-01", [], reset=True, at=NOW, expires_at=None, detail=described_changes(steps)
    )
    assert store.lifecycle("pair-01")[-1].detail == "1 change: update role LambdaS3ListBuckets"


# ------------------------------------------------------------------------------- logging (Why 5, 6)


@pytest.mark.parametrize(
    "arguments",
    [
        ["--log-level", "error", "db", "upgrade"],
        ["db", "upgrade", "--log-level", "error"],
        ["db", "upgrade", "-q"],
    ],
)
def test_logging_options_come_before_or_after_the_command(tmp_path: Path, arguments: list[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/a.db"\n[[labs]]\nname = "p"\norigin = {{ account_id = "111111111111" }}\n'
    )
    result = CliRunner().invoke(main, [*arguments, "--config", str(path)])
    assert result.exit_code == 0, result.output


def test_a_bad_log_level_is_a_usage_error_not_a_key_error() -> None:
    result = CliRunner().invoke(main, ["--log-level", "verbose", "status"])
    assert result.exit_code == 2
    assert "'verbose' is not one of" in result.output
    assert not isinstance(result.exception, KeyError)


def test_a_verdict_turn_is_a_warning_in_the_daemon(tmp_path: Path) -> None:
    from auditor.app.context import open_context
    from auditor.daemon.service import Service
    from conftest import make_config

    config = make_config((pair(1),), endpoint_url="http://127.0.0.1:1")
    with open_context(config) as context:
        daemon = Service(config, context)
        with capture_logs() as logs:
            daemon.log_transition(lab_audit(1, Verdict.CONFORMANT, NOW))
            daemon.log_transition(lab_audit(1, Verdict.CONFORMANT, NOW))
            daemon.log_transition(lab_audit(1, Verdict.DRIFTED, NOW, opened_trust()))
    turns = [
        (entry["log_level"], entry["verdict"]) for entry in logs if entry["event"] == "lab_verdict_changed"
    ]
    assert turns == [("info", "conformant"), ("warning", "drifted")]


# -------------------------------------------------------------------------------- roster (Why 7)


def write_roster(tmp_path: Path, text: str, *, bom: bool = False) -> Path:
    roster = tmp_path / "roster.csv"
    roster.write_bytes((b"\xef\xbb\xbf" if bom else b"") + textwrap.dedent(text).encode("utf-8"))
    config = tmp_path / "config.toml"
    config.write_text('[lab]\nroster = "roster.csv"\n', encoding="utf-8")
    return config


def test_a_roster_as_excel_writes_it_keeps_the_student_columns(tmp_path: Path) -> None:
    config = write_roster(
        tmp_path,
        """\
        name, origin_account_id, destination_account_id, student_name, student_email, origin_external_id, origin_role_arn, destination_profile
        pair-01, 111111111111, 222222222222, Ada Lovelace, ada@example.edu, class-2026, arn:aws:iam::111111111111:role/Admin, student-02
        """,
        bom=True,
    )
    (lab,) = load_config(config, env={}).labs
    assert lab.info == {"student_name": "Ada Lovelace", "student_email": "ada@example.edu"}
    assert (
        lab.origin.external_id == "class-2026"
        and lab.origin.role_arn == "arn:aws:iam::111111111111:role/Admin"
    )
    assert lab.destination.profile == "student-02"


def test_a_roster_error_names_the_file_its_line_and_its_column(tmp_path: Path) -> None:
    config = write_roster(
        tmp_path,
        """\
        name,origin_account_id,destination_account_id
        pair-01,111111111111,222222222222
        pair-02,333333333333,44444
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert str(caught.value) == (
        f"{tmp_path / 'roster.csv'}: line 3, column destination_account_id: '44444' is not an AWS account id"
        " (12 digits, as a string)"
    )


def test_an_account_shared_by_two_rows_is_reported_against_the_roster(tmp_path: Path) -> None:
    config = write_roster(
        tmp_path,
        """\
        name,origin_account_id,destination_account_id
        pair-01,111111111111,222222222222
        pair-02,333333333333,222222222222
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert caught.value.file == str(tmp_path / "roster.csv")
    assert caught.value.key == "line 3, column destination_account_id"
    assert "'pair-01' (line 2) and 'pair-02'" in caught.value.problem


# ---------------------------------------------------------------------------- region, --lab (Why 6)


def test_an_unknown_region_is_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[lab]\nregion = "us-eats-1"\n[[labs]]\nname = "p"\norigin = { account_id = "111111111111" }\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.key == "lab.region"
    assert "did you mean 'us-east-1'" in caught.value.problem


def test_an_unknown_lab_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[labs]]\nname = "pair-01"\norigin = { account_id = "111111111111" }\n')
    with pytest.raises(ConfigError, match="did you mean 'pair-01'"):
        load_config(path, env={}).select(("pair-1",))


# ------------------------------------------------------------------------------ grade sheet (Why 8)


def test_time_conformant_is_a_share_of_time_not_of_audits() -> None:
    start = NOW - timedelta(hours=10)
    store = Store.from_url("sqlite://")
    for number in (1, 2, 3):
        store.ensure_lab(f"pair-0{number}", f"1{number:011d}", f"2{number:011d}", None)
    store.record_audit(lab_audit(1, Verdict.CONFORMANT, start), Trigger.SCHEDULE)
    # Nine manual audits in a minute, all drifted, then fixed: one minute of ten hours.
    for i in range(9):
        at = start + timedelta(hours=9, seconds=i)
        store.record_audit(lab_audit(1, Verdict.DRIFTED, at, opened_trust()), Trigger.MANUAL)
    store.record_audit(
        lab_audit(1, Verdict.CONFORMANT, start + timedelta(hours=9, minutes=1)), Trigger.SCHEDULE
    )
    # Four hours conformant, one drifted, then torn down: the time after the teardown is not its own.
    store.record_audit(lab_audit(2, Verdict.CONFORMANT, start), Trigger.SCHEDULE)
    store.record_audit(lab_audit(2, Verdict.DRIFTED, start + timedelta(hours=4)), Trigger.SCHEDULE)
    store.record_torn_down("pair-02", start + timedelta(hours=5))
    # Five hours conformant, then audits that could not finish: that time counts neither way.
    store.record_audit(lab_audit(3, Verdict.CONFORMANT, start), Trigger.SCHEDULE)
    store.record_audit(lab_audit(3, Verdict.ERROR, start + timedelta(hours=5)), Trigger.SCHEDULE)

    shares = {lab.name: lab.conformant_time_share for lab in build_report(store, None, None, NOW).labs}

    assert shares["pair-01"] == pytest.approx(1 - 1 / 600)
    assert shares["pair-02"] == pytest.approx(4 / 5)
    assert shares["pair-03"] == pytest.approx(1.0)


def test_the_grade_sheet_has_every_lab_its_students_and_the_worst_finding(tmp_path: Path) -> None:
    from dataclasses import replace

    store = Store.from_url("sqlite://")
    store.ensure_lab("pair-01", "100000000001", "200000000001", None)
    store.record_audit(
        lab_audit(1, Verdict.DRIFTED, NOW - timedelta(hours=1), opened_trust()), Trigger.MANUAL
    )
    report = build_report(store, ["pair-01", "pair-02"], None, NOW)
    roster = {
        "pair-01": RosterEntry(
            "100000000001", "200000000001", {"student_name": "Ada", "student_email": "a@x"}
        ),
        "pair-02": RosterEntry(
            "100000000002", "200000000002", {"student_name": "Bob", "student_email": "b@x"}
        ),
    }
    rows = list(
        csv.DictReader(io.StringIO(render_csv(replace(report, roster=roster)).removeprefix("\ufeff")))
    )
    assert [(row["lab"], row["student_name"], row["student_email"]) for row in rows] == [
        ("pair-01", "Ada", "a@x"),
        ("pair-02", "Bob", "b@x"),
    ]
    assert rows[0]["worst_finding"].startswith("critical: trust policy lets any principal")
    assert rows[0]["conformant_time_share"] == "0.0000"
    assert (rows[1]["state"], rows[1]["latest_verdict"], rows[1]["origin_account"]) == (
        "planned",
        "",
        "100000000002",
    )
