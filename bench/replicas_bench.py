"""Daemon replicas on PostgreSQL: every lab audited once per interval, one replica killed -9 in the middle
of an audit, expiries torn down once.

Real `auditor daemon` processes with `[daemon] mode = "replicas"` on a moto server and a PostgreSQL
database of the run's own. Once every replica has joined the queue, the run waits for replica 0 to
start an audit, kills it with SIGKILL there and then, and goes on for the rest of the intervals. Then
it checks, from the database and the emulator:

  - each lab has exactly one scheduled audit due at each tick of the period (not zero, not two),
    including the one the killed replica had started, taken over by another;
  - each lab that expired during the run has exactly one teardown, and its resources are gone;
  - no teardown began after one had finished.

    python -m bench.replicas_bench                      # 3 replicas, 20 labs, 10 intervals of 15 s
    python -m bench.replicas_bench --labs 6 --interval 5 --intervals 4

tests/test_replicas.py runs the same scenario, smaller, in `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from auditor.app.context import open_context
from auditor.domain.config import (
    AccountAccess,
    AuditSettings,
    AwsSettings,
    Config,
    DatabaseSettings,
    LabConfig,
)
from auditor.domain.spec import DESTINATION_ROLE
from bench.common import fake_credentials, moto_server, own_database
from provisioner.provision import provision_targets

T = TypeVar("T")
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Scenario:
    labs: int = 20
    replicas: int = 3
    interval: int = 15  # seconds; divides a minute
    intervals: int = 10
    takeover: int = 5  # seconds
    expiring: int = 4  # labs that expire during the run, half before the kill and half after
    concurrency: int = 4


@dataclass
class Outcome:
    scenario: Scenario
    ticks: list[datetime]
    audits: dict[tuple[str, datetime], int]  # (lab, due) -> scheduled runs recorded for it
    lateness: list[float]  # seconds from due to start, every scheduled run
    expires: dict[str, datetime]
    torn_down: dict[str, list[datetime]]  # lab -> times of its torn_down events
    teardown_started: dict[str, list[datetime]]
    roles_left: list[str]  # expired labs whose destination role is still there
    killed_at: datetime
    killed_during: tuple[str, datetime]  # the audit (lab, due) replica 0 had started when killed
    taken_over_at: datetime | None  # when that audit was recorded again, by another replica
    exit_codes: list[int | None] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = []
        for (lab, due), count in sorted(self.audits.items()):
            if count > 1:
                found.append(f"{lab} audited {count} times for {due:%H:%M:%S}")
        for lab in self.lab_names():
            for tick in self.ticks:
                expected = self.expected(lab, tick)
                count = self.audits.get((lab, tick), 0)
                if expected == 1 and count != 1:
                    found.append(f"{lab} audited {count} times for {tick:%H:%M:%S}")
                if expected == 0 and count:
                    found.append(f"{lab} audited after its teardown, for {tick:%H:%M:%S}")
        for lab in self.expires:
            if len(self.torn_down.get(lab, [])) != 1:
                found.append(f"{lab} torn down {len(self.torn_down.get(lab, []))} times")
            elif any(start > self.torn_down[lab][0] for start in self.teardown_started.get(lab, [])):
                found.append(f"{lab}: a teardown began after it was torn down")
        found += [f"{lab}: its role is still there" for lab in self.roles_left]
        if self.taken_over_at is None:
            lab, due = self.killed_during
            found.append(f"the audit of {lab} for {due:%H:%M:%S}, under way in the killed replica, was lost")
        return found

    def expected(self, lab: str, tick: datetime) -> int | None:
        """1: must be audited once; 0: must not be (torn down); None: either (expiring meanwhile)."""
        expiry = self.expires.get(lab)
        if expiry is None or tick < expiry:
            return 1
        gone = self.torn_down.get(lab, [])
        return 0 if gone and tick > gone[0] else None

    def lab_names(self) -> list[str]:
        return sorted({lab for lab, _ in self.audits} | set(self.expires))

    def takeover_seconds(self) -> float | None:
        return None if self.taken_over_at is None else (self.taken_over_at - self.killed_at).total_seconds()


# ------------------------------------------------------------------------------------------ set-up


def lab(index: int) -> LabConfig:
    def access(account: str) -> AccountAccess:
        return AccountAccess(account, role_arn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole")

    return LabConfig(f"pair-{index:02d}", access(f"1{index:011d}"), access(f"2{index:011d}"))


def provision(moto: str, labs: Sequence[LabConfig], concurrency: int) -> Any:
    config = Config(
        path="bench",
        labs=tuple(labs),
        aws=AwsSettings(endpoint_url=moto, max_attempts=3),
        audit=AuditSettings(concurrency=concurrency),
        database=DatabaseSettings(url="sqlite://"),
    )
    context = open_context(config)
    outcomes = provision_targets(context, context.targets(), dry_run=False)
    assert all(outcome.ok for outcome in outcomes), outcomes
    return context


def config_text(
    moto: str, url: str, labs: Sequence[LabConfig], scenario: Scenario, expires: dict[str, datetime]
) -> str:
    def side(access: AccountAccess) -> str:
        return f'{{ account_id = "{access.account_id}", role_arn = "{access.role_arn}" }}'

    tables = "".join(
        f'\n[[labs]]\nname = "{one.name}"\norigin = {side(one.origin)}\ndestination = {side(one.destination)}\n'
        + (f'expires_at = "{expires[one.name].isoformat()}"\n' if one.name in expires else "")
        for one in labs
    )
    return f"""
