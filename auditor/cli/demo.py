"""`auditor demo`: the whole story on the embedded emulator, in under a minute, then exit.

Every step runs the product's own code paths (provision, audit, reset, report, teardown at
expiry, the change events and the live page); only the students and the attacker are played by plain
boto3 calls, and CloudTrail, which the emulator lacks, by the events it would put on each account's bus.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.app.health import Metrics
from auditor.app.recording import open_store, record_run
from auditor.aws.cloudtrail import Change, explain_audit
from auditor.aws.events import EventListener
from auditor.cli.render import plural, print_audit_table
from auditor.common.clock import utc_now
from auditor.domain.config import (
    AccountAccess,
    AuditSettings,
    AwsSettings,
    Config,
    ConfigError,
    DaemonSettings,
    DatabaseSettings,
    EventsSettings,
    LabConfig,
    LabSettings,
)
from auditor.domain.explain import actor_line
from auditor.domain.model import AuditRun, LabAudit, Trigger, Verdict
from auditor.domain.spec import (
    DESTINATION_POLICY,
    DESTINATION_ROLE,
    EVENT_RULE,
    FUNCTION,
    IAM_EVENTS_REGION,
    ORIGIN_ROLE,
)
from auditor.report.output import write_html_report
from auditor.store import Store
from auditor.web import open_page
from provisioner.provision import provision_targets
from provisioner.teardown import teardown_expired


def _access(account_id: str) -> AccountAccess:
    return AccountAccess(account_id, role_arn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")


DEMO_LABS = (
    LabConfig("pair-01", _access("111111111111"), _access("222222222222")),
    LabConfig("pair-02", _access("333333333333"), _access("444444444444")),
    LabConfig("solo-01", _access("555555555555"), _access("555555555555")),
)


def demo_config(workdir: Path, page_port: int = 0) -> Config:
    return Config(
        path="(demo)",
        labs=DEMO_LABS,
        lab=LabSettings(ttl=timedelta(hours=8)),
        aws=AwsSettings(endpoint_url="embedded"),
        audit=AuditSettings(concurrency=8),
        database=DatabaseSettings(url=f"sqlite:///{workdir / 'demo.db'}"),
        daemon=DaemonSettings(health_port=page_port),
        events=EventsSettings(wait_seconds=0),
    )


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Story:
    context: Context
    store: Store
    console: Console
    workdir: Path
    problems: list[str]
    page_url: str = ""
    changes: dict[str, list[Change]] = field(default_factory=dict)  # the change events, by lab

    def step(self, number: int, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{number}. {title}", align="left")

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)
            self.console.print(f"[bold red]unexpected:[/] {problem}")

    def client(self, lab: LabConfig, side: str, service: str) -> Any:
        return self.context.sessions.client(getattr(lab, side), service)

    def audit(self) -> AuditRun:
        run = audit_targets(self.context, self.context.targets(), invoke=True)
        record_run(self.store, run, Trigger.MANUAL)
        print_audit_table(run, out=self.console.file)
        return run


# ------------------------------------------------------------------------------------ the students

# Who does what (each a CloudTrail identity), and from where.
MALLORY = ("AssumedRole", "assumed-role/student/mallory", "198.51.100.7")
BOB = ("AssumedRole", "assumed-role/student/bob", "203.0.113.5")
CAROL = ("IAMUser", "user/carol", "192.0.2.44")


def cloudtrail_record(
    account: str,
    who: tuple[str, str, str],
    service: str,
    event_name: str,
    parameters: dict[str, str],
    region: str = IAM_EVENTS_REGION,
) -> dict[str, Any]:
    """The record CloudTrail writes for a call (the emulator has no CloudTrail: the demo plays it)."""
    kind, name, address = who
    service_of_arn = "sts" if kind == "AssumedRole" else "iam"
    identity: dict[str, Any] = {
        "type": kind,
        "arn": f"arn:aws:{service_of_arn}::{account}:{name}",
        "accountId": account,
    }
    if kind == "AssumedRole":
        role = name.split("/")[1]
        identity["sessionContext"] = {
            "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{account}:role/{role}"}
        }
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": f"{service}.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": address,
        "userAgent": "console.amazonaws.com",
        "requestParameters": parameters,
        "eventID": f"demo-{account}-{event_name}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
    }


def announce(story: Story, lab: LabConfig, side: str, detail: dict[str, Any]) -> None:
    """Put the call's event on the account's bus in the call's region (us-east-1 for IAM), as CloudTrail does."""
    entry = {
        "Source": "aws." + str(detail["eventSource"]).split(".", 1)[0],
        "DetailType": "AWS API Call via CloudTrail",
        "Detail": json.dumps(detail),
    }
    bus = story.context.sessions.client(getattr(lab, side), "events", region_name=detail["awsRegion"])
    bus.put_events(Entries=[entry])


