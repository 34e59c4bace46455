"""Daemon replicas on PostgreSQL, as real `auditor daemon` processes on a moto server and a PostgreSQL
database of the test's own: the scenario of bench/replicas_bench.py (`make bench-scale`), smaller."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import test_daemon
from sqlalchemy import URL, create_engine, text
from test_daemon import (
    OwnPostgres,
    RunningDaemon,
    config_text,
    free_port,
    open_trust,
    pg_runs,
    provision,
    wait_for,
)
from test_daemon_change_events import account_trails, announce, latest_run

from auditor.aws.accounts import OPERATOR
from auditor.aws.events import queue_url as queue_url_of
from auditor.daemon.drivers.replicas import EVENT_AUDIT_TASK
from auditor.domain.model import Check
from bench.common import own_database
from bench.replicas_bench import Scenario, run_scenario
from conftest import pair

pytestmark = pytest.mark.slow

start_daemon = test_daemon.start_daemon  # the fixtures, shared
own_postgres = test_daemon.own_postgres

EVENTS = '[events]\nwait_seconds = 1\ncoalesce = "1s"\n'
REPLICA = '[daemon]\nmode = "replicas"\ntakeover = "5s"\n'

SMALL = Scenario(labs=6, replicas=3, interval=5, intervals=4, takeover=3, expiring=2, concurrency=2)


def test_three_replicas_audit_each_lab_once_per_interval_and_survive_a_kill(
    moto_server: str, postgres_server: URL, tmp_path: Path
) -> None:
    server = postgres_server.render_as_string(hide_password=False)
    outcome = run_scenario(moto_server, server, tmp_path, SMALL)
    assert outcome.problems() == []
    # Every due audit of every lab, once: the one the killed replica had under way included.
    for lab in outcome.lab_names():
        for tick in outcome.ticks:
            if outcome.expected(lab, tick) == 1:
                assert outcome.audits.get((lab, tick)) == 1, (lab, tick)
    assert all(count == 1 for count in outcome.audits.values())
    takeover = outcome.takeover_seconds()
    assert takeover is not None and takeover < 60
    # Each expiry torn down once, the resources gone; the survivors stop cleanly on SIGTERM.
    assert sorted(outcome.torn_down) == sorted(outcome.expires)
    assert all(len(times) == 1 for times in outcome.torn_down.values())
    assert outcome.roles_left == []
    assert outcome.exit_codes[0] == -9 and outcome.exit_codes[1:] == [0, 0]


def event_jobs_left(url: str) -> int:
    """Event audits queued or under way (procrastinate's own table, in the public schema)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = :task"
                        " AND status IN ('todo', 'doing')"
                    ),
                    {"task": EVENT_AUDIT_TASK},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def event_runs(url: str) -> list[Any]:
    return [run for run in pg_runs(url, "pair-01") if run.trigger.value == "event"]


