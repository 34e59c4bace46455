"""The report as one JSON document, schema `auditor.report/v1` (report.schema.json beside this file).

Version rule: fields may be added within v1; a field that changes meaning or goes away makes v2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditor.domain.model import Finding, InvokeResult
from auditor.report.model import (
    ClassReport,
    ConformanceBucket,
    DocumentDiff,
    FindingReport,
    LabReport,
    SeverityCounts,
    TimelineCell,
)
from auditor.report.text import iso
from auditor.resources.registry import REGISTRY, Registry
from auditor.store import LifecycleEntry, RecordedRun

SCHEMA = "auditor.report/v1"
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


def report_schema(registry: Registry = REGISTRY) -> dict[str, Any]:
    """The JSON schema of the report, its checks and codes those the registry's kinds declare
    (report.schema.json holds the shipped kinds'; tests/test_report.py keeps it current)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    finding = schema["$defs"]["finding"]["properties"]
    finding["check"]["enum"] = list(registry.catalogue.checks())
    finding["code"]["enum"] = list(registry.catalogue.codes())
    return schema


def render_json(report: ClassReport) -> str:
    return json.dumps(report_document(report), indent=2, ensure_ascii=False) + "\n"


def report_document(report: ClassReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "generated_at": iso(report.generated_at),
        **({"database": report.database} if report.database else {}),
        "period": {
            "since": iso(report.since),
            "start": iso(report.period_start),
            "end": iso(report.period_end),
            "bucket_seconds": int(report.bucket_width.total_seconds()),
        },
        "summary": {
            "labs": len(report.labs),
            "verdicts": {
                (verdict.value if verdict else "not_audited"): count
                for verdict, count in report.verdict_counts().items()
            },
        },
        "conformance": [_bucket(bucket) for bucket in report.conformance],
        "labs": [_lab(lab) for lab in report.labs],
        "unrecorded_labs": list(report.unrecorded),
    }


def _bucket(bucket: ConformanceBucket) -> dict[str, Any]:
    return {
        "start": iso(bucket.start),
        "end": iso(bucket.end),
        "labs": bucket.labs,
        "conformant": bucket.conformant,
        "share": bucket.share,
        "verdicts": {verdict.value: count for verdict, count in bucket.verdicts.items()},
    }


def _lab(lab: LabReport) -> dict[str, Any]:
    return {
        "lab": lab.name,
        "origin_account": lab.origin_account,
        "destination_account": lab.destination_account,
        "state": lab.state.value,
        "expires_at": iso(lab.expires_at),
        "verdict": lab.verdict.value if lab.verdict else None,
        "latest_run": _run(lab.latest) if lab.latest else None,
        "severity_counts": _severity_counts(lab.severity_counts),
        "audits": lab.audits,
        "conformant_audits": lab.conformant_audits,
        "conformant_share": lab.conformant_share,
        "first_conformant_at": iso(lab.first_conformant_at),
        "last_conformant_at": iso(lab.last_conformant_at),
        "timeline": [_cell(cell) for cell in lab.timeline],
        "findings": [_finding(report) for report in lab.findings],
        "invoke": _invoke(lab.invoke) if lab.invoke else None,
        "lifecycle": [_lifecycle_entry(entry) for entry in lab.lifecycle],
    }


def _run(run: RecordedRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "trigger": run.trigger.value,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "verdict": run.verdict.value,
        "error": run.error,
        "requests": run.requests,
    }


def _severity_counts(counts: SeverityCounts) -> dict[str, int]:
    return {severity.value: count for severity, count in counts.items()}


def _cell(cell: TimelineCell) -> dict[str, Any]:
    return {
        "start": iso(cell.start),
        "verdict": cell.verdict.value if cell.verdict else None,
        "audits": cell.audits,
        "standing": cell.standing.value if cell.standing else None,
    }


def _finding(report: FindingReport) -> dict[str, Any]:
    finding: Finding = report.finding
    return {
        **finding.to_json(),
        "breaks_lab": finding.breaks_lab,
        "diff": _diff(report.diff) if report.diff else None,
    }


def _diff(diff: DocumentDiff) -> dict[str, Any]:
    return {
        "canonical_policy": diff.canonical_policy,
        "changed": diff.changed,
        "rows": [
            {"kind": row.kind.value, "expected": row.expected, "actual": row.actual} for row in diff.rows
        ],
    }


def _invoke(invoke: InvokeResult) -> dict[str, Any]:
    return {
        "ok": invoke.ok,
        "cause": invoke.cause,
        "detail": invoke.detail,
        "duration_ms": invoke.duration_ms,
    }


def _lifecycle_entry(entry: LifecycleEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "event": entry.event.value,
        "outcome": entry.outcome.value,
        "detail": entry.detail,
    }
