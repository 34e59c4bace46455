"""What the commands that only read the history do: each lab's status and each lab's grade, from the
database and the configuration, with no AWS session (so `auditor status` and `auditor grade` import
no AWS library, issue 25)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from auditor.app.emulated import EmulatorState, emulator_state
from auditor.app.recording import open_store
from auditor.app.status import LabStatusRow, status_rows
from auditor.common.clock import utc_now
from auditor.domain.model import Actor
from auditor.domain.urgency import worst_of

if TYPE_CHECKING:
    from auditor.app.grading import LabGrade
    from auditor.domain.config import Config, LabConfig
    from auditor.store import RecordedRun, Store


# ------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ClassStatus:
    rows: list[LabStatusRow]  # worst first
    emulator: EmulatorState | None  # None: the configuration does not use the embedded emulator


def lab_status(config: Config, names: Sequence[str]) -> ClassStatus:
    """Each lab's standing now, from the database (labs never seen show as planned); with the embedded
    emulator stopped, the labs that stood in it show so (no AWS call)."""
    labs = config.select(tuple(names))
    emulator = emulator_state(config)
    store = open_store(config)
    try:
        latest = store.latest_runs([lab.name for lab in labs])
        worst = {name: severity for name, run in latest.items() if (severity := worst_of(run.findings))}
        rows = status_rows(
            labs,
            store.status(),
            utc_now(),
            _worst_actors(latest),
            worst,
            emulator_stopped=emulator is EmulatorState.STOPPED,
        )
    finally:
        store.close()
    return ClassStatus(rows, emulator)


def _worst_actors(latest: Mapping[str, RecordedRun]) -> dict[str, Actor]:
    """Who made the worst known change of each lab (its findings come worst first)."""
    actors = {}
    for name, run in latest.items():
        actor = next((f.changed_by for f in run.findings if f.changed_by), None)
        if actor is not None:
            actors[name] = actor
    return actors


# -------------------------------------------------------------------------------------------- grade


def grades(config: Config, names: Sequence[str], as_of: datetime) -> list[LabGrade]:
    """Each lab's grade from its step results recorded by `as_of` (no AWS call); a lab's class ends at
    `[class] ends`, else its expiry (the configuration's, else the one worked out when it was
    provisioned)."""
    labs = config.select(tuple(names))
    store = open_store(config)
    try:
        return grades_in(store, config, labs, as_of)
    finally:
        store.close()


def grades_in(store: Store, config: Config, labs: Sequence[LabConfig], as_of: datetime) -> list[LabGrade]:
    """`grades` of these labs on a store already open (the daemon's page reads the daemon's own)."""
    from auditor.app.grading import GradeRules, grade_lab  # here: `auditor status` grades nothing

    rules = GradeRules.of(config.rubric, config.classroom)
    history = store.step_history([lab.name for lab in labs], until=as_of)
    expiries = {status.name: status.expires_at for status in store.status()}
    return [
        grade_lab(
            rules,
            history.get(lab.name, []),
            as_of,
            lab=lab.name,
            info=lab.info,
            expires_at=lab.expires_at or expiries.get(lab.name),
        )
        for lab in labs
    ]
