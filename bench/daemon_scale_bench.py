"""The daemon with a class of 1,000 pairs through 100 ms a request: a full cycle's time, resident memory
over cycles (issue 15: a cycle within 60 s, at most 1 GB and flat over 50 cycles).

    python -m bench.daemon_scale_bench [--labs 1000] [--cycles 5] [--delay 0.1] [--concurrency 32]

The labs are provisioned straight on a moto server (not timed); then each cycle runs the daemon's own
job, `daemon.audit(lab, Trigger.SCHEDULE)`, for every lab on `--concurrency` threads (as the
scheduler's executor does) through bench/latency_proxy.py, and records it in SQLite. The proxy replays
(`--replay`): the first cycle's requests go to moto and are recorded, the later cycles' (the same
reads of an unchanged class) are answered from the record, as AWS would answer them on its own CPU,
where moto's would take one of this machine's two cores (about 14 ms a request). Printed per cycle:
wall time against the ideal (requests x delay / concurrency), the CPU of this process, of the moto
server and of the proxy (where the time went), resident memory, and how many accounts' clients the
LRU keeps (`--cached-accounts`, the daemon's default bound unless given).
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from auditor.app.context import open_context
from auditor.aws.accounts import CACHED_ACCOUNTS, AccountSessions
from auditor.common.logs import configure_logging
from auditor.common.process import tune_process
from auditor.daemon.service import Service
from auditor.domain.config import LabConfig
from auditor.domain.model import Trigger
from bench.common import classroom, config, fake_credentials
from bench.daemon_bench import _slope, resident_bytes
from bench.latency_bench import process_cpu, proxy_stats, stage
from provisioner.provision import provision_targets

CYCLE_TARGET = 60.0
MEMORY_TARGET = 2**30


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cached-accounts", type=int, default=CACHED_ACCOUNTS)
    parser.add_argument("--provision", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    fake_credentials()
    configure_logging("warning")
    tune_process()  # as `auditor daemon` does
    labs = classroom(args.labs)
    if args.provision:
        provision(labs, args.provision)
        return
    with stage(args.delay) as where, tempfile.TemporaryDirectory(prefix="daemon-scale-") as folder:
        begun = time.perf_counter()
        # In a process of its own: what provisioning leaves in memory is not the daemon's.
        command = [sys.executable, "-m", "bench.daemon_scale_bench", "--provision", where.endpoint]
        subprocess.run([*command, "--labs", str(args.labs)], check=True)
        print(
            f"{args.labs} labs provisioned on moto in {time.perf_counter() - begun:.0f} s (not timed below)"
        )
        settings = config(labs, where.replay, args.concurrency, invoke=False)
        settings = replace(
            settings, database=replace(settings.database, url=f"sqlite:///{Path(folder) / 'a.db'}")
        )
        context = open_context(settings)
        context.sessions = AccountSessions(
            replace(context.sessions.settings, cached_accounts=args.cached_accounts)
        )
        daemon = Service(settings, context)
        store = daemon.database()
        names = sorted(daemon.targets)
        print(
            f"daemon cycles: {args.labs} labs, {args.delay * 1000:.0f} ms a request, concurrency "
            f"{args.concurrency}, clients of at most {args.cached_accounts} accounts kept, {os.cpu_count()} CPUs"
        )
        walls, resident = [], []
        with ThreadPoolExecutor(args.concurrency, thread_name_prefix="audit") as pool:
            for cycle in range(1, args.cycles + 1):
                before, own = proxy_stats(where.replay), time.process_time()
                moto, proxy = process_cpu(where.moto_pid), process_cpu(where.replay_pid)
                started = time.perf_counter()
                list(pool.map(lambda lab: daemon.audit(lab, Trigger.SCHEDULE), names))
                wall = time.perf_counter() - started
                after = proxy_stats(where.replay)
                requests = after["requests"] - before["requests"]
                replayed = after["replayed"] - before["replayed"]
                gc.collect()
                walls.append(wall)
                resident.append(resident_bytes())
                ideal = requests * args.delay / args.concurrency
                print(
                    f"  cycle {cycle}: {wall:.1f} s ({wall / ideal:.2f}x the ideal {ideal:.1f} s = {requests} "
                    f"requests x {args.delay * 1000:.0f} ms / {args.concurrency}); CPU: auditor "
                    f"{time.process_time() - own:.1f} s, moto {process_cpu(where.moto_pid) - moto:.1f} s, proxy "
                    f"{process_cpu(where.replay_pid) - proxy:.1f} s; {replayed} answers replayed; resident "
                    f"{resident[-1] / 2**20:.0f} MB; {context.sessions.cached_accounts()} accounts' clients kept",
                    flush=True,
                )
        verdicts = Counter(str(status.last_verdict) for status in store.status())
        print(f"  last verdicts: {dict(verdicts)}")
        report(walls, resident)


def provision(labs: tuple[LabConfig, ...], endpoint: str) -> None:
    with open_context(config(labs, endpoint, 16, invoke=False)) as context:
        outcomes = provision_targets(context, context.targets(), dry_run=False)
    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes if not o.ok][:3]


def report(walls: list[float], resident: list[int]) -> None:
    worst = max(walls[1:] or walls)  # the first cycle waits for moto (it records its answers)
    peak = max(resident)
    later = resident[1:] or resident
    slope = _slope(later)
    print(
        f"  a full cycle, answers replayed: at most {worst:.1f} s (target {CYCLE_TARGET:.0f} s: {'met' if worst <= CYCLE_TARGET else 'MISSED'})"
    )
    print(
        f"  resident memory: at most {peak / 2**20:.0f} MB (target 1 GB: {'met' if peak <= MEMORY_TARGET else 'MISSED'}); "
        f"from cycle 2 to {len(resident)}: {(resident[-1] - later[0]) / 2**20:+.1f} MB, trend "
        f"{slope / 2**20:+.2f} MB a cycle over {len(resident)} cycles (the target asks for 50)"
    )


if __name__ == "__main__":
    main()
