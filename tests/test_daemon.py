"""`auditor daemon` as a subprocess against a moto server: schedule, events, expiry, signals, faults."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import ProgrammingError

from auditor.app.context import open_context
from auditor.domain.config import LabConfig
from auditor.domain.model import Verdict
from auditor.domain.spec import DESTINATION_ROLE
from auditor.store import DatabaseUnavailable, Store
from conftest import labs_toml, make_config, pair, write_config
from provisioner.provision import provision_targets

pytestmark = pytest.mark.slow  # the daemon in a process of its own, on a moto server

DAEMON_SETTINGS = """
[daemon]
health_port = {port}
jitter = "0s"
reconcile_interval = "1s"
stop_timeout = "5s"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll an observable condition (the database, the log, /metrics) until it holds, or fail by a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)  # the poll's period, not a wait for something to have happened
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class RunningDaemon:
    process: subprocess.Popen[str]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The daemon's log as structlog wrote it (JSON lines, its output being no terminal), by event name."""
        found = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and (name is None or entry.get("event") == name):
                    found.append(entry)
        return found

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of /metrics of that name and labels (0 when nothing was counted yet)."""
        _, body = self.get("/metrics")
        return sum(
            float(sample.value)
            for family in text_string_to_metric_families(body)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def signal(self, number: int) -> None:
        self.process.send_signal(number)


def config_text(
    tmp_path: Path, moto: str, labs: tuple[LabConfig, ...], interval: str, port: int, extra: str = ""
) -> Path:
    daemon = DAEMON_SETTINGS.format(port=port)
    path = write_config(tmp_path, moto, labs_toml(*labs), extra=extra)
    text = path.read_text().replace("[daemon]\nhealth_port = 0\n", daemon)
    text = text.replace("[audit]\n", f'[audit]\ninterval = "{interval}"\n')
    path.write_text(text)
    return path


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., RunningDaemon]]:
    started: list[RunningDaemon] = []

    def start(config: Path, env: dict[str, str] | None = None) -> RunningDaemon:
        port = int(config.read_text().split("health_port = ", 1)[1].split()[0])
        log_path = tmp_path / f"daemon-{len(started)}.log"
        handle = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "auditor", "daemon", "--config", str(config)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        daemon = RunningDaemon(process, port, log_path)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=10)


def provision(moto: str, labs: tuple[LabConfig, ...], events: bool = False) -> Any:
    from auditor.domain.config import EventsSettings

    config = make_config(labs, endpoint_url=moto)
    if events:
        from dataclasses import replace

        config = replace(config, events=EventsSettings(wait_seconds=1, coalesce=timedelta(seconds=1)))
    context = open_context(config)
    outcomes = provision_targets(context, context.targets(), dry_run=False)
    assert all(outcome.ok for outcome in outcomes), outcomes
    return context


def runs_of(database: Path, lab: str) -> list[Any]:
    """The lab's recorded runs; none while the daemon has not yet created the database."""
    return pg_runs(f"sqlite:///{database}", lab) if database.exists() else []


def open_trust(context: Any, lab: LabConfig) -> None:
    iam = context.sessions.client(lab.destination, "iam")
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam.update_assume_role_policy(RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(document))


def test_scheduled_audits_are_recorded_and_a_change_is_caught_on_the_next_cycle(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    labs = (pair(1), pair(2))
    context = provision(moto_server, labs)
    daemon = start_daemon(config_text(tmp_path, moto_server, labs, "2s", free_port()))
    database = tmp_path / "auditor.db"
    for lab in labs:
        wait_for(lambda lab=lab: runs_of(database, lab.name), 60, f"a first audit of {lab.name}")
    assert runs_of(database, "pair-01")[-1].verdict is Verdict.CONFORMANT
    status, body = daemon.get("/healthz")
    assert status == 200 and json.loads(body)["healthy"] is True
    open_trust(context, labs[0])
    wait_for(lambda: runs_of(database, "pair-01")[-1].verdict is Verdict.DRIFTED, 30, "the drift to be seen")
    assert runs_of(database, "pair-02")[-1].verdict is Verdict.CONFORMANT
    status, metrics = daemon.get("/metrics")
    assert status == 200
    assert 'auditor_audits_total{verdict="drifted"}' in metrics
    assert 'auditor_findings_total{severity="critical"}' in metrics
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=15) == 0
    assert daemon.events("daemon_stopped") and daemon.events("lab_audited")


