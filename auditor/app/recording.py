"""The history's side of a command: the migrated database opened first, the labs registered, the
audits recorded (each lab in its own transaction, giving back its lease in the same write)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from auditor.common.errors import OperationalError
from auditor.store import DatabaseUnavailable, Store, upgrade

if TYPE_CHECKING:
    from auditor.app.leases import Leases
    from auditor.app.target import LabTarget
    from auditor.domain.config import Config
    from auditor.domain.model import AuditRun, Trigger


def open_store(config: Config) -> Store:
    """The migrated database, or an operational error (exit 1) before anything else is touched."""
    try:
        upgrade(config.database.url)
        return Store.from_url(config.database.url)
    except DatabaseUnavailable as error:
        raise OperationalError(str(error)) from None  # it names the database and why: said once


def register_labs(store: Store, targets: Sequence[LabTarget]) -> None:
    store.ensure_labs(
        (t.lab.name, t.lab.origin.account_id, t.lab.destination.account_id, t.lab.expires_at) for t in targets
    )


def record_run(store: Store, run: AuditRun, trigger: Trigger, held: Leases | None = None) -> None:
    """Record each lab's audit, giving back its lease in the same write when `held` holds it; a lab
    that could not be audited for another holder's lease is not recorded (nothing was judged)."""
    for lab in run.labs:
        holder = held.forget(lab.lab) if held is not None else None
        if held is not None and holder is None:
            continue
        store.record_audit(lab, trigger, release_lease_of=holder)


def log_groups_seen(config: Config, store: Store, names: Sequence[str]) -> set[str]:
    """The labs whose function's log group an audit has found, when students build the lab (Lambda makes
    it on the function's first run: before that, its absence is no finding); every lab otherwise (the
    provisioner makes it). From each lab's latest audit that finished."""
    from auditor.resources.kinds.log_group import log_group_seen  # here: `auditor status` reads no kind

    if not config.classroom.students_build:
        return set(names)
    judged = store.latest_runs(names, judged_only=True)
    return {name for name, run in judged.items() if log_group_seen(run.findings)}
