"""Documents and requests up to the names of their accounts (pure), so that a class of labs whose
documents differ only in account ids is decided once.

Renaming every occurrence of one account id into another changes no answer as long as nothing tells
the two apart: no wildcard touches a digit (`arn:aws:iam::1*:root` would), no number, date or IP
condition reads one, and no placeholder was already in use. Where that does not hold, nothing is
renamed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from auditor.iam.conditions import Family, operator
from auditor.iam.document import Condition, Statement

_ACCOUNT = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
_WILDCARD_BY_DIGIT = re.compile(r"[0-9][*?]|[*?][0-9]")


@dataclass(frozen=True)
class Renaming:
    """Account ids to placeholders and back (placeholders are account ids themselves)."""

    forward: Mapping[str, str]

    @property
    def identity(self) -> bool:
        return not self.forward

    def to_placeholders(self, text: str) -> str:
        return (
            _ACCOUNT.sub(lambda m: self.forward.get(m.group(0), m.group(0)), text) if self.forward else text
        )

    def to_names(self, text: str) -> str:
        if not self.forward:
            return text
        back = {placeholder: name for name, placeholder in self.forward.items()}
        return _ACCOUNT.sub(lambda m: back.get(m.group(0), m.group(0)), text)

    def statement(self, statement: Statement) -> Statement:
        if not self.forward:
            return statement
        rename = self.to_placeholders
        return replace(
            statement,
            resources=tuple(sorted({rename(r) for r in statement.resources})),
            principals=tuple(sorted({rename(p) for p in statement.principals})),
            conditions=tuple(
                sorted(
                    {
                        Condition(c.operator, c.key, tuple(sorted({rename(v) for v in c.values})))
                        for c in statement.conditions
                    }
                )
            ),
        )


NO_RENAMING = Renaming({})


def accounts_in(texts: Iterable[str]) -> list[str]:
    """Account ids in order of first appearance."""
    return list(dict.fromkeys(a for text in texts for a in _ACCOUNT.findall(text)))


def renaming(
    accounts: Iterable[str], statements: Iterable[Statement], other_texts: Iterable[str] = ()
) -> Renaming:
    """Placeholders for these accounts, or no renaming where one could change an answer.

    `other_texts`: the question's own values (a hop's resource, known values, what it knows of the
    User-Agent); they are renamed too, and must not already use a placeholder.
    """
    chosen = [account for account in dict.fromkeys(accounts) if _ACCOUNT.fullmatch(account)]
    if not chosen:
        return NO_RENAMING
    texts: list[str] = []
    for statement in statements:
        texts += [*statement.resources, *statement.principals]
        for condition in statement.conditions:
            op = operator(condition.operator)
            if (
                op is not None
                and op.family is not Family.STRING
                and any(_ACCOUNT.search(v) for v in condition.values)
            ):
                return NO_RENAMING  # a number or date that happens to look like an account id
            texts += condition.values
    if any(_WILDCARD_BY_DIGIT.search(text) for text in texts):
        return NO_RENAMING
    placeholders = [f"{number:012d}" for number in range(1, len(chosen) + 1)]
    if any(p in text for p in placeholders for text in [*texts, *other_texts]):
        return NO_RENAMING
    return Renaming(dict(zip(chosen, placeholders, strict=True)))
