"""Issue 15's cheap clients, before and after in one run, against its targets for a class of 200 pairs.

    python -m bench.clients_bench [--labs 200] [--delay 0.1] [--concurrency 64] [--skip provision]

"before" is the accounts module as it was (bench/legacy_accounts.py: a botocore session per account,
an STS client per credential fetch, one lab's requests one after another); "after" is this tree. Each
audit is a fresh process (as `auditor audit` is), on the same class, one after the other:

- clients alone: CPU and memory to make the clients of an account (iam, lambda, s3, logs, sts);
- a fresh audit of the class on the moto server: CPU a lab (the audit, and the whole process with its
  imports), peak resident memory (targets: at most 25 ms a lab, 250 MB); the same with moto's answers
  replayed by the proxy (as AWS would answer, on its own CPU);
- the same through bench/latency_proxy.py adding `--delay` a request, at `--concurrency`: wall time
  against the ideal, requests x delay / concurrency (target: at most 1.5x);
- a fresh provisioning of a class as large again through the proxy, against its ideal: moto answering
  (every answer recorded), then the same requests answered from the record in the order they came
  (target: at most 2x, replayed).

Each line also says where the time went: this process's CPU, the moto server's and the proxy's (all on
the same 2 cores: the emulator's CPU is time AWS would spend on its own machines).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from dataclasses import dataclass
from typing import Any

from auditor.aws.accounts import AccountSessions, client_settings
from auditor.common.logs import configure_logging
from auditor.domain.config import AccountAccess, AwsSettings
from bench.common import classroom, config, fake_credentials
from bench.latency_bench import Stage, process_cpu, proxy_stats, stage, started
from bench.latency_proxy import REWIND_PATH

SERVICES = ("iam", "lambda", "s3", "logs", "sts")
CPU_TARGET_MS, MEMORY_TARGET_MB, LATENCY_TARGET, PROVISION_TARGET = 25.0, 250.0, 1.5, 2.0
# Issue 15 measured "before" (a fresh audit of 200 labs on a moto server, no invoke) at 77 ms a lab.
ISSUE_BEFORE_MS = 77.0
VARIANTS = ("before", "after")
# "after" without one of its parts, to show what each part is worth in the same run.
WITHOUT = {
    "after, its threads on every CPU": ([], {"AUDITOR_ONE_CPU": "0"}),
    "after, through urllib3": (["--urllib3"], {}),
}


# ------------------------------------------------------------------------------------------ the child


def child(args: argparse.Namespace) -> None:
    """One fresh `auditor audit` of the class, as a process of its own; prints what it measured."""
    if args.legacy:
        from bench.legacy_accounts import use_legacy_sessions

        use_legacy_sessions()
    else:
        from auditor.common.process import tune_process

        tune_process()  # as the CLI's entry point does (the "before" tree had no such settings)
    if args.urllib3:
        import auditor.aws.accounts

        auditor.aws.accounts.curl_session_for = lambda *_: None  # botocore's own session, as before
    fake_credentials()
    configure_logging("warning")
    if args.provision:
        provision_child(args)
        return
    from auditor.app.audit import audit_targets
    from auditor.app.context import open_context

    context = open_context(config(classroom(args.labs), args.endpoint, args.concurrency, invoke=False))
    work_cpu, wall = time.process_time(), time.perf_counter()
    run = audit_targets(context, context.targets(), invoke=False)
    wall, work_cpu = time.perf_counter() - wall, time.process_time() - work_cpu
    # On a loaded machine the judge may run out of its time (a "cannot prove" finding): counted, not fatal.
    undecided = [lab.lab for lab in run.labs if any("decided in time" in f.message for f in lab.findings)]
    bad = [
        (lab.lab, lab.verdict.value, lab.error, [finding.message for finding in lab.findings])
        for lab in run.labs
        if lab.verdict.value != "conformant" and lab.lab not in undecided
    ]
    assert not bad, bad[:3]
    measured = measured_in_child(work_cpu, wall, context.sessions.total_calls(), len(undecided))
    if args.again:
        again = time.perf_counter()
        audit_targets(context, context.targets(), invoke=False)
        measured["again_wall"] = time.perf_counter() - again  # clients made, roles assumed: latency alone
    print(json.dumps(measured))


def provision_child(args: argparse.Namespace) -> None:
    """One fresh `auditor provision` of a class of its own (labs numbered after the audited class)."""
    from auditor.app.context import open_context
    from provisioner.provision import provision_targets

    labs = classroom(args.labs, args.labs + 1)
    with open_context(config(labs, args.endpoint, args.concurrency, invoke=False)) as context:
        cpu, wall = time.process_time(), time.perf_counter()
        outcomes = provision_targets(context, context.targets(), dry_run=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes if not o.ok][:3]
        print(json.dumps(measured_in_child(cpu, wall, context.sessions.total_calls(), undecided=0)))


def measured_in_child(work_cpu: float, wall: float, requests: int, undecided: int) -> dict[str, Any]:
    """What a child prints of its run (a FreshRun's own fields)."""
    return {
        "work_cpu": work_cpu,
        "process_cpu": process_cpu_since_exec(),
        "wall": wall,
        "peak_mb": peak_resident_mb(),
        "undecided": undecided,
        "requests": requests,
    }


def process_cpu_since_exec() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_resident_mb() -> float:
    """This process's own peak (VmHWM: ru_maxrss would carry the parent's over fork and exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@dataclass(frozen=True)
class FreshRun:
    """What a fresh process measured of its audit (or provisioning) and what the proxy and moto saw."""

    variant: str
    labs: int
    work_cpu: float
    process_cpu: float
    wall: float
    peak_mb: float
    requests: int
    undecided: int
    proxied: int
    moto_cpu: float
    proxy_cpu: float
    again_wall: float = 0.0
    replayed: int = 0


def fresh_run(
    where: Stage,
    endpoint: str,
    labs: int,
    concurrency: int,
    variant: str,
    *,
    again: bool = False,
    provision: tuple[str, int] | None = None,
) -> FreshRun:
    """A fresh process's audit of the class; with `provision` (the proxy's URL and pid), its
    provisioning of a class of its own through that proxy."""
    command = [sys.executable, "-m", "bench.clients_bench", "--child", "--endpoint", endpoint]
    command += ["--again"] if again else []
    command += ["--provision"] if provision else []
    command += ["--labs", str(labs), "--concurrency", str(concurrency)]
    command += ["--legacy"] if variant == "before" else []
    flags, environment = WITHOUT.get(variant, ([], {}))
    command += flags
    proxy_url, proxy_pid = provision or (
        (where.replay, where.replay_pid) if endpoint == where.replay else (where.proxy, where.proxy_pid)
    )
    before = proxy_stats(proxy_url)
    moto, proxy = process_cpu(where.moto_pid), process_cpu(proxy_pid)
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, **environment}
    )
    if done.returncode != 0:
        what = "provisioning" if provision else "audit"
        raise RuntimeError(f"the {variant} {what} failed: {done.stderr[-2000:]}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    after = proxy_stats(proxy_url)
    return FreshRun(
        variant,
        labs,
        proxied=after["requests"] - before["requests"],
        moto_cpu=process_cpu(where.moto_pid) - moto,
        proxy_cpu=process_cpu(proxy_pid) - proxy,
        replayed=after["replayed"] - before["replayed"],
        **measured,
    )


# ------------------------------------------------------------------------------------------ the parts


def client_cost(endpoint: str, accounts: int) -> None:
    """CPU and memory to make an account's clients, the old way and this one (no requests)."""
    from bench.legacy_accounts import _exported

    legacy = _exported()
    ways = {
        "before": (
            legacy.AccountSessions,
            legacy.client_settings(AwsSettings(endpoint_url=endpoint), "us-east-1", 16, endpoint),
        ),
        "after": (
            AccountSessions,
            client_settings(AwsSettings(endpoint_url=endpoint), "us-east-1", 16, endpoint),
        ),
    }

    def add(sessions: Any, first: int) -> None:
        for number in range(first, first + accounts):
            access = AccountAccess(f"{number:012d}", role_arn=f"arn:aws:iam::{number:012d}:role/Access")
            for service in SERVICES:
                sessions.client(access, service)

    cpu, memory = {}, {}
    for variant in VARIANTS:
        cls, settings = ways[variant]
        sessions = cls(settings)
        add(sessions, 1)  # the models parsed, the caches warm
        begun = time.process_time()
        add(sessions, 10_000)
        cpu[variant] = (time.process_time() - begun) / accounts
        tracemalloc.start()
        add(sessions, 20_000)
        memory[variant] = tracemalloc.get_traced_memory()[0] / accounts
        tracemalloc.stop()
    print(f"clients of {accounts} accounts x {len(SERVICES)} services ({', '.join(SERVICES)}), no requests")
    print(
        f"  CPU an account: {cpu['before'] * 1000:.1f} ms before -> {cpu['after'] * 1000:.2f} ms after "
        f"({cpu['before'] / cpu['after']:.2f}x less); Python memory an account: {memory['before'] / 2**20:.2f} MB -> "
        f"{memory['after'] / 2**10:.1f} KB (the daemon keeps at most the LRU's bound of accounts)"
    )


