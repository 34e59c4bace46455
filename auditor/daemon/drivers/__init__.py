"""What tells the service when: a driver turns time, or a queue, into calls of auditor.daemon.service.

Two, interchangeable, chosen by `[daemon] mode`: `scheduler` (APScheduler, the single daemon, on SQLite
or PostgreSQL) and `replicas` (procrastinate, any number of daemons sharing one PostgreSQL). Each does
the same things through the same service: a lab's audit at each interval and soon after a change
event, the reconcile (expiry) and the pruning of the history; the supervisor starts and stops it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from auditor.aws.cloudtrail import Change


class Driver(Protocol):
    """What the supervisor asks of a driver (auditor.daemon.supervisor)."""

    def start(self) -> None:
        """Begin handing out work (in threads of its own: it returns at once)."""

    def audit_soon(self, lab: str, delay: timedelta, change: Change | None = None) -> None:
        """A change event (from the listener's thread): one audit of the lab after `delay`; raises if it
        cannot take it, so that the message stays in the queue and comes again."""

    def pause(self) -> None:
        """Hand out no more work (stopping: the service finishes or abandons what runs)."""

    def stop(self, deadline: float) -> None:
        """End, by `deadline` (time.monotonic()), once the service has stopped."""
