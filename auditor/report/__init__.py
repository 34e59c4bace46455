"""Operators' reports: build_report reads the history once; the renderers are pure functions of it."""

from auditor.report.build import build_report
from auditor.report.csv_report import render_csv
from auditor.report.html_report import render_html
from auditor.report.json_report import SCHEMA, SCHEMA_PATH, render_json, report_document, report_schema
from auditor.report.markdown_report import render_markdown
from auditor.report.model import ClassReport, LabReport

RENDERERS = {
    "html": render_html,
    "md": render_markdown,
    "csv": render_csv,
    "json": render_json,
}

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
