"""How times, durations and shares read in every report format (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from auditor.common import clock
from auditor.domain.model import Verdict
from auditor.store import LabState

if TYPE_CHECKING:
    from auditor.report.model import ClassReport, LabReport

# A torn-down or expired lab's latest verdict is history, not its state now.
RETIRED = frozenset({LabState.TORN_DOWN, LabState.EXPIRED})
_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def iso(moment: datetime | None) -> str | None:
    """The machine form, as `auditor audit --format json` writes times."""
    return clock.iso(moment) if moment else None


def when(moment: datetime | None, missing: str = "–", *, seconds: bool = False) -> str:
    """The human form: minutes are enough for a person (seconds on request), and UTC says so."""
    if moment is None:
        return missing
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def span(duration: timedelta) -> str:
    """The two largest units, rounded down: `3 d 4 h`, `12 min`, `40 s`."""
    seconds = max(0, int(duration.total_seconds()))
    parts: list[str] = []
    for unit, size in _UNITS:
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f} %"


def last_conformant(lab: LabReport, now: datetime) -> str:
    """`now` when the latest audit of a live lab is conformant, else how long ago the last conformant one was."""
    if lab.verdict is Verdict.CONFORMANT and lab.state not in RETIRED:
        return "now"
    if lab.last_conformant_at is None:
        return "never"
    return f"{span(now - lab.last_conformant_at)} ago"


def period(report: ClassReport) -> str:
    if report.period_start is None:
        return "no recorded history"
    short = report.period_end - report.period_start < timedelta(hours=1)
    dates = f"{when(report.period_start, seconds=short)} to {when(report.period_end, seconds=short)}"
    return f"whole history, {dates}" if report.since is None else dates


def verdict_summary(report: ClassReport) -> str:
    """`6 labs: 3 conformant, 1 drifted, 2 broken`, worst first, zero counts left out."""
    counts = report.verdict_counts()
    parts = [
        f"{count} {verdict.value if verdict else 'not audited'}" for verdict, count in counts.items() if count
    ]
    labs = len(report.labs)
    return f"{labs} lab{'s' if labs != 1 else ''}" + (f": {', '.join(parts)}" if parts else "")


def student_label(info: Mapping[str, str]) -> str:
    """`Ada Lovelace <ada@example.edu>` from a roster's student columns; "" without them."""
    name, email = info.get("student_name", ""), info.get("student_email", "")
    if name and email:
        return f"{name} <{email}>"
    return name or email
