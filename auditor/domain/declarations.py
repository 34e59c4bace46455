"""What each kind of resource declares about its findings, as data beside its module (<module>.toml).

A kind's data file names the kind and declares every finding code it reports: the code (its check, a
dot, what it means: `trust_policy.widened`), a title, the usual severity, the sentence that tells a
person what to do, the provisioner's step that answers it (create, update, delete or none) and the
CloudTrail events that change it, as EventBridge names them (`iam:PutRolePolicy`,
`lambda:UpdateFunctionCode20150331v2`). It may also say which calls replace its resource whole (they
change every finding of it and of what lies beneath it) and which findings of another kind its own
resources answer too (a role is created with its inline policies).

From these declarations come the checks and codes of the report's schema, the calls the change-event
rules watch, the CloudTrail map from a call to the findings it explains, and each finding's fix (the
registry, auditor/resources/registry.py). As Prowler keeps a check's metadata beside its code and
parliament its findings' wording in a table, nothing of this is written anywhere else.

The shipped kinds' files are read once, when this module is imported (immutable process set-up).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from auditor.domain.model import Action, Finding, Severity, check_of

SHIPPED_PACKAGE = "auditor.resources.kinds"

_CODE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# "service:EventName" as EventBridge's "AWS API Call via CloudTrail" events name them.
_EVENT = re.compile(r"^[a-z][a-z0-9-]*:[A-Z][A-Za-z0-9]*$")
_STEPS = {"create": Action.CREATE, "update": Action.UPDATE, "delete": Action.DELETE, "none": None}

_KIND_KEYS = {"kind", "replaced_by", "answers", "codes"}
_CODE_KEYS = {"title", "severity", "remediation", "step", "reason", "changed_by"}
_ANSWER_KEYS = {"kind", "code", "step", "reason"}


class DeclarationError(ValueError):
    """A data file that cannot be used, with the file, the key and what is wrong."""


@dataclass(frozen=True)
class CodeDeclaration:
    """One finding code of one kind."""

    kind: str
    code: str
    title: str
    severity: Severity  # the usual one: a comparison may find a finding of this code worse or milder
    remediation: str  # what a person does about it, as one sentence
    step: Action | None  # the provisioner's step on the finding's subject; None: no provisioning fixes it
    # The step's reason: None for the finding's own sentence, "" for none (a creation says it all).
    reason: str | None
    changed_by: tuple[str, ...]  # the calls that change it, "service:EventName"

    @property
    def check(self) -> str:
        return check_of(self.code)


@dataclass(frozen=True)
class Answer:
    """A finding of another kind that this kind's resources of the same owner answer too."""

    kind: str
    code: str
    step: Action
    reason: str | None


@dataclass(frozen=True)
class KindDeclaration:
    kind: str
    source: str  # the data file, for messages
    codes: tuple[CodeDeclaration, ...]
    replaced_by: tuple[str, ...] = ()
    answers: tuple[Answer, ...] = ()


@dataclass(frozen=True)
class Reach:
    """The findings a call can change on the resource it names: findings of these codes, or (`whole`, a
    call that creates or deletes the resource) every finding of it and of what lies beneath it."""

    codes: frozenset[str]
    whole: bool = False


# ------------------------------------------------------------------------------------------ reading


def load_declaration(path: Traversable | str, text: str | None = None) -> KindDeclaration:
    """One data file, validated; a problem is a DeclarationError naming the file and the key."""
    source = str(path)
    try:
        document = tomllib.loads(text if text is not None else _read(path))
    except tomllib.TOMLDecodeError as error:
        raise DeclarationError(f"{source}: not TOML: {error}") from None
    _no_unknown_keys(source, "", document, _KIND_KEYS)
    kind = _name(source, "kind", document.get("kind"))
    codes = document.get("codes", {})
    if not isinstance(codes, dict) or not codes:
        raise DeclarationError(f"{source}: codes: a table of at least one code is required")
    return KindDeclaration(
        kind=kind,
        source=source,
        codes=tuple(_code(source, kind, code, body) for code, body in codes.items()),
        replaced_by=_events(source, "replaced_by", document.get("replaced_by", [])),
        answers=tuple(
            _answer(source, f"answers[{index}]", body)
            for index, body in enumerate(_list(source, "answers", document.get("answers", [])))
        ),
    )