def open_trust_to_everyone(story: Story, lab: LabConfig) -> str:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    story.client(lab, "destination", "iam").update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(document)
    )
    parameters = {"roleName": DESTINATION_ROLE, "policyDocument": json.dumps(document)}
    account = lab.destination.account_id
    announce(
        story,
        lab,
        "destination",
        cloudtrail_record(account, MALLORY, "iam", "UpdateAssumeRolePolicy", parameters),
    )
    return f"{lab.name}: an attacker ({MALLORY[1]}) opens the trust of {DESTINATION_ROLE} to any principal"


def delete_inline_policy(story: Story, lab: LabConfig) -> str:
    story.client(lab, "destination", "iam").delete_role_policy(
        RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY
    )
    parameters = {"roleName": DESTINATION_ROLE, "policyName": DESTINATION_POLICY}
    account = lab.destination.account_id
    announce(
        story, lab, "destination", cloudtrail_record(account, BOB, "iam", "DeleteRolePolicy", parameters)
    )
    return f"{lab.name}: a student ({BOB[1]}) deletes the inline policy {DESTINATION_POLICY}"


def replace_function_code(story: Story, lab: LabConfig) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "handler.py", "def lambda_handler(event, context):\n    return {'ok': True, 'buckets': []}\n"
        )
    story.client(lab, "origin", "lambda").update_function_code(
        FunctionName=FUNCTION, ZipFile=buffer.getvalue()
    )
    region = story.context.config.lab.region
    record = cloudtrail_record(
        lab.origin.account_id,
        CAROL,
        "lambda",
        "UpdateFunctionCode20150331v2",
        {"functionName": FUNCTION},
        region,
    )
    announce(story, lab, "origin", record)
    return f"{lab.name}: someone ({CAROL[1]}) replaces the function's code"


MISCHIEF: tuple[Callable[[Story, LabConfig], str], ...] = (
    open_trust_to_everyone,
    delete_inline_policy,
    replace_function_code,
)
WHO_BROKE = {"pair-01": MALLORY[1], "pair-02": BOB[1], "solo-01": CAROL[1]}


# ------------------------------------------------------------------------------------ leftovers


def lab_leftovers(story: Story, lab: LabConfig) -> list[str]:
    """Everything of the lab still in its accounts (nothing, after a teardown)."""
    left: list[str] = []
    for side in ("origin", "destination"):
        iam = story.client(lab, side, "iam")
        left += [
            r["RoleName"]
            for r in iam.list_roles()["Roles"]
            if r["RoleName"] in (ORIGIN_ROLE, DESTINATION_ROLE)
        ]
        buckets = story.client(lab, side, "s3").list_buckets()["Buckets"]
        left += [b["Name"] for b in buckets if b["Name"].startswith("lab-auditor-marker")]
        rules = story.client(lab, side, "events").list_rules(NamePrefix=EVENT_RULE)["Rules"]
        left += [rule["Name"] for rule in rules]
    functions = story.client(lab, "origin", "lambda").list_functions()["Functions"]
    left += [f["FunctionName"] for f in functions if f["FunctionName"] == FUNCTION]
    groups = story.client(lab, "origin", "logs").describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{FUNCTION}"
    )
    left += [g["logGroupName"] for g in groups["logGroups"]]
    return sorted(set(left))


# ------------------------------------------------------------------------------------ the story


def story_console(stream: IO[str] | None = None) -> Console:
    """The demo's console: on a terminal, wrapped to its width; in a pipe, lines as long as they are
    (rich would otherwise wrap them at 80 columns, breaking a path or a command in two)."""
    stream = stream or sys.stdout
    return Console(file=stream, soft_wrap=not stream.isatty())


