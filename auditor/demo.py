"""`auditor demo`: the whole story on the embedded emulator, in under a minute, then exit.

Every step runs the product's own code paths (provision, audit, reset, report, teardown at
expiry); only the students and the attacker are played by plain boto3 calls.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from auditor.audit import audit_targets
from auditor.clock import utc_now
from auditor.config import (
    AccountAccess,
    AuditSettings,
    AwsSettings,
    Config,
    DatabaseSettings,
    LabConfig,
    LabSettings,
)
from auditor.context import Context, open_context
from auditor.model import AuditRun, Trigger, Verdict
from auditor.operations import (
    open_store,
    provision_targets,
    record_run,
    teardown_expired,
)
from auditor.render_cli import plural, print_audit_table
from auditor.report.output import write_html_report
from auditor.spec import DESTINATION_POLICY, DESTINATION_ROLE, EVENT_RULE, FUNCTION, ORIGIN_ROLE
from auditor.store import Store


def _access(account_id: str) -> AccountAccess:
    return AccountAccess(account_id, role_arn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")


DEMO_LABS = (
    LabConfig("pair-01", _access("111111111111"), _access("222222222222")),
    LabConfig("pair-02", _access("333333333333"), _access("444444444444")),
    LabConfig("solo-01", _access("555555555555"), _access("555555555555")),
)


def demo_config(workdir: Path) -> Config:
    return Config(
        path="(demo)",
        labs=DEMO_LABS,
        lab=LabSettings(ttl=timedelta(hours=8)),
        aws=AwsSettings(endpoint_url="embedded"),
        audit=AuditSettings(concurrency=8),
        database=DatabaseSettings(url=f"sqlite:///{workdir / 'demo.db'}"),
    )


@dataclass
class Story:
    context: Context
    store: Store
    console: Console
    workdir: Path
    problems: list[str]

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
        run = audit_targets(self.context, self.context.targets(), invoke=True, show_progress=False)
        record_run(self.store, run, Trigger.MANUAL)
        print_audit_table(run, out=self.console.file)
        return run


# ------------------------------------------------------------------------------------ the students


def open_trust_to_everyone(story: Story, lab: LabConfig) -> str:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    story.client(lab, "destination", "iam").update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(document)
    )
    return f"{lab.name}: an attacker opens the trust of {DESTINATION_ROLE} to any principal"


def delete_inline_policy(story: Story, lab: LabConfig) -> str:
    story.client(lab, "destination", "iam").delete_role_policy(
        RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY
    )
    return f"{lab.name}: a student deletes the inline policy {DESTINATION_POLICY}"


def replace_function_code(story: Story, lab: LabConfig) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "handler.py", "def lambda_handler(event, context):\n    return {'ok': True, 'buckets': []}\n"
        )
    story.client(lab, "origin", "lambda").update_function_code(
        FunctionName=FUNCTION, ZipFile=buffer.getvalue()
    )
    return f"{lab.name}: someone replaces the function's code"


MISCHIEF: tuple[Callable[[Story, LabConfig], str], ...] = (
    open_trust_to_everyone,
    delete_inline_policy,
    replace_function_code,
)


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


def run_demo(workdir: Path, console: Console | None = None) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "demo.db").unlink(missing_ok=True)
    config = demo_config(workdir)
    console = console or Console()
    # Its own emulator, empty, whatever else runs: the story starts from nothing.
    with open_context(config, find_emulator=False) as context:
        story = Story(context, open_store(config), console, workdir, [])
        tell(story)
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
    provision(story)
    audit_all_conformant(story)
    mischief(story)
    drift = audit_drift(story)
    reset(story, drift)
    report(story)
    expire(story)


def provision(story: Story) -> None:
    story.step(1, "Provision the class from the lab spec")
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


def audit_drift(story: Story) -> AuditRun:
    story.step(4, "Audit again: what changed, its effect and its severity")
    run = story.audit()
    verdicts = {lab.lab: lab.verdict for lab in run.labs}
    story.expect(verdicts["pair-01"] is Verdict.DRIFTED, "the open trust was not reported as drift")
    story.expect(verdicts["pair-02"] is Verdict.BROKEN, "the deleted policy did not break pair-02")
    story.expect(verdicts["solo-01"] is not Verdict.CONFORMANT, "the replaced code went unnoticed")
    return run


def reset(story: Story, drift: AuditRun) -> None:
    story.step(5, "Reset pair-02 with the provisioner, and audit it")
    targets = story.context.targets(["pair-02"])
    outcome = provision_targets(story.context, targets, dry_run=False, store=story.store)[0]
    for step in outcome.result.changed if outcome.result else ():
        story.say(f"  restored: {step.describe()}")
    run = audit_targets(story.context, story.context.targets(["pair-02"]), invoke=True, show_progress=False)
    record_run(story.store, run, Trigger.MANUAL)
    story.say(f"  pair-02 is now [bold]{run.labs[0].verdict.value}[/]")
    story.expect(run.labs[0].verdict is Verdict.CONFORMANT, "the reset did not restore pair-02")


def report(story: Story) -> None:
    story.step(6, "The operators' report")
    path = write_html_report(story.store, story.workdir / "report.html", utc_now())
    story.say(
        f"  HTML report written to [bold]{path.resolve()}[/] (self-contained: open it offline or mail it)"
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