def send_change_event(context: Any, lab: LabConfig) -> None:
    detail = {
        "eventSource": "iam.amazonaws.com",
        "eventName": "UpdateAssumeRolePolicy",
        "recipientAccountId": lab.destination.account_id,
        "requestParameters": {"roleName": DESTINATION_ROLE},
    }
    entry = {"Source": "aws.iam", "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(detail)}
    answer = context.sessions.client(lab.destination, "events").put_events(Entries=[entry])
    assert answer["FailedEntryCount"] == 0


def test_a_change_event_is_audited_well_before_the_next_cycle(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    labs = (pair(1), pair(2))
    context = provision(moto_server, labs, events=True)
    extra = '[events]\nwait_seconds = 1\ncoalesce = "1s"\n'
    daemon = start_daemon(config_text(tmp_path, moto_server, labs, "1h", free_port(), extra=extra))
    database = tmp_path / "auditor.db"
    wait_for(lambda: runs_of(database, "pair-01"), 60, "the first audit")
    wait_for(lambda: daemon.events("events_listening"), 30, "the event listener")
    # Foreign and malformed messages are dropped without harm.
    sqs = context.sessions.client(runtime_operator(), "sqs")
    queue = sqs.get_queue_url(QueueName="lab-auditor-events")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="not an event at all")
    sqs.send_message(
        QueueUrl=queue, MessageBody=json.dumps({"detail-type": "x", "detail": {}, "account": "999999999999"})
    )
    open_trust(context, labs[0])
    sent = time.monotonic()
    for _ in range(3):  # a burst: one audit, not three
        send_change_event(context, labs[0])

    def event_runs() -> list[Any]:
        return [r for r in runs_of(database, "pair-01") if r.trigger.value == "event"]

    event_run = wait_for(event_runs, 30, "an event-triggered audit")
    assert time.monotonic() - sent < 20
    assert event_run[0].verdict is Verdict.DRIFTED

    def burst_handled_then_audited() -> bool:
        """All three events taken off the queue, and an audit started after the last of them: from
        then on no further audit can come of the burst (any would have started by now)."""
        handled = [datetime.fromisoformat(e["timestamp"]) for e in daemon.events("change_event")]
        return len(handled) == 3 and any(run.started_at > max(handled) for run in event_runs())

    wait_for(burst_handled_then_audited, 30, "the whole burst to be handled and audited")
    assert len(event_runs()) == 1
    assert [r.trigger.value for r in runs_of(database, "pair-02")] == ["schedule"]
    assert len(daemon.events("event_dropped")) >= 2
    assert daemon.process.poll() is None
    assert daemon.metric("auditor_change_events_total", fate="dropped") == 2.0
    assert daemon.metric("auditor_change_events_total", fate="matched") == 3.0
    audit_event = next(e for e in daemon.events("lab_audited") if e.get("trigger") == "event")
    assert "run_id" in audit_event and audit_event["destination_account"] == "200000000001"


def runtime_operator() -> Any:
    from auditor.aws.accounts import OPERATOR

    return OPERATOR


def test_a_lab_that_expired_while_the_daemon_was_killed_is_torn_down_after_the_restart(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    lab = pair(1)
    context = provision(moto_server, (lab, pair(2)))
    config = config_text(tmp_path, moto_server, (lab, pair(2)), "1h", free_port())
    first = start_daemon(config)
    database = tmp_path / "auditor.db"
    wait_for(lambda: runs_of(database, "pair-01"), 60, "the first audit")
    first.process.kill()  # SIGKILL: no clean-up at all
    first.process.wait(timeout=10)
    # The lab's expiry falls while no daemon is running: now, just after the kill.
    expires = datetime.now(UTC)
    config.write_text(
        config.read_text().replace(
            'name = "pair-01"\n', f'name = "pair-01"\nexpires_at = "{expires.isoformat()}"\n'
        )
    )
    iam = context.sessions.client(lab.destination, "iam")
    assert iam.get_role(RoleName=DESTINATION_ROLE)  # still there: nobody was running
    start_daemon(config)

    def torn_down() -> bool:
        store = Store.from_url(f"sqlite:///{database}")
        try:
            return {s.name: s.state.value for s in store.status()}.get("pair-01") == "torn_down"
        except DatabaseUnavailable:
            return False
        finally:
            store.close()

    wait_for(torn_down, 60, "the expired lab to be torn down")
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert DESTINATION_ROLE not in roles
    other = context.sessions.client(pair(2).destination, "iam")
    assert other.get_role(RoleName=DESTINATION_ROLE)  # the lab that did not expire stays


POSTGRES_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def postgres_binaries() -> Path:
    """PostgreSQL's own programs (initdb, pg_ctl); a test that needs them fails in CI, else skips."""
    if POSTGRES_BIN is None:
        if os.environ.get("AUDITOR_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL's binaries are not installed")
        pytest.skip("PostgreSQL's binaries are not installed")
    return POSTGRES_BIN


def run_as_postgres(*command: str, timeout: float = 120) -> None:
    """A PostgreSQL program, as the postgres user when run as root (the server refuses root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=timeout)


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the fourth field of /proc/PID/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


@dataclass
class OwnPostgres:
    """A PostgreSQL instance of this test's own, so that stopping it touches nothing else."""

    data: Path
    port: int

    def pg_ctl(self, *args: str) -> None:
        run_as_postgres(str(postgres_binaries() / "pg_ctl"), "-D", str(self.data), "-w", *args, timeout=60)

    def start(self) -> None:
        self.pg_ctl(
            "-o",
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
            "-l",
            str(self.data / "log"),
            "start",
        )

    def stop(self) -> None:
        # "immediate", as a crash or a lost host: no shutdown checkpoint to wait for (a "fast" stop once
        # took over 60 s on a loaded machine), and what the tests need is only that the database is away.
        # An immediate stop once waited out pg_ctl's 60 s too: then the server is killed, as a lost host.
        try:
            self.pg_ctl("-m", "immediate", "-t", "15", "stop")
        except subprocess.CalledProcessError:
            if not (self.data / "postmaster.pid").exists():
                raise  # it was not running
            self.kill()

    def kill(self) -> None:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        server = [postmaster, *children_of(postmaster)]
        for pid in server:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in server), 30, "the server to die")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    binaries = postgres_binaries()
    # Not under pytest's own temporary folder: the postgres user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="lab-auditor-pg-"))
    data = base / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
        base.chmod(0o755)
    run_as_postgres(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
    instance = OwnPostgres(data, free_port())
    instance.start()
    yield instance
    with contextlib.suppress(subprocess.CalledProcessError):  # the test may have left it stopped
        instance.stop()
    shutil.rmtree(base, ignore_errors=True)


def pg_runs(url: str, lab: str) -> list[Any]:
    try:
        store = Store.from_url(url)
        try:
            return store.runs_since(None, [lab]).get(lab, [])
        finally:
            store.close()
    except (DatabaseUnavailable, ProgrammingError):  # not migrated yet, or stopped by the test
        return []


def test_the_daemon_survives_a_database_restart_and_loses_no_result(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon], own_postgres: OwnPostgres
) -> None:
    labs = (pair(1),)
    provision(moto_server, labs)
    config = config_text(tmp_path, moto_server, labs, "2s", free_port())
    daemon = start_daemon(config, env={"AUDITOR_DATABASE_URL": own_postgres.url})
    wait_for(lambda: len(pg_runs(own_postgres.url, "pair-01")) >= 1, 60, "audits in PostgreSQL")
    before_outage = len(pg_runs(own_postgres.url, "pair-01"))
    own_postgres.stop()
    outage_started = datetime.now(UTC)
    wait_for(lambda: daemon.events("database_unavailable"), 30, "the daemon to notice the outage")
    audits_when_noticed = daemon.metric("auditor_audits_total")
    wait_for(
        lambda: daemon.metric("auditor_audits_total") >= audits_when_noticed + 2,
        30,
        "more audits while the database is away",
    )
    assert daemon.process.poll() is None
    outage_ended = datetime.now(UTC)
    own_postgres.start()
    wait_for(
        lambda: len(pg_runs(own_postgres.url, "pair-01")) >= before_outage + 3,
        60,
        "the kept results and new ones",
    )
    during = [
        r for r in pg_runs(own_postgres.url, "pair-01") if outage_started <= r.started_at <= outage_ended
    ]
    assert during, "the audits made while the database was away were lost"
    assert daemon.process.poll() is None
    daemon.signal(signal.SIGINT)
    assert daemon.process.wait(timeout=15) == 0
