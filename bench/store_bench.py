"""How small and how fast the history stays: a class of labs audited every five minutes for a month.

Builds two SQLite databases holding the same runs:
  - the store's own schema (runs point at shared finding sets; documents stored once by digest);
  - a plain baseline without that compaction: the same runs table, but every run copies its
    findings, expected and actual documents included.
Then prints the size ratio, and the time of one more recorded round and of the report queries
as ratios to one `SELECT count(*) FROM audit_runs` on the same database (a full scan of the runs).

    python bench/store_bench.py              # 100 labs x 30 days: ~864,000 runs
    python bench/store_bench.py --days 1     # a quick check
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import OperationalError

from auditor.domain.model import (
    Check,
    Effect,
    Finding,
    InvokeResult,
    LabAudit,
    Severity,
    Status,
    Subject,
    Trigger,
    verdict_of,
)
from auditor.store import Store, make_engine, upgrade
from auditor.store.digest import canonical_json
from auditor.store.models import AuditRunRow, Base
from auditor.store.types import UtcDateTime, to_epoch_microseconds

INTERVAL = timedelta(minutes=5)
RUNS_PER_DAY = int(timedelta(days=1) / INTERVAL)
START = datetime(2026, 10, 1, tzinfo=UTC)
REGION = "us-east-1"

# --------------------------------------------------------------------------------------- lab results


def account_pair(index: int) -> tuple[str, str]:
    return f"{100000000000 + index:012d}", f"{200000000000 + index:012d}"


def expected_trust(origin: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{origin}:role/Lambda-Assume-Roles"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringLike": {"aws:UserAgent": "*AWS_Lambda_python*"}},
            }
        ],
    }


def expected_inline(destination: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListAllBuckets", "Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"},
            {
                "Sid": "ReadLabMarker",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectTagging", "s3:ListBucket"],
                "Resource": [
                    f"arn:aws:s3:::lab-marker-{destination}-{REGION}",
                    f"arn:aws:s3:::lab-marker-{destination}-{REGION}/*",
                ],
            },
            {
                "Sid": "DenyEverythingElse",
                "Effect": "Deny",
                "NotAction": ["s3:ListAllMyBuckets", "s3:GetObject", "s3:GetObjectTagging", "s3:ListBucket"],
                "Resource": "*",
            },
        ],
    }


def widened_trust(origin: str, variant: int) -> Finding:
    principals = ["*", "arn:aws:iam::999999999999:root", f"arn:aws:iam::{origin}:root"]
    actual = expected_trust(origin)
    actual["Statement"] = [{**actual["Statement"][0], "Principal": {"AWS": principals[variant % 3]}}]
    return Finding(
        "trust_policy.widened",
        Subject("role", origin, "LambdaS3ListBuckets", "LambdaS3ListBuckets"),
        f"arn:aws:iam::{origin}:role/LambdaS3ListBuckets",
        Status.MODIFIED,
        Effect.WIDENED,
        Severity.CRITICAL,
        f"trust policy lets {principals[variant % 3]} assume the role",
        expected=expected_trust(origin),
        actual=actual,
    )


def narrowed_inline(destination: str) -> tuple[Finding, ...]:
    actual = expected_inline(destination)
    actual["Statement"] = actual["Statement"][1:]
    return (
        Finding(
            "inline_policy.denies_lab",
            Subject("role", destination, "LambdaS3ListBuckets", "LambdaS3ListBuckets"),
            f"arn:aws:iam::{destination}:role/LambdaS3ListBuckets",
            Status.MODIFIED,
            Effect.NARROWED,
            Severity.HIGH,
            "inline policy no longer allows s3:ListAllMyBuckets",
            expected=expected_inline(destination),
            actual=actual,
            breaks_lab=True,
        ),
        invoke_failed(destination, "listing_denied"),
    )


def function_missing(origin: str, destination: str) -> tuple[Finding, ...]:
    return (
        Finding(
            "resource.missing",
            function_subject(origin),
            f"arn:aws:lambda:{REGION}:{origin}:function:Lambda-Assume-Roles",
            Status.MISSING,
            Effect.NARROWED,
            Severity.CRITICAL,
            "the function does not exist",
            breaks_lab=True,
        ),
        invoke_failed(destination, "function_missing"),
    )


def function_subject(account: str) -> Subject:
    return Subject("function", account, "Lambda-Assume-Roles", "Lambda-Assume-Roles")


def invoke_failed(account: str, cause: str) -> Finding:
    return Finding(
        "invoke.failed",
        function_subject(account),
        f"arn:aws:lambda:{REGION}:{account}:function:Lambda-Assume-Roles",
        Status.FAILED,
        Effect.NONE,
        Severity.HIGH,
        f"the invoke check failed: {cause}",
        actual={"cause": cause},
        breaks_lab=True,
    )


def memory_info(origin: str) -> Finding:
    return Finding(
        "lambda_config.modified",
        function_subject(origin),
        f"arn:aws:lambda:{REGION}:{origin}:function:Lambda-Assume-Roles",
        Status.MODIFIED,
        Effect.NONE,
        Severity.INFO,
        "memory size differs from the spec",
        expected={"MemorySize": 128},
        actual={"MemorySize": 256},
    )


@dataclass(frozen=True)
class Episode:
    """A stretch of runs of one lab with one result."""

    start: int
    end: int
    result: str  # names the findings, which hold dicts and so cannot be a dict key themselves
    findings: tuple[Finding, ...]


def lab_episodes(index: int, runs: int, rng: random.Random) -> list[Episode]:
    """Mostly conformant; one lab in five drifts or breaks now and then, for hours or days."""
    origin, destination = account_pair(index)
    calm_result, calm = ("info", (memory_info(origin),)) if rng.random() < 0.3 else ("ok", ())
    troubled = rng.random()
    episodes: list[Episode] = []
    step = 0
    while step < runs:
        length = rng.randint(RUNS_PER_DAY // 2, 6 * RUNS_PER_DAY)
        episodes.append(Episode(step, min(runs, step + length), calm_result, calm))
        step += length
        if step >= runs or troubled > 0.2:
            continue
        length = rng.randint(6, 3 * RUNS_PER_DAY)
        result, findings = trouble(troubled, origin, destination, rng)
        episodes.append(Episode(step, min(runs, step + length), result, (*findings, *calm)))
        step += length
    return episodes


def trouble(
    kind: float, origin: str, destination: str, rng: random.Random
) -> tuple[str, tuple[Finding, ...]]:
    if kind < 0.12:
        variant = rng.randint(0, 2)
        return f"trust-{variant}", (widened_trust(origin, variant),)
    if kind < 0.17:
        return "inline", narrowed_inline(destination)
    return "missing", function_missing(origin, destination)


def invoke_of(findings: tuple[Finding, ...], rng: random.Random) -> InvokeResult:
    failed = [f for f in findings if f.check == Check.INVOKE]
    if failed:
        return InvokeResult(False, str(failed[0].actual["cause"]), "AccessDenied", rng.randint(200, 900))
    return InvokeResult(True, "ok", "", rng.randint(250, 700))


def lab_audit(index: int, at: datetime, findings: tuple[Finding, ...], rng: random.Random) -> LabAudit:
    origin, destination = account_pair(index)
    return LabAudit(
        lab=lab_name(index),
        origin_account=origin,
        destination_account=destination,
        verdict=verdict_of(findings),
        findings=findings,
        invoke=invoke_of(findings, rng),
        started_at=at,
        finished_at=at + timedelta(seconds=rng.randint(2, 6)),
        requests=rng.randint(18, 24),
    )


def lab_name(index: int) -> str:
    return f"pair-{index:03d}"


# ------------------------------------------------------------------------------------ the baseline


plain_metadata = MetaData()
plain_runs = Table(
    "audit_runs",
    plain_metadata,
    Column("id", Integer, primary_key=True),
    Column("lab", String(64), nullable=False),
    Column("trigger", String(8), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("verdict", String(10), nullable=False),
    Column("error", Text),
    Column("requests", Integer, nullable=False),
    Index("ix_audit_runs_lab_started_at", "lab", "started_at"),
)
plain_invoke_results = Table(
    "invoke_results",
    plain_metadata,
    Column("run_id", ForeignKey("audit_runs.id"), primary_key=True),
    Column("ok", Boolean, nullable=False),
    Column("cause", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("duration_ms", Integer, nullable=False),
)
plain_findings = Table(
    "findings",
    plain_metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("audit_runs.id"), nullable=False, index=True),
    Column("check", String(24), nullable=False),
    Column("resource", Text, nullable=False),
    Column("status", String(12), nullable=False),
    Column("effect", String(12), nullable=False),
    Column("severity", String(12), nullable=False),
    Column("message", Text, nullable=False),
    Column("expected", Text),
    Column("actual", Text),
    Column("breaks_lab", Boolean, nullable=False),
)


# ------------------------------------------------------------------------------------------ loading


@dataclass(frozen=True)
class Run:
    lab_index: int
    at: datetime
    trigger: Trigger
    result: str
    findings: tuple[Finding, ...]


def runs_of_lab(index: int, episodes: Sequence[Episode]) -> Iterator[Run]:
    for episode in episodes:
        for step in range(episode.start, episode.end):
            trigger = Trigger.EVENT if step == episode.start and step else Trigger.SCHEDULE
            yield Run(index, START + step * INTERVAL, trigger, episode.result, episode.findings)


def load_compact(store: Store, engine: Engine, plan: dict[int, list[Episode]], seed: int) -> None:
    """Each lab's first run of each result through the store, which stores that finding set once; the rest
    in bulk, straight through the driver (a month of 1,000 labs is 8.6 million rows), then counted."""
    rng = random.Random(seed)
    with engine.connect() as connection:
        lab_ids: dict[str, int] = {
            name: lab_id for name, lab_id in connection.execute(text("SELECT name, id FROM labs"))
        }
    moment = to_epoch_microseconds if engine.dialect.name == "sqlite" else (lambda at: at)
    for index, episodes in plan.items():
        firsts: dict[str, tuple[int, Episode]] = {}
        for episode in episodes:
            firsts.setdefault(episode.result, (episode.start, episode))
        set_ids = {
            result: _finding_set_of(
                engine,
                store.record_audit(
                    lab_audit(index, START + step * INTERVAL, episode.findings, rng),
                    _trigger_of(step, episode),
                ),
            )
            for result, (step, episode) in firsts.items()
        }
        recorded = {step for step, _ in firsts.values()}
        lab_id = lab_ids[lab_name(index)]
        with engine.begin() as connection:
            next_id = connection.execute(select(func.max(AuditRunRow.id))).scalar_one() + 1
            runs, invokes = [], []
            for episode in episodes:
                verdict = verdict_of(episode.findings).value
                failed = next((f for f in episode.findings if f.check == Check.INVOKE), None)
                cause = str(failed.actual["cause"]) if failed else "ok"
                detail = "AccessDenied" if failed else ""
                for step in range(episode.start, episode.end):
                    if step in recorded:
                        continue
                    at = START + step * INTERVAL
                    finished = at + timedelta(seconds=2 + int(rng.random() * 5))
                    trigger = _trigger_of(step, episode).value
                    runs.append(
                        (
                            next_id,
                            lab_id,
                            trigger,
                            moment(at),
                            moment(finished),
                            verdict,
                            18 + int(rng.random() * 7),
                            set_ids[episode.result],
                        )
                    )
                    invokes.append((next_id, failed is None, cause, detail, 250 + int(rng.random() * 450)))
                    next_id += 1
            _insert_raw(
                connection,
                "audit_runs",
                (
                    "id",
                    "lab_id",
                    "trigger",
                    "started_at",
                    "finished_at",
                    "verdict",
                    "requests",
                    "finding_set_id",
                ),
                runs,
            )
            _insert_raw(
                connection, "invoke_results", ("run_id", "ok", "cause", "detail", "duration_ms"), invokes
            )
    store.recount_verdict_totals()  # the bulk rows went around the store's own counting


def _trigger_of(step: int, episode: Episode) -> Trigger:
    return Trigger.EVENT if step == episode.start and step else Trigger.SCHEDULE


def _insert_raw(connection: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(f'"{column}"' for column in columns)
    statement = f"INSERT INTO {table} ({names}) VALUES ({', '.join([marker] * len(columns))})"
    connection.exec_driver_sql(statement, rows)


def _finding_set_of(engine: Engine, run_id: int) -> int | None:
    with engine.connect() as connection:
        query = select(AuditRunRow.finding_set_id).where(AuditRunRow.id == run_id)
        return connection.execute(query).scalar_one()


def _run_row(run_id: int, lab_id: int, run: Run, audit: LabAudit, set_id: int | None) -> dict[str, Any]:
    return {
        "id": run_id,
        "lab_id": lab_id,
        "trigger": run.trigger,
        "started_at": run.at,
        "finished_at": audit.finished_at,
        "verdict": audit.verdict,
        "error": None,
        "requests": audit.requests,
        "finding_set_id": set_id,
    }


def _invoke_row(run_id: int, audit: LabAudit) -> dict[str, Any]:
    assert audit.invoke is not None
    invoke = audit.invoke
    return {
        "run_id": run_id,
        "ok": invoke.ok,
        "cause": invoke.cause,
        "detail": invoke.detail,
        "duration_ms": invoke.duration_ms,
    }


def load_plain(engine: Engine, plan: dict[int, list[Episode]], seed: int) -> None:
    rng = random.Random(seed)
    next_id = 1
    for index, episodes in plan.items():
        rows: list[dict[str, Any]] = []
        invokes: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        for run in runs_of_lab(index, episodes):
            audit = lab_audit(index, run.at, run.findings, rng)
            row = _run_row(next_id, 0, run, audit, None)
            del row["lab_id"], row["finding_set_id"]
            rows.append(
                {**row, "lab": audit.lab, "trigger": run.trigger.value, "verdict": audit.verdict.value}
            )
            invokes.append(_invoke_row(next_id, audit))
            findings.extend(_plain_finding_row(next_id, finding) for finding in run.findings)
            next_id += 1
        with engine.begin() as connection:
            connection.execute(insert(plain_runs), rows)
            connection.execute(insert(plain_invoke_results), invokes)
            if findings:
                connection.execute(insert(plain_findings), findings)


def _plain_finding_row(run_id: int, finding: Finding) -> dict[str, Any]:
    document = {key: value for key, value in finding.to_json().items() if key not in ("expected", "actual")}
    return {
        **document,
        "run_id": run_id,
        "expected": None if finding.expected is None else canonical_json(finding.expected),
        "actual": None if finding.actual is None else canonical_json(finding.actual),
        "breaks_lab": finding.breaks_lab,
    }


# ---------------------------------------------------------------------------------------- measuring


def best_time(action: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def count_runs(engine: Engine) -> Callable[[], int]:
    def count() -> int:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM audit_runs")).scalar_one())

    return count


def file_size(engine: Engine, path: Path) -> int:
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def bytes_by_table(engine: Engine) -> dict[str, int]:
    """Bytes per table and index, from SQLite's dbstat table (empty if this SQLite lacks it)."""
    query = "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
    try:
        with engine.connect() as connection:
            return {name: int(size) for name, size in connection.exec_driver_sql(query)}
    except OperationalError:
        return {}


