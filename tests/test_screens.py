"""Issue 25, "The instructor's screens": what the tool shows. Worst first on every screen, the student's
name beside the lab, a deleted log group shown, no newline inside a command, a sheet Excel reads, and
labs whose emulator has stopped shown as such (notifications: test_notify.py; the reports and the live
page's order and names: test_report.py and test_web.py)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import test_students_mode as students_mode
from click.testing import CliRunner

import auditor.app.emulated as emulated
from auditor.app.context import open_context
from auditor.app.emulated import EmulatorState, daemon_answers
from auditor.app.recording import log_groups_seen
from auditor.app.status import EMULATOR_STOPPED, status_rows
from auditor.aws.emulator import LastingEmulator
from auditor.cli.demo import story_console
from auditor.cli.main import main
from auditor.cli.render import _print_rich, plain_audit_lines
from auditor.daemon.service import Service
from auditor.domain.actual import ActualLab, ActualLogGroup
from auditor.domain.config import ClassSettings, DatabaseSettings, LabSettings
from auditor.domain.model import (
    AuditRun,
    Effect,
    Finding,
    InvokeResult,
    LabAudit,
    Severity,
    Status,
    Subject,
    Trigger,
    Verdict,
)
from auditor.domain.spec import render
from auditor.policy import policy_engine
from auditor.report import build_report, render_csv, render_html, render_markdown
from auditor.resources.compare import judge_lab
from auditor.resources.kinds.log_group import compare_log_group, log_group_seen
from auditor.store import LabStatus, Store, upgrade
from auditor.store.records import LabState
from conftest import lab_as_built, make_config, pair, write_config

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EXPECTED = render(pair(7), LabSettings())
WORKS = InvokeResult(True, "ok", "listed 3 buckets of 200000000007, marker included")


def recorded(name: str, state: LabState, verdict: Verdict | None) -> LabStatus:
    number = int(name[-2:])
    return LabStatus(
        name,
        state,
        NOW + timedelta(hours=4),
        verdict,
        NOW - timedelta(minutes=5) if verdict else None,
        f"1{number:011d}",
        f"2{number:011d}",
    )


# ----------------------------------------------------------------------------------- status, worst first


def test_status_lists_the_labs_worst_first_and_the_torn_down_last() -> None:
    labs = tuple(pair(number) for number in range(1, 7))
    rows = status_rows(
        labs,
        [
            recorded("pair-01", LabState.ACTIVE, Verdict.CONFORMANT),
            recorded("pair-02", LabState.TORN_DOWN, Verdict.BROKEN),
            recorded("pair-03", LabState.ACTIVE, Verdict.DRIFTED),
            recorded("pair-04", LabState.ACTIVE, Verdict.ERROR),
            recorded("pair-05", LabState.ACTIVE, Verdict.BROKEN),
            recorded("pair-06", LabState.ACTIVE, Verdict.DRIFTED),
        ],
        NOW,
        worst={"pair-03": Severity.LOW, "pair-06": Severity.CRITICAL, "pair-05": Severity.HIGH},
    )
    # critical and broken first (the more severe first), drifted, error, conformant, then the torn down
    assert [row.name for row in rows] == ["pair-06", "pair-05", "pair-03", "pair-04", "pair-01", "pair-02"]


def test_a_lab_never_audited_comes_after_error_and_before_conformant() -> None:
    rows = status_rows(
        (pair(1), pair(2), pair(3)),
        [
            recorded("pair-01", LabState.ACTIVE, Verdict.CONFORMANT),
            recorded("pair-03", LabState.ACTIVE, None),
        ],
        NOW,
    )
    assert [(row.name, row.state) for row in rows] == [
        ("pair-02", "planned"),
        ("pair-03", "active"),
        ("pair-01", "active"),
    ]


# ----------------------------------------------------------------------------- the emulator that stopped


def test_with_the_emulator_stopped_the_labs_that_stood_in_it_say_so() -> None:
    rows = status_rows(
        (pair(1), pair(2), pair(3)),
        [
            recorded("pair-01", LabState.ACTIVE, Verdict.CONFORMANT),
            recorded("pair-02", LabState.TORN_DOWN, None),
        ],
        NOW,
        emulator_stopped=True,
    )
    states = {row.name: row.state for row in rows}
    assert states == {"pair-01": EMULATOR_STOPPED, "pair-02": "torn_down", "pair-03": "planned"}


def embedded_class(tmp_path: Path) -> Path:
    """A configuration on the embedded emulator with one lab recorded as built in it."""
    config = write_config(tmp_path, "embedded", labs_toml_with_student())
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    store = Store.from_url(url)
    try:
        store.ensure_lab("pair-01", "100000000001", "200000000001", datetime.now(UTC) + timedelta(hours=8))
        store.record_provisioned("pair-01", [], False, datetime.now(UTC), None)
    finally:
        store.close()
    return config


def labs_toml_with_student() -> str:
    return (
        '\n[[labs]]\nname = "pair-01"\norigin = { account_id = "100000000001" }\n'
        'destination = { account_id = "200000000001" }\n'
        'info = { student_name = "Karen Spärck Jones", student_email = "karen@example.edu" }\n'
    )


def test_status_after_the_emulator_stopped_names_it_and_how_to_start_it(tmp_path: Path) -> None:
    config = embedded_class(tmp_path)
    table = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[1] == (
        "emulator: not running: everything built in it is gone "
        f"(start it: auditor emulator start --config {config}, then auditor provision --config {config})"
    )
    row = lines[3].split()
    assert row[:2] == ["pair-01", EMULATOR_STOPPED]
    assert "Karen Spärck Jones <karen@example.edu>" in lines[3]
    document = json.loads(
        CliRunner().invoke(main, ["status", "--format", "json", "--config", str(config)]).output
    )
    assert document["emulator"] == "stopped"
    assert document["labs"][0]["state"] == EMULATOR_STOPPED
    assert document["labs"][0]["info"]["student_name"] == "Karen Spärck Jones"


def test_status_with_the_emulator_running_shows_the_recorded_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = embedded_class(tmp_path)
    running = LastingEmulator("http://127.0.0.1:5999", 4321, "2026-11-29T10:00:00Z", tmp_path / "state")
    monkeypatch.setattr(emulated, "running_emulator", lambda _state_file: running)
    table = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[1] == "emulator: running"
    assert lines[3].split()[:2] == ["pair-01", "active"]


def test_a_configuration_on_another_endpoint_has_no_emulator_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", labs_toml_with_student())
    table = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert table.exit_code == 0, table.output
    assert not [line for line in table.output.splitlines() if line.startswith("emulator")]
    document = json.loads(
        CliRunner().invoke(main, ["status", "--format", "json", "--config", str(config)]).output
    )
    assert document["emulator"] is None and document["labs"][0]["state"] == "planned"


@contextmanager
def http_server(status: int, body: bytes) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_daemon_answering_on_its_health_port_holds_the_class_in_its_own_emulator(tmp_path: Path) -> None:
    with http_server(503, b'{"healthy": false, "last_cycle": "starting"}') as port:
        assert daemon_answers("0.0.0.0", port)
        config = embedded_class(tmp_path)
        config.write_text(config.read_text().replace("health_port = 0", f"health_port = {port}"))
        table = CliRunner().invoke(main, ["status", "--config", str(config)])
        document = json.loads(
            CliRunner().invoke(main, ["status", "--format", "json", "--config", str(config)]).output
        )
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[1].startswith("emulator: the daemon's own")
    assert table.output.splitlines()[3].split()[:2] == ["pair-01", "active"]
    assert document["emulator"] == EmulatorState.DAEMON.value


def test_something_else_on_the_port_is_not_a_daemon() -> None:
    with http_server(200, b"<html>hello</html>") as port:
        assert not daemon_answers("127.0.0.1", port)
    assert not daemon_answers("127.0.0.1", 0)


# ------------------------------------------------------------------------------------------ the log group


def without_log_group() -> ActualLab:
    built = lab_as_built(EXPECTED, "sha")
    return built.with_entries({EXPECTED.log_group.key: ActualLogGroup(EXPECTED.log_group.name, exists=False)})


def test_a_deleted_log_group_is_a_medium_finding_and_the_lab_drifted() -> None:
    judgement = judge_lab(EXPECTED, without_log_group(), "sha", NOW.date(), WORKS, engine=policy_engine())
    assert judgement.verdict is Verdict.DRIFTED
    [found] = judgement.findings
    assert (found.code, found.severity, found.breaks_lab) == ("log_group.missing", Severity.MEDIUM, False)
    assert "the function's logs with it" in found.message
    line = next(
        line
        for line in plain_audit_lines(AuditRun(NOW, NOW, (audit_of(found),)), fix=fix)
        if "log group" in line
    )
    assert line.startswith("pair-07 medium   log_group")
    assert line.endswith("; fix: auditor provision --lab pair-07")


def test_before_the_students_function_ever_ran_its_missing_log_group_changes_no_verdict() -> None:
    judgement = judge_lab(
        EXPECTED,
        without_log_group(),
        None,
        NOW.date(),
        WORKS,
        engine=policy_engine(),
        log_group_expected=False,
    )
    assert judgement.verdict is Verdict.CONFORMANT
    [found] = judgement.findings
    assert (found.code, found.severity) == ("log_group.missing", Severity.INFO)
    assert "does not exist yet" in found.message


def test_an_existing_log_group_is_no_finding_either_way() -> None:
    group = ActualLogGroup(EXPECTED.log_group.name, True, EXPECTED.log_group.retention_days)
    assert compare_log_group(EXPECTED.log_group, group, expected=False) == []
    assert compare_log_group(EXPECTED.log_group, group, expected=True) == []


def fix(lab: str) -> str:
    return f"auditor provision --lab {lab}"


def log_group_finding(severity: Severity) -> Finding:
    return Finding(
        "log_group.missing",
        Subject("log_group", EXPECTED.origin_account, EXPECTED.log_group.name, EXPECTED.log_group.name),
        EXPECTED.log_group.arn,
        Status.MISSING,
        Effect.NONE,
        severity,
        f"log group {EXPECTED.log_group.name} is gone, and the function's logs with it",
        fixable=True,
    )


def audit_of(
    *findings: Finding, verdict: Verdict = Verdict.DRIFTED, at: datetime = NOW, **fields: object
) -> LabAudit:
    return LabAudit(
        lab="pair-07",
        origin_account=EXPECTED.origin_account,
        destination_account=EXPECTED.destination_account,
        verdict=verdict,
        findings=findings,
        started_at=at,
        finished_at=at + timedelta(seconds=2),
        **fields,  # type: ignore[arg-type]
    )


def test_a_deleted_log_group_shows_in_the_markdown_and_html_reports(store: Store) -> None:
    store.ensure_lab("pair-07", EXPECTED.origin_account, EXPECTED.destination_account, None)
    store.record_audit(audit_of(log_group_finding(Severity.MEDIUM)), Trigger.SCHEDULE)
    report = build_report(store, None, None, datetime.now(UTC))
    markdown = render_markdown(report)
    assert "## pair-07 — 🟠 drifted" in markdown
    assert "- **medium** `log_group` missing: log group /aws/lambda/Lambda-Assume-Roles is gone" in markdown
    html = render_html(report)
    assert '<article class="finding medium">' in html and "the function&#39;s logs with it" in html


def test_the_log_group_is_seen_when_an_audit_that_finished_found_it_or_found_it_gone(store: Store) -> None:
    config = replace(make_config((pair(7),)), classroom=ClassSettings(built_by="students"))
    store.ensure_lab("pair-07", EXPECTED.origin_account, EXPECTED.destination_account, None)
    assert log_groups_seen(config, store, ["pair-07"]) == set()  # never audited
    store.record_audit(
        audit_of(log_group_finding(Severity.INFO), verdict=Verdict.CONFORMANT), Trigger.SCHEDULE
    )
    assert log_groups_seen(config, store, ["pair-07"]) == set()  # not there yet: the function never ran
    store.record_audit(audit_of(verdict=Verdict.CONFORMANT, at=NOW + timedelta(minutes=5)), Trigger.SCHEDULE)
    assert log_groups_seen(config, store, ["pair-07"]) == {"pair-07"}  # found
    store.record_audit(
        audit_of(verdict=Verdict.ERROR, at=NOW + timedelta(minutes=10), error="AWS throttled"),
        Trigger.SCHEDULE,
    )
    assert log_groups_seen(config, store, ["pair-07"]) == {
        "pair-07"
    }  # an audit that did not finish says nothing
    store.record_audit(
        audit_of(log_group_finding(Severity.MEDIUM), at=NOW + timedelta(minutes=15)), Trigger.SCHEDULE
    )
    assert log_groups_seen(config, store, ["pair-07"]) == {"pair-07"}  # found gone: still expected
    assert log_groups_seen(make_config((pair(7),)), store, ["pair-07"]) == {
        "pair-07"
    }  # the project builds it


def test_the_predicate_reads_only_the_not_yet_finding_as_unseen() -> None:
    assert log_group_seen([])
    assert log_group_seen([log_group_finding(Severity.MEDIUM)])
    assert not log_group_seen([log_group_finding(Severity.INFO)])


# --------------------------------------------------------------------------------------- no wrapped command


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def long_fix(lab: str) -> str:
    return f"auditor provision --config /srv/classes/2026-winter/section-b/config.toml --lab {lab}"


def test_on_a_narrow_terminal_a_finding_line_keeps_its_fix_command_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    terminal = Terminal()
    _print_rich(AuditRun(NOW, NOW, (audit_of(log_group_finding(Severity.MEDIUM)),)), terminal, long_fix)
    lines = terminal.getvalue().splitlines()
    [line] = [line for line in lines if "log group" in line]
    assert line.endswith(f"; fix: {long_fix('pair-07')}")
    assert len(line) > 60  # the terminal folds it on screen; no newline was put into it


def test_the_demo_in_a_pipe_is_not_wrapped_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    pipe = Pipe()
    text = "The report: " + "/very/long/path" * 10 + "/report.html, and the command " + long_fix("pair-01")
    story_console(pipe).print(text, highlight=False)
    assert pipe.getvalue() == text + "\n"


def test_the_demo_on_a_terminal_wraps_its_prose_to_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    terminal = Terminal()
    story_console(terminal).print("word " * 30, highlight=False)
    assert all(len(line) <= 40 for line in terminal.getvalue().splitlines())


# ------------------------------------------------------------------------------------- the CSV sheet for Excel


def test_the_report_sheet_has_a_byte_order_mark_and_keeps_a_would_be_formula_as_text(tmp_path: Path) -> None:
    labs = labs_toml_with_student() + (
        '\n[[labs]]\nname = "pair-02"\norigin = { account_id = "100000000002" }\n'
        'destination = { account_id = "200000000002" }\ninfo = { student_name = "=HYPERLINK(\\"x\\")" }\n'
    )
    config = write_config(tmp_path, "http://127.0.0.1:9", labs)
    out = tmp_path / "grades.csv"
    written = CliRunner().invoke(
        main, ["report", "--format", "csv", "--out", str(out), "--config", str(config)]
    )
    assert written.exit_code == 0, written.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "Karen Spärck Jones" in text and "'=HYPERLINK" in text
    piped = CliRunner().invoke(main, ["report", "--format", "csv", "--config", str(config)])
    assert piped.exit_code == 0 and piped.stdout_bytes == raw


def test_render_csv_starts_with_the_byte_order_mark(store: Store) -> None:
    assert render_csv(build_report(store, None, None, NOW)).startswith("\ufeff")


# ------------------------------------------------------------------- the log group when students build it


def log_group_findings(config: Path) -> tuple[str, list[tuple[str, str]]]:
    """The verdict and the log group's findings of `auditor audit --no-invoke` (recorded)."""
    result = CliRunner().invoke(main, ["audit", "--no-invoke", "--format", "json", "--config", str(config)])
    assert result.exit_code in (0, 3), result.output
    [lab] = json.loads(result.stdout)["labs"]
    found = [(f["code"], f["severity"]) for f in lab["findings"] if f["check"] == "log_group"]
    return lab["verdict"], found


