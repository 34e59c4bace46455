"""The daemon's bookkeeping, in process: results are written once each, and kept while the database is away."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from auditor.daemon import Daemon
from auditor.model import LabAudit, Trigger, Verdict
from auditor.runtime import open_runtime
from auditor.store import Store, upgrade
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


def daemon_on(url: str) -> Daemon:
    upgrade(url)
    config = make_config((pair(1),), database_url=url)
    return Daemon(config, open_runtime(config))


def recorded(url: str) -> int:
    store = Store.from_url(url)
    try:
        return len(store.runs_since(None, ["pair-01"]).get("pair-01", []))
    finally:
        store.close()


def test_concurrent_results_are_each_written_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    daemon = daemon_on(url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: daemon.record(audit(n), Trigger.SCHEDULE), range(40)))
    assert recorded(url) == 40
    assert not daemon.state.unrecorded


def test_results_are_kept_while_the_database_is_away_and_written_when_it_is_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    daemon = daemon_on(url)
    daemon.store = Store.from_url("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    for number in range(3):
        daemon.record(audit(number), Trigger.SCHEDULE)
    assert len(daemon.state.unrecorded) == 3
    assert recorded(url) == 0
    daemon.store = Store.from_url(url)
    daemon.record(audit(3), Trigger.SCHEDULE)
    assert recorded(url) == 4
    assert not daemon.state.unrecorded


def test_a_result_the_store_refuses_does_not_block_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    daemon = daemon_on(url)
    # A naive instant: the store refuses it (it cannot know which time it is).
    broken = LabAudit("pair-01", "100000000001", "200000000001", Verdict.CONFORMANT, started_at=NAIVE)
    with capture_logs() as logs:
        daemon.record(broken, Trigger.SCHEDULE)
    daemon.record(audit(1), Trigger.SCHEDULE)
    assert recorded(url) == 1
    assert not daemon.state.unrecorded
    refused = [(e["lab"], e["log_level"]) for e in logs if e["event"] == "audit_not_recordable"]
    assert refused == [("pair-01", "error")]
