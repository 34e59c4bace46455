"""The page's server: uvicorn in a thread of the daemon, on a socket bound before anything else starts.

Binding first turns a port already taken into a clear configuration error (exit 2) at start, before
the daemon touches any account or database, instead of a traceback in a thread later.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
from collections.abc import Callable, Mapping

import uvicorn
from starlette.types import ASGIApp

from auditor.app.health import HealthCheck, Metrics
from auditor.domain.config import Config, ConfigError
from auditor.store import Store
from auditor.web.app import create_app
from auditor.web.auth import page_token
from auditor.web.view import ClassView

STOP_SECONDS = 5.0
# Wins over [daemon] health_port: replicas sharing one network namespace (processes on one host, host
# networking) read one configuration file, and each needs a port of its own.
HEALTH_PORT_VARIABLE = "AUDITOR_HEALTH_PORT"


class WebServer:
    def __init__(
        self, app: ASGIApp, host: str, port: int, *, config_file: str, port_from_environment: bool = False
    ) -> None:
        self._socket = bind(host, port, config_file, port_from_environment)
        config = uvicorn.Config(
            app,
            log_config=None,  # the daemon's logging stays as it is
            access_log=False,  # probes every few seconds would drown the daemon's own log
            lifespan="off",
            timeout_graceful_shutdown=int(STOP_SECONDS),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="web", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_SECONDS * 2)
        self._socket.close()


def bind(host: str, port: int, config_file: str, port_from_environment: bool = False) -> socket.socket:
    """A listening socket; connections wait in its backlog until uvicorn serves them. An address that
    cannot be had is a ConfigError naming where it was set: `config_file`'s key, or the variable."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=128)
    except OSError as error:
        port_file, port_key = (
            ("environment", HEALTH_PORT_VARIABLE)
            if port_from_environment
            else (config_file, "daemon.health_port")
        )
        if error.errno == errno.EADDRINUSE:
            problem = f"{host}:{port} is already in use (choose another port, or 0 to turn the page off)"
            raise ConfigError(port_file, port_key, problem) from None
        if error.errno == errno.EACCES:
            problem = f"{host}:{port} needs privileges this process lacks (use a port above 1023)"
            raise ConfigError(port_file, port_key, problem) from None
        problem = f"cannot listen on {host}:{port}: {error.strerror or error}"
        raise ConfigError(config_file, "daemon.health_host", problem) from None
    return listener


def with_health_port_from(config: Config, env: Mapping[str, str]) -> Config:
    """The configuration with `AUDITOR_HEALTH_PORT`, when set, as `[daemon] health_port` (a bad value:
    a ConfigError naming the variable)."""
    text = env.get(HEALTH_PORT_VARIABLE, "").strip()
    if not text:
        return config
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ConfigError(
            "environment", HEALTH_PORT_VARIABLE, f"{text!r} is not a port (0 turns the page off)"
        )
    return dataclasses.replace(config, daemon=dataclasses.replace(config.daemon, health_port=int(text)))


def open_page(
    config: Config, store: Callable[[], Store], health: HealthCheck, metrics: Metrics, env: Mapping[str, str]
) -> WebServer | None:
    """The page as `[daemon]` sets it, bound and ready to start; None with `health_port = 0`.

    Raises ConfigError off loopback without a token, or when the address cannot be had.
    """
    settings = config.daemon
    if settings.health_port == 0:
        return None
    token = page_token(settings, config.path, env)
    app = create_app(ClassView(store, config=config), health, metrics, token=token)
    from_environment = bool(env.get(HEALTH_PORT_VARIABLE, "").strip())
    return WebServer(
        app,
        settings.health_host,
        settings.health_port,
        config_file=config.path,
        port_from_environment=from_environment,
    )
