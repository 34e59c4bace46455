"""Settings of the auditor's own process, made by its entry point (the CLI), never by the library."""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import io
import os
from pathlib import Path

# A request through botocore makes thousands of short-lived containers. With the interpreter's
# default, a young-generation collection every 700 allocations, a fresh audit of 200 labs spent a
# quarter of its user CPU collecting, each older collection walking the loaded service models and
# the IAM catalogue: 24 ms of user CPU a lab with this threshold, 32 to 35 ms with the default
# (bench/clients_bench.py, the answers replayed).
YOUNG_COLLECTION_EVERY = 20_000

# The threads of one process take turns at one interpreter lock. On several CPUs, each handover wakes
# a thread on another CPU through the kernel: a fresh audit of 200 labs at concurrency 64 took 16.8 to
# 18.3 s of CPU on two CPUs, 9.6 to 11.4 s on one (bench/clients_bench.py, the answers replayed). The
# process gains nothing from a second CPU but z3's solving, which the judge's memo makes rare. "0" lets
# the threads run on every CPU.
ONE_CPU_SETTING = "AUDITOR_ONE_CPU"


def tune_process() -> None:
    """Once, at the start of a command or of the daemon, before it starts any thread."""
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    keep_to_one_cpu()
    _crash_stacks_to_stderr()


def keep_to_one_cpu() -> None:
    """Keep this thread, and the threads and processes it starts from now on, on the CPU it runs on
    now (the one the scheduler chose), unless there is no choice or the setting turns it off."""
    if os.environ.get(ONE_CPU_SETTING, "1") == "0" or not hasattr(os, "sched_setaffinity"):
        return
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        return
    running = _cpu_running_now()
    os.sched_setaffinity(0, {running if running in allowed else min(allowed)})


def every_cpu() -> None:
    """For a process that the auditor starts (the emulator): every CPU again, as far as the CPUs that
    its container allows (the kernel keeps to those)."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def _cpu_running_now() -> int | None:
    """The `processor` field of /proc/self/stat (Linux): the CPU this process last ran on."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command's name, which may hold spaces
    return int(fields[36]) if len(fields) > 36 else None


def _crash_stacks_to_stderr() -> None:
    """A crash in a native library (z3, sqlite, psycopg) leaves the stacks of every thread on standard
    error rather than a bare exit code."""
    with contextlib.suppress(io.UnsupportedOperation, AttributeError, ValueError):
        faulthandler.enable()  # not where standard error has no file descriptor (captured in a test)