def row_counts(engine: Engine, tables: Sequence[Table]) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in tables
        }


def record_round(store: Store, plan: dict[int, list[Episode]], at: datetime, seed: int) -> Callable[[], None]:
    """Each call records one more five-minute round: every lab, its latest result again."""
    rng = random.Random(seed)
    latest = {index: episodes[-1].findings for index, episodes in plan.items()}
    rounds = iter(range(1, 1_000))

    def record() -> None:
        moment = at + next(rounds) * INTERVAL
        for index, findings in latest.items():
            store.record_audit(lab_audit(index, moment, findings, rng), Trigger.SCHEDULE)

    return record


def mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


@dataclass(frozen=True)
class Databases:
    store: Store
    compact: Engine
    plain: Engine
    compact_path: Path
    plain_path: Path

    def close(self) -> None:
        self.store.close()
        self.compact.dispose()
        self.plain.dispose()


def build_databases(folder: Path, plan: dict[int, list[Episode]], seed: int) -> Databases:
    compact_path, plain_path = folder / "compact.db", folder / "plain.db"
    for path in (compact_path, plain_path):
        path.unlink(missing_ok=True)
    compact_url = f"sqlite:///{compact_path}"
    upgrade(compact_url)
    databases = Databases(
        Store.from_url(compact_url),
        make_engine(compact_url),
        make_engine(f"sqlite:///{plain_path}"),
        compact_path,
        plain_path,
    )
    plain_metadata.create_all(databases.plain)
    for index in plan:
        databases.store.ensure_lab(lab_name(index), *account_pair(index), None)
    started = time.perf_counter()
    load_compact(databases.store, databases.compact, plan, seed)
    load_plain(databases.plain, plan, seed)
    print(f"  loaded both databases in {time.perf_counter() - started:.0f} s")
    return databases


