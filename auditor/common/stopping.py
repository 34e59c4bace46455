"""Waiting in the main thread for the signal that stops a long-running process."""

from __future__ import annotations

import os
import sys
import threading
import time

import structlog

log = structlog.get_logger()

# How often the main thread wakes to let a pending signal's handler run (see wait_until_stopped).
SIGNAL_CHECK_SECONDS = 0.25


def wait_until_stopped(stop: threading.Event) -> None:
    """Block until `stop` is set, typically by a SIGTERM or SIGINT handler.

    The kernel may deliver a process's signal to any of its threads; CPython then runs the Python
    handler in the main thread, but only once that thread executes bytecode again, which it never does
    inside an untimed Event.wait(). Seen as a daemon that ignored SIGINT after its database came back.
    """
    while not stop.wait(SIGNAL_CHECK_SECONDS):
        pass


def end_by(deadline: float, what: str) -> None:
    """From now on the process ends by `deadline` (on time.monotonic()), whatever is still running.

    A thread blocked on a database that does not answer (its host gone, a connection hanging) cannot be
    interrupted, and the interpreter waits for such threads at its exit: a stopping daemon would then
    outlive its `stop_timeout` by as long as the connection takes to fail. A daemon thread ends the
    process at the deadline; a stop that finishes first never meets it."""

    def end_at_the_deadline() -> None:
        threading.Event().wait(max(deadline - time.monotonic(), 0.0))
        log.error("stop_forced", reason=f"{what} did not end within the stop timeout")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)

    threading.Thread(target=end_at_the_deadline, name="stop-deadline", daemon=True).start()
