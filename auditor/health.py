"""The daemon's HTTP endpoint: `/healthz` (the last completed cycle) and `/metrics` (Prometheus)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from auditor.model import LabAudit

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
        self.cycles = Counter(
            "auditor_reconcile_cycles", "Reconcile cycles completed", registry=self.registry
        )

    def observe_audit(self, audit: LabAudit) -> None:
        self.audits.labels(verdict=audit.verdict.value).inc()
        for finding in audit.findings:
            self.findings.labels(severity=finding.severity.value).inc()
        if audit.error:
            self.audit_errors.inc()
        if audit.duration is not None:
            self.audit_seconds.observe(audit.duration.total_seconds())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """A small threaded HTTP server; port 0 in the config turns it off."""

    def __init__(self, host: str, port: int, health: HealthCheck, metrics: Metrics) -> None:
        self.enabled = port != 0
        self.health, self.metrics = health, metrics
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if self.enabled:
            self._server = ThreadingHTTPServer((host, port), self._handler())
            self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    healthy, detail = server.health()
                    body = json.dumps({"healthy": healthy, "last_cycle": detail}).encode()
                    self._answer(200 if healthy else 503, "application/json", body)
                elif self.path == "/metrics":
                    self._answer(200, CONTENT_TYPE_LATEST, server.metrics.exposition())
                else:
                    self._answer(404, "text/plain", b"not found\n")

            def _answer(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the daemon's own log

        return Handler

    def start(self) -> None:
        if self._server is not None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
