"""A lab's lease (auditor/app/leases.py), on SQLite and PostgreSQL: one holder at a time, a waiter that gets
it once it is given back or gives up naming the holder, holders gone taken over, renewals."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditor.app.leases import LabBusy, Leases, Purpose, busy_text, holder_text, process_owner
from auditor.store import LabState, Store
from auditor.store.records import Lease

ORIGIN, DESTINATION = "100000000001", "200000000001"
T0 = datetime(2026, 12, 7, 14, 2, 11, tzinfo=UTC)


@pytest.fixture
def lab(store: Store) -> str:
    store.ensure_lab("pair-07", ORIGIN, DESTINATION, None)
    return "pair-07"


@pytest.fixture
def leases(store: Store) -> Iterator[Leases]:
    held = Leases(lambda: store)
    yield held
    held.close()


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_holder_is_named_as_people_read_it() -> None:
    assert holder_text("host-a:4321") == "auditor pid 4321 on host-a"
    assert holder_text("job:17") == "the daemon replicas' job 17"
    lease = Lease("pair-07", "host-a:4321", "teardown", T0, T0)
    assert busy_text(lease) == "being torn down by auditor pid 4321 on host-a since 14:02:11"


def test_a_lease_held_elsewhere_is_waited_for_then_refused_naming_its_holder(store: Store, lab: str) -> None:
    store.claim_lease(lab, "host-a:4321", "teardown", datetime.now(UTC), timedelta(minutes=1))
    waiting = Leases(lambda: store)
    with pytest.raises(LabBusy) as refused:
        waiting.take(lab, Purpose.PROVISION, wait=timedelta(milliseconds=300))
    assert str(refused.value).startswith("being torn down by auditor pid 4321 on host-a since ")
    assert waiting.held() == {}


def test_a_waiter_gets_the_lease_as_soon_as_its_holder_gives_it_back(store: Store, lab: str) -> None:
    holder, waiter = Leases(lambda: store, owner="host-a:1"), Leases(lambda: store, owner="host-b:2")
    holder.take(lab, Purpose.TEARDOWN)
    tried = threading.Event()
    claim = store.claim_lease

    def claim_and_tell(*args: Any, **named: Any) -> LabState | None:
        state = claim(*args, **named)
        if state is None:
            tried.set()
        return state

    store.claim_lease = claim_and_tell  # type: ignore[method-assign]
    got: list[LabState] = []
    thread = threading.Thread(
        target=lambda: got.append(waiter.take(lab, Purpose.AUDIT, timedelta(seconds=30)))
    )
    thread.start()
    assert tried.wait(timeout=10)  # it found the lab held, and waits
    holder.give_back(lab)
    thread.join(timeout=10)
    assert got == [LabState.PLANNED]
    assert store.lease_of(lab) is not None and store.lease_of(lab).owner == "host-b:2"  # type: ignore[union-attr]
    waiter.close()
    holder.close()
    assert store.lease_of(lab) is None


def test_the_lease_of_a_process_of_this_host_that_is_gone_is_taken_over_at_once(
    store: Store, lab: str, leases: Leases
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owner = process_owner().rsplit(":", 1)[0] + f":{gone.pid}"
    store.claim_lease(lab, owner, "provision", datetime.now(UTC), timedelta(hours=1))
    assert leases.take(lab, Purpose.TEARDOWN) is LabState.PLANNED
    assert store.lease_of(lab).owner == process_owner()  # type: ignore[union-attr]


def test_a_replicas_job_takes_its_own_lease_back_when_it_is_retried(store: Store, lab: str) -> None:
    first_try, retried = Leases(lambda: store), Leases(lambda: store)
    first_try.take(lab, Purpose.TEARDOWN, owner="job:17")
    with pytest.raises(LabBusy):
        retried.take(lab, Purpose.TEARDOWN, owner="job:18")
    assert retried.take(lab, Purpose.TEARDOWN, owner="job:17", reclaim_own=True) is LabState.PLANNED


def test_a_renewed_lease_stays_and_an_unrenewed_one_lapses(store: Store, lab: str) -> None:
    clock = Clock(T0)
    ttl = timedelta(seconds=60)
    holder = Leases(lambda: store, owner="host-a:1", ttl=ttl, clock=clock)
    other = Leases(lambda: store, owner="host-b:2", ttl=ttl, clock=clock)
    holder.take(lab, Purpose.PROVISION)
    clock.now = T0 + timedelta(seconds=50)
    holder.renew()
    clock.now = T0 + timedelta(seconds=100)  # 50 s after the renewal: still held
    with pytest.raises(LabBusy):
        other.take(lab, Purpose.TEARDOWN)
    clock.now = T0 + timedelta(seconds=111)  # 61 s after it: lapsed
    assert other.take(lab, Purpose.TEARDOWN) is LabState.PLANNED
    holder.renew()
    assert holder.held() == {}  # lost, and known to be lost
    assert store.lease_of(lab).owner == "host-b:2"  # type: ignore[union-attr]


def test_a_holder_that_lost_its_lease_gives_back_nothing_of_another(store: Store, lab: str) -> None:
    holder = Leases(lambda: store, owner="host-a:1")
    holder.take(lab, Purpose.AUDIT)
    store.release_leases("host-a:1", [lab])
    store.claim_lease(lab, "host-b:2", "teardown", datetime.now(UTC), timedelta(minutes=1))
    holder.close()
    assert store.lease_of(lab).owner == "host-b:2"  # type: ignore[union-attr]


def test_the_lease_says_the_labs_state_when_it_is_taken(store: Store, lab: str, leases: Leases) -> None:
    store.record_torn_down(lab, T0)
    assert leases.take(lab, Purpose.AUDIT) is LabState.TORN_DOWN
