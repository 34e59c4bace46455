"""Run one job a lab over many labs, bounded; a failing lab is reported and the others go on."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from auditor.common.errors import LabFault
from auditor.domain.faults import describe

log = structlog.get_logger()

T = TypeVar("T")
R = TypeVar("R")

# How a run over many labs shows its progress: entered with the run's label and its number of labs, it
# gives what is called with each lab's name as it finishes. The command line's draws a bar on a terminal
# (auditor/cli/progress.py); the application itself shows nothing.
Progress = Callable[[str, int], AbstractContextManager[Callable[[str], None]]]


@contextmanager
def no_progress(_label: str, _total: int) -> Iterator[Callable[[str], None]]:
    yield lambda _name: None


# The faults that belong to one lab (its accounts, its credentials, AWS answering it) and must not
# stop the others. Programming errors are not caught here.
LAB_FAULTS = (ClientError, BotoCoreError, LabFault)


@dataclass(frozen=True)
class LabResult(Generic[R]):
    """What one lab's job came to: its result, or the fault that stopped it."""

    name: str
    result: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Interrupted(Exception):
    """Ctrl-C during a run over many labs: the labs under way were let finish, the others not started."""

    def __init__(self, label: str, finished: Sequence[LabResult[Any]], not_started: Sequence[str]) -> None:
        super().__init__(f"interrupted while {label}")
        self.label, self.finished, self.not_started = label, tuple(finished), tuple(not_started)


def describe_fault(error: BaseException) -> str:
    """One line for a lab's fault. AWS's faults name the call and the fault ("AWS throttled
    iam:GetRole in account 222222222222 7 times (Throttling: Rate exceeded)"), never a denial."""
    aws_fault = describe(error)
    if aws_fault is not None:
        return aws_fault
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "")
        return f"{operation}: {details.get('Code', '')}: {details.get('Message', '')}".strip(": ")
    if isinstance(error, LabFault):  # its sentence is written for people
        return str(error)
    return f"{type(error).__name__}: {error}"


def failed_event(label: str) -> str:
    """The log event of a lab whose job failed: "tearing down" is `tearing_down_failed`."""
    return f"{label.replace(' ', '_')}_failed"


def run_each(
    items: Sequence[T],
    name_of: Callable[[T], str],
    job: Callable[[T], R],
    concurrency: int,
    label: str,
    progress: Progress | None = None,
) -> list[LabResult[R]]:
    """Results in the order of `items`; `progress` (the caller's: a bar on a terminal) is told of each."""
    outcomes: dict[str, LabResult[R]] = {}

    def guarded(item: T) -> LabResult[R]:
        name = name_of(item)
        structlog.contextvars.bind_contextvars(lab=name)
        try:
            return LabResult(name, result=job(item))
        except LAB_FAULTS as error:
            log.warning(failed_event(label), lab=name, error=describe_fault(error))
            return LabResult(name, error=describe_fault(error))
        finally:
            structlog.contextvars.unbind_contextvars("lab")

    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items) or 1)))
    futures: dict[Future[LabResult[R]], str] = {}
    try:
        with (progress or no_progress)(label, len(items)) as advance:
            futures = {pool.submit(guarded, item): name_of(item) for item in items}
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.name] = outcome
                advance(outcome.name)
    except KeyboardInterrupt:
        raise _interrupted(label, futures, [name_of(item) for item in items]) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [outcomes[name_of(item)] for item in items]


def _interrupted(label: str, futures: dict[Future[LabResult[R]], str], names: list[str]) -> Interrupted:
    """Stop what has not started; let the labs under way finish (half a lab is worse than none or all)."""
    for future in futures:
        future.cancel()
    under_way = [future for future in futures if not future.cancelled()]
    log.warning("interrupted_finishing_labs_under_way", under_way=len(under_way), starting_no_other=True)
    wait(under_way)
    finished = {outcome.name: outcome for outcome in (future.result() for future in under_way)}
    return Interrupted(
        label, [finished[name] for name in names if name in finished], [n for n in names if n not in finished]
    )
