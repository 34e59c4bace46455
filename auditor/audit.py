"""Audit labs: collect, invoke, judge. One lab's failure is that lab's `error`, never the run's end."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from auditor.actual import ActualFunction
from auditor.clock import utc_now
from auditor.collect import collect_lab
from auditor.compare import judge_lab
from auditor.context import Context
from auditor.fleet import LAB_FAULTS, describe_fault, run_each
from auditor.invoke import invoke_lambda, invoke_local
from auditor.model import AuditRun, InvokeResult, LabAudit, Verdict
from auditor.package import packaged
from auditor.target import LabTarget

log = structlog.get_logger()


def invoke_mode(context: Context) -> str:
    mode = context.config.audit.invoke_via
    if mode == "auto":
        return "local" if context.endpoint_url else "lambda"
    return mode


def audit_lab(context: Context, target: LabTarget, *, invoke: bool) -> LabAudit:
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
        actual = collect_lab(context.sessions, target)
        invoked = run_invoke(context, target, actual.function) if invoke else None
        judgement = judge_lab(
            expected,
            actual,
            packaged()[1],
            started.date(),
            invoked,
            policy_time_limit=context.config.audit.policy_time_limit.total_seconds(),
            now=started,
        )
    except LAB_FAULTS as error:
        return result(Verdict.ERROR, error=describe_fault(error))
    return result(judgement.verdict, findings=judgement.findings, invoke=invoked)


def run_invoke(context: Context, target: LabTarget, function: ActualFunction) -> InvokeResult:
    if not function.exists:
        return InvokeResult(False, "function_missing", "the function does not exist")
    if invoke_mode(context) == "local":
        return invoke_local(
            context.local_lambda,
            context.sessions,
            target.lab.origin,
            target.expected,
            function,
            context.endpoint_url,
        )
    return invoke_lambda(context.sessions, target.lab.origin, target.expected)


def audit_targets(
    context: Context, targets: Sequence[LabTarget], *, invoke: bool, show_progress: bool | None = None
) -> AuditRun:
    started = utc_now()
    outcomes = run_each(
        targets,
        lambda t: t.name,
        lambda t: audit_lab(context, t, invoke=invoke),
        context.config.audit.concurrency,
        "auditing",
        show_progress=show_progress,
    )
    labs = tuple(outcome.result for outcome in outcomes if outcome.result is not None)
    return AuditRun(started_at=started, finished_at=utc_now(), labs=labs)
