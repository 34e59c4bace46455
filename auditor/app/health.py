"""The daemon's health check and metrics; auditor.web serves them as `/healthz` and `/metrics`."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from auditor.domain.model import LabAudit, Verdict

# The value of auditor_lab_verdict: alert on > 0.
VERDICT_VALUE = {Verdict.CONFORMANT: 0, Verdict.DRIFTED: 1, Verdict.BROKEN: 2, Verdict.ERROR: 3}

HealthCheck = Callable[[], tuple[bool, str]]


class Metrics:
    """The daemon's counters, in a registry of its own (tests may run several daemons in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.audits = Counter(
            "auditor_audits", "Audits completed, by verdict", ["verdict"], registry=self.registry
        )
        self.findings = Counter(
            "auditor_findings", "Findings reported, by severity", ["severity"], registry=self.registry
        )
        self.audit_errors = Counter(
            "auditor_audit_errors", "Audits that could not finish", registry=self.registry
        )
        self.audit_seconds = Histogram(
            "auditor_audit_duration_seconds",
            "Time to audit one lab",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.teardowns = Counter(
            "auditor_teardowns", "Teardowns at expiry, by outcome", ["outcome"], registry=self.registry
        )
        self.events = Counter(
            "auditor_change_events", "Change events received, by fate", ["fate"], registry=self.registry
        )
        self.database_errors = Counter(
            "auditor_database_errors",
            "Writes or reads refused because the database was away",
            registry=self.registry,
        )
        self.notifications = Counter(
            "auditor_notifications",
            "Notification sends to one target, by outcome (sent, retried, failed, dropped)",
            ["outcome"],
            registry=self.registry,
        )
        self.lab_verdict = Gauge(
            "auditor_lab_verdict",
            "Each lab's latest verdict: 0 conformant, 1 drifted, 2 broken, 3 error",
            ["lab"],
            registry=self.registry,
        )
        self.cycles = Counter(
            "auditor_reconcile_cycles", "Reconcile cycles completed", registry=self.registry
        )

    def observe_audit(self, audit: LabAudit) -> None:
        self.audits.labels(verdict=audit.verdict.value).inc()
        self.lab_verdict.labels(lab=audit.lab).set(VERDICT_VALUE[audit.verdict])
        for finding in audit.findings:
            self.findings.labels(severity=finding.severity.value).inc()
        if audit.error:
            self.audit_errors.inc()
        if audit.duration is not None:
            self.audit_seconds.observe(audit.duration.total_seconds())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
