"""`auditor daemon`: the service that watches the class, the driver `[daemon] mode` picks to tell it when,
under the supervisor that starts and stops them.

    supervisor (signals, page, database, notifications, change events, stop_timeout)
        └── driver: scheduler (APScheduler, one process) | replicas (procrastinate, shared PostgreSQL)
                └── service: audit, reconcile, tear down, prune, record, notify, count
"""

from __future__ import annotations

from auditor.app.context import open_context
from auditor.aws.accounts import CACHED_ACCOUNTS
from auditor.daemon.drivers import Driver
from auditor.daemon.drivers.replicas import ReplicaDriver
from auditor.daemon.drivers.scheduler import SchedulerDriver
from auditor.daemon.service import Service
from auditor.daemon.supervisor import Supervisor
from auditor.domain.config import Config


def run_daemon(config: Config) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code."""
    with open_context(config, cached_accounts=CACHED_ACCOUNTS) as context:
        service = Service(config, context)
        return Supervisor(service, driver_for(service)).run()


def driver_for(service: Service) -> Driver:
    """The driver `[daemon] mode` names: replicas share the class through PostgreSQL, a single daemon
    schedules it alone."""
    if service.config.daemon.mode == "replicas":
        return ReplicaDriver(service)
    return SchedulerDriver(service)
