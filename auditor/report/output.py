"""Writing a rendered report to a file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from auditor.common.errors import OperationalError
from auditor.report.build import build_report
from auditor.report.html_report import render_html
from auditor.store import Store


def write_report(path: Path, document: str) -> None:
    """Whole or not at all: a half-written report would pass for a report."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(document, encoding="utf-8", newline="")
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OperationalError(f"cannot write the report to {path}: {error.strerror or error}") from None


def write_html_report(store: Store, path: Path, now: datetime) -> Path:
    """The whole history of every lab in the store as an HTML report at `path`."""
    write_report(path, render_html(build_report(store, None, None, now)))
    return path