[aws]
endpoint_url = "{moto}"
max_attempts = 3
[audit]
interval = "{scenario.interval}s"
invoke = false
concurrency = {scenario.concurrency}
[database]
url = "{url}"
[daemon]
mode = "replicas"
health_port = 0
jitter = "0s"
reconcile_interval = "1s"
takeover = "{scenario.takeover}s"
stop_timeout = "5s"
{tables}"""


# ------------------------------------------------------------------------------------------ watching


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll something observable (a log, the database) until it holds, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)  # the poll's period, not a wait for something to have happened
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def log_events(path: Path, name: str) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == name:
                found.append(entry)
    return found


def scheduled_runs(url: str) -> list[tuple[str, datetime, datetime]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT labs.name, runs.due_at, runs.started_at FROM audit_runs runs"
                    " JOIN labs ON labs.id = runs.lab_id WHERE runs.due_at IS NOT NULL"
                )
            )
            return [(name, due.astimezone(UTC), started.astimezone(UTC)) for name, due, started in rows]
    finally:
        engine.dispose()


def lifecycle_times(url: str, event: str) -> dict[str, list[datetime]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT labs.name, events.at FROM lifecycle_events events JOIN labs ON labs.id = events.lab_id"
                    " WHERE events.event = :event ORDER BY events.at"
                ),
                {"event": event},
            )
            found: dict[str, list[datetime]] = {}
            for name, at in rows:
                found.setdefault(name, []).append(at.astimezone(UTC))
            return found
    finally:
        engine.dispose()


def tick_after(moment: datetime, interval: int) -> datetime:
    seconds = int(moment.timestamp()) // interval * interval + interval
    return datetime.fromtimestamp(seconds, UTC)


# ------------------------------------------------------------------------------------------ the run


def run_scenario(moto: str, server: str, folder: Path, scenario: Scenario) -> Outcome:
    labs = [lab(index) for index in range(1, scenario.labs + 1)]
    context = provision(moto, labs, scenario.concurrency)
    start = tick_after(datetime.now(UTC) + timedelta(seconds=20), scenario.interval)  # after the start-up
    ticks = [start + timedelta(seconds=scenario.interval * k) for k in range(scenario.intervals)]
    kill_tick = ticks[len(ticks) // 2 - 1]
    expiring = labs[-scenario.expiring :] if scenario.expiring else []
    expires = {
        one.name: (ticks[1] if position % 2 == 0 else ticks[-2]) + timedelta(seconds=scenario.interval / 2)
        for position, one in enumerate(expiring)
    }
    with own_database(server, "auditor_replicas") as url:
        config = folder / "config.toml"
        config.write_text(config_text(moto, url, labs, scenario, expires), encoding="utf-8")
        logs = [folder / f"replica-{number}.log" for number in range(scenario.replicas)]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "auditor", "daemon", "--config", str(config)],
                stdout=path.open("w"),
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            for path in logs
        ]
        try:
            for path in logs:
                wait_for(lambda path=path: log_events(path, "replica_started"), 60, f"{path.name} to start")
            if datetime.now(UTC) >= ticks[0]:
                raise RuntimeError("the replicas took too long to start: give them more time")
            wait_for(lambda: datetime.now(UTC) >= kill_tick, scenario.interval * (len(ticks) + 2), "mid-run")
            known = {(lab_, due) for lab_, due, _ in scheduled_runs(url)}

            def started_unrecorded() -> tuple[str, datetime] | None:
                for entry in log_events(logs[0], "scheduled_audit_started"):
                    key = (entry["lab"], datetime.fromisoformat(entry["due_at"]))
                    if key[1] >= kill_tick and key not in known:
                        return key
                return None

            killed_during = wait_for(started_unrecorded, scenario.interval * 4, "replica 0 to start an audit")
            processes[0].send_signal(signal.SIGKILL)
            killed_at = datetime.now(UTC)
            processes[0].wait(timeout=10)
            if killed_during in {(lab_, due) for lab_, due, _ in scheduled_runs(url)}:
                raise RuntimeError("replica 0 recorded its audit before the kill landed: run it again")
            last = ticks[-1]

            def all_ticks_recorded() -> bool:
                recorded = {(lab_, due) for lab_, due, _ in scheduled_runs(url)}
                return all(
                    (one.name, last) in recorded for one in labs if one.name not in expires
                ) and datetime.now(UTC) > last + timedelta(seconds=scenario.interval / 2)

            wait_for(all_ticks_recorded, scenario.interval * (len(ticks) + 4), "the last tick", every=0.5)
            wait_for(
                lambda: len(lifecycle_times(url, "torn_down")) == len(expires), 60, "the teardowns", every=0.5
            )
            for process in processes[1:]:
                process.send_signal(signal.SIGTERM)
            exit_codes = [process.wait(timeout=60) for process in processes]
            runs = scheduled_runs(url)
            audits = Counter((lab_, due) for lab_, due, _ in runs)
            taken_over = [started for lab_, due, started in runs if (lab_, due) == killed_during]
            iam = {one.name: context.sessions.client(one.destination, "iam") for one in expiring}
            roles_left = [
                name
                for name, client in iam.items()
                if DESTINATION_ROLE in {role["RoleName"] for role in client.list_roles()["Roles"]}
            ]
            return Outcome(
                scenario=scenario,
                ticks=ticks,
                audits={key: count for key, count in audits.items() if ticks[0] <= key[1] <= last},
                lateness=[(started - due).total_seconds() for _, due, started in runs],
                expires=expires,
                torn_down=lifecycle_times(url, "torn_down"),
                teardown_started=lifecycle_times(url, "teardown_started"),
                roles_left=roles_left,
                killed_at=killed_at,
                killed_during=killed_during,
                taken_over_at=taken_over[0] if taken_over else None,
                exit_codes=exit_codes,
            )
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
            context.close()


def report(outcome: Outcome) -> None:
    scenario = outcome.scenario
    expected = sum(
        1 for lab_ in outcome.lab_names() for tick in outcome.ticks if outcome.expected(lab_, tick) == 1
    )
    once = sum(1 for count in outcome.audits.values() if count == 1)
    lateness = sorted(outcome.lateness)
    print(
        f"replicas bench: {scenario.replicas} replicas, {scenario.labs} labs, {scenario.intervals} intervals"
        f" of {scenario.interval} s, takeover {scenario.takeover} s; replica 0 killed -9 during the audit of"
        f" {outcome.killed_during[0]} due {outcome.killed_during[1]:%H:%M:%S}"
    )
    print(
        f"  lab-ticks due: {expected}; audited exactly once: {once} ({once / max(1, expected):.3f} of them)"
    )
    print(f"  audited twice or more: {sum(1 for c in outcome.audits.values() if c > 1)}")
    takeover = outcome.takeover_seconds()
    if takeover is None:
        print("  the killed replica's audit was never recorded by another replica")
    else:
        print(
            f"  the killed replica's audit recorded by another {takeover:.1f} s after the kill"
            f" ({takeover / scenario.takeover:.2f}x the takeover time; the target: within a minute)"
        )
    if lateness:
        print(
            f"  start after due: median {lateness[len(lateness) // 2]:.2f} s, max {lateness[-1]:.2f} s"
            f" = {lateness[-1] / scenario.interval:.2f} intervals"
        )
    torn = {lab_: len(times) for lab_, times in outcome.torn_down.items()}
    print(
        f"  expired labs: {len(outcome.expires)}, torn down once: {sum(1 for n in torn.values() if n == 1)}"
    )
    problems = outcome.problems()
    print("  OK: every target met" if not problems else "  PROBLEMS:\n    " + "\n    ".join(problems))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--interval", type=int, default=15, help="seconds (dividing a minute)")
    parser.add_argument("--intervals", type=int, default=10)
    parser.add_argument("--takeover", type=int, default=5, help="seconds")
    parser.add_argument("--postgres", default=os.environ.get("AUDITOR_TEST_POSTGRES_URL", DEFAULT_SERVER))
    args = parser.parse_args(argv)
    fake_credentials()
    scenario = Scenario(
        labs=args.labs,
        replicas=args.replicas,
        interval=args.interval,
        intervals=args.intervals,
        takeover=args.takeover,
        expiring=min(4, args.labs // 4),
    )
    with moto_server() as moto, tempfile.TemporaryDirectory(prefix="replicas-bench-") as scratch:
        outcome = run_scenario(moto, args.postgres, Path(scratch), scenario)
    report(outcome)
    return 0 if not outcome.problems() else 1


if __name__ == "__main__":
    sys.exit(main())
