"""Issue 13, "The operator's day": each rough edge an instructor hit in the first hour, as a test of the
real entry point on a moto server (or on the embedded emulator where that is the point).

The pure parts (orderings, summaries, the roster's rules, the grade sheet's share) are also tested in
test_operator_units.py.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli_provision import roles_in
from test_daemon import config_text, free_port, start_daemon, wait_for  # noqa: F401 (fixture)

from auditor.app.context import open_context
from auditor.domain.spec import DESTINATION_POLICY, DESTINATION_ROLE, FUNCTION
from auditor.store import Store
from conftest import labs_toml, make_config, pair, run_cli, write_config

pytestmark = pytest.mark.slow  # the CLI in processes of its own, on a moto server

EXTRA_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
OPEN_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}


def iam(moto: str, lab: Any, side: str = "destination") -> Any:
    context = open_context(make_config((lab,), endpoint_url=moto))
    return context.sessions.client(getattr(lab, side), "iam")


def provisioned(moto: str, tmp_path: Path, *labs: Any, extra: str = "") -> Path:
    config = write_config(tmp_path, moto, labs_toml(*labs), extra=extra)
    result = run_cli("provision", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    return config


def run_in_terminal(*args: str, answer: str | None = None, timeout: float = 180) -> tuple[int, str]:
    """The CLI with a terminal (a pty, 200 columns) for its input and output, as a person runs it;
    `answer` is typed when it asks a question."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "200"},
        close_fds=True,
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                output += chunk
                if answer is not None and b"[y/N]" in output:
                    os.write(main, answer.encode() + b"\n")
                    answer = None
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    return code, output.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------ safety


def test_teardown_without_a_terminal_or_yes_refuses_and_removes_nothing(
    moto_server: str, tmp_path: Path
) -> None:
    config = provisioned(moto_server, tmp_path, pair(1))
    result = run_cli("teardown", "--config", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pass --yes to confirm" in result.stderr
    assert "Traceback" not in result.stderr
    assert "LambdaS3ListBuckets" in result.stdout  # what would have gone
    assert roles_in(moto_server, "100000000001") == {"Lambda-Assume-Roles"}


def test_teardown_on_a_terminal_shows_what_will_go_and_asks(moto_server: str, tmp_path: Path) -> None:
    config = provisioned(moto_server, tmp_path, pair(1))
    code, shown = run_in_terminal("teardown", "--config", str(config), answer="n")
    assert code == 1, shown
    assert "delete    role                 200000000001 LambdaS3ListBuckets" in shown
    assert "Tear down 1 lab, removing 7 resources? [y/N]" in shown
    assert "teardown cancelled: nothing was removed" in shown
    assert roles_in(moto_server, "100000000001") == {"Lambda-Assume-Roles"}
    code, shown = run_in_terminal("teardown", "--config", str(config), answer="y")
    assert code == 0, shown
    assert "Teardown: 7 resources removed in 1 lab." in shown
    assert roles_in(moto_server, "100000000001") == set()


def test_a_provisioning_that_deletes_asks_first(moto_server: str, tmp_path: Path) -> None:
    config = provisioned(moto_server, tmp_path, pair(1))
    destination = iam(moto_server, pair(1))
    destination.put_role_policy(
        RoleName=DESTINATION_ROLE, PolicyName="student-extra", PolicyDocument=json.dumps(EXTRA_POLICY)
    )
    refused = run_cli("provision", "--config", str(config))
    assert refused.returncode == 2
    assert "delete    inline_policy        200000000001 LambdaS3ListBuckets/student-extra" in refused.stdout
    assert "pass --yes to confirm" in refused.stderr
    assert "student-extra" in destination.list_role_policies(RoleName=DESTINATION_ROLE)["PolicyNames"]
    done = run_cli("provision", "--yes", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "Provisioned: 0 created, 0 updated, 1 deleted (1 lab changed, 0 unchanged)." in done.stdout
    assert destination.list_role_policies(RoleName=DESTINATION_ROLE)["PolicyNames"] == [DESTINATION_POLICY]


def test_ctrl_c_in_provision_says_what_was_done_and_what_was_not(moto_server: str, tmp_path: Path) -> None:
    labs = tuple(pair(i) for i in range(1, 7))
    config = write_config(tmp_path, moto_server, labs_toml(*labs))
    config.write_text(config.read_text().replace("concurrency = 8", "concurrency = 1"))
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", "-v", "provision", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:  # woken by each log line: the first lab built is the moment
        if '"lab_provisioned"' in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "Aborted!" not in stdout + stderr
    assert "Interrupted while provisioning." in stdout
    done = re.search(r"^Done \(provisioned\): (.*)$", stdout, flags=re.MULTILINE)
    not_started = re.search(r"^Not started: (.*)$", stdout, flags=re.MULTILINE)
    assert done and not_started, stdout
    assert "pair-01" in done.group(1) and "pair-06" in not_started.group(1)
    assert roles_in(moto_server, "100000000006") == set()


# ------------------------------------------------------------------------------ the emulator trap


@pytest.fixture
def embedded_config(tmp_path: Path) -> Iterator[Path]:
    config = write_config(tmp_path, "embedded", labs_toml(pair(1)))
    yield config
    run_cli("emulator", "stop", "--config", str(config))


def test_what_provision_builds_in_the_embedded_emulator_is_there_for_the_audit(embedded_config: Path) -> None:
    config = str(embedded_config)
    built = run_cli("provision", "--config", config)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "started the embedded emulator in the background" in built.stderr
    audited = run_cli("audit", "--no-invoke", "--no-record", "--config", config)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "1 lab (1 conformant)" in audited.stdout
    status = run_cli("emulator", "status", "--config", config)
    assert status.returncode == 0 and "running at http://127.0.0.1:" in status.stdout
    assert "emulator at" in run_cli("emulator", "stop", "--config", config).stdout
    assert run_cli("emulator", "status", "--config", config).returncode == 1


def test_a_command_on_an_emulator_about_to_vanish_says_so(embedded_config: Path) -> None:
    audited = run_cli("audit", "--no-invoke", "--no-record", "--config", str(embedded_config))
    assert audited.returncode == 3
    assert "the embedded emulator lives only as long as this command" in audited.stderr
    assert "auditor emulator start" in audited.stderr


# --------------------------------------------------------------------------------- urgency, output


@pytest.fixture
def drifted_class(moto_server: str, tmp_path: Path) -> Path:
    """pair-01's trust opened to anyone (critical, drifted); pair-02's policy deleted and its variable
    removed (medium, broken); pair-03 untouched."""
    config = provisioned(moto_server, tmp_path, pair(1), pair(2), pair(3))
    iam(moto_server, pair(1)).update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(OPEN_TRUST)
    )
    iam(moto_server, pair(2)).delete_role_policy(RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY)
    context = open_context(make_config((pair(2),), endpoint_url=moto_server))
    context.sessions.client(pair(2).origin, "lambda").update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {}}
    )
    return config


