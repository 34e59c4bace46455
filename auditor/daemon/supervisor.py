"""What starts and stops the daemon's parts, in one place and one order, whichever driver tells the
service when.

Starting: the signals first; then the page, bound before anything is touched (a missing token or a
port already taken ends it there, exit 2); the database and an emulator at an address of its own,
waited for (docker-compose may still be starting them); the notifications; the labs never built; the
driver; the change-event listener.
Stopping, signalled: the process is gone within `stop_timeout`, whatever still waits on AWS or the
database (auditor.common.stopping.end_by): the listener first, then the driver hands out no more
work, the service lets running audits finish or records them as abandoned, the driver ends, and the
notifications and the page last.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass
from types import FrameType

import structlog

from auditor.aws.emulator import answers
from auditor.aws.events import EventListener
from auditor.common.errors import OperationalError
from auditor.common.stopping import end_by, wait_until_stopped
from auditor.daemon.drivers import Driver
from auditor.daemon.notify import Notifier, open_watch
from auditor.daemon.service import Service
from auditor.store import DatabaseUnavailable
from auditor.web import WebServer, open_page

log = structlog.get_logger()

EMULATOR_RETRY_SECONDS = 10.0  # a trial's moto starts in seconds: look again soon


@dataclass
class Supervisor:
    """The service, the driver that tells it when, and everything around them, from start to stop."""

    service: Service
    driver: Driver
    page: WebServer | None = None
    notifier: Notifier | None = None
    events: EventListener | None = None

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        self._handle_signals()
        self.page = self._start_page()
        self._wait_for_database()
        self._wait_for_emulator()
        if self.service.stop_event.is_set():
            self._stop_around()
            return 0
        self.notifier = self._start_notifications()
        self.service.build_labs_never_built(at_start=True)
        self.driver.start()
        self.events = self._start_events()
        self._log_started()
        wait_until_stopped(self.service.stop_event)
        self._stop()
        return 0

    # ------------------------------------------------------------------------------------ starting

    def _handle_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            self.service.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _start_page(self) -> WebServer | None:
        service = self.service
        page = open_page(service.config, service.ready_store, service.healthy, service.metrics, os.environ)
        if page is not None:
            page.start()
        return page

    def _wait_for_database(self) -> None:
        """At start the database may still be coming up (docker-compose): wait for it, do not die."""
        stopping, delay = self.service.stop_event, 1.0
        while not stopping.is_set():
            try:
                self.service.database()
                return
            except DatabaseUnavailable as error:
                log.warning("waiting_for_database", error=str(error), retry_in=delay)
                stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _wait_for_emulator(self) -> None:
        """An emulator at an address of its own (docker-compose's moto) may still be starting: wait until
        it answers, so that the labs never built are built in it before the first audit, which would
        otherwise find them missing and record them broken. Real AWS, or an emulator of this process's
        own: nothing to wait for."""
        context = self.service.context
        url = context.endpoint_url
        if url is None or context.ephemeral_emulator:
            return
        stopping, delay = self.service.stop_event, 1.0
        while not stopping.is_set() and not answers(url):
            log.warning("waiting_for_emulator", endpoint_url=url, retry_in=delay)
            stopping.wait(delay)
            delay = min(delay * 2, EMULATOR_RETRY_SECONDS)

    def _start_notifications(self) -> Notifier | None:
        service = self.service
        notifications = open_watch(
            service.config,
            service.database,
            socket.getfqdn,
            lambda outcome: service.metrics.notifications.labels(outcome=outcome).inc(),
        )
        if notifications is None:
            return None
        service.watch, notifier = notifications
        notifier.start()
        return notifier

    def _start_events(self) -> EventListener | None:
        service = self.service
        if service.config.events is None:
            return None
        try:
            listener = EventListener(
                service.config,
                service.context.sessions,
                service.context.endpoint_url,
                self.driver.audit_soon,
                on_message=lambda fate: service.metrics.events.labels(fate=fate).inc(),
            )
        except OperationalError as error:
            log.error("events_disabled", error=str(error))
            return None
        listener.start()
        return listener

    def _log_started(self) -> None:
        config = self.service.config
        log.info(
            "daemon_started",
            mode=config.daemon.mode,
            labs=len(self.service.targets),
            interval=str(config.audit.interval),
            health_port=self.page.port if self.page is not None else 0,
            notify_targets=self.notifier.targets if self.notifier is not None else 0,
        )

    # ------------------------------------------------------------------------------------ stopping

    def _stop(self) -> None:
        deadline = time.monotonic() + self.service.config.daemon.stop_timeout.total_seconds()
        end_by(deadline, "a thread waiting on AWS or the database")
        if self.events is not None:
            self.events.stop()
        self.driver.pause()
        self.service.stop(deadline)
        self.driver.stop(deadline)
        self._stop_around()

    def _stop_around(self) -> None:
        """The notifications and the page, which outlive the work so as to tell of its end."""
        if self.notifier is not None:
            self.notifier.stop()
        if self.page is not None:
            self.page.stop()
