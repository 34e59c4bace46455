"""Settings of the auditor's own process, made by its entry point (the CLI), never by the library."""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import io

# A request through botocore makes thousands of short-lived containers. With the interpreter's
# default, a young-generation collection every 700 allocations, a fresh audit of 200 labs spent a
# quarter of its user CPU collecting, each older collection walking the loaded service models and
# the IAM catalogue: 24 ms of user CPU a lab with this threshold, 32 to 35 ms with the default
# (bench/clients_bench.py, the answers replayed).
YOUNG_COLLECTION_EVERY = 20_000


def tune_process() -> None:
    """Once, at the start of a command or of the daemon."""
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    _crash_stacks_to_stderr()


def _crash_stacks_to_stderr() -> None:
    """A crash in a native library (z3, sqlite, psycopg) leaves the stacks of every thread on standard
    error rather than a bare exit code."""
    with contextlib.suppress(io.UnsupportedOperation, AttributeError, ValueError):
        faulthandler.enable()  # not where standard error has no file descriptor (captured in a test)
