"""structlog set-up: pretty on a terminal, JSON lines otherwise, always on standard error."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, MutableMapping, Sequence
from functools import partial
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.abc import Loader

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
    """structlog's set-up, made when structlog is first imported if it is not yet (the last call wins):
    a command that never logs, `status` or a --help, does not pay structlog's import (0.1 s, rich's
    tracebacks with it)."""
    if level.lower() not in LEVELS:
        raise ValueError(f"{level!r} is not a log level (use {', '.join(LEVELS)})")
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    _when_structlog_is_imported(partial(_configure_structlog, level, json_lines))
    # The emulator's request log and botocore's chatter are noise to an operator.
    for name in ("werkzeug", "botocore", "urllib3", "moto", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Apprise's own messages may repeat a notification URL, and those hold secrets: the notifier logs
    # every failure itself, without the URL.
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)


def _configure_structlog(level: str, json_lines: bool) -> None:
    import structlog

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


# ------------------------------------------------------------------------------ structlog, when imported


def _when_structlog_is_imported(configure: Callable[[], None]) -> None:
    """`configure` now if structlog is imported, else right after its import, before the module that
    imports it goes on (so before anything can log: a logger is made by a module that imports it)."""
    if "structlog" in sys.modules:
        _ConfigureOnImport.pending = None
        configure()
        return
    _ConfigureOnImport.pending = configure
    if not any(isinstance(finder, _ConfigureOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ConfigureOnImport())


class _ConfigureOnImport:  # a meta path finder (importlib.abc's base classes cost an import of their own)
    """Finds structlog as the other finders do, and has its loader run the pending set-up after it."""

    pending: Callable[[], None] | None = None

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "structlog":
            return None
        sys.meta_path.remove(self)  # once: and the search below must not come back here
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenConfigure(spec.loader)  # type: ignore[assignment]
        return spec


class _ThenConfigure:  # a loader
    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the module as its own loader left it
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        configure, _ConfigureOnImport.pending = _ConfigureOnImport.pending, None
        if configure is not None:
            configure()
