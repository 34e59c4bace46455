"""History: SQLAlchemy models and the store.

Its names are imported on first use (auditor/common/lazy.py): a command that never opens the
database imports no SQLAlchemy or Alembic."""

from typing import TYPE_CHECKING

from auditor.common.lazy import lazy_names

if TYPE_CHECKING:
    from auditor.store.digest import canonical_order
    from auditor.store.engine import DatabaseUnavailable, make_engine, safe_url
    from auditor.store.migrate import check, upgrade
    from auditor.store.records import (
        LabState,
        LabStatus,
        LifecycleEntry,
        LifecycleEvent,
        Outcome,
        RecordedRun,
        RunPoint,
        StepsAt,
        TimeShare,
        VerdictCount,
    )
    from auditor.store.store import Resource, Store, UnknownLab
else:
    __getattr__ = lazy_names(
        __name__,
        {
            "auditor.store.digest": ("canonical_order",),
            "auditor.store.engine": ("DatabaseUnavailable", "make_engine", "safe_url"),
            "auditor.store.migrate": ("check", "upgrade"),
            "auditor.store.records": (
                "LabState",
                "LabStatus",
                "LifecycleEntry",
                "LifecycleEvent",
                "Outcome",
                "RecordedRun",
                "RunPoint",
                "StepsAt",
                "TimeShare",
                "VerdictCount",
            ),
            "auditor.store.store": ("Resource", "Store", "UnknownLab"),
        },
    )

__all__ = [
    "DatabaseUnavailable",
    "LabState",
    "LabStatus",
    "LifecycleEntry",
    "LifecycleEvent",
    "Outcome",
    "RecordedRun",
    "Resource",
    "RunPoint",
    "StepsAt",
    "Store",
    "TimeShare",
    "UnknownLab",
    "VerdictCount",
    "canonical_order",
    "check",
    "make_engine",
    "safe_url",
    "upgrade",
]
