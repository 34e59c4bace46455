"""Audit labs: collect, invoke, judge. One lab's failure is that lab's `error`, never the run's end."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from auditor.clock import iso, utc_now
from auditor.collect import ActualFunction, collect_lab
from auditor.compare import judge_lab
from auditor.fleet import LAB_FAULTS, describe_fault, run_each
from auditor.invoke import invoke_lambda, invoke_local
from auditor.model import AuditRun, InvokeResult, LabAudit, Verdict
from auditor.runtime import Runtime
from provisioner.apply import LabTarget
from provisioner.package import packaged

log = structlog.get_logger()


def invoke_mode(runtime: Runtime) -> str:
    mode = runtime.config.audit.invoke_via
    if mode == "auto":
        return "local" if runtime.endpoint_url else "lambda"
    return mode


def audit_lab(runtime: Runtime, target: LabTarget, *, invoke: bool) -> LabAudit:
    started = utc_now()
    calls_before = runtime.sessions.calls_in_this_thread()
    lab, expected = target.lab, target.expected

    def result(verdict: Verdict, **fields: object) -> LabAudit:
        audit = LabAudit(
            lab=lab.name,
            origin_account=lab.origin.account_id,
            destination_account=lab.destination.account_id,
            verdict=verdict,
            started_at=iso(started),
            finished_at=iso(utc_now()),
            requests=runtime.sessions.calls_in_this_thread() - calls_before,
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
        for access in (lab.origin, lab.destination):
            runtime.sessions.verify(access)
        actual = collect_lab(runtime.sessions, expected, lab.origin, lab.destination)
        invoked = run_invoke(runtime, target, actual.function) if invoke else None
        judgement = judge_lab(expected, actual, packaged()[1], started.date(), invoked)
    except LAB_FAULTS as error:
        return result(Verdict.ERROR, error=describe_fault(error))
    return result(judgement.verdict, findings=judgement.findings, invoke=invoked)


def run_invoke(runtime: Runtime, target: LabTarget, function: ActualFunction) -> InvokeResult:
    if not function.exists:
        return InvokeResult(False, "function_missing", "the function does not exist")
    if invoke_mode(runtime) == "local":
        return invoke_local(
            runtime.local_lambda,
            runtime.sessions,
            target.lab.origin,
            target.expected,
            function,
            runtime.endpoint_url,
        )
    return invoke_lambda(runtime.sessions, target.lab.origin, target.expected)


def audit_targets(
    runtime: Runtime, targets: Sequence[LabTarget], *, invoke: bool, show_progress: bool | None = None
) -> AuditRun:
    started = utc_now()
    outcomes = run_each(
        targets,
        lambda t: t.name,
        lambda t: audit_lab(runtime, t, invoke=invoke),
        runtime.config.audit.concurrency,
        "auditing",
        show_progress=show_progress,
    )
    labs = tuple(outcome.result for outcome in outcomes if outcome.result is not None)
    return AuditRun(started_at=iso(started), finished_at=iso(utc_now()), labs=labs)