def package_declarations(package: str) -> tuple[KindDeclaration, ...]:
    """Every data file of a package of kinds (its *.toml), in the order of their names."""
    found = sorted(
        (entry for entry in files(package).iterdir() if entry.name.endswith(".toml")),
        key=lambda entry: entry.name,
    )
    return tuple(load_declaration(entry) for entry in found)


def _read(path: Traversable | str) -> str:
    if isinstance(path, str):
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    return path.read_text(encoding="utf-8")


def _code(source: str, kind: str, code: str, body: Any) -> CodeDeclaration:
    key = f"codes.{code}"
    if not _CODE.match(code):
        raise DeclarationError(
            f"{source}: {key}: a code is its check, a dot and a name: `trust_policy.widened`"
        )
    if not isinstance(body, dict):
        raise DeclarationError(f"{source}: {key}: a table is required")
    _no_unknown_keys(source, f"{key}.", body, _CODE_KEYS)
    return CodeDeclaration(
        kind=kind,
        code=code,
        title=_text(source, f"{key}.title", body.get("title")),
        severity=_severity(source, f"{key}.severity", body.get("severity")),
        remediation=_text(source, f"{key}.remediation", body.get("remediation")),
        step=_step(source, f"{key}.step", body.get("step")),
        reason=_reason(source, f"{key}.reason", body),
        changed_by=_events(source, f"{key}.changed_by", body.get("changed_by", [])),
    )


def _answer(source: str, key: str, body: Any) -> Answer:
    if not isinstance(body, dict):
        raise DeclarationError(f"{source}: {key}: a table is required")
    _no_unknown_keys(source, f"{key}.", body, _ANSWER_KEYS)
    step = _step(source, f"{key}.step", body.get("step"))
    if step is None:
        raise DeclarationError(f"{source}: {key}.step: an answer is a step: create, update or delete")
    code = body.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise DeclarationError(f"{source}: {key}.code: the code of the other kind's finding is required")
    return Answer(
        _name(source, f"{key}.kind", body.get("kind")), code, step, _reason(source, f"{key}.reason", body)
    )


