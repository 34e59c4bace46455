"""Provision and audit a class through real-world latency: requests a lab, wall time against the ideal,
speed-up over concurrency 1, the cost of the local invoke with a fresh Python per run and with the
pre-forked local Lambda stand-in, and
the CPU cost of a fresh boto3 session per account against the shared-loader sessions.

    python -m bench.latency_bench [--labs 48] [--delay 0.1] [--concurrency 16] [--serial-labs 8]

A moto server answers in microseconds; AWS takes tens to hundreds of milliseconds a request. So every
request here goes through bench/latency_proxy.py (its own process), which adds `--delay` to each.
The ideal wall time of a run is requests x delay / workers: what perfect overlap would give, with no
CPU at all. The serial runs (concurrency 1) take `--serial-labs` labs, not all of them, so that the
whole benchmark finishes in a few minutes; speed-ups compare the time *a lab* (the serial audit of 48
labs at 100 ms x 12 requests alone is ~58 s: `--serial-labs 48` measures exactly that).

Targets (issue "Proof under load"), for an audit without the invoke: at most 12 requests a lab, wall
time within 1.5x of the ideal at concurrency 16, at least 10x faster than serial. Each run also shows
where the time went: the auditor's own CPU (one interpreter: the GIL lets it use one core at most),
the moto server's CPU (the emulator shares the machine), and the proxy's own overlap, measured alone.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.aws.accounts import AccountSessions, client_settings
from auditor.aws.local_lambda import LocalLambda
from auditor.common.logs import configure_logging
from auditor.domain.config import AccountAccess, AwsSettings, LabConfig
from auditor.domain.model import AuditRun
from auditor.domain.package import packaged
from auditor.policy import expand_action
from bench.common import classroom, config, fake_credentials
from provisioner.provision import provision_targets

SERVICES = ("iam", "lambda", "s3", "sts")
EXEC_ENV = "exec-env/AWS_Lambda_python"


# ------------------------------------------------------------------------------------------- the stage


@dataclass(frozen=True)
class Stage:
    endpoint: str  # the moto server itself
    moto_pid: int
    proxy: str  # the moto server behind the latency proxy
    delay: float
    proxy_pid: int = 0
    # The same, answering a request it forwarded before from the record (latency_proxy --replay).
    replay: str = ""
    replay_pid: int = 0


def process_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of a process (and, with children, of the children it has reaped), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = fields[11:15] if children else fields[11:13]
    return sum(int(value) for value in ticks) / os.sysconf("SC_CLK_TCK")


@contextmanager
def started(command: list[str], ready: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A helper process of the benchmark's; yields it and the URL it prints after `ready`."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    url = ""
    for line in process.stdout:
        if ready in line:
            url = line.split(ready, 1)[1].split()[0].rstrip("/")
            break
    if not url:
        process.kill()
        raise RuntimeError(f"{command[2]} did not start")
    # Keep reading what it prints (a line a request), so that its pipe never fills up; and throw it
    # away: stdout.read() would keep it all in memory, which grows with every request.
    threading.Thread(target=collections.deque, args=(process.stdout, 0), daemon=True).start()
    try:
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def stage(delay: float) -> Iterator[Stage]:
    """A moto server and, in front of it, the latency proxy: each in its own process, so that their
    threads never compete with ours for the GIL."""
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]
    with started(moto, "Running on ") as (server, endpoint):
        proxy = [sys.executable, "-m", "bench.latency_proxy", "--upstream", endpoint, "--delay", str(delay)]
        with (
            started([*proxy, "--record-user-agents"], "Listening on ") as (proxy_process, proxy_url),
            started([*proxy, "--replay"], "Listening on ") as (replay_process, replay_url),
        ):
            yield Stage(
                endpoint, server.pid, proxy_url, delay, proxy_process.pid, replay_url, replay_process.pid
            )


def proxy_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/__proxy__/stats", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def children_cpu(context: Context) -> float:
    """CPU of our reaped children, and of the zygote's children (which it reaps itself)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    zygote = context.local_lambda.zygote_pid
    return usage.ru_utime + usage.ru_stime + (process_cpu(zygote, children=True) if zygote else 0.0)


# ------------------------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measured:
    labs: int
    concurrency: int
    wall: float
    own_cpu: float  # this process: the part the GIL serialises
    cpu: float  # this process and its children (the local invoke's runs)
    moto_cpu: float
    requests: int  # made by the auditor (counted by AccountSessions)
    proxied: int  # seen by the proxy (the function's own requests included)

    @property
    def per_lab(self) -> float:
        return self.wall / self.labs

    @property
    def workers(self) -> int:
        return min(self.concurrency, self.labs)

    def ideal(self, delay: float) -> float:
        return self.proxied * delay / self.workers


