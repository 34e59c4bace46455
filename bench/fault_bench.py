"""A fault is never drift (issue 22, item 1): audits of a class through a proxy that fails a share of the
requests, against the same class's fault-free audit.

    python -m bench.fault_bench [--labs 24] [--concurrency 8] [--seed 1] [--quick-backoff]

A class of `--labs` labs on a moto server, a third of them drifted in ways that give each verdict (the
destination role's trust opened to "*": drifted; its inline policy deleted: broken; the function's
timeout changed: drifted). The fault-free audit, through the proxy without faults, is the reference.
Then the class is audited again through bench/latency_proxy.py failing 20% and 40% of the requests,
with and without the function's run (the local stand-in, whose own requests go through the proxy
too), and 60% without it. The faults: half throttling in each protocol's own form (query XML
`Throttling`, Lambda's REST-JSON 429 `TooManyRequestsException`, S3's 503 `SlowDown`, JSON
`ThrottlingException`), a quarter HTTP 503, a quarter connections reset.

Each run prints: wrong verdicts (a lab neither exactly as in the reference, verdict and findings, nor
`error`: must be 0), errors (labs `error`: none at 20% without the run), retries (botocore's, the
labs' own, the function's runs again and the function's own), and its requests against the
reference's (every request the proxy saw, the function's included). Each run is a fresh context, as
`auditor audit` is: its credentials are fetched through the faults too. Exits 1 if a run has a wrong
verdict, or an error at 20% without the run.

botocore's backoff is real (up to seconds a retry), so the runs at 40% and 60% take a while;
`--quick-backoff` waits 5 ms instead, for a quick look (retries and verdicts as such).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.aws.local_lambda import LocalLambda
from auditor.common.logs import configure_logging
from auditor.domain.config import LabConfig
from auditor.domain.model import AuditRun, LabAudit, Verdict
from auditor.domain.spec import DESTINATION_POLICY, DESTINATION_ROLE, FUNCTION
from bench.common import classroom, config, fake_credentials, moto_server, timed
from bench.latency_proxy import Faults, LatencyProxy
from provisioner.provision import provision_targets

# (share of requests failed, with the function's run)
RUNS = ((0.2, False), (0.2, True), (0.4, False), (0.4, True), (0.6, False))
WILDCARD_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


def faults_at(rate: float, seed: int) -> Faults:
    """`rate` of the requests failed: half throttled, a quarter 503, a quarter reset."""
    return Faults(throttle=rate / 2, server_error=rate / 4, reset=rate / 4, server_status=503, seed=seed)


# ------------------------------------------------------------------------------------------- the class


def open_trust(context: Context, lab: LabConfig) -> None:
    context.sessions.client(lab.destination, "iam").update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=WILDCARD_TRUST
    )


def delete_destination_policy(context: Context, lab: LabConfig) -> None:
    context.sessions.client(lab.destination, "iam").delete_role_policy(
        RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY
    )


def change_timeout(context: Context, lab: LabConfig) -> None:
    context.sessions.client(lab.origin, "lambda").update_function_configuration(
        FunctionName=FUNCTION, Timeout=25
    )


DRIFTS = (open_trust, delete_destination_policy, change_timeout)


def build_class(endpoint: str, labs: tuple[LabConfig, ...]) -> None:
    """The class provisioned, and every third lab drifted (each kind of drift in turn)."""
    with open_context(config(labs, endpoint, 8)) as context:
        failed = [o.error for o in provision_targets(context, context.targets(), dry_run=False) if not o.ok]
        assert not failed, failed
        for number, lab in enumerate(labs[::3]):
            DRIFTS[number % len(DRIFTS)](context, lab)


# ------------------------------------------------------------------------------------------- audits


@dataclass(frozen=True)
class Outcome:
    """One audit of the class through the proxy."""

    labs: dict[str, LabAudit]
    requests: int  # every request the proxy saw, the function's own included
    retries: dict[str, int]
    seconds: float
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return sorted(name for name, lab in self.labs.items() if lab.verdict is Verdict.ERROR)


def as_judged(lab: LabAudit) -> tuple[Any, ...]:
    """What must be the same as in the reference: the verdict and every finding."""
    findings = sorted(
        (f.check, f.resource, f.status.value, f.effect.value, f.severity.value, f.message)
        for f in lab.findings
    )
    return lab.verdict.value, tuple(findings)


def wrong_verdicts(reference: Outcome, outcome: Outcome) -> dict[str, str]:
    """Labs neither exactly as in the reference nor `error`, with what they were judged."""
    return {
        name: f"{lab.verdict.value} (reference: {reference.labs[name].verdict.value})"
        for name, lab in outcome.labs.items()
        if lab.verdict is not Verdict.ERROR and as_judged(lab) != as_judged(reference.labs[name])
    }


@contextmanager
def audit_context(
    proxy: LatencyProxy, labs: tuple[LabConfig, ...], concurrency: int, invoke: bool
) -> Iterator[Context]:
    options = {"invoke_via": "local"} if invoke else {}
    local_lambda = LocalLambda() if invoke else None
    with open_context(config(labs, proxy.url, concurrency, **options), local_lambda=local_lambda) as context:
        if invoke:
            context.local_lambda.start()  # once a process, as `auditor audit` or the daemon
        yield context


def audit_through(
    proxy: LatencyProxy, labs: tuple[LabConfig, ...], concurrency: int, invoke: bool, faults: Faults
) -> Outcome:
    """A fresh audit of the class (as `auditor audit` runs) through the proxy with `faults`."""
    with audit_context(proxy, labs, concurrency, invoke) as context:
        proxy.set_faults(faults)
        proxy.reset_stats()
        run: AuditRun
        run, seconds = timed(lambda: audit_targets(context, context.targets(), invoke=invoke))
        stats = proxy.snapshot()
        proxy.set_faults(Faults())
        return Outcome(
            {lab.lab: lab for lab in run.labs},
            stats["requests"],
            context.sessions.retries.snapshot(),
            seconds,
            stats["faults"],
        )


@dataclass(frozen=True)
class Row:
    rate: float
    invoke: bool
    wrong: dict[str, str]
    outcome: Outcome
    reference: Outcome

    @property
    def failed(self) -> bool:
        return bool(self.wrong) or (self.rate <= 0.2 and not self.invoke and bool(self.outcome.errors))

    def line(self) -> str:
        outcome, reference = self.outcome, self.reference
        run = "with the run   " if self.invoke else "without the run"
        retries = outcome.retries
        by_whom = ", ".join(f"{kind} {count}" for kind, count in sorted(retries.items())) or "none"
        return (
            f"{self.rate:4.0%} failed, {run}: wrong verdicts {len(self.wrong)}, errors {len(outcome.errors)}"
            f"/{len(outcome.labs)}, retries {sum(retries.values())} ({by_whom}), "
            f"requests {outcome.requests / reference.requests:.2f}x the fault-free run's, "
            f"{outcome.seconds:.1f} s"
        )


def fault_runs(
    proxy: LatencyProxy,
    labs: tuple[LabConfig, ...],
    concurrency: int,
    seed: int,
    runs: Sequence[tuple[float, bool]] = RUNS,
    report: Any = print,
) -> list[Row]:
    """The references (fault-free, with and without the run), then each faulty run against its own."""
    references = {
        invoke: audit_through(proxy, labs, concurrency, invoke, Faults())
        for invoke in sorted({invoke for _, invoke in runs})
    }
    for invoke, reference in references.items():
        verdicts = sorted(lab.verdict.value for lab in reference.labs.values())
        report(
            f"fault-free, {'with' if invoke else 'without'} the run: {reference.requests / len(labs):.1f} "
            f"requests a lab, verdicts {dict((v, verdicts.count(v)) for v in sorted(set(verdicts)))}"
        )
        assert not reference.errors, f"the fault-free audit has errors: {reference.errors}"
    rows = []
    for number, (rate, invoke) in enumerate(runs):
        outcome = audit_through(proxy, labs, concurrency, invoke, faults_at(rate, seed + number))
        row = Row(rate, invoke, wrong_verdicts(references[invoke], outcome), outcome, references[invoke])
        report(row.line())
        for name, judged in sorted(row.wrong.items()):
            report(f"  WRONG {name}: {judged}")
        for name in outcome.errors[:3]:
            report(f"  error {name}: {outcome.labs[name].error}")
        rows.append(row)
    return rows


def quick_backoff() -> None:
    """botocore's backoff (and so the labs' own) waits 5 ms instead of up to seconds."""
    from botocore.retries.standard import ExponentialBackoff

    ExponentialBackoff.delay_amount = lambda self, context: 0.005


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick-backoff", action="store_true", help="5 ms backoff: a quick look")
    args = parser.parse_args()
    fake_credentials()
    configure_logging("error")
    if args.quick_backoff:
        quick_backoff()
    labs = classroom(args.labs)
    print(
        f"{args.labs} labs ({len(labs[::3])} drifted), concurrency {args.concurrency}; faults: half "
        "throttling (each protocol's own), a quarter 503, a quarter connections reset"
    )
    with moto_server() as endpoint, LatencyProxy(endpoint, delay=0.0) as proxy:
        build_class(endpoint, labs)
        rows = fault_runs(proxy, labs, args.concurrency, args.seed)
    wrong = sum(len(row.wrong) for row in rows)
    errors_at_20 = sum(len(row.outcome.errors) for row in rows if row.rate <= 0.2 and not row.invoke)
    print(f"wrong verdicts at every rate: {wrong}; errors at 20% without the run: {errors_at_20}")
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