def start_afresh(workdir: Path, database: str) -> None:
    """The demo's folder, without the database of an earlier run: the story starts from nothing. A
    folder this user may not write (another uid's volume) is the `--out` option's error."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / database).unlink(missing_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--out {workdir}",
            "",
            f"cannot start the demo afresh there ({error.strerror}: {error.filename}, as uid {os.geteuid()}):"
            " choose another folder with --out, or remove the old one",
        ) from None


def run_demo(workdir: Path, console: Console | None = None) -> int:
    start_afresh(workdir, "demo.db")
    config = demo_config(workdir, free_loopback_port())
    console = console or story_console()
    # Its own emulator, empty, whatever else runs: the story starts from nothing.
    with open_context(config, find_emulator=False) as context:
        story = Story(context, open_store(config), console, workdir, [])
        # The daemon's live page, on the demo's history, for as long as the demo runs.
        page = open_page(config, lambda: story.store, lambda: (True, "demo"), Metrics(), {})
        assert page is not None
        page.start()
        story.page_url = f"http://127.0.0.1:{page.port}"
        try:
            tell(story)
        finally:
            page.stop()
    console.print()
    if story.problems:
        console.print(f"[bold red]The demo did not go as expected:[/] {'; '.join(story.problems)}")
        return 1
    console.print(
        "[bold green]That is the whole story.[/] Next: `make test`, then README.md for a real class."
    )
    return 0


def tell(story: Story) -> None:
    story.console.print(
        "[bold]lab-auditor demo[/]: a class of two account pairs and one single-account student,"
    )
    story.console.print(
        f"on the embedded AWS emulator at {story.context.endpoint_url}. Nothing leaves this machine."
    )
    story.console.print(f"The daemon's live page for this class, while the demo runs: {story.page_url}/")
    provision(story)
    audit_all_conformant(story)
    mischief(story)
    drift = audit_drift(story)
    reset(story, drift)
    report(story)
    expire(story)


def account_trails(story: Story) -> None:
    """What each account's owner set up: a trail logging management events (the change events need one)."""
    for account, access in {
        side.account_id: side for lab in DEMO_LABS for side in (lab.origin, lab.destination)
    }.items():
        bucket = f"cloudtrail-logs-{account}"
        story.context.sessions.client(access, "s3").create_bucket(Bucket=bucket)
        cloudtrail = story.context.sessions.client(access, "cloudtrail")
        cloudtrail.create_trail(Name="management-events", S3BucketName=bucket, IsMultiRegionTrail=True)
        cloudtrail.start_logging(Name="management-events")


def provision(story: Story) -> None:
    story.step(1, "Provision the class from the lab spec")
    account_trails(story)
    story.say("  (each account already logs its management events to CloudTrail, as the school set it up)")
    outcomes = provision_targets(story.context, story.context.targets(), dry_run=False, store=story.store)
    for outcome in outcomes:
        changed = len(outcome.result.changed) if outcome.result else 0
        story.say(
            f"  {outcome.name}: {'built, ' + plural(changed, 'resource') if outcome.ok else 'FAILED: ' + str(outcome.error)}"
        )
        story.expect(outcome.ok, f"{outcome.name} could not be provisioned")


def audit_all_conformant(story: Story) -> None:
    story.step(
        2, "Audit: every lab as the spec says, and the function really lists the other account's buckets"
    )
    run = story.audit()
    story.expect(all(lab.verdict is Verdict.CONFORMANT for lab in run.labs), "a fresh lab was not conformant")


def mischief(story: Story) -> None:
    story.step(3, "Students and an attacker at work, behind the auditor's back")
    for action, lab in zip(MISCHIEF, DEMO_LABS, strict=True):
        story.say(f"  {action(story, lab)}")


def receive_change_events(story: Story) -> int:
    """The daemon's listener takes CloudTrail's events off the operator's queue: which lab, and who."""

    def noted(lab: str, delay: timedelta, change: Change | None) -> None:
        if change is not None:
            story.changes.setdefault(lab, []).append(change)

    listener = EventListener(story.context.config, story.context.sessions, story.context.endpoint_url, noted)
    received = 0
    while batch := listener.poll_once():
        received += batch
    return received


