"""The policy engine's limit is a count of z3's work, not a timer: a busy machine changes no answer.

The comparison here needs about half a second of z3 on a 2-core machine: a variable with a default
(`${aws:PrincipalTag/team, 'none'}`) against one without. Its budget is found by bisection, just
above what it needs, on a quiet machine; then every CPU is kept busy by other processes and the same
question, with the same budget, must get the same answer and the same witness. With z3's own timeout
(wall time) it could be cut, and on the clock of the thread's CPU time too: a busy CPU does less in
a second (shared caches), as a slower machine would.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from auditor.domain.model import Effect
from auditor.iam import question
from auditor.iam.budget import WORK_PER_SECOND
from auditor.iam.document import Policy
from auditor.policy import PolicyDiff, PolicyEngine, compare_permissions, compare_trust, parse_policy

BUCKET = "arn:aws:s3:::lab-bucket/team"
EXPECTED = parse_policy(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": BUCKET + "/${aws:PrincipalTag/team}/*"}
        ],
    }
)
ACTUAL = parse_policy(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": BUCKET + "/${aws:PrincipalTag/team, 'none'}/*",
            }
        ],
    }
)


def compared(work: int) -> PolicyDiff:
    """Asked of an engine of its own: nothing it asked before."""
    return compare_permissions(PolicyEngine(work / WORK_PER_SECOND), [EXPECTED], [ACTUAL])


def least_work_that_decides() -> int:
    """The smallest budget (to 2%) within which the comparison is decided."""
    low, high = 1, 4 * WORK_PER_SECOND
    assert compared(high).decided, "the comparison needs more than 4 s of z3's work"
    while high - low > high // 50:
        middle = (low + high) // 2
        low, high = (low, middle) if compared(middle).decided else (middle, high)
    return high


@pytest.fixture
def every_cpu_busy() -> Iterator[None]:
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.fixture(scope="module")
def quiet() -> tuple[int, PolicyDiff]:
    """The least budget that decides the comparison, and the answer within it."""
    need = least_work_that_decides()
    return need, compared(need)


def test_the_comparison_needs_real_work_and_is_undecided_below_it(quiet: tuple[int, PolicyDiff]) -> None:
    need, answer = quiet
    assert need > WORK_PER_SECOND // 20  # a question worth bounding, not one decided for free
    assert answer.decided
    assert answer.effect is Effect.WIDENED  # the default admits callers without the tag
    assert answer.wider is not None
    below = compared(need * 95 // 100)
    assert not below.decided
    assert below.effect is Effect.CHANGED
    # Asked again, each gets its answer again: what was asked before changes nothing.
    assert compared(need) == answer
    assert compared(need * 95 // 100) == below


@pytest.mark.slow  # it keeps every CPU busy for a few seconds
def test_a_busy_machine_changes_neither_the_answer_nor_its_witness(
    quiet: tuple[int, PolicyDiff], every_cpu_busy: None
) -> None:
    need, answer = quiet
    for _ in range(3):
        busy = compared(need)
        assert busy.decided
        assert busy == answer


def test_a_labs_share_bounds_its_questions_together() -> None:
    """Within one lab's judgement, the questions share the lab's work: a budget the question alone
    would have is not enough once the share is spent, and the cut is not remembered."""
    alone = compare_permissions(PolicyEngine(2.0), [EXPECTED], [ACTUAL])
    assert alone.decided
    engine = PolicyEngine(2.0)
    shared = compare_permissions(engine.for_one_lab(share=0.01), [EXPECTED], [ACTUAL])
    assert not shared.decided
    # The lab's share cut it, not its own limit: the next judgement asks again and decides it.
    assert compare_permissions(engine, [EXPECTED], [ACTUAL]) == alone


def test_questions_take_turns_on_one_cpu_and_free_their_z3_context_at_once(
    kept_to_one_cpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each question has a z3 context of its own (16 MB before any work): on one CPU they are asked
    one at a time, and each context is freed when its question ends, not at the collector's next pass."""
    alive: set[int] = set()
    most = 0
    lock = threading.Lock()
    made = question.Problem.__init__

    def observed(problem: question.Problem, *args: Any, **named: Any) -> None:
        nonlocal most
        made(problem, *args, **named)
        with lock:
            alive.add(id(problem.ctx))
            most = max(most, len(alive))
        weakref.finalize(problem.ctx, alive.discard, id(problem.ctx))

    monkeypatch.setattr(question.Problem, "__init__", observed)
    engine = PolicyEngine(2.0)
    trusting = [trust(f"arn:aws:iam::{n:012d}:root") for n in range(1, 4)]
    reading = [permissions(f"{BUCKET}/{n}/*") for n in range(3)]
    gc.disable()
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = [
                *pool.map(lambda other: compare_trust(engine, trusting[0], other), trusting[1:]),
                *pool.map(lambda other: compare_permissions(engine, [EXPECTED], [other]), reading),
            ]
        assert not alive
    finally:
        gc.enable()
    assert all(answer.decided and answer.witness is not None for answer in answers)
    assert most == 1


def trust(principal: str) -> Policy:
    return parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": principal}}],
        }
    )


def permissions(resource: str) -> Policy:
    return parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resource}],
        }
    )


def test_a_hostile_comparison_alone_spends_about_its_limit_of_cpu() -> None:
    """Outside a lab's judgement too: z3 is bounded by its work, the rest by the limit in CPU (not by
    z3's backstop, five times the limit)."""
    from bench.judge_bench import adversarial_policy

    hostile = parse_policy(adversarial_policy(300))
    limit = 0.5
    began = time.thread_time()
    diff = compare_permissions(PolicyEngine(limit), [EXPECTED], [hostile])
    spent = time.thread_time() - began
    assert not diff.decided
    # the limit of CPU outside z3, at most the limit's work inside it (about a second of CPU a second
    # of limit), and one step of building past the limit
    assert spent < 3 * limit + 0.5, spent
