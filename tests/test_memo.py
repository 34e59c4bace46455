"""The engine's memo: one computation per question, however many labs ask it at once."""

from __future__ import annotations

import threading

import pytest

from auditor.iam.memo import Memo

ASKERS = 8


def test_labs_asking_the_same_question_together_compute_it_once() -> None:
    memo: Memo[str, int] = Memo(16)
    computations: list[str] = []
    all_asking = threading.Barrier(ASKERS + 1)
    computing, release = threading.Event(), threading.Event()

    def compute() -> tuple[int, bool]:
        computations.append(threading.current_thread().name)
        computing.set()
        release.wait(timeout=30)
        return 42, True

    answers: list[int] = []

    def ask() -> None:
        all_asking.wait(timeout=30)
        answers.append(memo.computed("same question", compute))

    threads = [threading.Thread(target=ask, name=f"lab-{i}") for i in range(ASKERS)]
    for thread in threads:
        thread.start()
    all_asking.wait(timeout=30)
    assert computing.wait(timeout=30)
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [42] * ASKERS
    assert len(computations) == 1, computations


def test_an_answer_not_kept_is_computed_again() -> None:
    memo: Memo[str, int] = Memo(16)
    calls: list[int] = []

    def cut_short() -> tuple[int, bool]:
        calls.append(1)
        return len(calls), False

    assert memo.computed("q", cut_short) == 1
    assert memo.computed("q", cut_short) == 2
    assert memo.get("q") is None


def test_a_failed_computation_lets_the_next_asker_try() -> None:
    memo: Memo[str, int] = Memo(16)

    def fails() -> tuple[int, bool]:
        raise RuntimeError("solver crashed")

    with pytest.raises(RuntimeError):
        memo.computed("q", fails)
    assert memo.computed("q", lambda: (7, True)) == 7
    assert memo.get("q") == 7


def test_the_oldest_answers_go_first() -> None:
    memo: Memo[int, int] = Memo(2)
    for key in range(3):
        memo.computed(key, lambda key=key: (key * 10, True))
    assert memo.get(0) is None
    assert (memo.get(1), memo.get(2)) == (10, 20)
