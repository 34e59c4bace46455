"""The replicas' driver: several `auditor daemon` processes share one class through a task queue kept
in its PostgreSQL database (procrastinate), with `[daemon] mode = "replicas"`; each job is a call of
the replica's service (auditor.daemon.service).

Every replica runs the same worker. The work is jobs in the database, and each job runs once,
whichever replica takes it:

- a lab's audit is a periodic job, deferred at each tick of its schedule (the interval as a cron
  expression, offset by the lab's own share of the jitter): the database refuses a second defer of
  the same lab and tick, so a lab is audited once per interval across the replicas; its `due_at` is
  the tick, and a retried job whose audit is already recorded for that tick does nothing;
- a change event (each message is received by one replica from SQS) defers an audit of the lab a
  few seconds later; a burst is one job (a queueing lock per lab);
- expiry: a periodic reconcile defers one teardown job per expired lab, which takes the store's
  teardown lease in the name of the job, so that the job, retried elsewhere, takes it back;
- every job about a lab holds the lab's lock: no two run at once;
- a replica's worker beats every `takeover / 4`; the jobs of a replica silent for `takeover` (killed,
  cut off) are put back in the queue by whichever replica runs the periodic check next, so that its
  labs are taken over well within a minute by default.

The task names are a wire format shared with running replicas: never rename them. The single daemon
(auditor.daemon.drivers.scheduler: APScheduler, SQLite or PostgreSQL) stays the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from procrastinate import App, BaseRetryStrategy, JobContext, PsycopgConnector, RetryDecision
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Job, Status
from sqlalchemy import make_url, text

from auditor.app.leases import LEASED_RETRY, Leased, process_owner
from auditor.aws.cloudtrail import Change
from auditor.common.schedule import cron_for, every_at_most, spread
from auditor.daemon.service import Service
from auditor.domain.model import Trigger
from auditor.store import DatabaseUnavailable, make_engine
from auditor.store.engine import unavailable_as
from auditor.store.migrate import serialised_migrations

log = structlog.get_logger()

AUDIT_TASK = "auditor.audit"
EVENT_AUDIT_TASK = "auditor.audit_event"
RECONCILE_TASK = "auditor.reconcile"
TEARDOWN_TASK = "auditor.teardown"
TAKE_OVER_TASK = "auditor.take_over"
PRUNE_TASK = "auditor.prune"


class Stopping(Exception):
    """The replica is stopping: the job goes back to the queue for another replica."""


class LabLeased(Exception):
    """A command holds the lab (a provision, a teardown): the job comes back a little later."""


class AgainLater(BaseRetryStrategy):
    """A job of a stopping replica goes back to the queue at once, for another replica; one whose lab
    a command holds, a little later (LEASED_RETRY)."""

    def __init__(self, max_attempts: int = 100) -> None:
        self.max_attempts = max_attempts

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if job.attempts >= self.max_attempts:
            return None
        if isinstance(exception, Stopping):
            return RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, LabLeased):
            return RetryDecision(retry_in={"seconds": int(LEASED_RETRY.total_seconds())})
        return None


def conninfo(url: str) -> str:
    """The libpq form of the database URL (procrastinate speaks psycopg directly)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def install_queue(url: str, schema: str) -> bool:
    """Create the queue's tables once, whichever replica comes first; True if this one did."""
    engine = make_engine(url)
    try:
        with unavailable_as(url), engine.begin() as connection:
            serialised_migrations(connection)
            if connection.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
                return False
            # Through the driver's own cursor, without parameters: the schema's SQL holds '%' signs.
            connection.connection.cursor().execute(schema)
            return True
    finally:
        engine.dispose()


def lock_of(lab: str) -> str:
    return f"lab:{lab}"


def job_owner(context: JobContext) -> str:
    """A job as a lease holder: the same whichever replica runs it (auditor.app.leases)."""
    return f"job:{context.job.id}"