def measure(
    where: Stage, context: Context, run: Callable[[], object], labs: int, concurrency: int
) -> tuple[Measured, object]:
    proxied, calls = proxy_stats(where.proxy)["requests"], context.sessions.total_calls()
    own, children, moto = time.process_time(), children_cpu(context), process_cpu(where.moto_pid)
    begun = time.perf_counter()
    result = run()
    wall = time.perf_counter() - begun
    own = time.process_time() - own
    measured = Measured(
        labs=labs,
        concurrency=concurrency,
        wall=wall,
        own_cpu=own,
        cpu=own + children_cpu(context) - children,
        moto_cpu=process_cpu(where.moto_pid) - moto,
        requests=context.sessions.total_calls() - calls,
        proxied=proxy_stats(where.proxy)["requests"] - proxied,
    )
    return measured, result


def report(title: str, parallel: Measured, serial: Measured, delay: float, *, target: bool = False) -> None:
    ideal = parallel.ideal(delay)
    speedup = serial.per_lab / parallel.per_lab
    by_function = (parallel.proxied - parallel.requests) / parallel.labs
    print(title)
    print(
        f"  {parallel.requests / parallel.labs:.1f} requests a lab by the auditor"
        + (f", {by_function:.1f} more by the function" if by_function > 0 else "")
        + f"; {parallel.cpu / parallel.labs * 1000:.0f} ms CPU a lab"
    )
    print(
        f"  concurrency {parallel.concurrency}, {parallel.labs} labs: {parallel.wall:.1f} s, "
        f"{parallel.wall / ideal:.2f}x the ideal ({ideal:.1f} s = {parallel.proxied} requests x "
        f"{delay * 1000:.0f} ms / {parallel.workers})"
    )
    print(f"  speed-up over concurrency 1 ({serial.labs} labs, {serial.per_lab:.2f} s a lab): {speedup:.1f}x")
    busy = parallel.own_cpu / parallel.wall
    print(
        f"  where the time went: the auditor's own CPU {parallel.own_cpu:.1f} s ({busy:.0%} of one core"
        f"{', GIL-bound' if busy > 0.6 else ''}), the moto server's {parallel.moto_cpu:.1f} s"
    )
    if target:
        verdicts = [
            ("<= 12 requests a lab", parallel.requests / parallel.labs <= 12),
            ("<= 1.5x the ideal", parallel.wall / ideal <= 1.5),
            (">= 10x serial", speedup >= 10),
        ]
        print("  targets: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in verdicts))


def conformant(run: object) -> None:
    assert isinstance(run, AuditRun)
    bad = {
        lab.lab: (lab.verdict.value, lab.error or (lab.invoke.cause if lab.invoke else ""))
        for lab in run.labs
        if lab.verdict.value != "conformant"
    }
    assert not bad, f"labs not conformant: {bad}"


def fresh_context(
    labs: Sequence[LabConfig], endpoint: str, concurrency: int, *, preforked: bool = True
) -> Context:
    return open_context(
        config(tuple(labs), endpoint, concurrency, invoke_via="local"),
        local_lambda=LocalLambda(preforked=preforked),
    )


def timed_audit(where: Stage, context: Context, labs: int, workers: int, *, invoke: bool) -> Measured:
    targets = context.targets()
    measured, run = measure(
        where,
        context,
        lambda: audit_targets(context, targets, invoke=invoke),
        labs,
        workers,
    )
    conformant(run)
    return measured


# ------------------------------------------------------------------------------------------- phases


def proxy_alone(where: Stage, workers: int, requests: int = 8) -> None:
    """The proxy without botocore: `workers` keep-alive connections at once, `requests` on each."""
    parts = urlsplit(where.proxy)
    connections = proxy_stats(where.proxy)["connections"]

    def client(_: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        for _request in range(requests):
            connection.request("GET", "/?Action=GetCallerIdentity&Version=2011-06-15")
            connection.getresponse().read()
        connection.close()

    begun = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(client, range(workers)))
    wall = time.perf_counter() - begun
    opened = proxy_stats(where.proxy)["connections"] - connections
    print(
        f"the proxy alone: {workers} clients x {requests} requests in {wall:.2f} s, "
        f"{wall / (requests * where.delay):.2f}x the ideal, on {opened} connections (keep-alive)"
    )


def audits(where: Stage, labs: int, serial_labs: int, concurrency: int) -> None:
    everyone = classroom(labs)
    first, again = [], []
    for workers, count in ((concurrency, labs), (1, serial_labs)):
        context = fresh_context(everyone[:count], where.proxy, workers)
        first.append(timed_audit(where, context, count, workers, invoke=False))
        again.append(timed_audit(where, context, count, workers, invoke=False))
    report(
        "audit without invoke, the first of a fresh context (as `auditor audit` runs)",
        first[0],
        first[1],
        where.delay,
        target=True,
    )
    report(
        "audit without invoke, again on the same context (as the daemon runs)",
        again[0],
        again[1],
        where.delay,
        target=True,
    )


def invoke_audits(where: Stage, labs: int, serial_labs: int, concurrency: int) -> None:
    everyone = classroom(labs)
    by_mode: dict[bool, list[Measured]] = {}
    for preforked in (False, True):
        by_mode[preforked] = []
        for workers, count in ((concurrency, labs), (1, serial_labs)):
            with fresh_context(everyone[:count], where.proxy, workers, preforked=preforked) as context:
                timed_audit(where, context, count, workers, invoke=False)  # sessions and credentials
                context.local_lambda.start()  # once per process, as in `auditor audit` or the daemon
                agents = exec_env_requests(where.proxy)
                by_mode[preforked].append(timed_audit(where, context, count, workers, invoke=True))
                by_function = exec_env_requests(where.proxy) - agents
                assert by_function == 2 * count, f"{by_function} requests carried {EXEC_ENV}, not 2 a lab"
        label = "the pre-forked stand-in (after)" if preforked else "a fresh Python per invoke (before)"
        report(f"audit with the local invoke, {label}, warm context", *by_mode[preforked], where.delay)
    (before, serial_before), (after, serial_after) = by_mode[False], by_mode[True]
    cpu_before = serial_before.cpu / serial_before.labs
    cpu_after = serial_after.cpu / serial_after.labs
    print("the local invoke, a fresh Python per invoke -> the pre-forked stand-in")
    print(
        f"  CPU an audit with invoke (the auditor and the function's process): {cpu_before * 1000:.0f} ms"
        f" -> {cpu_after * 1000:.0f} ms: {cpu_before / cpu_after:.1f}x less"
    )
    print(
        f"  wall at concurrency {before.concurrency}, {before.labs} labs: {before.wall:.1f} s -> "
        f"{after.wall:.1f} s: {before.wall / after.wall:.1f}x faster"
    )
    print(f"  both ways, the function's 2 requests a lab carried {EXEC_ENV}3.x in their User-Agent")


def exec_env_requests(proxy: str) -> int:
    agents: dict[str, int] = proxy_stats(proxy)["user_agents"]
    return sum(count for agent, count in agents.items() if EXEC_ENV in agent)


def provisioning(where: Stage, labs: int, serial_labs: int, concurrency: int) -> None:
    results = []
    for workers, count, first in ((concurrency, labs, 1), (1, serial_labs, labs + 1)):
        context = fresh_context(classroom(count, first), where.proxy, workers)
        measured, outcomes = measure(
            where,
            context,
            lambda context=context: provision_targets(context, context.targets(), dry_run=False),
            count,
            workers,
        )
        failed = [outcome.error for outcome in outcomes if not outcome.ok]  # type: ignore[attr-defined]
        assert not failed, failed
        results.append(measured)
    report("provision (new labs, fresh context)", results[0], results[1], where.delay)


def session_cost(endpoint: str, accounts: int) -> None:
    """CPU to make the clients of `accounts` accounts: a boto3.Session each, or AccountSessions."""
    settings = client_settings(AwsSettings(endpoint_url=endpoint), "us-east-1", 16, endpoint)
    ids = [f"9{n:011d}" for n in range(accounts)]

    def fresh_sessions() -> None:
        for _account in ids:
            session = boto3.Session(region_name="us-east-1")
            for service in SERVICES:
                session.client(service, endpoint_url=endpoint, config=settings.botocore_config())

    def shared_loader() -> None:
        sessions = AccountSessions(settings)
        for account in ids:
            for service in SERVICES:
                sessions.client(AccountAccess(account), service)

    fresh_sessions()  # imports and file caches, for both
    shared_loader()
    begun = time.process_time()
    fresh_sessions()
    fresh = time.process_time() - begun
    begun = time.process_time()
    shared_loader()
    shared = time.process_time() - begun
    print(f"clients of {accounts} accounts x {len(SERVICES)} services (CPU, no requests)")
    print(
        f"  a boto3.Session an account: {fresh * 1000 / accounts:.0f} ms an account; AccountSessions "
        f"(one shared loader): {shared * 1000 / accounts:.0f} ms an account: {fresh / shared:.1f}x less"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, default=48)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds a request (0.1)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serial-labs", type=int, default=8, help="labs in the concurrency-1 runs (8)")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["audit", "invoke", "provision", "sessions"]
    )
    args = parser.parse_args()
    serial_labs = min(args.serial_labs, args.labs)
    fake_credentials()
    configure_logging("warning")
    print(
        f"{args.labs} labs, {args.delay * 1000:.0f} ms a request, concurrency {args.concurrency} "
        f"(serial runs: {serial_labs} labs), {os.cpu_count()} CPUs"
    )
    with stage(args.delay) as where:
        expand_action("s3:*")  # what every process pays once (the action catalogue, the package)
        packaged()
        proxy_alone(where, args.concurrency)
        # The class that the audits look at, built without the delay (provisioning is measured apart).
        context = fresh_context(classroom(args.labs), where.endpoint, args.concurrency)
        assert all(outcome.ok for outcome in provision_targets(context, context.targets(), dry_run=False))
        if "audit" not in args.skip:
            audits(where, args.labs, serial_labs, args.concurrency)
        if "invoke" not in args.skip:
            invoke_audits(where, args.labs, serial_labs, args.concurrency)
        if "provision" not in args.skip:
            provisioning(where, args.labs, serial_labs, args.concurrency)
        if "sessions" not in args.skip:
            session_cost(where.endpoint, 24)
        stats = proxy_stats(where.proxy)
        print(
            f"the proxy: {stats['requests']} requests on {stats['connections']} connections, "
            f"at most {stats['most_in_flight']} in flight at once"
        )


if __name__ == "__main__":
    main()
