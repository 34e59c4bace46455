"""A finding's witness and actor, in one line, in every output a person reads (interface.md 0.2)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from test_web import fill, lab_audit, opened_trust

from auditor.cli.render import print_audit_table
from auditor.domain.model import AuditRun, Verdict
from auditor.report import build_report, render_html, render_markdown
from auditor.store import Store

LINE = (
    "admits arn:aws:iam::999999999999:root to sts:AssumeRole; "
    "changed by assumed-role/student/alice at 14:02 from 203.0.113.5"
)


def test_the_html_and_markdown_reports_show_who_changed_what(store: Store) -> None:
    now = datetime.now(UTC)
    fill(store, now)
    report = build_report(store, None, None, now)
    assert f'<p class="explained">{LINE}</p>' in render_html(report)
    assert "changed by assumed-role/student/alice at 14:02 from 203.0.113.5" in render_markdown(report)


def test_the_audit_table_shows_who_changed_what_under_the_finding() -> None:
    out = io.StringIO()
    now = datetime.now(UTC)
    run = AuditRun(now, now, (lab_audit(1, Verdict.DRIFTED, now, opened_trust()),))
    print_audit_table(run, out)
    printed = " ".join(line.strip() for line in out.getvalue().splitlines())
    # The finding names its resource at the end of its line; the witness and actor are under it.
    on = "(account 200000000001, role/LambdaS3ListBuckets)"
    assert f"trust policy lets any principal assume the role <script>alert(1)</script> {on} {LINE}" in printed
