"""A lab's lease: every command and job that changes or judges a lab holds it in the database.

`provision`, `teardown`, `audit` and the daemon take the lab's lease before they touch it and give it
back when done, so that two of them never act on one lab at once: a teardown is never undone by a
provision that ran beside it, two provisions never race to create the same role, an audit never
judges a lab half built or half removed. A command that finds a lab leased waits for it up to
`[lab] lease_wait`, then gives up on that lab naming the holder ("being torn down by auditor pid 4321
on host-a since 14:02:11"); the daemon does not wait, it comes back to the lab later.

A holder renews its leases while it holds them (every quarter of LEASE_TTL, in one thread for the
whole process); a lease not renewed for LEASE_TTL is taken to belong to a process that died, and a
lease of a process of this host that no longer runs is taken over at once.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, StrEnum

import structlog

from auditor.app.target import LabTarget
from auditor.common.clock import iso, utc_now
from auditor.common.errors import LabFault
from auditor.store import DatabaseUnavailable, LabState, Store
from auditor.store.records import Lease

log = structlog.get_logger()

LEASE_TTL = timedelta(seconds=60)
# The daemon does not wait for a lab a command holds: it looks at it again this much later.
LEASED_RETRY = timedelta(seconds=15)
_FIRST_POLL, _LONGEST_POLL = 0.05, 1.0  # seconds between two attempts of a command that waits


class Leased(Enum):
    """What a lab's lease said of the daemon's audit about to start."""

    HELD = "held"  # audited now (held, or no database to hold it in)
    LATER = "later"  # a command holds the lab: come back to it
    GONE = "gone"  # torn down (or the daemon stopping): not audited


class Purpose(StrEnum):
    PROVISION = "provision"
    TEARDOWN = "teardown"
    AUDIT = "audit"


_BEING: dict[str, str] = {
    Purpose.PROVISION: "being provisioned",
    Purpose.TEARDOWN: "being torn down",
    Purpose.AUDIT: "being audited",
}


def process_owner() -> str:
    """This process as a lease holder: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_text(owner: str) -> str:
    """A holder as people read it: "auditor pid 4321 on host-a", "the daemon replicas' job 17"."""
    if owner.startswith("job:"):
        return f"the daemon replicas' job {owner.removeprefix('job:')}"
    host, _, pid = owner.rpartition(":")
    return f"auditor pid {pid} on {host}" if host and pid.isdigit() else owner


def busy_text(lease: Lease) -> str:
    """ "being torn down by auditor pid 4321 on host-a since 14:02:11" """
    doing = _BEING.get(lease.purpose, "leased")
    return f"{doing} by {holder_text(lease.owner)} since {lease.since:%H:%M:%S}"


class LabBusy(LabFault):
    """Another holder kept the lab's lease for longer than this one would wait."""

    def __init__(self, lab: str, lease: Lease | None) -> None:
        self.lab, self.lease = lab, lease
        super().__init__(busy_text(lease) if lease is not None else "its lease is held by another process")


