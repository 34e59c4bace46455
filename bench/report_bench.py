"""How long `auditor report` takes for a class with 30 days of five-minute audits.

Fills a store (SQLite, or the PostgreSQL database given) with bench/store_bench.py's synthetic class
(mostly conformant; one lab in five drifts or breaks now and then, for hours or days), adds each
lab's life-cycle events, then times, as ratios of processor time to reading the rows the report
summarises with the store's own queries (status, runs_since: every run of the period, latest_runs,
and lifecycle for each lab), each pair measured back to back:

  - build_report alone (its history counted in the database), and each renderer alone;
  - build_report + render, which is `auditor report` minus the file write;
  - the per-lab conformance queries a naive report would add (first/last conformant, share);

and the wall time of `auditor report --format html` (build + render) against its target of 2 s.

    python -m bench.report_bench                      # 100 labs x 30 days: ~864,000 runs
    python -m bench.report_bench --labs 1000          # the class of issue 15: ~8.6 million runs
    python -m bench.report_bench --labs 20 --days 1   # a quick check
    python -m bench.report_bench --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from auditor.report import RENDERERS, ClassReport, build_report
from auditor.store import Store, make_engine, safe_url, upgrade
from bench.store_bench import (
    INTERVAL,
    RUNS_PER_DAY,
    START,
    account_pair,
    lab_episodes,
    lab_name,
    load_compact,
)

# One lab in ten is torn down before the end, so the report has every kind of life cycle to show.
TORN_DOWN_EVERY = 10


@dataclass(frozen=True)
class Class:
    store: Store
    names: list[str]
    runs: int
    now: datetime


def fill_store(url: str, labs: int, runs_per_lab: int, seed: int) -> Class:
    upgrade(url)
    store = Store.from_url(url)
    rng = random.Random(seed)
    plan = {index: lab_episodes(index, runs_per_lab, rng) for index in range(labs)}
    end = START + runs_per_lab * INTERVAL
    for index in plan:
        store.ensure_lab(lab_name(index), *account_pair(index), end + timedelta(days=1))
        store.record_provisioned(lab_name(index), [], reset=False, at=START - INTERVAL, expires_at=None)
    load_compact(store, make_engine(url), plan, seed)
    for index in list(plan)[::TORN_DOWN_EVERY]:
        store.mark_teardown_started(lab_name(index), "bench", end - INTERVAL)
        store.record_torn_down(lab_name(index), end - INTERVAL / 2)
    return Class(store, [lab_name(index) for index in plan], labs * runs_per_lab, end)


def read_rows(store: Store, names: list[str], since: datetime | None) -> Callable[[], object]:
    """The store's own reads of everything the report shows, and nothing else."""

    def read() -> object:
        return (
            store.status(),
            store.runs_since(since, names),
            store.latest_runs(names),
            [store.lifecycle(name) for name in names],
        )

    return read


def naive_conformance(store: Store, names: list[str], since: datetime | None) -> Callable[[], object]:
    def read() -> object:
        return [
            (
                store.first_conformant_at(name),
                store.last_conformant_at(name),
                store.conformant_share(name, since),
            )
            for name in names
        ]

    return read


def cpu_seconds(action: Callable[[], object]) -> float:
    """Processor time, not wall time: SQLite runs in this process, and a busy machine then skews nothing."""
    started = time.process_time()
    action()
    return time.process_time() - started


def paired(subject: Callable[[], object], baseline: Callable[[], object], repeat: int) -> tuple[float, float]:
    """The subject's median time and its median ratio to the baseline, each pair measured back to back."""
    times, ratios = [], []
    for _ in range(repeat):
        base = cpu_seconds(baseline)
        taken = cpu_seconds(subject)
        times.append(taken)
        ratios.append(taken / base)
    return statistics.median(times), statistics.median(ratios)


def render_time(render: Callable[[ClassReport], str], report: ClassReport) -> float:
    return statistics.median(cpu_seconds(lambda: render(report)) for _ in range(5))


HTML_TARGET_SECONDS = 2.0


def wall_seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(school: Class, since: datetime | None, label: str, repeat: int) -> None:
    store, names, now = school.store, school.names, school.now
    baseline = read_rows(store, names, since)
    base_wall = wall_seconds(baseline)
    base = statistics.median(cpu_seconds(baseline) for _ in range(repeat))
    report: ClassReport = build_report(store, names, since, now)
    html = statistics.median(
        wall_seconds(lambda: RENDERERS["html"](build_report(store, names, since, now))) for _ in range(repeat)
    )
    rows: dict[str, tuple[float, float]] = {}
    rows["build_report"] = paired(lambda: build_report(store, names, since, now), baseline, repeat)
    renders = {fmt: render_time(render, report) for fmt, render in RENDERERS.items()}
    for output_format, seconds in renders.items():
        rows[f"render {output_format}"] = (seconds, seconds / base)
    build, build_ratio = rows["build_report"]
    for output_format, seconds in renders.items():
        rows[f"build_report + render {output_format}"] = (build + seconds, build_ratio + seconds / base)
    rows["per-lab conformance queries (spared)"] = paired(
        naive_conformance(store, names, since), baseline, repeat
    )
    audits = sum(lab.audits for lab in report.labs)
    print(
        f"\n{label}: {len(names)} labs, {audits:,} audits in the period, {len(report.conformance)} time buckets"
    )
    print(f"  baseline = the store's reads of the rows shown: {base * 1000:.0f} ms of CPU")
    for name, (seconds, ratio) in rows.items():
        print(f"  {name:<38} {ratio:7.2f}x   ({seconds * 1000:8.1f} ms)")
    verdict = "within" if html < HTML_TARGET_SECONDS else "OVER"
    print(
        f"  auditor report --format html, wall: {html:.2f} s ({verdict} the {HTML_TARGET_SECONDS:g} s target);"
        f" reading every row it summarises: {base_wall:.2f} s = {base_wall / html:.1f}x the report"
    )
    sizes = {output_format: len(render(report).encode()) for output_format, render in RENDERERS.items()}
    print("  output size: " + ", ".join(f"{fmt} {size / 1024:,.0f} KiB" for fmt, size in sizes.items()))


def run_bench(url: str, labs: int, runs_per_lab: int, seed: int, repeat: int) -> None:
    print(f"report bench: {labs} labs x {runs_per_lab / RUNS_PER_DAY:g} days of five-minute audits")
    started = time.perf_counter()
    school = fill_store(url, labs, runs_per_lab, seed)
    try:
        print(f"  {school.runs:,} runs recorded in {time.perf_counter() - started:.0f} s ({safe_url(url)})")
        measure(school, None, "whole history", repeat=repeat)
        measure(school, school.now - timedelta(days=1), "--since 1d", repeat=repeat)
    finally:
        school.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, default=100, help="labs in the class (default 100)")
    parser.add_argument("--days", type=float, default=30.0, help="days of five-minute audits (default 30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="measurements of each time (the median)")
    parser.add_argument("--dir", type=Path, help="keep the database here (default: a temporary directory)")
    parser.add_argument("--database-url", help="an empty PostgreSQL database instead of SQLite")
    args = parser.parse_args(argv)
    runs_per_lab = max(2, round(args.days * RUNS_PER_DAY))
    with tempfile.TemporaryDirectory(prefix="report-bench-") as scratch:
        folder = args.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        url = args.database_url or f"sqlite:///{folder / 'report.db'}"
        run_bench(url, args.labs, runs_per_lab, args.seed, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
