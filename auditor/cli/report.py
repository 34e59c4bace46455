"""`auditor report`: the operators' report from the recorded history (registered in auditor.cli.main).
What it uses is imported when it runs: its --help imports none of it."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from auditor.cli.options import config_option, handles_errors, lab_option, read_config

if TYPE_CHECKING:
    from auditor.domain.config import Config
    from auditor.report.model import ClassReport

FORMATS = ("html", "md", "csv", "json")
DEFAULT_HTML_PATH = "report.html"
STDOUT = "-"


@click.command("report")
@config_option
@lab_option
@click.option(
    "--format", "output_format", type=click.Choice(FORMATS), required=True, help="The report's format."
)
@click.option(
    "--out",
    "out_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, allow_dash=True),
    help=f"Where to write it ('-': standard output). Default: standard output; for html, {DEFAULT_HTML_PATH}.",
)
@click.option(
    "--since", metavar="DURATION", help="Only the history of this last while, e.g. 8h or 2d (default: all)."
)
@handles_errors
def report_command(
    config_path: str, labs: tuple[str, ...], output_format: str, out_path: str | None, since: str | None
) -> None:
    """The report from the recorded history: html for people, md for a chat, csv for grades, json for tools.

    When students build the labs ([class] built_by = "students"), the html report also grades each lab
    as of now and writes a page per student, to hand to them, in a folder beside it (report.students/).

    \b
    Example:
      auditor report --format html --since 2d
      auditor report --format csv --out grades.csv
      auditor report --format md --lab pair-01 --lab pair-02
    """
    from auditor.app import reading
    from auditor.domain.config import parse_duration
    from auditor.report import RENDERERS
    from auditor.report.output import write_html_with_student_pages, write_report

    config = read_config(config_path)
    names = [lab.name for lab in config.select(labs)]
    now = datetime.now(UTC)
    start = now - parse_duration(since, "command line", "--since") if since is not None else None
    report = read_report(config, names, start, now)
    if output_format == "html" and config.classroom.students_build:
        report = replace(report, grades=tuple(reading.grades(config, names, now)))
    target = out_path or (DEFAULT_HTML_PATH if output_format == "html" else STDOUT)
    if target == STDOUT:
        if report.grades:
            click.echo("the students' pages are written only beside a report file (--out PATH)", err=True)
        # Bytes: UTF-8 whatever the locale (the sheet's byte-order mark and the students' names too).
        click.echo(RENDERERS[output_format](report).encode("utf-8"), nl=False)
        return
    written = f"{output_format} report on {len(report.labs)} labs from {report.database} written to {target}"
    if output_format != "html":
        write_report(Path(target), RENDERERS[output_format](report))
        click.echo(written)
        return
    folder = write_html_with_student_pages(Path(target), report)
    click.echo(written if folder is None else f"{written}, a page per student in {folder}{os.sep}")


def read_report(config: Config, names: list[str], since: datetime | None, now: datetime) -> ClassReport:
    """The history of those labs, with what the configuration says of each (accounts, student columns)."""
    from auditor.app.recording import open_store
    from auditor.report import build_report
    from auditor.report.model import roster_of
    from auditor.store import safe_url

    store = open_store(config)
    try:
        report = build_report(store, names, since, now)
    finally:
        store.close()
    return replace(report, roster=roster_of(config.select(names)), database=safe_url(config.database.url))