def test_the_audit_shows_the_worst_first_with_account_resource_and_fix(drifted_class: Path) -> None:
    result = run_cli("audit", "--no-record", "--config", str(drifted_class))
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    table = [line.split() for line in lines if line.startswith("pair-0") and len(line.split()) == 6]
    assert [(row[0], row[3], row[4]) for row in table[:2]] == [
        ("pair-01", "drifted", "critical"),
        ("pair-02", "broken", "medium"),
    ]
    assert table[2][:4] == ["pair-03", "100000000003", "200000000003", "conformant"]
    trust = next(line for line in lines if "trust policy lets any principal" in line)
    assert "(account 200000000001, role/LambdaS3ListBuckets)" in trust
    assert trust.endswith(f"; fix: auditor provision --config {drifted_class} --lab pair-01")
    assert len(trust) > 80  # a pipe gets the whole line, not 80 columns of it
    assert ": : " not in result.stdout
    assert "invoke failed (function error): configuration: DESTINATION_ROLE_ARN is not set" in result.stdout


def test_a_no_op_provision_prints_no_unchanged_lines_and_a_total(moto_server: str, tmp_path: Path) -> None:
    config = provisioned(moto_server, tmp_path, *(pair(i) for i in range(1, 5)))
    again = run_cli("provision", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert "no change" not in again.stdout
    assert again.stdout.count("0 changed, 7 unchanged") == 4
    assert again.stdout.splitlines()[-1] == "No changes: 4 labs as the spec says."


def test_a_dry_run_ends_with_a_summary_and_shows_the_diff(moto_server: str, tmp_path: Path) -> None:
    config = provisioned(moto_server, tmp_path, pair(1))
    iam(moto_server, pair(1)).update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(OPEN_TRUST)
    )
    planned = run_cli("provision", "--dry-run", "--diff", "--config", str(config))
    assert planned.returncode == 0, planned.stderr
    assert (
        planned.stdout.splitlines()[-1]
        == "Plan: 0 to create, 1 to update, 0 to delete (1 lab to change, 0 unchanged)."
    )
    assert '-         "AWS": "*"' in planned.stdout
    assert '+         "AWS": "arn:aws:iam::100000000001:root"' in planned.stdout
    assert '"sts:AssumeRole"' in planned.stdout and "sts:assumerole" not in planned.stdout


