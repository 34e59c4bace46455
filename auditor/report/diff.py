"""A finding's expected and actual values side by side, with the lines that differ marked.

Policies are first put in auditor.policy's canonical form, so the difference shown is one of meaning:
two documents that differ only in statement order, Sids or spelling show no changed line.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby, zip_longest
from typing import Any

from auditor.policy import PolicyError, parse_policy, to_json
from auditor.report.model import DiffKind, DiffRow, DocumentDiff


def document_diff(expected: Any, actual: Any) -> DocumentDiff | None:
    """None when there is nothing to show on either side."""
    if expected is None and actual is None:
        return None
    canonical = _canonical_policies(expected, actual)
    if canonical is not None:
        spelling = _action_spellings(expected, actual)
        expected, actual = (_as_written(side, spelling) for side in canonical)
    return DocumentDiff(
        canonical_policy=canonical is not None,
        rows=tuple(side_by_side(_lines(expected), _lines(actual))),
        has_expected=expected is not None,
        has_actual=actual is not None,
    )


def _canonical_policies(expected: Any, actual: Any) -> tuple[Any, Any] | None:
    """Both sides in canonical policy form (a missing side stays None), or None if a side is not a policy.

    Canonicalising one side and not the other would show differences of spelling as changes.
    """
    try:
        return _canonical_policy(expected), _canonical_policy(actual)
    except PolicyError:
        return None


_ACTION_KEYS = ("Action", "NotAction")


def _action_spellings(*documents: Any) -> dict[str, str]:
    """Each action as the policies wrote it (`sts:AssumeRole`), by its canonical lower-case form."""
    spelling: dict[str, str] = {}
    for document in documents:
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                continue
        statements = document.get("Statement", []) if isinstance(document, dict) else []
        for statement in statements if isinstance(statements, list) else [statements]:
            for key in _ACTION_KEYS:
                value = statement.get(key) if isinstance(statement, dict) else None
                for action in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
                    if isinstance(action, str):
                        spelling.setdefault(action.lower(), action)
    return spelling


def _as_written(document: dict[str, Any] | None, spelling: dict[str, str]) -> dict[str, Any] | None:
    """The canonical document with its actions spelled as written: IAM ignores case, people do not."""
    if document is None:
        return None
    statements = []
    for statement in document.get("Statement", []):
        restored = dict(statement)
        for key in _ACTION_KEYS:
            value = restored.get(key)
            if isinstance(value, list):
                restored[key] = [spelling.get(action, action) for action in value]
            elif isinstance(value, str):
                restored[key] = spelling.get(value, value)
        statements.append(restored)
    return {**document, "Statement": statements}


def _canonical_policy(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, str | dict):
        raise PolicyError(f"a {type(value).__name__} is not a policy document")
    return to_json(parse_policy(value))


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str).splitlines()


def side_by_side(expected: Sequence[str], actual: Sequence[str]) -> Iterator[DiffRow]:
    matcher = difflib.SequenceMatcher(None, expected, actual, autojunk=False)
    for tag, e_start, e_end, a_start, a_end in matcher.get_opcodes():
        if tag == "equal":
            for line in expected[e_start:e_end]:
                yield DiffRow(DiffKind.SAME, line, line)
            continue
        pairs = zip_longest(expected[e_start:e_end], actual[a_start:a_end])
        for old, new in pairs:
            yield _changed_row(old, new)


def _changed_row(old: str | None, new: str | None) -> DiffRow:
    if old is None:
        return DiffRow(DiffKind.ADDED, None, new)
    if new is None:
        return DiffRow(DiffKind.REMOVED, old, None)
    return DiffRow(DiffKind.CHANGED, old, new)


def unified_lines(diff: DocumentDiff, context: int = 3) -> Iterator[str]:
    """The rows as a unified diff body (`-` expected, `+` actual), long unchanged runs folded into `@@` lines."""
    for row in folded(diff.rows, context):
        if isinstance(row, Fold):
            yield f"@@ {row.hidden} unchanged line{'s' if row.hidden != 1 else ''} @@"
        elif row.kind is DiffKind.SAME:
            yield f"  {row.expected}"
        else:
            if row.expected is not None:
                yield f"- {row.expected}"
            if row.actual is not None:
                yield f"+ {row.actual}"


@dataclass(frozen=True)
class Fold:
    """Unchanged lines left out of a shown difference."""

    hidden: int


def folded(rows: Sequence[DiffRow], context: int = 3) -> list[DiffRow | Fold]:
    """The rows with long runs of unchanged lines cut to `context` lines either side of a change.

    A document without any change is shown whole: there is nothing to focus on.
    """
    if not any(row.kind is not DiffKind.SAME for row in rows):
        return list(rows)
    runs = [(same, list(group)) for same, group in groupby(rows, key=lambda row: row.kind is DiffKind.SAME)]
    shown: list[DiffRow | Fold] = []
    for index, (same, group) in enumerate(runs):
        if not same or len(group) <= 2 * context + 1:
            shown.extend(group)
            continue
        head = group[:context] if index > 0 else []
        tail = group[-context:] if index < len(runs) - 1 else []
        shown.extend([*head, Fold(len(group) - len(head) - len(tail)), *tail])
    return shown
