"""Audit 50 labs on a moto server: requests a lab, and the speed-up of the configured concurrency.

    python bench/audit_bench.py [--labs 50] [--concurrency 16]

Both runs happen in the same process against the same server, so the ratio is fair; the moto server
answers in microseconds, so the speed-up here is bounded by CPU (see latency_bench.py for a run
with real-world latency).
"""

from __future__ import annotations

import argparse

from auditor.app.audit import audit_targets
from auditor.app.context import open_context
from auditor.common.logs import configure_logging
from bench.common import classroom, config, fake_credentials, moto_server, timed
from provisioner.provision import provision_targets


def audit_once(endpoint: str, labs: int, concurrency: int, invoke: bool) -> tuple[float, float]:
    context = open_context(config(classroom(labs), endpoint, concurrency))
    targets = context.targets()
    audit_targets(context, targets[:1], invoke=False)  # warm: credentials, models
    before = context.sessions.total_calls()
    run, seconds = timed(lambda: audit_targets(context, targets, invoke=invoke))
    assert all(lab.verdict.value == "conformant" for lab in run.labs), [lab.verdict for lab in run.labs]
    return (context.sessions.total_calls() - before) / labs, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    fake_credentials()
    configure_logging("warning")
    with moto_server() as endpoint:
        context = open_context(config(classroom(args.labs), endpoint, args.concurrency))
        assert all(o.ok for o in provision_targets(context, context.targets(), dry_run=False))
        for invoke in (False, True):
            requests, parallel = audit_once(endpoint, args.labs, args.concurrency, invoke)
            _, serial = audit_once(endpoint, args.labs, 1, invoke)
            label = "with local invoke" if invoke else "without invoke"
            print(
                f"audit {args.labs} labs {label}: {requests:.1f} requests a lab (first audit of a fresh process)"
            )
            print(f"  speed-up of concurrency {args.concurrency} over 1: {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
