"""A resource found under a near name (lab.md, "The guide as a rubric": "case, a missing or extra
letter"); pure.

A student who types `lambdas3listbuckets` or `LambdaS3ListBucket` has done the step, but not as the
guide names it: the step is `wrong`, and its feedback names both. Names are compared as people mistype
them: case and the separators `-`, `_` and `.` are not letters, and one letter more, one fewer, one
replaced or two swapped is near (two such slips for a name of 12 characters or more).
"""

from __future__ import annotations

from collections.abc import Iterable

_SEPARATORS = str.maketrans("", "", "-_.")


def near_name(wanted: str, names: Iterable[str]) -> str | None:
    """The name in `names` nearest `wanted` and near enough (the first of equal ones, in name order),
    or None; `wanted` itself is never near (it is the name)."""
    goal = _folded(wanted)
    limit = 2 if len(goal) >= 12 else 1
    best: tuple[int, str] | None = None
    for name in sorted(set(names)):
        if name == wanted:
            continue
        distance = _slips(goal, _folded(name), limit)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, name)
    return best[1] if best is not None else None


def _folded(name: str) -> str:
    return name.lower().translate(_SEPARATORS)


def _slips(a: str, b: str, limit: int) -> int:
    """The optimal string alignment distance (insert, delete, replace, swap two neighbours), or
    `limit + 1` as soon as it must be more than `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i, letter in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, other in enumerate(b, 1):
            cost = 0 if letter == other else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if before is not None and i > 1 and j > 1 and letter == b[j - 2] and a[i - 2] == other:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]
