"""The policy engine's clock for its time limits: the CPU time of the thread that judges.

In wall time, a verdict would depend on the machine's load: in a busy audit of many labs a question
that needs 50 ms of CPU can wait seconds for the interpreter's lock, and would be reported as
undecided. The CPU time the judging thread spends (z3 runs in it) measures the question itself, and
still bounds what a hostile document can cost.
"""

from __future__ import annotations

import time


def now() -> float:
    """Seconds of CPU this thread has used; only differences mean anything."""
    return time.thread_time()
