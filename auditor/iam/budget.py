"""What a question to the solver may spend: z3's work, counted, with the engine's clock as a backstop.

z3's own timeout runs on the wall clock. On a loaded machine, a question that needs 0.3 s of CPU
could be cut after 2 s of waiting, and a verdict (or its witness) would depend on the machine's load.
z3 also counts its work: the resource count behind its `rlimit` parameter, the same for the same
question on any machine under any load (Dafny bounds its proofs by it for that reason). So each check
is bounded by work, converted from the configured seconds at a fixed rate. The clock of
auditor.iam.clock (the judging thread's CPU time) bounds the rest of a question (building it, reading
its answers) to the limit, not counting z3's time; z3's own timer stops it at a multiple of the limit
should its count ever fail to grow.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import z3

from auditor.iam import clock

# z3's count in a second of CPU: 1.5 to 3.7 million on the test suite's questions (2-core machine,
# December 2026), so a limit in seconds means about as much as it did on the CPU clock.
WORK_PER_SECOND = 3_000_000
HARD_STOP = 5  # z3's own timer (wall time), in multiples of the limit: a backstop
_MOST = 2**32 - 1  # z3 takes its rlimit and timeout as unsigned 32-bit numbers


class TimeUp(Exception):
    """The question's budget (or its lab's) is spent: it is undecided."""


def work(seconds: float) -> int:
    """z3's count for `seconds` of the policy engine's limit."""
    return max(1, min(_MOST, int(seconds * WORK_PER_SECOND)))


@dataclass
class Allowance:
    """What a question, or a lab's judgement (all its questions together), may still spend: z3's
    work, and the engine's clock up to an instant, z3's own time left out (its work is counted)."""

    work: int
    at: float
    solving: float = 0.0  # CPU spent in z3

    @classmethod
    def of(cls, seconds: float) -> Allowance:
        return cls(work(seconds), clock.now() + seconds)

    def python_left(self) -> float:
        return self.at + self.solving - clock.now()

    def spent(self) -> bool:
        return self.work <= 0 or self.python_left() <= 0

    def pay(self, count: int, seconds: float) -> None:
        self.work -= count
        self.solving += seconds


@dataclass
class Budget:
    """One question's budget, within its lab's share when there is one: z3's work, and the CPU of
    the rest (building the question, reading its answers), each up to the limit."""

    own: Allowance
    seconds: float
    share: Allowance | None
    cut_by_share: bool = False  # the lab's share ran out, not the question's own budget

    @classmethod
    def of(cls, seconds: float, share: Allowance | None = None) -> Budget:
        return cls(Allowance.of(seconds), seconds, share)

    @property
    def _allowances(self) -> tuple[Allowance, ...]:
        return (self.own,) if self.share is None else (self.own, self.share)

    @property
    def stop_at(self) -> float:
        """The instant of the engine's clock past which the Python side gives up (no z3 meanwhile)."""
        return clock.now() + min(allowance.python_left() for allowance in self._allowances)

    def check(self) -> None:
        if self.share is not None and self.share.spent():
            self.cut_by_share = True
            raise TimeUp
        if self.own.spent():
            raise TimeUp

    def solve(self, solver: z3.Solver, cap: int | None = None) -> z3.CheckSatResult:
        """The solver's answer within what is left (and at most `cap` of z3's count), paid for."""
        self.check()
        grant = min(cap or _MOST, *(allowance.work for allowance in self._allowances))
        solver.set(rlimit=max(1, grant), timeout=min(_MOST, max(1, int(self.seconds * HARD_STOP * 1000))))
        before, began = _count(solver), clock.now()
        answer = solver.check()
        count, seconds = _count(solver) - before, clock.now() - began
        for allowance in self._allowances:
            allowance.pay(count, seconds)
        return answer


class Places:
    """At most as many questions at once as the process may use CPUs (one engine a process: its
    context's). Each holds a z3 context of its own (16 MB before any work); more at once would only
    share the same CPUs, and a command keeps its threads to one (auditor.common.process)."""

    def __init__(self) -> None:
        self._taken = 0
        self._freed = threading.Condition()

    @contextmanager
    def taken(self) -> Iterator[None]:
        """Wait for a place to ask a question (the time waited spends none of its budget)."""
        with self._freed:
            self._freed.wait_for(lambda: self._taken < _usable_cpus())
            self._taken += 1
        try:
            yield
        finally:
            with self._freed:
                self._taken -= 1
                self._freed.notify()


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _count(solver: z3.Solver) -> int:
    """z3's count so far in the solver's context (it only grows)."""
    return int(solver.statistics().get_key_value("rlimit count"))
