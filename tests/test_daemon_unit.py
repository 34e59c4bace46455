"""The daemon's service and its scheduler, in process: results are written once each, kept while the database
is away, and stopping records what it abandons."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from auditor.app.context import open_context
from auditor.app.leases import LEASE_TTL, LEASED_RETRY, Leased, process_owner
from auditor.daemon.drivers.scheduler import SchedulerDriver, audit_job_id
from auditor.daemon.service import Service
from auditor.domain.config import DaemonSettings
from auditor.domain.model import LabAudit, Trigger, Verdict
from auditor.store import RecordedRun, Store, upgrade
from conftest import make_config, pair

pytestmark = pytest.mark.usefixtures("moto_in_process")

T0 = datetime(2026, 11, 29, 10, tzinfo=UTC)
NAIVE = datetime(2026, 11, 29, 10)


def audit(number: int) -> LabAudit:
    return LabAudit(
        lab="pair-01",
        origin_account="100000000001",
        destination_account="200000000001",
        verdict=Verdict.CONFORMANT,
        started_at=T0 + timedelta(seconds=number),
        finished_at=T0 + timedelta(seconds=number),
    )


def service_on(url: str) -> Service:
    upgrade(url)
    config = make_config((pair(1),), database_url=url)
    return Service(config, open_context(config))


def recorded(url: str) -> int:
    store = Store.from_url(url)
    try:
        return len(store.runs_since(None, ["pair-01"]).get("pair-01", []))
    finally:
        store.close()


def latest(url: str) -> RecordedRun:
    store = Store.from_url(url)
    try:
        return store.latest_runs(["pair-01"])["pair-01"]
    finally:
        store.close()


def test_concurrent_results_are_each_written_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    service = service_on(url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: service.record(audit(n), Trigger.SCHEDULE), range(40)))
    assert recorded(url) == 40
    assert not service.state.unrecorded


def test_results_are_kept_while_the_database_is_away_and_written_when_it_is_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    service = service_on(url)
    service.store = Store.from_url("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    for number in range(3):
        service.record(audit(number), Trigger.SCHEDULE)
    assert len(service.state.unrecorded) == 3
    assert recorded(url) == 0
    service.store = Store.from_url(url)
    service.record(audit(3), Trigger.SCHEDULE)
    assert recorded(url) == 4
    assert not service.state.unrecorded


def test_a_result_the_store_refuses_does_not_block_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    service = service_on(url)
    # A naive instant: the store refuses it (it cannot know which time it is).
    broken = LabAudit("pair-01", "100000000001", "200000000001", Verdict.CONFORMANT, started_at=NAIVE)
    with capture_logs() as logs:
        service.record(broken, Trigger.SCHEDULE)
    service.record(audit(1), Trigger.SCHEDULE)
    assert recorded(url) == 1
    assert not service.state.unrecorded
    refused = [(e["lab"], e["log_level"]) for e in logs if e["event"] == "audit_not_recordable"]
    assert refused == [("pair-01", "error")]


def held_at_its_first_request(service: Service) -> tuple[threading.Event, threading.Event]:
    """Hold the service's next audit of pair-01 at its first AWS request until `release` is set."""
    entered, release = threading.Event(), threading.Event()

    def hold(**_: object) -> None:
        entered.set()
        release.wait(30)

    lab = service.targets["pair-01"].lab
    for access in (lab.origin, lab.destination):
        service.context.sessions.hook(access, "before-call", hold)
    return entered, release


def stopping_service(tmp_path: Path, stop_timeout: timedelta) -> tuple[Service, str]:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    service = service_on(url)
    service.config = replace(service.config, daemon=DaemonSettings(stop_timeout=stop_timeout))
    return service, url


def test_stop_lets_a_running_audit_finish_and_records_its_result(tmp_path: Path) -> None:
    service, url = stopping_service(tmp_path, timedelta(seconds=30))
    entered, release = held_at_its_first_request(service)
    worker = threading.Thread(target=service.audit, args=("pair-01", Trigger.SCHEDULE))
    worker.start()
    assert entered.wait(30), "the audit never reached AWS"
    stopper = threading.Thread(target=service.stop)
    stopper.start()
    release.set()
    stopper.join(30)
    worker.join(30)
    assert not stopper.is_alive() and not worker.is_alive()
    assert recorded(url) == 1
    assert latest(url).error is None  # its own result, not an abandoned one


