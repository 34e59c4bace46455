"""A rubric as a TOML file (lab.md, "The guide as a rubric"): read and validated into a `Rubric`.

The shipped rubric is the guide's (auditor/domain/rubrics/guide.toml, `[class] rubric = "guide"`); an
instructor's own is a file in the same form, named by `[class] rubric` (relative to the configuration
file's folder) and read with the configuration, so that a bad rubric is refused before anything is
touched:

    name = "guide"                  # optional: what the grade calls the rubric (default: the path)
    [[steps]]
    step = "dest-role"              # its id: lower-case letters, digits and '-', unique
    title = "Create role LambdaS3ListBuckets in account 2"   # as the student reads it
    points = 1                      # a whole number, 0 or more
    needs = []                      # ids of earlier steps it needs
    fails_on = ["resource.missing"] # finding codes that make it wrong (declared by some kind)
    hardened_by = []                # finding codes that mean "narrower than the guide"
    after_class = false             # judged only after the class ends
    subject = "destination_role"    # optional: destination_role, origin_role, function or lab

A problem is a `RubricError` naming the file, the key as the file spells it (`steps[2].needs`,
counted from 0 as the configuration's `labs[0]` is) and what is wrong.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from auditor.common.suggest import closest
from auditor.domain.declarations import SHIPPED, Catalogue
from auditor.domain.steps import SUBJECTS, Rubric, RubricStep

GUIDE = "guide"  # `[class] rubric` naming the shipped rubric
SHIPPED_PACKAGE = "auditor.domain.rubrics"

_STEP_ID = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_RUBRIC_KEYS = ("name", "steps")
_STEP_KEYS = ("step", "title", "points", "needs", "fails_on", "hardened_by", "after_class", "subject")


class RubricError(ValueError):
    """A rubric file that cannot be used: which file, which key, what is wrong."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


@functools.cache
def shipped_rubric(name: str = GUIDE) -> Rubric:
    """A rubric shipped with the package (read once a process)."""
    entry = files(SHIPPED_PACKAGE) / f"{name}.toml"
    return rubric_from_text(entry.read_text(encoding="utf-8"), str(entry), name)


def load_rubric(path: str | Path, name: str | None = None, catalogue: Catalogue = SHIPPED) -> Rubric:
    """The rubric of a TOML file; `name` (default: the path) unless the file gives one."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RubricError(file, "", "rubric file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(file, "", f"cannot read the rubric: {exc}") from None
    return rubric_from_text(text, file, name if name is not None else file, catalogue)


def rubric_from_text(text: str, file: str, name: str, catalogue: Catalogue = SHIPPED) -> Rubric:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(file, "", f"TOML syntax error: {exc}") from None
    return rubric_from(document, file, name, catalogue)


def rubric_from(document: Mapping[str, Any], file: str, name: str, catalogue: Catalogue = SHIPPED) -> Rubric:
    """A parsed rubric document as a Rubric; `file` names it in errors, `name` is used when it has none."""
    _no_unknown_keys(file, "", document, _RUBRIC_KEYS)
    if "name" in document:
        name = _text(file, "name", document["name"])
    steps = document.get("steps")
    if not isinstance(steps, list) or not steps:
        problem = "is missing" if steps is None else f"must be a list of [[steps]] tables, not {steps!r}"
        raise RubricError(file, "steps", problem + " (a rubric has at least one [[steps]] table)")
    codes = frozenset(catalogue.codes())
    read: list[RubricStep] = []
    for index, table in enumerate(steps):
        read.append(_step(file, f"steps[{index}]", table, read, codes))
    return Rubric(name=name, steps=tuple(read))


def _step(file: str, key: str, table: Any, earlier: list[RubricStep], codes: frozenset[str]) -> RubricStep:
    if not isinstance(table, Mapping):
        raise RubricError(file, key, f"must be a table, not {table!r}")
    _no_unknown_keys(file, f"{key}.", table, _STEP_KEYS)
    for required in ("step", "title", "points"):
        if required not in table:
            raise RubricError(file, f"{key}.{required}", "is missing")
    step = table["step"]
    if not isinstance(step, str) or not _STEP_ID.match(step):
        raise RubricError(
            file, f"{key}.step", f"{step!r} is not a step id (lower-case letters, digits and '-': dest-role)"
        )
    if any(other.step == step for other in earlier):
        raise RubricError(file, f"{key}.step", f"duplicate step id {step!r}")
    points = table["points"]
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise RubricError(file, f"{key}.points", f"must be a whole number, 0 or more, not {points!r}")
    after_class = table.get("after_class", False)
    if not isinstance(after_class, bool):
        raise RubricError(file, f"{key}.after_class", f"must be true or false, not {after_class!r}")
    fails_on = _codes(file, f"{key}.fails_on", table.get("fails_on", []), codes)
    hardened_by = _codes(file, f"{key}.hardened_by", table.get("hardened_by", []), codes)
    if both := sorted(set(fails_on) & set(hardened_by)):
        raise RubricError(
            file, f"{key}.hardened_by", f"{both[0]!r} is in fails_on too: a finding cannot do both"
        )
    return RubricStep(
        step=step,
        title=_text(file, f"{key}.title", table["title"]),
        points=points,
        needs=_needs(file, f"{key}.needs", step, table.get("needs", []), earlier, after_class),
        fails_on=fails_on,
        hardened_by=hardened_by,
        after_class=after_class,
        subject=_subject(file, f"{key}.subject", table.get("subject")),
    )


def _needs(
    file: str, key: str, step: str, value: Any, earlier: list[RubricStep], after_class: bool
) -> tuple[str, ...]:
    needs = _strings(file, key, value)
    known = {other.step: other for other in earlier}
    for need in needs:
        if need == step:
            raise RubricError(file, key, f"step {step!r} cannot need itself")
        if need not in known:
            hint = closest(need, known)
            raise RubricError(
                file,
                key,
                f"{need!r} is not an earlier step (a step needs only steps above it)"
                + (f"; did you mean {hint!r}?" if hint else ""),
            )
        if known[need].after_class and not after_class:
            raise RubricError(
                file, key, f"{need!r} is judged only after the class: a step of the class cannot need it"
            )
    return needs


def _codes(file: str, key: str, value: Any, codes: frozenset[str]) -> tuple[str, ...]:
    listed = _strings(file, key, value)
    for code in listed:
        if code not in codes:
            hint = closest(code, codes)
            raise RubricError(
                file,
                key,
                f"{code!r} is not a finding code any kind declares"
                + (f" (did you mean {hint!r}?)" if hint else " (see auditor/resources/kinds/*.toml)"),
            )
    return listed


def _subject(file: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in SUBJECTS:
        hint = closest(value, SUBJECTS) if isinstance(value, str) else None
        raise RubricError(
            file,
            key,
            f"{value!r} is not a subject (use {', '.join(SUBJECTS)})"
            + (f"; did you mean {hint!r}?" if hint else ""),
        )
    return str(value)


def _strings(file: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RubricError(file, key, f"must be a list of strings, not {value!r}")
    if duplicated := sorted({item for item in value if value.count(item) > 1}):
        raise RubricError(file, key, f"{duplicated[0]!r} is listed twice")
    return tuple(value)


def _text(file: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RubricError(file, key, f"must be a string (in quotes), not {value!r}")
    if not value.strip():
        raise RubricError(file, key, "must not be empty")
    return value.strip()


def _no_unknown_keys(file: str, prefix: str, table: Mapping[str, Any], known: Iterable[str]) -> None:
    for key in table:
        if key not in known:
            hint = closest(key, known)
            raise RubricError(
                file, f"{prefix}{key}", "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
            )
