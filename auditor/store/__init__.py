"""History: SQLAlchemy models and the store."""

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