def report_sizes(databases: Databases, labs: int, total_runs: int) -> None:
    counts = row_counts(databases.compact, Base.metadata.sorted_tables)
    plain_counts = row_counts(databases.plain, plain_metadata.sorted_tables)
    print("  rows, compact: " + ", ".join(f"{name} {count:,}" for name, count in counts.items() if count))
    print("  rows, plain:   " + ", ".join(f"{name} {count:,}" for name, count in plain_counts.items()))
    compact_size = file_size(databases.compact, databases.compact_path)
    plain_size = file_size(databases.plain, databases.plain_path)
    year = compact_size / total_runs * labs * 365 * RUNS_PER_DAY
    print("\nsize")
    print(f"  compact {mib(compact_size)} = {compact_size / total_runs:.0f} B/run; plain {mib(plain_size)}")
    print(
        f"  plain / compact = {plain_size / compact_size:.2f}x   (a year of this class, compact: ~{mib(year)})"
    )
    big = [
        (name, size) for name, size in bytes_by_table(databases.compact).items() if size > compact_size / 100
    ]
    print("  compact, B/run: " + ", ".join(f"{name} {size / total_runs:.1f}" for name, size in big))


def report_times(databases: Databases, plan: dict[int, list[Episode]], now: datetime, seed: int) -> None:
    store, names = databases.store, [lab_name(index) for index in plan]
    month_ago = now - timedelta(days=30)
    scan = best_time(count_runs(databases.compact))
    measured = {
        f"record one round ({len(names)} labs, a transaction each)": best_time(
            record_round(store, plan, now, seed), 3
        ),
        "latest_runs(all labs)": best_time(lambda: store.latest_runs()),
        "status()": best_time(store.status),
        "runs_since(30 days ago, all labs)": best_time(lambda: store.runs_since(month_ago), 3),
        "verdict_changes(30 days ago, all labs)": best_time(lambda: store.verdict_changes(month_ago), 3),
        "verdict_counts(30 days ago, 12 h buckets, all labs)": best_time(
            lambda: store.verdict_counts(START, timedelta(hours=12), month_ago), 3
        ),
        "time_at_verdicts(30 days ago .. now, all labs)": best_time(
            lambda: store.time_at_verdicts(month_ago, now), 3
        ),
        "conformant_share(30 days ago), every lab": best_time(
            lambda: [store.conformant_share(name, month_ago) for name in names], 3
        ),
        "first_conformant_at, every lab": best_time(
            lambda: [store.first_conformant_at(name) for name in names], 3
        ),
    }
    print(
        f"\ntime, as a ratio to one SELECT count(*) FROM audit_runs ({scan * 1000:.1f} ms, a scan of every run)"
    )
    for name, seconds in measured.items():
        print(f"  {name:<46} {seconds / scan:8.2f}x   ({seconds * 1000:7.1f} ms)")
    keep = (now - START) / 2
    pruned = best_time(lambda: store.prune(keep, now), 1)
    print(
        f"  {'prune(half the runs) + garbage collection':<46} {pruned / scan:8.2f}x   ({pruned * 1000:7.1f} ms)"
    )


def run_bench(folder: Path, labs: int, runs_per_lab: int, seed: int) -> None:
    rng = random.Random(seed)
    plan = {index: lab_episodes(index, runs_per_lab, rng) for index in range(labs)}
    total = labs * runs_per_lab
    print(
        f"store bench: {labs} labs x {runs_per_lab / RUNS_PER_DAY:g} days of five-minute audits = {total:,} runs"
    )
    databases = build_databases(folder, plan, seed)
    try:
        report_sizes(databases, labs, total)
        report_times(databases, plan, START + runs_per_lab * INTERVAL, seed)
    finally:
        databases.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, default=100, help="labs in the class (default 100)")
    parser.add_argument("--days", type=float, default=30.0, help="days of five-minute audits (default 30)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the days by this, e.g. 0.1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, help="keep the databases here (default: a temporary directory)")
    args = parser.parse_args(argv)
    runs_per_lab = max(2, round(args.days * args.scale * RUNS_PER_DAY))
    with tempfile.TemporaryDirectory(prefix="store-bench-") as scratch:
        folder = args.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        run_bench(folder, args.labs, runs_per_lab, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
