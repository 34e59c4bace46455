"""Waiting in the main thread for the signal that stops a long-running process."""

from __future__ import annotations

import threading

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
