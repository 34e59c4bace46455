"""The one clock of the program, and how its instants are written (ISO 8601, UTC, whole seconds)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

_IMPORTED_AT = datetime.now(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def process_started_at() -> datetime:
    """When this process started: the moment the operator ran the command, before its imports (Linux,
    from /proc, to the clock tick); elsewhere, when this module was first imported."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime, the 22nd field
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_after_boot
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED_AT
    return datetime.now(UTC) - timedelta(seconds=max(age, 0.0))
