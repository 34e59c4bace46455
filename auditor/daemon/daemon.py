"""`auditor daemon`: the service that watches the class, the driver `[daemon] mode` picks to tell it when,
under the supervisor that starts and stops them.

    supervisor (signals, page, database, notifications, change events, stop_timeout)
        └── driver: scheduler (APScheduler, one process) | replicas (procrastinate, shared PostgreSQL)
                └── service: audit, reconcile, tear down, prune, record, notify, count
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from auditor.app.context import open_context
from auditor.aws.accounts import CACHED_ACCOUNTS
from auditor.daemon.drivers import Driver
from auditor.daemon.drivers.replicas import ReplicaDriver
from auditor.daemon.drivers.scheduler import SchedulerDriver
from auditor.daemon.service import Service
from auditor.daemon.supervisor import Supervisor
from auditor.domain.config import Config
from auditor.web.server import with_health_port_from


def run_daemon(config: Config, env: Mapping[str, str] = os.environ) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code. `AUDITOR_HEALTH_PORT` in `env` wins over
    `[daemon] health_port` (replicas sharing one network namespace each take their own)."""
    config = with_health_port_from(config, env)
    with open_context(config, cached_accounts=CACHED_ACCOUNTS) as context:
        service = Service(config, context)
        return Supervisor(service, driver_for(service)).run()


def driver_for(service: Service) -> Driver:
    """The driver `[daemon] mode` names: replicas share the class through PostgreSQL, a single daemon
    schedules it alone."""
    if service.config.daemon.mode == "replicas":
        return ReplicaDriver(service)
    return SchedulerDriver(service)