def fresh_audits(where: Stage, labs: int, repeat: int) -> None:
    """`repeat` times each, alternating, so that the machine's changes of speed fall on every one:
    "before" and "after" on moto live, "after" with moto's answers replayed; the medians are the
    verdicts."""
    fresh_run(where, where.replay, labs, 16, "after")  # the record
    befores, lives, replays = [], [], []
    for _ in range(repeat):
        befores.append(fresh_run(where, where.endpoint, labs, 16, "before"))
        lives.append(fresh_run(where, where.endpoint, labs, 16, "after"))
        replays.append(fresh_run(where, where.replay, labs, 16, "after"))
    before, after, replayed = median_run(befores), median_run(lives), median_run(replays)
    print(f"a fresh `auditor audit` of {labs} labs on the moto server, no invoke (concurrency 16)")
    for run, runs in ((before, befores), (after, lives)):
        print(
            f"  {run.variant}: {cpu_a_lab(runs, labs)} CPU a lab for the audit "
            f"({run.process_cpu / labs * 1000:.1f} ms with the process's imports), peak {run.peak_mb:.0f} MB, "
            f"{run.requests / labs:.1f} requests a lab, {run.wall:.1f} s; moto server {run.moto_cpu:.1f} s CPU"
            + undecided(run)
        )
    print(
        f"  after/before: CPU a lab {after.work_cpu / before.work_cpu:.2f}x, peak memory "
        f"{after.peak_mb / before.peak_mb:.2f}x, wall {after.wall / before.wall:.2f}x"
    )
    print(
        f"  after, moto's answers replayed: {cpu_a_lab(replays, labs)} CPU a lab for the audit "
        f"({replayed.process_cpu / labs * 1000:.1f} ms with the process's imports), peak {replayed.peak_mb:.0f} MB"
        + undecided(replayed)
    )
    for run, answers in ((after, "moto live"), (replayed, "answers replayed")):
        cpu_ms = run.work_cpu / labs * 1000
        verdict(
            f"<= {CPU_TARGET_MS:.0f} ms CPU a lab ({answers}, median of {repeat})",
            cpu_ms <= CPU_TARGET_MS,
            f"{cpu_ms:.1f} ms",
        )
    # The target as the issue set it, against its own measurement of "before": a ratio, which the
    # machine's changes of speed (a third from hour to hour here) leave alone.
    share, measured = CPU_TARGET_MS / ISSUE_BEFORE_MS, after.work_cpu / before.work_cpu
    verdict(
        f'<= {share:.2f}x the CPU a lab of "before" in the same run (moto live; the issue\'s '
        f"{CPU_TARGET_MS:.0f} ms of its {ISSUE_BEFORE_MS:.0f} ms)",
        measured <= share,
        f"{measured:.2f}x",
    )
    peak = max(run.peak_mb for run in lives)
    verdict(
        f"<= {MEMORY_TARGET_MB:.0f} MB peak (the highest of {repeat})",
        peak <= MEMORY_TARGET_MB,
        f"{peak:.0f} MB",
    )


