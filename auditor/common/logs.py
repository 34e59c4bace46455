"""structlog set-up: pretty on a terminal, JSON lines otherwise, always on standard error."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("secret", "token", "password", "credential", "external_id", "access_key")

LEVELS = ("debug", "info", "warning", "error", "critical")
# The commands a person runs say only what goes wrong; the daemon, a service, tells its story.
DEFAULT_LEVEL = "warning"
SERVICE_LEVEL = "info"


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Belt and braces: a field whose name smells of a secret is never written."""
    for key in list(event):
        if any(part in key.lower() for part in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


class StderrLogger:
    """Writes each line to the standard error of the moment, not the one of configuration time: a
    progress bar on a terminal swaps it for a proxy that prints lines above the bar."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def shifted_level(base: str, verbose: int = 0, quiet: int = 0) -> str:
    """`base` moved one level down for each -v and up for each -q (pure)."""
    index = LEVELS.index(base) - verbose + quiet
    return LEVELS[max(0, min(len(LEVELS) - 1, index))]


def configure_logging(level: str = "info", json_lines: bool | None = None) -> None:
    if level.lower() not in LEVELS:
        raise ValueError(f"{level!r} is not a log level (use {', '.join(LEVELS)})")
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info if json_lines else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_: StderrLogger(),
        cache_logger_on_first_use=False,
    )
    # The emulator's request log and botocore's chatter are noise to an operator.
    for name in ("werkzeug", "botocore", "urllib3", "moto", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Apprise's own messages may repeat a notification URL, and those hold secrets: the notifier logs
    # every failure itself, without the URL.
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
