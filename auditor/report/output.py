"""Writing a rendered report to a file."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from auditor.common.errors import OperationalError
from auditor.report.build import build_report
from auditor.report.html_report import render_html, student_pages
from auditor.report.model import ClassReport
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


def student_pages_folder(report: Path) -> Path:
    """Where the pages per student of the HTML report at `report` go: `report.html` -> `report.students/`."""
    return report.with_name(report.name.removesuffix(".html") + ".students")


def write_html_with_student_pages(path: Path, report: ClassReport) -> Path | None:
    """The HTML report at `path` and, when it holds grades, a page per student in the folder beside it
    (returned; None without grades), written first so that the report's links never point at nothing."""
    if not report.grades:
        write_report(path, render_html(report))
        return None
    folder = student_pages_folder(path)
    write_pages(folder, student_pages(report))
    write_report(path, render_html(report, student_pages=folder.name))
    return folder


def write_pages(folder: Path, pages: Mapping[str, str]) -> None:
    """Each page, whole or not at all; the folder then holds this report's pages only: an older page
    (`*.html`) of a lab not in it goes, anything else in the folder stays."""
    try:
        folder.mkdir(parents=False, exist_ok=True)
    except OSError as error:
        raise OperationalError(
            f"cannot write the students' pages to {folder}: {error.strerror or error}"
        ) from None
    for name, document in pages.items():
        write_report(folder / name, document)
    for stale in folder.glob("*.html"):
        if stale.name not in pages:
            stale.unlink(missing_ok=True)


def write_html_report(store: Store, path: Path, now: datetime) -> Path:
    """The whole history of every lab in the store as an HTML report at `path`."""
    write_report(path, render_html(build_report(store, None, None, now)))
    return path