def dead_local_owner(owner: str | None) -> bool:
    """Whether a lease holder (host:pid) is a process of this host that no longer runs."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


class Leases:
    """The leases this process holds, and the thread that renews them while it holds any.

    Thread-safe: the daemon's audits and teardowns take and give back leases from many threads.
    """

    def __init__(
        self,
        store: Callable[[], Store],
        owner: str | None = None,
        ttl: timedelta = LEASE_TTL,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store, self.owner, self.ttl, self._clock = store, owner or process_owner(), ttl, clock
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # lab -> the holder it is held for
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -------------------------------------------------------------------------------------- taking

    def take(
        self,
        lab: str,
        purpose: Purpose,
        wait: timedelta = timedelta(0),
        *,
        owner: str | None = None,
        reclaim_own: bool = False,
    ) -> LabState:
        """Hold the lab's lease; the lab's state once held. Raises LabBusy after `wait` in vain.

        `owner`: a holder other than this process (a replica's job); with `reclaim_own`, it takes the
        lease back from its own earlier attempt (the same job, retried by another replica)."""
        holder = owner or self.owner
        with self._lock:
            if self._held.get(lab) == holder:
                raise RuntimeError(f"{lab}: its lease is already held by {holder}")
        deadline = self._clock() + wait
        pause = _FIRST_POLL
        while True:
            state = self._claim(lab, holder, purpose, (holder,) if reclaim_own else ())
            if state is not None:
                self._note_held(lab, holder)
                return state
            if self._clock() >= deadline or self._stop.is_set():
                raise LabBusy(lab, self._store().lease_of(lab))
            self._stop.wait(min(pause, max((deadline - self._clock()).total_seconds(), 0.0)))
            pause = min(pause * 2, _LONGEST_POLL)

    def _claim(self, lab: str, holder: str, purpose: Purpose, own: tuple[str, ...]) -> LabState | None:
        store = self._store()
        state = store.claim_lease(lab, holder, purpose.value, self._clock(), self.ttl, take_over_from=own)
        if state is not None:
            return state
        current = store.lease_of(lab)
        if current is None or not dead_local_owner(current.owner):
            return None
        log.warning("lease_taken_over", lab=lab, holder=current.owner, reason="process gone")
        return store.claim_lease(
            lab, holder, purpose.value, self._clock(), self.ttl, take_over_from=(current.owner,)
        )

    # ------------------------------------------------------------------------------ giving back

    def give_back(self, lab: str) -> None:
        with self._lock:
            holder = self._held.pop(lab, None)
        if holder is not None:
            self._release(holder, [lab])

    def forget(self, lab: str) -> str | None:
        """Stop renewing the lab's lease, for a caller that gives it back itself (in the same transaction
        as its last write); returns the holder to give it back as."""
        with self._lock:
            return self._held.pop(lab, None)

    def give_back_all(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
        by_holder: dict[str, list[str]] = {}
        for lab, holder in held.items():
            by_holder.setdefault(holder, []).append(lab)
        for holder, labs in by_holder.items():
            self._release(holder, labs)

    def close(self) -> None:
        """Give every lease back and stop renewing."""
        self._stop.set()
        self.give_back_all()
        if self._renewer is not None:
            # Not waited for longer: it may be stuck reaching a database that is away, and a stopping
            # process must not wait on it (its leases lapse by themselves).
            self._renewer.join(timeout=1.0)

    def _release(self, holder: str, labs: list[str]) -> None:
        try:
            self._store().release_leases(holder, labs)
        except DatabaseUnavailable as error:  # it lapses by itself after the ttl
            log.warning("lease_not_given_back", labs=labs, error=str(error))

    # ---------------------------------------------------------------------------------- renewing

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)

    def _note_held(self, lab: str, holder: str) -> None:
        with self._lock:
            self._held[lab] = holder
            if self._renewer is None and not self._stop.is_set():
                self._renewer = threading.Thread(target=self._renew_until_closed, name="leases", daemon=True)
                self._renewer.start()

    def _renew_until_closed(self) -> None:
        while not self._stop.wait(self.ttl.total_seconds() / 4):
            self.renew()

    def renew(self) -> None:
        """Renew every lease held; one found taken by another (this process was silent too long) is
        dropped from the held ones and logged."""
        by_holder: dict[str, set[str]] = {}
        for lab, holder in self.held().items():
            by_holder.setdefault(holder, set()).add(lab)
        for holder, labs in by_holder.items():
            try:
                still = self._store().renew_leases(holder, labs, self._clock())
            except DatabaseUnavailable as error:
                log.warning("leases_not_renewed", labs=len(labs), error=str(error))
                continue
            for lab in labs - still:
                log.error("lease_lost", lab=lab, holder=holder)
                with self._lock:
                    if self._held.get(lab) == holder:
                        del self._held[lab]


# -------------------------------------------------------------------------- a command's leases


class TornDownMeanwhile(LabFault):
    """A lab torn down by another command while this provision waited for it: it is not built again."""


@dataclass
class LabLeases:
    """The leases a command (or a daemon's job) takes on its labs before it reads or changes them.

    A command holds each lease until it ends (`per_lab=False`), so that what it planned and showed is
    still what it applies; the daemon gives each back as soon as that lab is done. A provision does not
    build again a lab torn down since it `started`, by a command it waited for (a teardown is never
    undone by a provision that ran beside it)."""

    leases: Leases
    store: Store
    purpose: Purpose
    wait: timedelta = timedelta(0)
    per_lab: bool = False
    owner: str | None = None  # a replica's job, which takes its own lease back when it is retried
    started: datetime = field(default_factory=utc_now)  # when the command began

    def hold(self, lab: str) -> LabState | None:
        """Take the lab's lease (once); the lab's state when it is newly taken."""
        if lab in self.leases.held():
            return None
        state = self.leases.take(
            lab, self.purpose, self.wait, owner=self.owner, reclaim_own=self.owner is not None
        )
        if self.purpose is Purpose.PROVISION:
            torn_down = self.store.torn_down_since(lab, self.started)
            if torn_down is not None:
                self.leases.give_back(lab)
                raise TornDownMeanwhile(
                    f"torn down at {iso(torn_down)} while this provision waited for it: not built again "
                    "(run `auditor provision` once more to build it anew)"
                )
        return state

    def done(self, lab: str) -> None:
        if self.per_lab:
            self.leases.give_back(lab)


@contextmanager
def command_leases(
    store: Store,
    purpose: Purpose,
    targets: Sequence[LabTarget],
    wait: timedelta = timedelta(0),
    *,
    per_lab: bool = False,
    owner: str | None = None,
    started: datetime | None = None,
) -> Iterator[LabLeases]:
    """The leases of one command (or job) over its labs, begun at `started` (default now), all given
    back when it ends, however it ends."""
    leases = Leases(lambda: store)
    try:
        yield LabLeases(
            leases, store, purpose, wait, per_lab=per_lab, owner=owner, started=started or utc_now()
        )
    finally:
        leases.close()