def median_run(runs: list[FreshRun]) -> FreshRun:
    return sorted(runs, key=lambda run: run.work_cpu)[len(runs) // 2]


def cpu_a_lab(runs: list[FreshRun], labs: int) -> str:
    """The median's milliseconds, and the range when there are several runs."""
    median = median_run(runs).work_cpu / labs * 1000
    if len(runs) == 1:
        return f"{median:.1f} ms"
    each = [run.work_cpu / labs * 1000 for run in runs]
    return f"{median:.1f} ms (median; {min(each):.1f} to {max(each):.1f})"


def idle_penalty() -> None:
    """The machine's own share of "CPU a lab": a fixed piece of Python work, the same in every pass,
    costs more CPU time when the process has waited before it (a virtual CPU that halts while its
    process waits comes back slower: caches, frequency). The audit waits on every request."""
    document = json.dumps({"rows": [list(range(50)) for _ in range(20)], "text": "x" * 1000})
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # on one CPU, as the auditor's threads are
    try:
        before, waited, after = (_work_cpu(document, wait) for wait in (0.0, 0.005, 0.0))
    finally:
        os.sched_setaffinity(0, allowed)
    awake = min(before, after)
    print(
        f"this machine: a fixed piece of Python work costs {awake * 1e6:.0f} us of CPU back to back, "
        f"{waited * 1e6:.0f} us after waiting 5 ms each time ({waited / awake:.2f}x): "
        "the waits of an audit on its requests cost CPU too"
    )


def _work_cpu(document: str, wait: float, rounds: int = 300) -> float:
    begun = time.process_time()
    for _ in range(rounds):
        for _ in range(30):
            json.loads(document)
        if wait:
            time.sleep(wait)
    return (time.process_time() - begun) / rounds


def latency_audits(where: Stage, labs: int, concurrency: int) -> None:
    """Through the proxy, moto answering every request; then through the replaying proxy, which
    answers the same audit's requests from a first pass's record, as AWS would, on its own CPU."""
    live = fresh_run(where, where.proxy, labs, concurrency, "after")
    fresh_run(where, where.replay, labs, concurrency, "after")  # the record
    runs = {
        variant: fresh_run(where, where.replay, labs, concurrency, variant)
        for variant in ("before", *WITHOUT, "after")
    }
    print(
        f"a fresh audit of {labs} labs through {where.delay * 1000:.0f} ms a request, concurrency {concurrency}"
    )
    ratio = latency_line(where, live, labs, concurrency, "after, moto answering")
    for run in runs.values():
        ratio = latency_line(where, run, labs, concurrency, f"{run.variant}, moto's answers replayed")
    verdict(f"<= {LATENCY_TARGET}x the ideal (replayed)", ratio <= LATENCY_TARGET, f"{ratio:.2f}x")


def latency_line(where: Stage, run: FreshRun, labs: int, concurrency: int, title: str) -> float:
    ideal = run.proxied * where.delay / min(concurrency, labs)
    print(
        f"  {title}: {run.wall:.1f} s, {run.wall / ideal:.2f}x the ideal ({ideal:.1f} s = {run.proxied} "
        f"requests x {where.delay * 1000:.0f} ms / {min(concurrency, labs)}); CPU: auditor "
        f"{run.process_cpu:.1f} s, moto {run.moto_cpu:.1f} s, proxy {run.proxy_cpu:.1f} s"
        + (f"; {run.replayed} of {run.proxied} answers replayed" if run.replayed else "")
        + undecided(run)
    )
    return run.wall / ideal


def one_lab(where: Stage) -> None:
    """One lab alone through the proxy, its second audit: its wall time in requests of latency (its
    critical path; a lab makes 11 requests once its roles are assumed)."""
    runs = {variant: fresh_run(where, where.proxy, 1, 1, variant, again=True) for variant in VARIANTS}
    print(
        f"one lab alone through {where.delay * 1000:.0f} ms a request, audited again (clients made, roles assumed)"
    )
    print(
        "  "
        + "; ".join(
            f"{run.variant}: {run.again_wall:.2f} s, {run.again_wall / where.delay:.1f} requests' latency"
            for run in runs.values()
        )
    )


def provisioning(where: Stage, labs: int, concurrency: int) -> None:
    """A fresh `auditor provision` of a new class through a proxy that records every answer (moto
    answering live); then, the proxy rewound, the same provisioning again in another fresh process,
    each request answered from the record in the order it came (AWS's CPU off this machine)."""
    proxy = [sys.executable, "-m", "bench.latency_proxy", "--upstream", where.endpoint]
    proxy += ["--delay", str(where.delay), "--replay-sequence"]
    with started(proxy, "Listening on ") as (process, url):
        live = fresh_run(where, url, labs, concurrency, "after", provision=(url, process.pid))
        urllib.request.urlopen(urllib.request.Request(f"{url}{REWIND_PATH}", data=b"", method="POST"))
        replayed = fresh_run(where, url, labs, concurrency, "after", provision=(url, process.pid))
        missed = proxy_stats(url)["missed"]
    print(
        f"a fresh `auditor provision` of {labs} new labs through {where.delay * 1000:.0f} ms a request, "
        f"concurrency {concurrency}"
    )
    latency_line(where, live, labs, concurrency, "moto answering (the record)")
    ratio = latency_line(
        where, replayed, labs, concurrency, "the same requests, moto's answers replayed in order"
    )
    assert missed == 0, f"{missed} requests of the replayed provisioning were not in the record"
    verdict(f"<= {PROVISION_TARGET:.0f}x the ideal (replayed)", ratio <= PROVISION_TARGET, f"{ratio:.2f}x")


def undecided(run: FreshRun) -> str:
    return (
        f"; {run.undecided} labs judged undecided (the policy time limit, on a loaded CPU)"
        if run.undecided
        else ""
    )


def verdict(target: str, met: bool, measured: str) -> None:
    print(f"  target {target}: {'met' if met else 'MISSED'} ({measured})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--accounts", type=int, default=40, help="accounts in the clients-alone part")
    parser.add_argument("--repeat", type=int, default=3, help="fresh audits of each way, the median kept")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["clients", "fresh", "latency", "provision"]
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--again", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--urllib3", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--provision", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    fake_credentials()
    configure_logging("warning")
    with stage(args.delay) as where:
        from auditor.app.context import open_context
        from provisioner.provision import provision_targets

        begun = time.perf_counter()
        with open_context(config(classroom(args.labs), where.endpoint, 16, invoke=False)) as context:
            outcomes = provision_targets(context, context.targets(), dry_run=False)
            assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes if not o.ok][:3]
        print(
            f"{args.labs} labs provisioned on the moto server in {time.perf_counter() - begun:.0f} s (not timed)"
        )
        if "clients" not in args.skip:
            client_cost(where.endpoint, args.accounts)
        if "fresh" not in args.skip:
            idle_penalty()
            fresh_audits(where, args.labs, args.repeat)
        if "latency" not in args.skip:
            one_lab(where)
            latency_audits(where, args.labs, args.concurrency)
        if "provision" not in args.skip:
            provisioning(where, args.labs, args.concurrency)


if __name__ == "__main__":
    main()
