"""Each format of `auditor report` and the pure function that renders a report in it."""

from auditor.report.csv_report import render_csv
from auditor.report.html_report import render_html
from auditor.report.json_report import render_json
from auditor.report.markdown_report import render_markdown

RENDERERS = {
    "html": render_html,
    "md": render_markdown,
    "csv": render_csv,
    "json": render_json,
}
