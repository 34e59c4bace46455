"""A fault is never drift, end to end: audits through bench/latency_proxy.py in front of a moto server,
with faults in the auditor's own requests and in the function's run (the local stand-in, whose requests
go through the proxy too). A lab is as in the fault-free audit, or `error` with a sentence that names the
call and the fault; never `broken` for AWS's fault, and a real denial is still `broken`.

botocore's backoff (and so the labs' own, which is botocore's) waits 5 ms here, not seconds.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest
from botocore.retries.standard import ExponentialBackoff

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.aws.invoke import MAX_RUNS
from auditor.aws.local_lambda import LocalLambda
from auditor.domain.config import LabConfig
from auditor.domain.model import LabAudit, Verdict
from bench.common import classroom, config
from bench.fault_bench import RUNS, build_class, fault_runs
from bench.latency_proxy import Faults, LatencyProxy

pytestmark = pytest.mark.server

IN_THE_FUNCTION = "exec-env/AWS_Lambda"  # what only the function's own requests carry in their User-Agent


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.005)


@pytest.fixture(scope="module")
def labs(moto_server_url: str) -> tuple[LabConfig, ...]:
    """Nine labs of accounts of their own (every third drifted: trust open to "*", the destination's
    inline policy deleted, the function's timeout changed), built once for the module."""
    request = urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    built = classroom(9, first=701)
    build_class(moto_server_url, built)
    return built


@pytest.fixture
def proxy(moto_server_url: str) -> Iterator[LatencyProxy]:
    with LatencyProxy(moto_server_url, delay=0.0) as running:
        yield running


def audited_with_the_run(proxy: LatencyProxy, lab: LabConfig) -> tuple[LabAudit, Context]:
    with open_context(
        config((lab,), proxy.url, 1, invoke_via="local"), local_lambda=LocalLambda()
    ) as context:
        (audit,) = audit_targets(context, context.targets(), invoke=True).labs
    return audit, context


def test_the_fault_benchmark_has_no_wrong_verdict_at_any_rate(
    labs: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    rows = fault_runs(proxy, labs, concurrency=4, seed=3, runs=RUNS, report=lambda line: None)
    assert {(row.rate, row.invoke): row.wrong for row in rows} == {run: {} for run in RUNS}
    for row in rows:
        assert sum(row.outcome.faults.values()) > 0 and sum(row.outcome.retries.values()) > 0, row.line()
    (at_20_without_the_run,) = [row for row in rows if (row.rate, row.invoke) == (0.2, False)]
    assert at_20_without_the_run.outcome.errors == []
    assert {lab.verdict for lab in rows[0].reference.labs.values()} == {
        Verdict.CONFORMANT,
        Verdict.DRIFTED,
        Verdict.BROKEN,
    }


def test_throttling_in_the_functions_run_is_the_labs_error_not_broken(
    labs: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    proxy.set_faults(Faults(throttle=1.0, services=("sts",), user_agent=IN_THE_FUNCTION))
    audit, context = audited_with_the_run(proxy, labs[1])
    assert (audit.verdict, audit.findings) == (Verdict.ERROR, ())
    assert audit.error == (
        f"AWS throttled sts:AssumeRole in the function's run {3 * MAX_RUNS} times, over {MAX_RUNS} runs"
        " (Throttling: Rate exceeded)"
    )
    assert context.sessions.retries.snapshot()["run"] == MAX_RUNS - 1
    assert proxy.snapshot()["faults"] == {
        "throttle": 3 * MAX_RUNS
    }  # the function's standard mode: 3 attempts


def test_a_reset_connection_in_the_functions_run_is_the_labs_error_not_broken(
    labs: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    proxy.set_faults(Faults(reset=1.0, services=("s3",), user_agent=IN_THE_FUNCTION))
    audit, _ = audited_with_the_run(proxy, labs[2])
    assert (audit.verdict, audit.findings) == (Verdict.ERROR, ())
    assert audit.error is not None
    assert audit.error.startswith(
        f"the connection was reset during s3:ListBuckets in the function's run at least {MAX_RUNS} times,"
        f" over {MAX_RUNS} runs (ConnectionClosedError: "
    ), audit.error


def test_a_run_that_recovers_within_the_budget_leaves_the_lab_as_it_is(
    labs: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    proxy.set_faults(Faults(server_error=0.6, server_status=503, user_agent=IN_THE_FUNCTION, seed=4))
    audit, context = audited_with_the_run(proxy, labs[1])
    assert audit.verdict is Verdict.CONFORMANT, audit.error
    assert audit.invoke is not None and audit.invoke.ok
    retries = context.sessions.retries.snapshot()
    assert retries.get("function", 0) + retries.get("run", 0) > 0, retries


def test_a_real_denial_in_the_functions_run_is_still_broken(
    labs: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    proxy.set_faults(Faults(deny=1.0, services=("sts",), user_agent=IN_THE_FUNCTION))
    audit, context = audited_with_the_run(proxy, labs[1])
    assert audit.verdict is Verdict.BROKEN
    assert audit.invoke is not None and audit.invoke.cause == "assume_denied"
    assert [f.message for f in audit.findings if f.check == "invoke"] == [
        "invoke failed (assume denied): assume_role: AccessDenied: User is not authorized to perform this action"
    ]
    assert "run" not in context.sessions.retries.snapshot()  # a denial is not run again


def test_the_auditors_own_requests_are_retried_past_botocores_attempts_within_the_labs_budget(
    labs: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    proxy.set_faults(Faults(throttle=0.3, server_error=0.1, reset=0.1, seed=9))
    audit_config = config(labs, proxy.url, 4)
    audit_config = replace(audit_config, aws=replace(audit_config.aws, max_attempts=1))
    with open_context(audit_config) as context:  # no botocore retries: only the lab's own
        run = audit_targets(context, context.targets(), invoke=False)
        retries = context.sessions.retries.snapshot()
    proxy.set_faults(Faults())
    with open_context(config(labs, proxy.url, 4)) as context:
        reference = audit_targets(context, context.targets(), invoke=False)
    assert [(lab.lab, lab.verdict, lab.findings) for lab in run.labs] == [
        (lab.lab, lab.verdict, lab.findings) for lab in reference.labs
    ]
    assert retries.get("lab", 0) > 10 and "botocore" not in retries, retries


def test_a_call_that_aws_keeps_throttling_names_the_call_and_account(
    labs: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    with open_context(config(labs[:2], proxy.url, 2)) as context:
        audit_targets(context, context.targets(), invoke=False)  # credentials in hand
        proxy.set_faults(Faults(throttle=1.0, services=("iam",)))
        run = audit_targets(context, context.targets(), invoke=False)
    for lab in run.labs:
        assert (lab.verdict, lab.findings) == (Verdict.ERROR, ()), lab
        assert re.fullmatch(
            r"AWS throttled iam:\w+ in account \d{12} \d+ times \(Throttling: Rate exceeded\)",
            lab.error or "",
        ), lab.error