def test_logs_are_warnings_only_unless_verbose_before_or_after_the_command(
    moto_server: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(*(pair(i) for i in range(1, 5))))
    quiet = run_cli("provision", "--lab", "pair-04", "--config", str(config))
    assert quiet.returncode == 0 and quiet.stderr == ""
    for number, arguments in enumerate(
        (["-v", "provision"], ["provision", "-v"], ["provision", "--log-level", "info"]), 1
    ):
        loud = run_cli(*arguments, "--lab", f"pair-0{number}", "--config", str(config))
        assert loud.returncode == 0, loud.stderr
        assert '"event": "provision_step"' in loud.stderr, arguments


def test_a_bad_log_level_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("--log-level", "verbose", "status")
    assert result.returncode == 2
    assert "Invalid value for '--log-level'" in result.stderr and "Traceback" not in result.stderr


def test_the_progress_bar_has_no_log_lines_through_it(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1), pair(2)))
    code, shown = run_in_terminal("provision", "--config", str(config))
    assert code == 0, shown
    assert "provisioning" in shown and "2/2" in shown  # the bar
    assert "provision_step" not in shown


def test_verbose_logs_are_printed_above_the_progress_bar_not_through_it(
    moto_server: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1), pair(2)))
    code, shown = run_in_terminal("provision", "-v", "--config", str(config))
    assert code == 0, shown
    # What a terminal shows of each line: what follows the last erase of the line.
    visible = [line.rsplit("\x1b[2K", 1)[-1] for line in shown.split("\n")]
    logged = [line for line in visible if "provision_step" in line]
    assert len(logged) == 14
    assert not [line for line in logged if "━" in line]  # no log line glued to a drawn bar


# ------------------------------------------------------------------------------------------ status


def test_status_has_a_header_json_and_a_state_that_reflects_teardown_and_expiry(
    moto_server: str, tmp_path: Path
) -> None:
    past = 'expires_at = "2020-01-01T00:00:00Z"\n'
    labs = labs_toml(pair(1), pair(2)) + past
    config = write_config(tmp_path, moto_server, labs)
    built = run_cli("provision", "--config", str(config))
    assert built.returncode == 0, built.stderr
    assert "warning: pair-02 expired at 2020-01-01T00:00:00Z" in built.stderr
    assert run_cli("audit", "--no-invoke", "--config", str(config)).returncode == 0
    assert run_cli("teardown", "--yes", "--lab", "pair-01", "--config", str(config)).returncode == 0
    table = run_cli("status", "--config", str(config))
    assert table.returncode == 0, table.stderr
    database, header, first, second = table.stdout.splitlines()
    assert database.startswith("database: sqlite:///")
    assert header.split()[:5] == ["LAB", "STATE", "EXPIRES", "VERDICT", "AUDITED"]
    assert first.split()[:2] == ["pair-02", "expired"]  # worst first: the torn-down lab last
    assert second.split()[:2] == ["pair-01", "torn_down"] and second.split()[3] == "-"
    document = json.loads(run_cli("status", "--format", "json", "--config", str(config)).stdout)
    labs = {lab["lab"]: lab for lab in document["labs"]}
    assert document["schema"] == "auditor.status/v1"
    assert document["database"] == f"sqlite:///{tmp_path / 'auditor.db'}"
    assert (labs["pair-01"]["state"], labs["pair-01"]["verdict"]) == ("torn_down", None)
    assert (labs["pair-02"]["state"], labs["pair-02"]["verdict"]) == ("expired", "conformant")


# ----------------------------------------------------------------------------- errors, not tracebacks


def test_a_taken_health_port_names_the_setting(moto_server: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = config_text(tmp_path, moto_server, (pair(1),), "5m", port)
        result = run_cli("daemon", "--config", str(config), timeout=60)
    assert result.returncode == 2
    assert f"daemon.health_port: 127.0.0.1:{port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_region_is_refused_with_did_you_mean(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1)))
    config.write_text(config.read_text().replace('region = "us-east-1"', 'region = "us-eats-1"'))
    result = run_cli("provision", "--config", str(config))
    assert result.returncode == 2
    assert "lab.region: 'us-eats-1' is not an AWS region (did you mean 'us-east-1'?)" in result.stderr
    assert "Traceback" not in result.stderr and "<html" not in result.stdout.lower()


def test_an_unknown_lab_gets_a_did_you_mean(moto_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(1)))
    result = run_cli("audit", "--lab", "pair-1", "--config", str(config))
    assert result.returncode == 2
    assert "no lab named 'pair-1' in the configuration (did you mean 'pair-01'?)" in result.stderr


