"""Did you mean: the one near miss every message suggests, and the same name as people write it.

A name is compared by its key: its letters and its numbers, in order, whatever their case, the
separators between them (spaces, `_`, `-`, `.`, a stray byte-order mark) and a number's zero padding.
So "EU-WEST-1" is eu-west-1, "Student Name" is student_name, "pair-7" is pair-07. A number typed is
taken as meant: pair-7 is never a typo of pair-17, nor us-east-3 of us-west-2.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

NameKey = tuple[str | int, ...]

# difflib's own default: how alike two spellings must be for the one to be suggested for the other.
NEAR = 0.6
_RUNS = re.compile(r"\d+|[^\W\d_]+")  # a run of digits, or a run of letters
_SEPARATORS = re.compile(r"[\W_]+")


def name_key(name: str) -> NameKey:
    """The name's letters (the runs between two numbers as one word) and its numbers, as numbers."""
    key: list[str | int] = []
    for run in _RUNS.findall(name.casefold()):
        if run.isdigit():
            key.append(int(run))
        elif key and isinstance(key[-1], str):
            key[-1] += run
        else:
            key.append(run)
    return tuple(key)


def same_name(written: str, name: str) -> bool:
    """Whether `written` is `name` written another way ("Origin Account ID" is origin_account_id)."""
    return bool(name_key(name)) and name_key(written) == name_key(name)


def closest(name: str, known: Iterable[str], cutoff: float = NEAR) -> str | None:
    """The known name that `name` most likely meant, or None when none is near enough.

    First a name that is the same one written another way; else the nearest spelling of at least
    `cutoff` (difflib's ratio) among those with the same numbers: a number typed is taken as meant.
    """
    candidates = sorted(set(known))
    if same := [candidate for candidate in candidates if same_name(name, candidate)]:
        return same[0]
    numbers = _numbers(name_key(name))
    if numbers:
        candidates = [candidate for candidate in candidates if _numbers(name_key(candidate)) == numbers]
    scored = [(_likeness(name, candidate), candidate) for candidate in candidates]
    near = [entry for entry in scored if entry[0] >= cutoff]
    return max(near, key=lambda entry: entry[0])[1] if near else None  # of equals, the first in order


def _likeness(name: str, candidate: str) -> float:
    return difflib.SequenceMatcher(None, _spelling(name), _spelling(candidate), autojunk=False).ratio()


def _spelling(name: str) -> str:
    return _SEPARATORS.sub(" ", name.casefold()).strip()


def _numbers(key: NameKey) -> tuple[int, ...]:
    return tuple(part for part in key if isinstance(part, int))


# ------------------------------------------------------------------------------------ account ids

_DIGITS_WITH_SEPARATORS = re.compile(r"^\d{4}[- ]\d{4}[- ]\d{4}$")  # as the AWS console shows it
_A_NUMBER_WITH_DECIMALS = re.compile(r"^(\d{1,12})\.0*$")
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")


def account_id_hint(value: object) -> str | None:
    """What most likely went wrong with a value given as an AWS account id (12 digits), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        digits = str(value)
        fixed = digits.zfill(12) if 10 <= len(digits) <= 12 else None
        return f'write it in quotes, as a string: "{fixed}"' if fixed else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _DIGITS_WITH_SEPARATORS.match(text):
        return f"write it without the separators: {re.sub(r'[- ]', '', text)!r}"
    if _SCIENTIFIC.match(text):
        return (
            "a spreadsheet wrote it as a number, and its last digits are lost: "
            "format the column as text and type the ids again"
        )
    if match := _A_NUMBER_WITH_DECIMALS.match(text):
        text = match.group(1)
        if len(text) == 12:
            return f"a spreadsheet wrote it as a number: {text!r}"
    if text.isdigit() and 10 <= len(text) <= 11:
        zeros = "a leading zero" if len(text) == 11 else "its leading zeros"
        return f"it has {len(text)} digits: did a spreadsheet drop {zeros}? {text.zfill(12)!r}"
    return None
