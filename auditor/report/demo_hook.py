"""What `auditor demo` calls for its report step."""

from auditor.report.output import write_html_report

__all__ = ["write_html_report"]
