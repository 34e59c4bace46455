"""The strings a set of patterns can tell apart, as a finite set of cells (pure).

Every pattern the documents test one string with (the request's resource, or one condition key's
value) splits the strings into those it matches and those it does not. The cells are the non-empty
combinations: all strings of one cell are matched by exactly the same patterns, so the solver only
has to choose a cell, never a string (z3's string theory copes badly with a string tested by many
patterns at once). A cell comes with a shortest example string, its witness value.

The cells are found by one breadth-first walk of the product of the patterns' automata over the
characters that matter: those the patterns name (in both cases where a pattern ignores case), the
colon (segment-bound wildcards stop at it), one character of each set of characters a shape's runs
tell apart (a version number's digits), and one character standing for all the others.

A shape (auditor.iam.patterns' Run and Choice: a value known but for its version numbers) is a
regular language of its own; it is walked as a small nondeterministic automaton.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from auditor.iam import clock
from auditor.iam.memo import Memo
from auditor.iam.patterns import Choice, Literal, One, Run, Star, Token

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


# Process set-up, not answers: a pure function of immutable values, the same in every engine.
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

    def start(self) -> frozenset[int]:
        return self.closure(frozenset({0}))

    def accepts(self, positions: frozenset[int]) -> bool:
        return self.end in positions

    def named(self, positions: frozenset[int]) -> tuple[set[str], set[frozenset[str]]]:
        """The characters the positions name one by one, and the sets a run takes (none in a glob)."""
        named: set[str] = set()
        for position in positions:
            if position < self.end and self.items[position].chars is not None:
                named |= self.items[position].chars or frozenset()
        return named, set()

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


@dataclass(frozen=True)
class _Edge:
    chars: frozenset[str] | None  # None: any character but `excluded`
    excluded: frozenset[str]
    target: int
    run: bool = False  # a run's set of characters, not characters named one by one


class _Shape:
    """A shape (a pattern with runs and choices) as a nondeterministic automaton: states with edges
    on characters and empty moves; the last state made accepts."""

    def __init__(self, atom: Atom) -> None:
        self.edges: list[list[_Edge]] = [[]]
        self.empty: list[list[int]] = [[]]
        self.end = self._add(atom.tokens, 0, atom.ignore_case)

    def _state(self) -> int:
        self.edges.append([])
        self.empty.append([])
        return len(self.edges) - 1

    def _add(self, tokens: tuple[Token, ...], at: int, ignore_case: bool) -> int:
        for token in tokens:
            at = self._add_token(token, at, ignore_case)
        return at

    def _add_token(self, token: Token, at: int, ignore_case: bool) -> int:
        if isinstance(token, Literal):
            for char in token.text:
                after = self._state()
                self.edges[at].append(_Edge(_character(char, ignore_case).chars, frozenset(), after))
                at = after
            return at
        if isinstance(token, Star | One):
            item = _WILDCARDS[type(token), token.in_segment]
            after = self._state()
            if item.loops:
                self.empty[at].append(after)
                at = after
            self.edges[at].append(_Edge(None, item.excluded, after))
            return after
        if isinstance(token, Run):
            after = self._state()
            for source in (at, after):
                self.edges[source].append(_Edge(token.chars, frozenset(), after, run=True))
            return after
        if isinstance(token, Choice):
            joined = self._state()
            for option in token.options:
                begin = self._state()
                self.empty[at].append(begin)
                self.empty[self._add(option, begin, ignore_case)].append(joined)
            return joined
        raise ValueError("a pattern with a policy variable has no fixed cells")

    def start(self) -> frozenset[int]:
        return self.closure(frozenset({0}))

    def accepts(self, positions: frozenset[int]) -> bool:
        return self.end in positions

    def closure(self, positions: frozenset[int]) -> frozenset[int]:
        reached, todo = set(positions), sorted(positions)
        while todo:
            for after in self.empty[todo.pop()]:
                if after not in reached:
                    reached.add(after)
                    todo.append(after)
        return frozenset(reached)

    def step(self, positions: frozenset[int], char: str) -> frozenset[int]:
        after = {
            edge.target
            for position in positions
            for edge in self.edges[position]
            if (char in edge.chars if edge.chars is not None else char not in edge.excluded)
        }
        return self.closure(frozenset(after)) if after else frozenset()

    def named(self, positions: frozenset[int]) -> tuple[set[str], set[frozenset[str]]]:
        named: set[str] = set()
        runs: set[frozenset[str]] = set()
        for position in positions:
            for edge in self.edges[position]:
                if edge.run and edge.chars is not None:
                    runs.add(edge.chars)
                elif edge.chars is not None:
                    named |= edge.chars
        return named, runs


_Automaton = _Glob | _Shape


def _automaton(atom: Atom) -> _Automaton:
    return _Shape(atom) if any(isinstance(t, Run | Choice) for t in atom.tokens) else _Glob(atom)


def _characters_that_matter(
    globs: Sequence[_Automaton], state: tuple[frozenset[int], ...], everything: tuple[str, ...]
) -> list[str]:
    """The characters that lead somewhere different from here: those the current positions name,
    the colon, one of each group of characters that the runs here take alike, and one that stands
    for every other (the rest behave exactly like it)."""
    named = {":"}
    runs: set[frozenset[str]] = set()
    for glob, positions in zip(globs, state, strict=True):
        more, taken = glob.named(positions)
        named |= more
        runs |= taken
    filler = next(c for c in reversed(everything) if c not in named) if len(named) < len(everything) else None
    return sorted(named) + _one_of_each_group(runs, named) + ([filler] if filler is not None else [])


def _one_of_each_group(runs: set[frozenset[str]], named: set[str]) -> list[str]:
    """Characters no pattern here names, grouped by the runs that take them: one of each group
    (a digit before a letter, for a readable example)."""
    if not runs:
        return []
    ordered = sorted(runs, key=sorted)
    groups: dict[tuple[bool, ...], str] = {}
    for char in sorted(frozenset().union(*runs) - named, key=_readable_first):
        groups.setdefault(tuple(char in run for run in ordered), char)
    return sorted(groups.values())


def _readable_first(char: str) -> tuple[bool, bool, bool, str]:
    return (not char.isdigit(), not char.islower(), not char.isupper(), char)


def _accepts(item: _Item, char: str) -> bool:
    if item.chars is not None:
        return char in item.chars
    return char not in item.excluded


def alphabet(atoms: Sequence[Atom]) -> tuple[str, ...]:
    """The characters that matter, and one that stands for every other (nor in any shape's run)."""
    named = {":"}
    for atom in atoms:
        for char in _literal_characters(atom.tokens):
            named |= {char.lower(), char.upper(), char} if atom.ignore_case else {char}
    taken = named | {c for atom in atoms for c in _run_characters(atom.tokens)}
    filler = next((c for c in _FILLERS if c not in taken), None)
    if filler is None:
        filler = next(chr(code) for code in range(0x100, 0x10000) if chr(code) not in taken)
    return (*sorted(named), filler)


def _literal_characters(tokens: tuple[Token, ...]) -> set[str]:
    return _characters(tokens, lambda token: token.text if isinstance(token, Literal) else "")


def _run_characters(tokens: tuple[Token, ...]) -> set[str]:
    return _characters(tokens, lambda token: token.chars if isinstance(token, Run) else "")


def _characters(tokens: tuple[Token, ...], of: Callable[[Token], Iterable[str]]) -> set[str]:
    """The characters `of` each token gives, through choices."""
    found: set[str] = set()
    for token in tokens:
        if isinstance(token, Choice):
            found.update(*(_characters(option, of) for option in token.options))
        else:
            found.update(of(token))
    return found


Found = Memo[tuple[Atom, ...], tuple[Cell, ...]]  # cells already found, by their patterns


def cells(
    atoms: tuple[Atom, ...], *, stop_at: float | None = None, found: Found | None = None
) -> tuple[Cell, ...]:
    """The non-empty cells, each with a shortest example, in the order first found; TooManyStates past
    the budget of states or the instant `stop_at` of auditor.iam.clock. Kept in `found`, if given."""
    known = None if found is None else found.get(atoms)
    if known is None:
        known = _cells(atoms, DEFAULT_BUDGET, stop_at)
        if found is not None:
            found.put(atoms, known)
    return known


def _cells(atoms: tuple[Atom, ...], budget: int, stop_at: float | None) -> tuple[Cell, ...]:
    globs = [_automaton(atom) for atom in atoms]
    everything = alphabet(atoms)
    start = tuple(glob.start() for glob in globs)
    seen = {start: ""}
    queue = deque([start])
    found: dict[frozenset[int], str] = {}
    while queue:
        if stop_at is not None and clock.now() > stop_at:
            raise TooManyStates(f"out of time after {len(seen)} states for {len(atoms)} patterns")
        state = queue.popleft()
        example = seen[state]
        matched = frozenset(
            i for i, (glob, positions) in enumerate(zip(globs, state, strict=True)) if glob.accepts(positions)
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
