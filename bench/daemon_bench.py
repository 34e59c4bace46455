"""The daemon's jobs, cycle after cycle: CPU a cycle, and whether memory grows.

    python -m bench.daemon_bench [--cycles 200] [--labs 20] [--concurrency 4] [--tracemalloc]

Runs the daemon's own job functions in this process against a moto server: a `Daemon` on a SQLite
store in a temporary directory, and per cycle `daemon.audit(lab, Trigger.SCHEDULE)` for every lab
(on a pool of `--concurrency` threads, as the scheduler's executor runs them) then
`daemon.reconcile()`. The invoke is off, to keep cycles short (200 cycles take about five minutes).

A daemon runs for weeks: from the 10th cycle (caches warm, pools full) to the last, memory must not
grow. Two measures: resident memory (/proc/self/statm), which also moves with the C allocator's
fragmentation and SQLite's page cache (it follows the database file, up to its cache_size); and
Python's own heap (sys.getallocatedblocks), where a leak of Python objects shows plainly.
`--tracemalloc` shows where Python memory grew, when it does (ten times slower).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from auditor.app.context import open_context
from auditor.common.logs import configure_logging
from auditor.daemon.service import Service
from auditor.domain.model import Trigger
from bench.common import classroom, config, fake_credentials
from bench.latency_bench import started as helper_process
from provisioner.provision import provision_targets

WARM_CYCLES = 10
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


def _slope(values: list[int]) -> float:
    """Bytes a cycle, by least squares: a steady leak shows through the noise of the allocator."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    spread = sum((x - mean_x) ** 2 for x in range(n))
    return sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / spread if spread else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tracemalloc", action="store_true", help="show where Python memory grew")
    args = parser.parse_args()
    if args.cycles <= WARM_CYCLES:
        parser.error(f"--cycles must be more than {WARM_CYCLES}")
    fake_credentials()
    configure_logging("warning")
    # A moto server whose request log is drained and dropped (bench.common's keeps it all in our memory).
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]
    with (
        helper_process(moto, "Running on ") as (_, endpoint),
        tempfile.TemporaryDirectory(prefix="daemon-bench-") as folder,
    ):
        labs = classroom(args.labs)
        settings = config(labs, endpoint, args.concurrency, invoke=False)
        settings = replace(
            settings, database=replace(settings.database, url=f"sqlite:///{Path(folder) / 'a.db'}")
        )
        context = open_context(settings)
        assert all(outcome.ok for outcome in provision_targets(context, context.targets(), dry_run=False))
        daemon = Service(settings, context)
        daemon.database()
        names = sorted(daemon.targets)
        cpu_per_cycle: list[float] = []
        resident: list[int] = []
        blocks: list[int] = []
        snapshot = None
        with ThreadPoolExecutor(args.concurrency, thread_name_prefix="audit") as pool:
            for cycle in range(1, args.cycles + 1):
                begun = time.process_time()
                list(pool.map(lambda lab: daemon.audit(lab, Trigger.SCHEDULE), names))
                daemon.reconcile()
                cpu_per_cycle.append(time.process_time() - begun)
                gc.collect()
                resident.append(resident_bytes())
                blocks.append(sys.getallocatedblocks())
                if cycle == WARM_CYCLES and args.tracemalloc:
                    tracemalloc.start(25)
                    snapshot = tracemalloc.take_snapshot()
                if cycle % 50 == 0:
                    print(f"  cycle {cycle}: {resident[-1] / 2**20:.1f} MB resident", flush=True)
        recorded = sum(
            sample.value
            for metric in daemon.metrics.audits.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
        database_size = (Path(folder) / "a.db").stat().st_size
        report(args, cpu_per_cycle, resident, blocks, int(recorded), database_size)
        if snapshot is not None:
            print(f"  where Python memory grew since cycle {WARM_CYCLES} (tracemalloc, largest first):")
            for stat in tracemalloc.take_snapshot().compare_to(snapshot, "traceback")[:6]:
                print(f"    {stat.size_diff / 1024:+.0f} KB in {stat.count_diff:+d} blocks, allocated at:")
                for line in stat.traceback.format(limit=3, most_recent_first=True)[::2]:
                    print(f"      {line.strip()}")


def report(
    args: argparse.Namespace,
    cpu_per_cycle: list[float],
    resident: list[int],
    blocks: list[int],
    recorded: int,
    database_size: int,
) -> None:
    first = WARM_CYCLES - 1  # the index of the warm cycle
    steady = statistics.median(cpu_per_cycle[WARM_CYCLES:])
    growth = resident[-1] - resident[first]
    rss_slope, block_slope = _slope(resident[first:]), _slope(blocks[first:])
    print(
        f"{args.cycles} cycles of {args.labs} labs (concurrency {args.concurrency}), {recorded} audits recorded"
    )
    print(
        f"  CPU a cycle: median {steady * 1000:.0f} ms, {steady / args.labs * 1000:.1f} ms a lab "
        f"(first cycle {cpu_per_cycle[0] * 1000:.0f} ms)"
    )
    print(
        f"  resident memory: {resident[first] / 2**20:.1f} MB after cycle {WARM_CYCLES}, "
        f"{resident[-1] / 2**20:.1f} MB after cycle {args.cycles}: {growth / 2**20:+.2f} MB "
        f"({growth / resident[first]:+.1%}); trend {rss_slope / 1024:+.1f} KB a cycle, "
        f"{rss_slope / args.labs:+.0f} bytes an audit; database {database_size / 2**20:.1f} MB on disk"
    )
    # Python's own heap is the leak detector that the C allocator's fragmentation and SQLite's page
    # cache (which follows the database file, up to its cache_size) do not blur.
    print(
        f"  Python heap: {blocks[first]:,} allocated blocks after cycle {WARM_CYCLES}, {blocks[-1]:,} after "
        f"cycle {args.cycles}: {blocks[-1] - blocks[first]:+,}; trend {block_slope:+.1f} blocks a cycle"
    )
    leaks = block_slope > args.labs or growth > 0.05 * resident[first]
    print(
        f"  verdict: {'GROWS' if leaks else 'no growth'} (Python heap under 1 block an audit, resident under +5%)"
    )


if __name__ == "__main__":
    main()
