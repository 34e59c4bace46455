"""Audit labs: collect, invoke, judge. One lab's failure is that lab's `error`, never the run's end.

A lab's audit has its budget of retries (auditor/domain/faults.py): AWS's faults (throttling, 5xx, timeouts,
resets), in the auditor's own requests or in the function's run, are retried within it; one that
outlasts it makes the lab `error`, with no findings, never `broken`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import date
from functools import partial

import structlog

from auditor.app.collect import collect_lab
from auditor.app.context import Context
from auditor.app.fleet import LAB_FAULTS, Progress, describe_fault, run_each
from auditor.app.target import LabTarget
from auditor.aws.invoke import invoke_lambda, invoke_local, run_with_retries
from auditor.common.clock import utc_now
from auditor.domain.actual import ActualFunction, ActualLab
from auditor.domain.faults import lab_budget
from auditor.domain.model import AuditRun, Finding, InvokeResult, LabAudit, Verdict
from auditor.domain.package import packaged
from auditor.domain.steps import StepResult
from auditor.resources.base import provisioned_kinds
from auditor.resources.compare import judge_lab
from auditor.resources.steps import judge_steps

log = structlog.get_logger()


def invoke_mode(context: Context) -> str:
    mode = context.config.audit.invoke_via
    if mode == "auto":
        return "local" if context.endpoint_url else "lambda"
    return mode


def audit_lab(context: Context, target: LabTarget, *, invoke: bool, log_group_seen: bool = False) -> LabAudit:
    """`log_group_seen`: an earlier audit found the function's log group (when students build, its
    absence is a finding only then; the provisioner makes it with the lab)."""
    started = utc_now()
    calls_before = context.sessions.calls_in_this_thread()
    lab, expected = target.lab, target.expected

    def result(verdict: Verdict, **fields: object) -> LabAudit:
        audit = LabAudit(
            lab=lab.name,
            origin_account=lab.origin.account_id,
            destination_account=lab.destination.account_id,
            verdict=verdict,
            started_at=started,
            finished_at=utc_now(),
            requests=context.sessions.calls_in_this_thread() - calls_before,
            **fields,  # type: ignore[arg-type]
        )
        log.info(
            "lab_audited",
            lab=lab.name,
            verdict=audit.verdict.value,
            findings=len(audit.findings),
            requests=audit.requests,
            duration_ms=int((utc_now() - started).total_seconds() * 1000),
        )
        return audit

    try:
        with lab_budget():
            actual = collect_lab(context.sessions, target, near_names=context.config.classroom.students_build)
            invoked = run_invoke(context, target, actual.function) if invoke else None
        judgement = judge_lab(
            expected,
            actual,
            None if context.config.classroom.students_build else packaged()[1],
            started.date(),
            invoked,
            engine=context.policy_engine,
            now=started,
            log_group_expected=log_group_seen or not context.config.classroom.students_build,
            provisioned=provisioned_kinds(context.config),
        )
    except LAB_FAULTS as error:
        return result(Verdict.ERROR, error=describe_fault(error))  # nothing judged: no steps
    steps = judged_steps(context, target, actual, judgement.findings, invoked, started.date())
    return result(judgement.verdict, findings=judgement.findings, invoke=invoked, steps=steps)


def judged_steps(
    context: Context,
    target: LabTarget,
    actual: ActualLab,
    findings: tuple[Finding, ...],
    invoked: InvokeResult | None,
    today: date,
) -> tuple[StepResult, ...]:
    """With `[class] built_by = "students"`: each step of the class's rubric as the lab stands
    (auditor/resources/steps.py); none when the project builds the labs."""
    classroom = context.config.classroom
    if not classroom.students_build:
        return ()
    return judge_steps(
        context.config.rubric,
        target.expected,
        actual,
        findings,
        invoked,
        classroom.hardening,
        today=today,
        engine=context.policy_engine,
    )


def run_invoke(context: Context, target: LabTarget, function: ActualFunction) -> InvokeResult:
    """The function's run, and its answer judged; run again while it fails for AWS's fault, within the
    lab's budget (past it: an AwsFault, the lab's `error`)."""
    if not function.exists:
        return InvokeResult(False, "function_missing", "the function does not exist")
    guide_answers = context.config.classroom.students_build  # a student's function answers as the guide's
    if invoke_mode(context) == "local":
        return run_with_retries(
            lambda: invoke_local(
                context.local_lambda,
                context.sessions,
                target.lab.origin,
                target.expected,
                function,
                context.endpoint_url,
                guide_answers=guide_answers,
            ),
            context.sessions.retries,
        )
    return run_with_retries(
        lambda: invoke_lambda(
            context.sessions, target.lab.origin, target.expected, guide_answers=guide_answers
        ),
        context.sessions.retries,
    )


def audit_targets(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    invoke: bool,
    progress: Progress | None = None,
    each: Callable[[LabTarget, Callable[[], LabAudit]], LabAudit | None] | None = None,
    log_groups_seen: Collection[str] = (),
) -> AuditRun:
    """Audit the labs side by side. `each(target, audit)` stands around each lab's audit (a command
    takes the lab's lease there): it returns what `audit()` returns, or None to leave the lab out.
    `log_groups_seen`: the labs whose function's log group an earlier audit found (see audit_lab)."""
    started = utc_now()

    def audit_one(target: LabTarget) -> LabAudit | None:
        audit = partial(
            audit_lab, context, target, invoke=invoke, log_group_seen=target.name in log_groups_seen
        )
        return audit() if each is None else each(target, audit)

    outcomes = run_each(
        targets,
        lambda t: t.name,
        audit_one,
        context.config.audit.concurrency,
        "auditing",
        progress,
    )
    labs = tuple(outcome.result for outcome in outcomes if outcome.result is not None)
    return AuditRun(started_at=started, finished_at=utc_now(), labs=labs)