# ------------------------------------------------------------------------------------------ history


def test_a_reset_is_recorded_with_what_it_changed(moto_server: str, tmp_path: Path) -> None:
    config = provisioned(moto_server, tmp_path, pair(1))
    iam(moto_server, pair(1)).update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(OPEN_TRUST)
    )
    assert run_cli("provision", "--config", str(config)).returncode == 0
    store = Store.from_url(f"sqlite:///{tmp_path / 'auditor.db'}")
    try:
        reset = store.lifecycle("pair-01")[-1]
    finally:
        store.close()
    assert (reset.event.value, reset.detail) == ("reset", "1 change: update role LambdaS3ListBuckets")


def test_the_daemon_tells_a_turn_to_drifted_and_keeps_a_verdict_per_lab(
    moto_server: str,
    tmp_path: Path,
    start_daemon: Any,  # noqa: F811 (test_daemon's fixture)
) -> None:
    provisioned(moto_server, tmp_path, pair(1))
    iam(moto_server, pair(1)).update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(OPEN_TRUST)
    )
    daemon = start_daemon(config_text(tmp_path, moto_server, (pair(1),), "1h", free_port()))
    wait_for(lambda: daemon.events("lab_verdict_changed"), 120, "the verdict's turn in the log")
    (turn,) = daemon.events("lab_verdict_changed")
    assert (turn["level"], turn["lab"], turn["verdict"]) == ("warning", "pair-01", "drifted")
    assert daemon.metric("auditor_lab_verdict", lab="pair-01") == 1.0
    seconds = daemon.metric("auditor_audit_duration_seconds_sum")
    assert seconds > 0 and seconds != int(seconds)  # fractions of a second, not whole ones


# ------------------------------------------------------------------------------ roster, grade sheet


def test_a_roster_from_excel_reaches_the_status_and_the_grade_sheet(moto_server: str, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    role = "arn:aws:iam::{}:role/OrganizationAccountAccessRole"
    lines = [
        "name, origin_account_id, destination_account_id, student_name, student_email, origin_role_arn, "
        "destination_role_arn",
        f"pair-01, 100000000001, 200000000001, Ada Lovelace, ada@example.edu, {role.format('100000000001')}, "
        f"{role.format('200000000001')}",
        "pair-02, 100000000002, 200000000002, Alan Turing, alan@example.edu, , ",
    ]
    roster.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")  # as Excel saves it
    config = write_config(tmp_path, moto_server, "")
    config.write_text(
        config.read_text().replace('region = "us-east-1"', 'region = "us-east-1"\nroster = "roster.csv"')
    )
    assert run_cli("provision", "--lab", "pair-01", "--config", str(config)).returncode == 0
    assert run_cli("audit", "--no-invoke", "--lab", "pair-01", "--config", str(config)).returncode == 0
    status = run_cli("status", "--config", str(config))
    assert "Ada Lovelace <ada@example.edu>" in status.stdout and "Alan Turing" in status.stdout
    sheet = run_cli("report", "--format", "csv", "--config", str(config))
    assert sheet.returncode == 0, sheet.stderr
    rows = {row["lab"]: row for row in csv.DictReader(io.StringIO(sheet.stdout.removeprefix("\ufeff")))}
    assert set(rows) == {"pair-01", "pair-02"}  # the lab never audited too
    assert (rows["pair-01"]["student_name"], rows["pair-01"]["latest_verdict"]) == (
        "Ada Lovelace",
        "conformant",
    )
    assert float(rows["pair-01"]["conformant_time_share"]) == 1.0
    assert (rows["pair-02"]["student_email"], rows["pair-02"]["state"]) == ("alan@example.edu", "planned")


def test_a_roster_error_names_file_line_and_column_through_the_cli(moto_server: str, tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_text(
        "name,origin_account_id,destination_account_id\npair-01,100000000001,200000000001\n"
        "pair-02,100000000002,200000000001\n",
        encoding="utf-8",
    )
    config = write_config(tmp_path, moto_server, "")
    config.write_text(
        config.read_text().replace('region = "us-east-1"', 'region = "us-east-1"\nroster = "roster.csv"')
    )
    result = run_cli("status", "--config", str(config))
    assert result.returncode == 2
    assert (
        f"{tmp_path / 'roster.csv'}: line 3, column destination_account_id: account 200000000001"
        in result.stderr
    )
    assert "config.toml" not in result.stderr
