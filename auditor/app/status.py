"""`auditor status`: each lab's standing now, from its configuration and its record (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from auditor.domain.config import LabConfig
from auditor.domain.model import Actor, Severity, Verdict
from auditor.domain.urgency import urgency
from auditor.store.records import LabState, LabStatus

# The states in which a lab stands in its accounts, and so can be past its expiry without being gone yet.
_UP = (LabState.PROVISIONING, LabState.ACTIVE, LabState.FAILED)
# Shown instead of the recorded state of a lab that stood in the embedded emulator once it has stopped:
# everything built in it went with it.
EMULATOR_STOPPED = "emulator_stopped"


@dataclass(frozen=True)
class LabStatusRow:
    name: str
    # What the lab is now: the recorded state, except that a lab still up past its expiry is `expired`.
    state: str
    expires_at: datetime | None
    # The verdict of its latest audit while it stood; None when never audited, or torn down since.
    verdict: Verdict | None
    last_audit_at: datetime | None
    origin_account: str
    destination_account: str
    info: Mapping[str, str] = field(default_factory=dict)
    # Who made the worst change its latest audit found, when a change event or CloudTrail said so.
    changed_by: Actor | None = None
    # The most severe finding of that audit (for the order only: worst first).
    worst: Severity | None = None

    @property
    def student_name(self) -> str:
        return self.info.get("student_name", "")


def status_rows(
    labs: Sequence[LabConfig],
    recorded: Sequence[LabStatus],
    now: datetime,
    actors: Mapping[str, Actor] | None = None,
    worst: Mapping[str, Severity] | None = None,
    *,
    emulator_stopped: bool = False,
) -> list[LabStatusRow]:
    """One row a configured lab, worst first (auditor/domain/urgency.py). `emulator_stopped`: the labs
    live in the embedded emulator, and none runs: a lab that stood there shows as `emulator_stopped`."""
    known = {status.name: status for status in recorded}
    actors, worst = actors or {}, worst or {}
    rows = [_row(lab, known.get(lab.name), now, actors.get(lab.name), worst.get(lab.name)) for lab in labs]
    if emulator_stopped:
        rows = [replace(row, state=EMULATOR_STOPPED) if _stood(row) else row for row in rows]
    return sorted(rows, key=lambda row: urgency(row.name, row.verdict, row.worst, gone=row.state == _GONE))


_GONE = LabState.TORN_DOWN.value
# The states shown of a lab the record says stands in its accounts (past its expiry too).
_STANDING = frozenset({*(state.value for state in _UP), LabState.EXPIRED.value})


def _stood(row: LabStatusRow) -> bool:
    return row.state in _STANDING


def _row(
    lab: LabConfig, status: LabStatus | None, now: datetime, actor: Actor | None, worst: Severity | None
) -> LabStatusRow:
    if status is None:
        return LabStatusRow(
            lab.name,
            "planned",
            lab.expires_at,
            None,
            None,
            lab.origin.account_id,
            lab.destination.account_id,
            dict(lab.info),
        )
    # The configuration's own expiry comes first: a roster changed since the lab was recorded says when
    # it ends now (the record keeps the end a provisioning worked out from the ttl).
    expires = lab.expires_at or status.expires_at
    state = status.state
    shown = "expired" if state in _UP and expires is not None and expires <= now else state.value
    torn_down = state is LabState.TORN_DOWN
    return LabStatusRow(
        lab.name,
        shown,
        expires,
        None if torn_down else status.last_verdict,
        status.last_audit_at,
        status.origin,
        status.destination,
        dict(lab.info),
        None if torn_down else actor,
        None if torn_down else worst,
    )
