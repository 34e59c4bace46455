"""Operators' reports: build_report reads the history once; the renderers are pure functions of it.

Its names are imported on first use (auditor/common/lazy.py): the status table's use of a report's
wording imports no template engine."""

from typing import TYPE_CHECKING

from auditor.common.lazy import lazy_names

if TYPE_CHECKING:
    from auditor.report.build import build_report
    from auditor.report.csv_report import render_csv
    from auditor.report.html_report import render_html
    from auditor.report.json_report import SCHEMA, SCHEMA_PATH, render_json, report_document, report_schema
    from auditor.report.markdown_report import render_markdown
    from auditor.report.model import ClassReport, LabReport
    from auditor.report.renderers import RENDERERS
else:
    __getattr__ = lazy_names(
        __name__,
        {
            "auditor.report.build": ("build_report",),
            "auditor.report.csv_report": ("render_csv",),
            "auditor.report.html_report": ("render_html",),
            "auditor.report.json_report": (
                "SCHEMA",
                "SCHEMA_PATH",
                "render_json",
                "report_document",
                "report_schema",
            ),
            "auditor.report.markdown_report": ("render_markdown",),
            "auditor.report.model": ("ClassReport", "LabReport"),
            "auditor.report.renderers": ("RENDERERS",),
        },
    )

__all__ = [
    "RENDERERS",
    "SCHEMA",
    "SCHEMA_PATH",
    "ClassReport",
    "LabReport",
    "build_report",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "report_document",
    "report_schema",
]