class ReplicaDriver:
    """One replica's worker, in an event loop of its own thread; the jobs run in its thread pool."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.config = service.config
        self.settings = service.config.daemon
        self.app = App(
            connector=PsycopgConnector(conninfo=conninfo(self.config.database.url)),
            # A tick missed while every replica was down is deferred late, up to an interval late.
            periodic_defaults={"max_delay": self.config.audit.interval.total_seconds()},
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()  # the worker has taken its place in the queue
        self._worker: threading.Thread | None = None
        self._register()

    # ------------------------------------------------------------------------------------ the tasks

    def _register(self) -> None:
        app, interval = self.app, self.config.audit.interval
        again_elsewhere = AgainLater()
        audit = app.task(name=AUDIT_TASK, pass_context=True, retry=again_elsewhere)(self.audit_due)
        for lab in self.service.targets:
            # No queueing lock: a tick's job taken over from a dead replica must find its way back into
            # the queue beside the next tick's (a lab's jobs never run at once: the lab's lock).
            app.periodic(
                cron=cron_for(interval, spread(lab, self.settings.jitter, interval)),
                periodic_id=lab,
                lock=lock_of(lab),
                task_kwargs={"lab": lab},
            )(audit)
        self.event_audit = app.task(name=EVENT_AUDIT_TASK, retry=again_elsewhere)(self.audit_changed)
        self.teardown = app.task(name=TEARDOWN_TASK, pass_context=True, retry=again_elsewhere)(self.tear_down)
        reconcile = app.task(name=RECONCILE_TASK, pass_context=True)(self.reconcile)
        app.periodic(cron=every_at_most(self.settings.reconcile_interval), queueing_lock="reconcile")(
            reconcile
        )
        take_over = app.task(name=TAKE_OVER_TASK)(self.take_over)
        app.periodic(cron=every_at_most(self.settings.takeover / 3), queueing_lock="take_over")(take_over)
        prune = app.task(name=PRUNE_TASK)(self.prune)
        app.periodic(cron=every_at_most(timedelta(hours=6)), queueing_lock="prune")(prune)

    def audit_due(self, context: JobContext, timestamp: int, lab: str) -> None:
        """The scheduled audit of a lab for the tick `timestamp`, unless it is already recorded."""
        due = datetime.fromtimestamp(timestamp, UTC)
        self._refuse_when_stopping()
        if self.service.found_torn_down(lab) or self.service.audited_for(lab, due):
            return
        log.info("scheduled_audit_started", lab=lab, due_at=due.isoformat(), job_id=context.job.id)
        # Under a lease named after the job, which the job, retried elsewhere, takes back.
        outcome = self.service.audit(lab, Trigger.SCHEDULE, due_at=due, lease_owner=job_owner(context))
        self._refuse_when_stopping()
        if outcome is Leased.LATER:
            raise LabLeased(f"{lab} is leased by a command; its audit due at {due.isoformat()} comes later")

    def audit_changed(self, lab: str, change: dict[str, Any] | None = None) -> None:
        # Stopping, it is left undone: the lab's next scheduled audit sees the change all the same.
        if not self.service.stop_event.is_set() and not self.service.found_torn_down(lab):
            self.service.note_change(lab, Change.from_json(change) if change else None)
            if self.service.audit(lab, Trigger.EVENT) is Leased.LATER:
                raise LabLeased(f"{lab} is leased by a command; the audit of its change comes later")

    async def reconcile(self, context: JobContext, timestamp: int) -> None:
        """Mark the labs past their expiry expired, and queue a teardown for each not already queued."""
        expired = await asyncio.to_thread(self.service.mark_expired)
        for lab in expired:
            queued = [
                job
                for status in ("todo", "doing")
                for job in await self.app.job_manager.list_jobs_async(
                    task=TEARDOWN_TASK, lock=lock_of(lab), status=status
                )
            ]
            if not queued:
                await self.teardown.configure(lock=lock_of(lab)).defer_async(lab=lab)

    def tear_down(self, context: JobContext, lab: str) -> None:
        """Tear the lab down under a lease named after this job, which a retry of the job takes back."""
        self._refuse_when_stopping()
        self.service.tear_down(lab, owner=job_owner(context))

    async def take_over(self, timestamp: int) -> None:
        """Put back in the queue the jobs of replicas silent for longer than `takeover`."""
        seconds = self.settings.takeover.total_seconds()
        manager = self.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=seconds):
            try:
                await manager.retry_job(job)
                log.warning("job_taken_over", task=job.task_name, job_id=job.id, args=job.task_kwargs)
            except UniqueViolation:
                # A newer job of the same kind already waits (an event's audit): it does the work.
                await manager.finish_job(job, Status.ABORTED, delete_job=False)
                log.warning("job_superseded", task=job.task_name, job_id=job.id, args=job.task_kwargs)

    def prune(self, timestamp: int) -> None:
        self.service.prune()

    def _refuse_when_stopping(self) -> None:
        if self.service.stop_event.is_set():
            raise Stopping("this replica is stopping; another one will do it")

    # ------------------------------------------------------------------------------------ the events

    def audit_soon(self, lab: str, delay: timedelta, change: Change | None = None) -> None:
        """A change event (from the listener's thread): one audit of the lab after `delay`, whichever
        replica runs it; events arriving meanwhile add none (their actors are not carried: the audit
        names the first event's, and the next scheduled audit looks the others up). Raises if the
        queue cannot take it, so that the message stays in SQS and comes again."""
        loop = self._loop
        if loop is None:
            raise DatabaseUnavailable("the replica's queue is not open yet")
        job = self._defer_event(lab, delay, change.to_json() if change else None)
        asyncio.run_coroutine_threadsafe(job, loop).result(timeout=30)

    async def _defer_event(self, lab: str, delay: timedelta, change: dict[str, Any] | None) -> None:
        deferrer = self.event_audit.configure(
            lock=lock_of(lab),
            queueing_lock=f"event:{lab}",
            schedule_in={"seconds": int(delay.total_seconds())},
        )
        with contextlib.suppress(AlreadyEnqueued):
            await deferrer.defer_async(lab=lab, change=change)

    # ------------------------------------------------------------------------------------ running

    def start(self) -> None:
        """The worker, in a thread of its own, until the service is told to stop."""
        self._worker = threading.Thread(target=self.run, args=(self.service.stop_event,), name="replica")
        self._worker.start()

    def pause(self) -> None:
        """Nothing to do: a stopping service refuses its jobs, which go back to the queue (Stopping)."""

    def stop(self, deadline: float) -> None:
        if self._worker is not None:
            self._worker.join(max(deadline - time.monotonic(), 0.0))

    def run(self, stop: threading.Event) -> None:
        """Work until `stop`; a database that goes away ends the worker, which starts again when it is
        back (the results of audits meanwhile are kept by the service)."""
        asyncio.run(self._serve(stop))

    async def _serve(self, stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        # The audits are synchronous: each runs in a thread of this pool, `concurrency` at a time.
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=self.config.audit.concurrency + 4, thread_name_prefix="replica")
        )
        delay = 1.0
        while not stop.is_set():
            try:
                await asyncio.to_thread(install_queue, self.config.database.url, self._schema())
                async with self.app.open_async():
                    self._loop = loop
                    await self._work(stop)
                delay = 1.0
            except Exception as error:  # the database away, or the worker failing with it
                self.service.metrics.database_errors.inc()
                reason = (str(error).strip().splitlines() or [""])[0][:300]
                log.error("replica_worker_failed", error=f"{type(error).__name__}: {reason}", retry_in=delay)
                await _wait(stop, delay)
                delay = min(delay * 2, 30.0)
            finally:
                self._loop = None

    def _schema(self) -> str:
        schema: str = self.app.schema_manager.get_schema()
        return schema

    async def _work(self, stop: threading.Event) -> None:
        takeover = self.settings.takeover.total_seconds()
        worker = asyncio.create_task(
            self.app.run_worker_async(
                name=process_owner(),
                concurrency=self.config.audit.concurrency,
                install_signal_handlers=False,
                shutdown_graceful_timeout=self.settings.stop_timeout.total_seconds(),
                update_heartbeat_interval=takeover / 4,
                stalled_worker_timeout=takeover,
                delete_jobs="successful",
                fetch_job_polling_interval=min(5.0, takeover / 4),
            )
        )
        beating = asyncio.create_task(self._beat(takeover / 4))
        stopping = asyncio.create_task(_wait(stop, None))
        log.info("replica_started", labs=len(self.service.targets), takeover=takeover)
        try:
            done, _ = await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if worker in done:
                worker.result()  # raises what stopped it
                raise RuntimeError("the worker stopped by itself")
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        finally:
            for task in (beating, stopping):
                task.cancel()

    async def _beat(self, every: float) -> None:
        """The replica is healthy while it can reach the queue."""
        while True:
            if await self.app.job_manager.check_connection_async():
                self.started.set()
                self.service.note_alive()
            await asyncio.sleep(every)


async def _wait(stop: threading.Event, timeout: float | None) -> None:
    """Until `stop` is set (or the timeout), checking it five times a second."""
    waited = 0.0
    while not stop.is_set() and (timeout is None or waited < timeout):
        await asyncio.sleep(0.2)
        waited += 0.2