def _no_unknown_keys(source: str, prefix: str, table: Mapping[str, Any], known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise DeclarationError(
                f"{source}: {prefix}{key}: unknown key (known: {', '.join(sorted(known))})"
            )


def _name(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise DeclarationError(f"{source}: {key}: a name of lower-case letters, digits and _ is required")
    return value


def _text(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DeclarationError(f"{source}: {key}: a sentence is required")
    return value.strip()


def _severity(source: str, key: str, value: Any) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        choices = ", ".join(severity.value for severity in Severity)
        raise DeclarationError(f"{source}: {key}: {value!r} is not a severity ({choices})") from None


def _step(source: str, key: str, value: Any) -> Action | None:
    if value not in _STEPS:
        raise DeclarationError(f"{source}: {key}: {value!r} is not a step (create, update, delete, none)")
    return _STEPS[value]


def _reason(source: str, key: str, body: Mapping[str, Any]) -> str | None:
    if "reason" not in body:
        return None
    if not isinstance(body["reason"], str):
        raise DeclarationError(f'{source}: {key}: a string is required ("" for no reason)')
    return str(body["reason"])


def _list(source: str, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DeclarationError(f"{source}: {key}: a list is required")
    return value


def _events(source: str, key: str, value: Any) -> tuple[str, ...]:
    events = _list(source, key, value)
    for event in events:
        if not isinstance(event, str) or not _EVENT.match(event):
            raise DeclarationError(
                f"{source}: {key}: {event!r} is not an event as EventBridge names it (`iam:PutRolePolicy`)"
            )
    return tuple(events)


# ----------------------------------------------------------------------------------------- catalogue


def versionless(event_name: str) -> str:
    """An event's name without the API version Lambda's carry (UpdateFunctionCode20150331v2)."""
    return event_name.rstrip("v0123456789")


class Catalogue:
    """The declarations of a set of kinds, and everything derived from them (immutable once built)."""

    def __init__(self, declarations: Iterable[KindDeclaration]) -> None:
        self._kinds: dict[str, KindDeclaration] = {}
        for declaration in declarations:
            if (other := self._kinds.get(declaration.kind)) is not None:
                raise DeclarationError(
                    f"{declaration.source}: kind: {declaration.kind!r} is declared by {other.source} too"
                )
            self._kinds[declaration.kind] = declaration
        self._codes = {(c.kind, c.code): c for d in self._kinds.values() for c in d.codes}
        self._check_answers()
        self._reach = self._reach_by_call()

    def __iter__(self) -> Iterator[KindDeclaration]:
        return iter(self._kinds.values())

    def kinds(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def including(self, declarations: Iterable[KindDeclaration]) -> Catalogue:
        return Catalogue((*self, *declarations))

    # ---------------------------------------------------------------------------------------- codes

    def code(self, kind: str, code: str) -> CodeDeclaration | None:
        return self._codes.get((kind, code))

    def declared(self, finding: Finding) -> CodeDeclaration | None:
        """The declaration of a finding's code, by the kind of its subject."""
        if finding.subject is None:
            return None
        return self.code(finding.subject.kind, finding.code)

    def answers(self, finding: Finding) -> list[tuple[str, Answer]]:
        """(answering kind, answer) for each kind whose resources answer this finding of another kind."""
        if finding.subject is None:
            return []
        return [
            (declaration.kind, answer)
            for declaration in self
            for answer in declaration.answers
            if (answer.kind, answer.code) == (finding.subject.kind, finding.code)
        ]

    def checks(self) -> tuple[str, ...]:
        return tuple(sorted({code.check for code in self._codes.values()}))

    def codes(self) -> tuple[str, ...]:
        return tuple(sorted({code.code for code in self._codes.values()}))

    # ---------------------------------------------------------------------------------------- calls

    def events(self) -> tuple[str, ...]:
        """Every call some declaration says changes a finding, "service:EventName", sorted."""
        return tuple(sorted(set(self._all_events())))

    def watched_calls(self) -> dict[str, tuple[str, ...]]:
        """The calls the change-event rules watch, by EventBridge source: {"aws.iam": ("CreateRole", ...)}."""
        watched: dict[str, set[str]] = {}
        for event in self.events():
            service, _, name = event.partition(":")
            watched.setdefault(f"aws.{service}", set()).add(name)
        return {source: tuple(sorted(names)) for source, names in sorted(watched.items())}

    def reach(self, service: str, event_name: str) -> Reach | None:
        """What a successful call of that service's (its API version aside) can change of the resource
        it names; None for a call no declaration names."""
        return self._reach.get((service, versionless(event_name)))

    def _all_events(self) -> Iterator[str]:
        for declaration in self:
            yield from declaration.replaced_by
            for code in declaration.codes:
                yield from code.changed_by

    def _reach_by_call(self) -> dict[tuple[str, str], Reach]:
        codes: dict[tuple[str, str], set[str]] = {}
        whole: set[tuple[str, str]] = set()
        for declaration in self:
            for event in declaration.replaced_by:
                whole.add(_call_key(event))
            for code in declaration.codes:
                for event in code.changed_by:
                    codes.setdefault(_call_key(event), set()).add(code.code)
        return {key: Reach(frozenset(codes.get(key, ())), key in whole) for key in sorted({*codes, *whole})}

    def _check_answers(self) -> None:
        for declaration in self:
            for answer in declaration.answers:
                if (answer.kind, answer.code) not in self._codes:
                    raise DeclarationError(
                        f"{declaration.source}: answers: kind {answer.kind!r} declares no code {answer.code!r}"
                    )


def _call_key(event: str) -> tuple[str, str]:
    service, _, name = event.partition(":")
    return (service, versionless(name))


SHIPPED = Catalogue(package_declarations(SHIPPED_PACKAGE))