def test_an_audit_still_running_at_the_stop_timeout_is_recorded_as_abandoned(tmp_path: Path) -> None:
    service, url = stopping_service(tmp_path, timedelta(milliseconds=200))
    entered, release = held_at_its_first_request(service)
    worker = threading.Thread(target=service.audit, args=("pair-01", Trigger.SCHEDULE))
    worker.start()
    try:
        assert entered.wait(30), "the audit never reached AWS"
        with capture_logs() as logs:
            service.stop()
        assert (latest(url).verdict, latest(url).error) == (
            Verdict.ERROR,
            "abandoned: the daemon stopped before the audit finished",
        )
        stopped = [e for e in logs if e["event"] == "daemon_stopped"]
        assert [e["abandoned"] for e in stopped] == [["pair-01"]]
    finally:
        release.set()
        worker.join(30)


def test_an_audit_logs_one_line_with_its_lab_run_and_result(tmp_path: Path) -> None:
    service = service_on(f"sqlite:///{tmp_path / 'auditor.db'}")
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        service.audit("pair-01", Trigger.SCHEDULE)
    (line,) = [e for e in logs if e["event"] == "lab_audited"]
    assert (line["lab"], line["trigger"], line["verdict"]) == ("pair-01", "schedule", "broken")  # never built
    assert line["origin_account"] == "100000000001" and line["destination_account"] == "200000000001"
    assert len(line["run_id"]) == 12 and line["findings"] > 0 and line["requests"] > 0
    assert line["duration_ms"] >= 0
    assert not {key for key in line if "secret" in key or "token" in key or "credential" in key}


# ------------------------------------------------------------------------------------------- leases


def test_an_audit_holds_the_labs_lease_while_it_runs_and_gives_it_back_with_its_result(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    service = service_on(url)
    entered, release = held_at_its_first_request(service)
    worker = threading.Thread(target=service.audit, args=("pair-01", Trigger.SCHEDULE))
    worker.start()
    store = Store.from_url(url)
    try:
        assert entered.wait(30), "the audit never reached AWS"
        lease = store.lease_of("pair-01")
        assert lease is not None and (lease.owner, lease.purpose) == (process_owner(), "audit")
        release.set()
        worker.join(30)
        assert recorded(url) == 1
        assert store.lease_of("pair-01") is None
    finally:
        release.set()
        store.close()


def test_an_audit_of_a_lab_a_command_holds_is_left_for_later_and_records_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    service = service_on(url)
    driver = SchedulerDriver(service)
    driver.schedule()
    driver.scheduler.start(paused=True)
    store = service.database()
    assert store.claim_lease("pair-01", "host-a:4321", "provision", datetime.now(UTC), LEASE_TTL)
    try:
        with capture_logs() as logs:
            outcome = driver.audit("pair-01", Trigger.SCHEDULE.value)
        assert outcome is Leased.LATER
        assert recorded(url) == 0
        (deferred,) = [e for e in logs if e["event"] == "audit_deferred"]
        assert "being provisioned by auditor pid 4321 on host-a since" in deferred["reason"]
        job = driver.scheduler.get_job(audit_job_id("pair-01"))
        assert job is not None
        wait = job.next_run_time - datetime.now(UTC)
        assert LEASED_RETRY - timedelta(seconds=5) < wait <= LEASED_RETRY  # soon, not at the next interval
    finally:
        driver.scheduler.shutdown(wait=False)


def test_a_lab_torn_down_by_a_command_is_audited_no_more(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    service = service_on(url)
    store = service.database()
    store.record_torn_down("pair-01", datetime.now(UTC))
    assert service.audit("pair-01", Trigger.SCHEDULE) is Leased.GONE
    assert recorded(url) == 0
    assert service.torn_down("pair-01")
    assert store.lease_of("pair-01") is None
    assert service.audit("pair-01", Trigger.EVENT) is Leased.GONE  # known now, without asking