def audit_drift(story: Story) -> AuditRun:
    story.step(4, "Audit again: what changed, its effect, its severity, and who did it")
    received = receive_change_events(story)
    story.say(f"  {received} change events arrived through EventBridge and the operator's queue")
    run = audit_targets(story.context, story.context.targets(), invoke=True)
    labs = tuple(explain_audit(lab, story.changes.get(lab.lab, ())) for lab in run.labs)
    run = replace(run, labs=labs)
    record_run(story.store, run, Trigger.EVENT)
    print_audit_table(run, out=story.console.file)
    verdicts = {lab.lab: lab.verdict for lab in run.labs}
    story.expect(verdicts["pair-01"] is Verdict.DRIFTED, "the open trust was not reported as drift")
    story.expect(verdicts["pair-02"] is Verdict.BROKEN, "the deleted policy did not break pair-02")
    story.expect(verdicts["solo-01"] is not Verdict.CONFORMANT, "the replaced code went unnoticed")
    who_broke_what(story, run.labs)
    return run


def who_broke_what(story: Story, labs: tuple[LabAudit, ...]) -> None:
    story.say("")
    for lab in labs:
        actor = next((f.changed_by for f in lab.findings if f.changed_by is not None), None)
        story.say(
            f"  [bold]{lab.lab}[/] {lab.verdict.value}: {actor_line(actor) if actor else 'no one known'}"
        )
        story.expect(
            actor is not None and actor.arn.endswith(WHO_BROKE[lab.lab]),
            f"{lab.lab}: who broke it is not shown",
        )
    page = f"{story.page_url}/labs/pair-01"
    with urllib.request.urlopen(page, timeout=10) as response:
        shown = response.read().decode()
    story.say(f"  The live page shows the same: {page}")
    story.expect(
        f"changed by {WHO_BROKE['pair-01']}" in shown, "the live page does not show who broke pair-01"
    )


def reset(story: Story, drift: AuditRun) -> None:
    story.step(5, "Reset pair-02 with the provisioner, and audit it")
    targets = story.context.targets(["pair-02"])
    outcome = provision_targets(story.context, targets, dry_run=False, store=story.store)[0]
    for step in outcome.result.changed if outcome.result else ():
        story.say(f"  restored: {step.describe()}")
    run = audit_targets(story.context, story.context.targets(["pair-02"]), invoke=True)
    record_run(story.store, run, Trigger.MANUAL)
    story.say(f"  pair-02 is now [bold]{run.labs[0].verdict.value}[/]")
    story.expect(run.labs[0].verdict is Verdict.CONFORMANT, "the reset did not restore pair-02")


def report(story: Story) -> None:
    story.step(6, "The operators' report")
    path = write_html_report(story.store, story.workdir / "report.html", utc_now())
    story.say(
        f"  HTML report written to [bold]{path.resolve()}[/] (self-contained: open it offline or mail it)"
    )
    story.say(
        f"  The same class, live, on the daemon's page: {story.page_url}/ (here while the demo runs; "
        "`make run` serves it at http://127.0.0.1:8080/)"
    )


def expire(story: Story) -> None:
    story.step(7, "The labs expire: teardown at expiry, as the daemon does it")
    later = utc_now() + story.context.config.lab.ttl + timedelta(minutes=1)
    story.say(f"  (the clock moves on to {later:%Y-%m-%d %H:%M} UTC, past every lab's expiry)")
    outcomes = teardown_expired(story.context, story.store, story.context.targets(), later)
    for outcome in outcomes:
        removed = len(outcome.result.steps) if outcome.result else 0
        story.say(
            f"  {outcome.name}: {'removed ' + plural(removed, 'resource') if outcome.ok else 'FAILED: ' + str(outcome.error)}"
        )
    for lab in DEMO_LABS:
        left = lab_leftovers(story, lab)
        story.say(f"  {lab.name}: {'nothing of the lab is left' if not left else 'LEFT: ' + ', '.join(left)}")
        story.expect(not left, f"{lab.name} still has {left}")
    states = {status.name: status.state.value for status in story.store.status()}
    story.expect(
        all(states.get(lab.name) == "torn_down" for lab in DEMO_LABS), f"not all labs torn down: {states}"
    )
