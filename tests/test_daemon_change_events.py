"""End to end on a moto server: a student's change, announced by a CloudTrail-shaped event through
EventBridge (the lab account's us-east-1 bus, the operator's bus) and SQS, yields within 10 s an audit
whose JSON, `auditor status` line, reports and notification carry `changed_by` with that event's actor."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import test_daemon
from cloudtrail_records import assumed_role, eventbridge_entry, record
from receiver import running_receiver
from test_daemon import RunningDaemon, config_text, free_port, open_trust, provision, runs_of, wait_for

from auditor.domain.config import LabConfig
from auditor.domain.model import Check, Verdict
from auditor.domain.spec import DESTINATION_ROLE
from auditor.store import Store
from conftest import pair, run_cli

start_daemon = test_daemon.start_daemon  # the fixture, shared

WHO = "assumed-role/student/alice"


def account_trails(context: Any, labs: tuple[LabConfig, ...]) -> None:
    """Each lab account logs its management events, as the school's accounts do (no change_events finding)."""
    for lab in labs:
        for access in (lab.origin, lab.destination):
            bucket = f"trail-logs-{access.account_id}"
            context.sessions.client(access, "s3").create_bucket(Bucket=bucket)
            cloudtrail = context.sessions.client(access, "cloudtrail")
            cloudtrail.create_trail(Name="management", S3BucketName=bucket, IsMultiRegionTrail=True)
            cloudtrail.start_logging(Name="management")


def latest_run(url: str, lab: str) -> Any:
    """The lab's latest run with its findings, from the database at `url`."""
    store = Store.from_url(url)
    try:
        return store.latest_runs([lab])[lab]
    finally:
        store.close()


def announce(context: Any, lab: LabConfig, when: datetime) -> dict[str, Any]:
    """What CloudTrail puts on the destination account's bus in us-east-1 for the student's call."""
    account = lab.destination.account_id
    detail = record(
        account,
        "UpdateAssumeRolePolicy",
        {"roleName": DESTINATION_ROLE, "policyDocument": "{...}"},
        identity=assumed_role(account, "alice"),
        time=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        event_id="7d1e0c55-1b9e-4c3a-8f27-5a0c2b6d9e41",
    )
    bus = context.sessions.client(lab.destination, "events", region_name="us-east-1")
    assert bus.put_events(Entries=[eventbridge_entry(detail)])["FailedEntryCount"] == 0
    return detail


def test_a_change_announced_by_cloudtrail_carries_its_actor_everywhere_within_10_s(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    labs = (pair(1), pair(2))
    context = provision(moto_server, labs, events=True)
    account_trails(context, labs)
    with running_receiver() as receiver:
        extra = (
            '[events]\nwait_seconds = 1\ncoalesce = "1s"\n'
            f'[notify]\nurls = ["{receiver.url()}"]\non = ["broken", "drifted", "error", "recovered"]\n'
        )
        config = config_text(tmp_path, moto_server, labs, "1h", free_port(), extra=extra)
        daemon = start_daemon(config)
        database = tmp_path / "auditor.db"
        for lab in labs:
            wait_for(lambda lab=lab: runs_of(database, lab.name), 60, f"the first audit of {lab.name}")
        assert [runs_of(database, lab.name)[-1].verdict for lab in labs] == [Verdict.CONFORMANT] * 2
        wait_for(lambda: daemon.events("events_listening"), 30, "the event listener")

        open_trust(context, labs[0])
        detail = announce(context, labs[0], datetime.now(UTC))
        sent = time.monotonic()

        def event_run() -> Any:
            runs = [r for r in runs_of(database, "pair-01") if r.trigger.value == "event"]
            return runs[-1] if runs else None

        wait_for(event_run, 10, "an audit triggered by the event")
        assert time.monotonic() - sent < 10
        run = latest_run(f"sqlite:///{database}", "pair-01")
        assert run.trigger.value == "event"
        trust = next(f for f in run.findings if f.check == Check.TRUST_POLICY)
        assert trust.changed_by is not None
        assert trust.changed_by.to_json() == {
            "arn": detail["userIdentity"]["arn"],
            "type": "AssumedRole",
            "event_name": "UpdateAssumeRolePolicy",
            "event_time": detail["eventTime"],
            "event_id": detail["eventID"],
            "source_ip": "203.0.113.5",
            "user_agent": "console.amazonaws.com",
            "session_issuer": detail["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
        }
        changed_by = trust.changed_by.to_json()

        message = receiver.next(timeout=10)  # the notification of that transition
        assert message["title"] == "pair-01 is drifted"
        assert f"changed by {WHO}" in message["message"]

        # The audit JSON, as the daemon's page serves it.
        status, body = daemon.get("/api/labs")
        assert status == 200
        [served] = [lab for lab in json.loads(body)["labs"] if lab["lab"] == "pair-01"]
        assert changed_by in [finding.get("changed_by") for finding in served["findings"]]
        log_line = next(e for e in daemon.events("change_event"))
        assert (
            log_line["actor"] == detail["userIdentity"]["arn"] and log_line["event_id"] == detail["eventID"]
        )

    status_line = run_cli("status", "--config", str(config))
    assert status_line.returncode == 0, status_line.stderr
    [line] = [line for line in status_line.stdout.splitlines() if line.startswith("pair-01")]
    assert f"changed by {WHO} at " in line and "from 203.0.113.5" in line
    [other] = [line for line in status_line.stdout.splitlines() if line.startswith("pair-02")]
    assert "changed by" not in other

    html = tmp_path / "report.html"
    assert run_cli("report", "--config", str(config), "--format", "html", "--out", str(html)).returncode == 0
    reports = {
        fmt: run_cli("report", "--config", str(config), "--format", fmt) for fmt in ("json", "md", "csv")
    }
    assert all(done.returncode == 0 for done in reports.values()), {f: r.stderr for f, r in reports.items()}
    document = json.loads(reports["json"].stdout)
    [reported] = [lab for lab in document["labs"] if lab["lab"] == "pair-01"]
    assert changed_by in [finding.get("changed_by") for finding in reported["findings"]]
    assert f"changed by {WHO}" in reports["md"].stdout
    assert f"changed by {WHO}" in html.read_text(encoding="utf-8")
    rows = {
        row["lab"]: row for row in csv.DictReader(io.StringIO(reports["csv"].stdout.removeprefix("\ufeff")))
    }
    assert (rows["pair-01"]["changed_by"], rows["pair-02"]["changed_by"]) == (WHO, "")
