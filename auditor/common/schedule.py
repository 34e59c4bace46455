"""Periods as cron expressions, for the task queue that daemon replicas share (pure).

procrastinate defers a periodic job once per tick of a cron expression across every replica (the
database refuses a second defer of the same tick), so a lab's audit is due once per interval whoever
runs it. croniter's six fields are minute, hour, day, month, weekday, second. A period can be written
so only when it divides a minute, an hour or a day: 5 s, 30 s, 5 min, 2 h and 1 d can; 7 min cannot.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

MINUTE, HOUR, DAY = 60, 3600, 86400


class Unschedulable(ValueError):
    """A period no cron expression repeats exactly."""


def cron_for(period: timedelta, offset: timedelta = timedelta()) -> str:
    """Every `period`, `offset` after each multiple of it since midnight UTC (offset < period)."""
    seconds, late = _whole_seconds(period), _whole_seconds(offset) if offset else 0
    if not 0 <= late < seconds:
        raise Unschedulable(f"an offset of {spelled(offset)} does not fit in a period of {spelled(period)}")
    minute, second = divmod(late, MINUTE)
    hour, minute = divmod(minute, 60)
    if seconds < MINUTE and MINUTE % seconds == 0:
        return f"* * * * * {second}/{seconds}"
    if seconds < HOUR and seconds % MINUTE == 0 and HOUR % seconds == 0:
        return f"{minute}/{seconds // MINUTE} * * * * {second}"
    if seconds < DAY and seconds % HOUR == 0 and DAY % seconds == 0:
        return f"{minute} {hour}/{seconds // HOUR} * * * {second}"
    if seconds == DAY:
        return f"{minute} {hour} * * * {second}"
    raise Unschedulable(
        f"{spelled(period)} does not divide a minute, an hour or a day (e.g. 30s, 5m, 20m, 1h, 6h, 1d)"
    )


def spelled(period: timedelta) -> str:
    """A period as config.toml writes it: 90s, 5m, 8h, 2d."""
    seconds = int(period.total_seconds())
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_schedulable(period: timedelta) -> str | None:
    """The problem with that period as a replica's schedule, or None."""
    try:
        cron_for(period)
    except Unschedulable as problem:
        return str(problem)
    return None


def every_at_most(period: timedelta) -> str:
    """A cron expression repeating at least as often as `period` (for checks, not for audits)."""
    seconds = max(1, int(period.total_seconds()))
    for step in (DAY, 6 * HOUR, HOUR, 15 * MINUTE, 5 * MINUTE, MINUTE, 30, 20, 15, 10, 5, 2, 1):
        if step <= seconds:
            return cron_for(timedelta(seconds=step))
    return cron_for(timedelta(seconds=1))


def spread(name: str, window: timedelta, period: timedelta) -> timedelta:
    """A lab's own offset in the jitter window, the same on every replica (a hash, not a random draw)."""
    width = min(_whole_seconds(window) if window else 0, _whole_seconds(period) - 1)
    if width <= 0:
        return timedelta()
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return timedelta(seconds=digest % (width + 1))


def _whole_seconds(period: timedelta) -> int:
    if period <= timedelta() or period % timedelta(seconds=1):
        raise Unschedulable(f"{period.total_seconds():g}s is not a whole number of seconds")
    return int(period.total_seconds())