def messages_left(context: Any, queue_url: str) -> int:
    attributes = context.sessions.client(OPERATOR, "sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(count) for count in attributes.values())


def test_a_change_event_is_audited_once_by_one_of_two_replicas_with_its_actor(
    moto_server: str, postgres_server: URL, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    labs = (pair(1),)
    context = provision(moto_server, labs, events=True)
    account_trails(context, labs)
    with own_database(postgres_server, "auditor_replicas") as url:
        replicas = []
        for number in range(2):
            folder = tmp_path / f"replica-{number}"
            folder.mkdir()
            # An hour's interval: no scheduled audit comes during the test, only the event's.
            config = config_text(folder, moto_server, labs, "1h", free_port(), extra=EVENTS)
            config.write_text(config.read_text().replace("[daemon]\n", REPLICA, 1))
            replicas.append(start_daemon(config, env={"AUDITOR_DATABASE_URL": url}))
        for replica in replicas:
            wait_for(lambda replica=replica: replica.events("events_listening"), 60, "both listeners")
        queue_url = queue_url_of(context.config.events, context.sessions, moto_server)
        # A lab never audited gets the audit of the hour's last tick at once: let it be done first.
        wait_for(lambda: pg_runs(url, "pair-01"), 60, "the first scheduled audit")

        open_trust(context, labs[0])
        detail = announce(context, labs[0], datetime.now(UTC))
        wait_for(lambda: event_runs(url), 30, "the event's audit")
        wait_for(
            lambda: event_jobs_left(url) == 0 and messages_left(context, queue_url) == 0,
            30,
            "the queue and the event queue to drain",
        )
        [point] = event_runs(url)
        run = latest_run(url, "pair-01")
        assert run.run_id == point.run_id
        trust = next(f for f in run.findings if f.check == Check.TRUST_POLICY)
        assert trust.changed_by is not None
        assert trust.changed_by.arn == detail["userIdentity"]["arn"]
        assert trust.changed_by.event_id == detail["eventID"]
        assert [r.trigger.value for r in pg_runs(url, "pair-01")] == ["schedule", "event"]
        assert sum(len(replica.events("lab_audited")) for replica in replicas) == 2


def replica_of_one_lab(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon], own_postgres: OwnPostgres
) -> RunningDaemon:
    """pair-01 built, and a replica auditing it every 5 s on a PostgreSQL of the test's own."""
    labs = (pair(1),)
    provision(moto_server, labs)
    config = config_text(tmp_path, moto_server, labs, "5s", free_port())
    config.write_text(config.read_text().replace("[daemon]\n", REPLICA, 1))
    return start_daemon(config, env={"AUDITOR_DATABASE_URL": own_postgres.url})


def test_a_replica_resumes_its_share_after_a_database_restart_and_stops_cleanly(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon], own_postgres: OwnPostgres
) -> None:
    """The queue lives in the database: while it is away no job comes, and when it is back the replica
    takes its work up again by itself, without a restart."""
    replica = replica_of_one_lab(moto_server, tmp_path, start_daemon, own_postgres)
    wait_for(lambda: len(pg_runs(own_postgres.url, "pair-01")) >= 2, 60, "scheduled audits")
    own_postgres.stop()
    stopped_at = datetime.now(UTC)
    wait_for(lambda: replica.events("replica_worker_failed"), 60, "the replica to notice")
    own_postgres.start()
    wait_for(
        lambda: [r for r in pg_runs(own_postgres.url, "pair-01") if r.started_at > stopped_at],
        60,
        "audits after the restart",
    )
    assert replica.process.poll() is None
    replica.signal(signal.SIGTERM)
    assert replica.process.wait(timeout=30) == 0


def test_a_replica_stops_within_its_stop_timeout_while_its_database_is_away(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon], own_postgres: OwnPostgres
) -> None:
    """SIGTERM with PostgreSQL down: it logs that it stops and is gone within `stop_timeout`, instead
    of waiting on connections that cannot come."""
    replica = replica_of_one_lab(moto_server, tmp_path, start_daemon, own_postgres)
    wait_for(lambda: len(pg_runs(own_postgres.url, "pair-01")) >= 1, 60, "a scheduled audit")
    own_postgres.stop()
    with silent_server(own_postgres.port) as accepted:  # a host gone from the network: no answer comes
        wait_for(lambda: replica.events("replica_worker_failed"), 60, "the replica to notice")
        tried = len(accepted)
        wait_for(lambda: len(accepted) > tried, 30, "the replica to try its database again")
        signalled = time.monotonic()
        replica.signal(signal.SIGTERM)
        assert replica.process.wait(timeout=90) == 0
        took = time.monotonic() - signalled
    assert took < 5 + 1.5, (took, replica.log()[-3000:])  # the stop_timeout of DAEMON_SETTINGS


@contextlib.contextmanager
def silent_server(port: int) -> Iterator[list[socket.socket]]:
    """A listener on the port that accepts connections (listed as they come) and never answers."""
    with socket.create_server(("127.0.0.1", port), backlog=64) as listener:
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    accepted.append(listener.accept()[0])

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield accepted
        finally:
            stop.set()
            thread.join()
            for connection in accepted:
                connection.close()
