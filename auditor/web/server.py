"""The page's server: uvicorn in a thread of the daemon, on a socket bound before anything else starts.

Binding first turns a port already taken into a clear configuration error (exit 2) at start, before
the daemon touches any account or database, instead of a traceback in a thread later.
"""

from __future__ import annotations

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


class WebServer:
    def __init__(self, app: ASGIApp, host: str, port: int, *, config_file: str) -> None:
        self._socket = bind(host, port, config_file)
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


def bind(host: str, port: int, config_file: str) -> socket.socket:
    """A listening socket; connections wait in its backlog until uvicorn serves them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=128)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            key, problem = (
                "health_port",
                f"{host}:{port} is already in use (choose another port, or 0 to turn the page off)",
            )
        elif error.errno == errno.EACCES:
            key, problem = (
                "health_port",
                f"{host}:{port} needs privileges this process lacks (use a port above 1023)",
            )
        else:
            key, problem = "health_host", f"cannot listen on {host}:{port}: {error.strerror or error}"
        raise ConfigError(config_file, f"daemon.{key}", problem) from None
    return listener


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
    return WebServer(app, settings.health_host, settings.health_port, config_file=config.path)