@pytest.mark.usefixtures("moto_in_process")
def test_a_students_log_group_counts_once_an_audit_has_found_it(tmp_path: Path) -> None:
    config = students_mode.config_file(tmp_path)
    students_mode.build_as_a_student()
    origin = render(students_mode.LAB, LabSettings()).origin_role
    [(name, document)] = origin.inline_policies.items()
    students_mode.client(students_mode.ORIGIN, "iam").put_role_policy(  # the guide's policy, to the letter
        RoleName=origin.name, PolicyName=name, PolicyDocument=json.dumps(document)
    )
    assert CliRunner().invoke(main, ["provision", "--config", str(config)]).exit_code == 0  # the marker
    logs = students_mode.client(students_mode.ORIGIN, "logs")
    logs.put_retention_policy(logGroupName=students_mode.LOG_GROUP, retentionInDays=7)
    logs.delete_log_group(logGroupName=students_mode.LOG_GROUP)
    before_any_run = log_group_findings(config)
    assert before_any_run[1] == [("log_group.missing", "info")]  # the function never ran: not yet there
    logs.create_log_group(logGroupName=students_mode.LOG_GROUP)  # as Lambda does on the first run
    logs.put_retention_policy(logGroupName=students_mode.LOG_GROUP, retentionInDays=7)
    after_a_run = log_group_findings(config)
    assert after_a_run[1] == []
    logs.delete_log_group(logGroupName=students_mode.LOG_GROUP)  # someone hides the function's tracks
    deleted = log_group_findings(config)
    assert deleted[1] == [("log_group.missing", "medium")]
    assert (before_any_run[0], after_a_run[0], deleted[0]) == ("conformant", "conformant", "drifted")


@pytest.mark.usefixtures("moto_in_process")
def test_the_daemon_judges_a_students_log_group_by_what_its_last_audit_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    config = students_mode.students_config(database=DatabaseSettings(url=url))
    with open_context(config) as context:
        service = Service(config, context)
        assert not service.log_group_seen("pair-01")  # never audited
        service.judge_and_record("pair-01", Trigger.SCHEDULE, None, [])
        assert not service.log_group_seen("pair-01")  # nothing built: not there yet, and no finding
        students_mode.build_as_a_student()
        service.judge_and_record("pair-01", Trigger.SCHEDULE, None, [])
        assert service.log_group_seen("pair-01")
        # a daemon started afresh reads it from the database
        assert Service(config, context).log_group_seen("pair-01")
        logs = students_mode.client(students_mode.ORIGIN, "logs")
        logs.delete_log_group(logGroupName=students_mode.LOG_GROUP)
        service.judge_and_record("pair-01", Trigger.SCHEDULE, None, [])
        [latest] = service.database().latest_runs(["pair-01"]).values()
    found = [(f.code, f.severity) for f in latest.findings if f.check == "log_group"]
    assert found == [("log_group.missing", Severity.MEDIUM)]
