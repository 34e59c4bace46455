"""The strings a set of patterns can tell apart, as a finite set of cells (pure).

Every pattern the documents test one string with (the request's resource, or one condition key's
value) splits the strings into those it matches and those it does not. The cells are the non-empty
combinations: all strings of one cell are matched by exactly the same patterns, so the solver only
has to choose a cell, never a string (z3's string theory copes badly with a string tested by many
patterns at once). A cell comes with a shortest example string, its witness value.

The cells are found by one breadth-first walk of the product of the patterns' automata over the
characters that matter: those the patterns name (in both cases where a pattern ignores case), the
colon (segment-bound wildcards stop at it) and one character standing for all the others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from auditor.iam import clock
from auditor.iam.memo import Memo
from auditor.iam.patterns import Literal, One, Star, Token

DEFAULT_BUDGET = 50_000  # product states explored before giving up (a hostile set of patterns)
_FILLERS = "xyzqjkwvubamnoeirstlcdfghp0123456789-_"


class TooManyStates(Exception):
    """The patterns' product automaton is larger than the budget allows."""


@dataclass(frozen=True)
class Atom:
    """One pattern over the subject: IAM glob tokens without variables."""

    tokens: tuple[Token, ...]
    ignore_case: bool = False


@dataclass(frozen=True)
class Cell:
    example: str
    matched: frozenset[int]  # indices of the atoms that match the cell's strings


@dataclass(frozen=True)
class _Item:
    """One position of a glob: a set of characters (None: any; a leading "!": any but these), looping or not."""

    chars: frozenset[str] | None
    excluded: frozenset[str]
    loops: bool


_COLON = frozenset({":"})
_WILDCARDS = {
    (Star, False): _Item(None, frozenset(), True),
    (Star, True): _Item(None, _COLON, True),
    (One, False): _Item(None, frozenset(), False),
    (One, True): _Item(None, _COLON, False),
}


@lru_cache(maxsize=4096)
def _character(char: str, ignore_case: bool) -> _Item:
    return _Item(frozenset({char.lower(), char.upper(), char} if ignore_case else {char}), frozenset(), False)


def _items(atom: Atom) -> tuple[_Item, ...]:
    items: list[_Item] = []
    for token in atom.tokens:
        if isinstance(token, Literal):
            items.extend(_character(char, atom.ignore_case) for char in token.text)
        elif isinstance(token, Star | One):
            items.append(_WILDCARDS[type(token), token.in_segment])
        else:
            raise ValueError("a pattern with a policy variable has no fixed cells")
    return tuple(items)


class _Glob:
    """A glob as an automaton whose states are positions (a star may be skipped)."""

    def __init__(self, atom: Atom) -> None:
        self.items = _items(atom)
        self.end = len(self.items)

    def closure(self, positions: frozenset[int]) -> frozenset[int]:
        reached = set(positions)
        for position in sorted(positions):
            while position < self.end and self.items[position].loops:
                position += 1
                reached.add(position)
        return frozenset(reached)

    def step(self, positions: frozenset[int], char: str) -> frozenset[int]:
        if not positions:
            return positions  # a pattern that can no longer match stays so
        after = set()
        for position in positions:
            if position == self.end:
                continue
            item = self.items[position]
            if not _accepts(item, char):
                continue
            after.add(position if item.loops else position + 1)
        return self.closure(frozenset(after))


def _characters_that_matter(
    globs: Sequence[_Glob], state: tuple[frozenset[int], ...], everything: tuple[str, ...]
) -> list[str]:
    """The characters that lead somewhere different from here: those the current positions name,
    the colon, and one that stands for every other (the rest behave exactly like it)."""
    named = {":"}
    for glob, positions in zip(globs, state, strict=True):
        for position in positions:
            if position < glob.end and glob.items[position].chars is not None:
                named |= glob.items[position].chars or frozenset()
    filler = next(c for c in reversed(everything) if c not in named) if len(named) < len(everything) else None
    return sorted(named) + ([filler] if filler is not None else [])


def _accepts(item: _Item, char: str) -> bool:
    if item.chars is not None:
        return char in item.chars
    return char not in item.excluded


def alphabet(atoms: Sequence[Atom]) -> tuple[str, ...]:
    """The characters that matter, and one that stands for every other."""
    named = {":"}
    for atom in atoms:
        for token in atom.tokens:
            if isinstance(token, Literal):
                for char in token.text:
                    named |= {char.lower(), char.upper(), char} if atom.ignore_case else {char}
    filler = next((c for c in _FILLERS if c not in named), None)
    if filler is None:
        filler = next(chr(code) for code in range(0x100, 0x10000) if chr(code) not in named)
    return (*sorted(named), filler)


_found: Memo[tuple[Atom, ...], tuple[Cell, ...]] = Memo(4096)


def cells(atoms: tuple[Atom, ...], *, stop_at: float | None = None) -> tuple[Cell, ...]:
    """The non-empty cells, each with a shortest example, in the order first found; TooManyStates past
    the budget of states or the instant `stop_at` of auditor.iam.clock."""
    found = _found.get(atoms)
    if found is None:
        found = _cells(atoms, DEFAULT_BUDGET, stop_at)
        _found.put(atoms, found)
    return found


def _cells(atoms: tuple[Atom, ...], budget: int, stop_at: float | None) -> tuple[Cell, ...]:
    globs = [_Glob(atom) for atom in atoms]
    everything = alphabet(atoms)
    start = tuple(glob.closure(frozenset({0})) for glob in globs)
    seen = {start: ""}
    queue = deque([start])
    found: dict[frozenset[int], str] = {}
    while queue:
        if stop_at is not None and clock.now() > stop_at:
            raise TooManyStates(f"out of time after {len(seen)} states for {len(atoms)} patterns")
        state = queue.popleft()
        example = seen[state]
        matched = frozenset(
            i for i, (glob, positions) in enumerate(zip(globs, state, strict=True)) if glob.end in positions
        )
        found.setdefault(matched, example)
        for char in _characters_that_matter(globs, state, everything):
            after = tuple(glob.step(positions, char) for glob, positions in zip(globs, state, strict=True))
            if after not in seen:
                if len(seen) >= budget:
                    raise TooManyStates(f"more than {budget} states for {len(atoms)} patterns")
                seen[after] = example + char
                queue.append(after)
    return tuple(Cell(example, matched) for matched, example in found.items())
