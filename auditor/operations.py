"""The commands' work, as functions of a configuration: provision, teardown (audit lives in audit.py).

Each opens its AWS sessions and database at the start and passes them in; the inner code never
creates clients or commits on its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from auditor.audit import audit_targets
from auditor.config import Config
from auditor.fleet import Outcome, run_each
from auditor.model import AuditRun, Verdict
from auditor.render_cli import print_audit_table
from auditor.runtime import Runtime, open_runtime
from provisioner.apply import LabTarget, apply, plan
from provisioner.plan import Step
from provisioner.teardown import teardown, teardown_plan

log = structlog.get_logger()
Echo = Callable[[str], None]


@dataclass(frozen=True)
class LabChange:
    steps: tuple[Step, ...]
    applied: bool

    @property
    def changed(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.changes)


def print_plan(out: Echo, name: str, steps: Sequence[Step], summary: str) -> None:
    """`summary` is a format with {changing} and {unchanged}."""
    changing = sum(step.changes for step in steps)
    out(f"{name}: " + summary.format(changing=changing, unchanged=len(steps) - changing))
    for step in steps:
        out(f"  {step.describe()}")


def _exit_code(outcomes: Sequence[Outcome[LabChange]], out: Echo) -> int:
    failed = [outcome for outcome in outcomes if not outcome.ok]
    for outcome in failed:
        out(f"{outcome.name}: FAILED: {outcome.error}")
    return 1 if failed else 0


def provision_labs(config: Config, names: Sequence[str], *, dry_run: bool, out: Echo) -> int:
    targets = (runtime := open_runtime(config)).targets(names)
    outcomes = provision_targets(runtime, targets, dry_run=dry_run)
    for outcome in outcomes:
        if outcome.result is not None:
            summary = (
                "{changing} to change, {unchanged} unchanged"
                if dry_run
                else "{changing} changed, {unchanged} unchanged"
            )
            print_plan(out, outcome.name, outcome.result.steps, summary)
    return _exit_code(outcomes, out)


def provision_targets(
    runtime: Runtime, targets: Sequence[LabTarget], *, dry_run: bool
) -> list[Outcome[LabChange]]:
    def provision_one(target: LabTarget) -> LabChange:
        steps = plan(runtime.sessions, target)
        if not dry_run:
            apply(runtime.sessions, target, steps)
            log.info("lab_provisioned", lab=target.name, changes=sum(step.changes for step in steps))
        return LabChange(tuple(steps), applied=not dry_run)

    label = "planning" if dry_run else "provisioning"
    return run_each(targets, lambda t: t.name, provision_one, runtime.config.audit.concurrency, label)


def teardown_labs(
    config: Config, names: Sequence[str], *, expired_only: bool, dry_run: bool, out: Echo
) -> int:
    runtime = open_runtime(config)
    targets = runtime.targets(names)
    if expired_only:
        targets = [t for t in targets if t.lab.expires_at is not None and t.lab.expires_at <= _now()]
        if not targets:
            out("no expired labs")
            return 0
    outcomes = teardown_targets(runtime, targets, dry_run=dry_run)
    for outcome in outcomes:
        if outcome.result is not None:
            summary = "{changing} to remove" if dry_run else "{changing} removed"
            print_plan(out, outcome.name, outcome.result.steps, summary)
    return _exit_code(outcomes, out)


def teardown_targets(
    runtime: Runtime, targets: Sequence[LabTarget], *, dry_run: bool
) -> list[Outcome[LabChange]]:
    def teardown_one(target: LabTarget) -> LabChange:
        steps = teardown_plan(runtime.sessions, target)
        if not dry_run:
            teardown(runtime.sessions, target, steps)
            log.info("lab_torn_down", lab=target.name, removed=len(steps))
        return LabChange(tuple(steps), applied=not dry_run)

    label = "planning teardown" if dry_run else "tearing down"
    return run_each(targets, lambda t: t.name, teardown_one, runtime.config.audit.concurrency, label)


def _now() -> datetime:
    return datetime.now(UTC)


def audit_exit_code(run: AuditRun) -> int:
    verdicts = {lab.verdict for lab in run.labs}
    if Verdict.ERROR in verdicts:
        return 1
    return 0 if verdicts <= {Verdict.CONFORMANT} else 3


def audit_labs(
    config: Config, names: Sequence[str], *, output_format: str, invoke: bool, record: bool
) -> int:
    runtime = open_runtime(config)
    targets = runtime.targets(names)
    run = audit_targets(runtime, targets, invoke=invoke and config.audit.invoke)
    if output_format == "json":
        sys.stdout.write(json.dumps(run.to_json(), indent=2) + "\n")
    else:
        print_audit_table(run)
    return audit_exit_code(run)
