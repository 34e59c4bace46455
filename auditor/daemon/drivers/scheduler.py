"""The single daemon's driver: APScheduler in this process says when the service audits, reconciles and
prunes.

Jobs are this driver's own methods with plain arguments (APScheduler 3's memory job store takes bound
methods), fixed ids, `replace_existing`, `coalesce` and `max_instances=1`, so a lab is never audited
twice at once and a missed run is run once, late, rather than several times. A change event moves the
lab's own job forward: a burst of events moves the same run, it adds none.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from auditor.app.leases import LEASED_RETRY, Leased
from auditor.aws.cloudtrail import Change
from auditor.common.clock import utc_now
from auditor.daemon.service import Service
from auditor.domain.model import Trigger

PRUNE_EVERY = timedelta(hours=6)


def audit_job_id(lab: str) -> str:
    return f"audit:{lab}"


class SchedulerDriver:
    """One job a lab (its audit, every interval), the reconcile and the pruning, in a pool of threads."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=service.config.audit.concurrency)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self._lock = threading.Lock()
        self._auditing: set[str] = set()
        self._changed_meanwhile: set[str] = set()  # labs of an event that came while their audit ran

    def start(self) -> None:
        self.schedule()
        self.scheduler.start()

    def schedule(self) -> None:
        config = self.service.config
        interval = config.audit.interval.total_seconds()
        jitter = int(config.daemon.jitter.total_seconds())
        now = utc_now()
        for name in self.service.targets:
            # Spread the first audits over the jitter window so that a class never fires all at once.
            first = now + timedelta(seconds=random.uniform(0, min(interval, jitter)))
            self.scheduler.add_job(
                self.audit,
                IntervalTrigger(seconds=interval, jitter=jitter or None, timezone=UTC),
                args=[name, Trigger.SCHEDULE.value],
                id=audit_job_id(name),
                replace_existing=True,
                next_run_time=first,
                misfire_grace_time=int(interval),
            )
        self.scheduler.add_job(
            self.service.reconcile,
            IntervalTrigger(seconds=config.daemon.reconcile_interval.total_seconds(), timezone=UTC),
            id="reconcile",
            replace_existing=True,
            next_run_time=now,
            misfire_grace_time=None,  # never drop it: expiry must be acted on however late
        )
        self.scheduler.add_job(
            self.service.prune,
            IntervalTrigger(seconds=PRUNE_EVERY.total_seconds(), timezone=UTC),
            id="prune",
            replace_existing=True,
            next_run_time=now + timedelta(minutes=1),
            misfire_grace_time=None,
        )

    def audit(self, lab: str, trigger: str) -> Leased:
        """The lab's job: its audit, then its next run put back in place (sooner after an event that came
        meanwhile, or when a command held the lab)."""
        with self._lock:
            self._auditing.add(lab)
            self._changed_meanwhile.discard(lab)
        outcome = Leased.HELD
        try:
            outcome = self.service.audit(lab, Trigger(trigger))
        finally:
            with self._lock:
                self._auditing.discard(lab)
                again_now = lab in self._changed_meanwhile
            self.restore_schedule(lab, again_now, LEASED_RETRY if outcome is Leased.LATER else None)
        return outcome

    def audit_soon(self, lab: str, delay: timedelta, change: Change | None = None) -> None:
        self.service.note_change(lab, change)
        with self._lock:
            if lab in self._auditing:
                self._changed_meanwhile.add(lab)
                return
        job = self.scheduler.get_job(audit_job_id(lab))
        if job is not None:
            job.modify(next_run_time=utc_now() + delay, args=[lab, Trigger.EVENT.value])

    def restore_schedule(self, lab: str, again_now: bool, again_in: timedelta | None = None) -> None:
        job = self.scheduler.get_job(audit_job_id(lab))
        if job is None:
            return
        if again_now:
            job.modify(next_run_time=utc_now(), args=[lab, Trigger.EVENT.value])
        elif again_in is not None:  # the same trigger, a little later
            job.modify(next_run_time=utc_now() + again_in)
        elif job.args[1] != Trigger.SCHEDULE.value:
            job.modify(args=[lab, Trigger.SCHEDULE.value])

    def pause(self) -> None:
        if self.scheduler.running:
            self.scheduler.pause()

    def stop(self, deadline: float) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
