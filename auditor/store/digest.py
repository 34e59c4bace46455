"""Content addresses for findings and their documents (pure: no database).

A document is stored once under the sha256 of its canonical JSON; a set of findings is stored once
under the sha256 of its findings in a canonical order, with documents replaced by their digests.
So an audit whose result did not change adds no finding and no document, only a reference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from auditor.domain.model import Actor, Effect, Finding, Severity, Status, Subject, Witness


def canonical_json(value: Any) -> str:
    """The one spelling of a JSON value: sorted keys, no spaces, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredFinding:
    """A finding as a row holds it: its expected and actual documents replaced by their digests."""

    check: str
    code: str
    subject: Subject | None
    resource: str
    status: Status
    effect: Effect
    severity: Severity
    message: str
    expected_digest: str | None
    actual_digest: str | None
    breaks_lab: bool
    witness_digest: str | None = None
    changed_by_digest: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        # Most severe first, so a report can show findings in the order they are stored.
        return (-self.severity.rank, *self.identity())

    def identity(self) -> list[Any]:
        return [
            self.check,
            self.resource,
            self.status.value,
            self.effect.value,
            self.severity.value,
            self.message,
            self.expected_digest or "",
            self.actual_digest or "",
            self.breaks_lab,
            # Last, so that findings keep the order they had before codes and subjects (revision 0007).
            self.code,
            list(self.subject.key) if self.subject is not None else [],
            # Only when present, so that a set stored before these existed keeps its digest.
            *([self.witness_digest or "", self.changed_by_digest or ""] if self.explained else []),
        ]

    @property
    def explained(self) -> bool:
        return self.witness_digest is not None or self.changed_by_digest is not None


@dataclass(frozen=True)
class PreparedFindings:
    """The findings of one run, ready to store: the set's digest, its rows in order, its documents."""

    digest: str
    findings: tuple[StoredFinding, ...]
    documents: dict[str, str]


def prepare_findings(findings: tuple[Finding, ...] | list[Finding]) -> PreparedFindings | None:
    """None for a run without findings; raises ValueError if a finding's document is not JSON."""
    if not findings:
        return None
    documents: dict[str, str] = {}
    stored = sorted((_stored(finding, documents) for finding in findings), key=StoredFinding.sort_key)
    digest = sha256_hex(canonical_json([finding.identity() for finding in stored]))
    return PreparedFindings(digest=digest, findings=tuple(stored), documents=documents)


def canonical_order(findings: tuple[Finding, ...] | list[Finding]) -> tuple[Finding, ...]:
    """The order in which the store gives findings back: most severe first, then by content."""
    documents: dict[str, str] = {}
    keyed = [(_stored(finding, documents).sort_key(), index) for index, finding in enumerate(findings)]
    return tuple(findings[index] for _, index in sorted(keyed))


def _stored(finding: Finding, documents: dict[str, str]) -> StoredFinding:
    return StoredFinding(
        check=finding.check,
        code=finding.code,
        subject=finding.subject,
        resource=finding.resource,
        status=Status(finding.status),
        effect=Effect(finding.effect),
        severity=Severity(finding.severity),
        message=finding.message,
        expected_digest=_document_digest(finding, "expected", documents),
        actual_digest=_document_digest(finding, "actual", documents),
        breaks_lab=bool(finding.breaks_lab),
        witness_digest=_document_digest(finding, "witness", documents),
        changed_by_digest=_document_digest(finding, "changed_by", documents),
    )


def _document_digest(finding: Finding, field: str, documents: dict[str, str]) -> str | None:
    value = getattr(finding, field)
    if value is None:
        return None
    if isinstance(value, Witness | Actor):
        value = value.to_json()
    try:
        body = canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"the {field} document of the {finding.check} finding on {finding.resource} is not JSON: {exc}"
        ) from exc
    digest = sha256_hex(body)
    documents[digest] = body
    return digest


def decode_document(body: str | None) -> Any:
    return None if body is None else json.loads(body)
