"""`auditor grade`: each lab's grade from the recorded history (interface.md, "Students build it";
registered in auditor.cli.main). It reads the database only: no AWS call. What it uses is imported when
it runs: its --help imports none of it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from auditor.cli.options import config_option, handles_errors, lab_option, read_config
from auditor.common.clock import iso, utc_now

if TYPE_CHECKING:
    from auditor.app.grading import LabGrade
    from auditor.domain.steps import Rubric

FORMATS = ("table", "json", "csv")
STDOUT = "-"


def _instant(_context: click.Context, _parameter: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    from auditor.domain.config import Problem, instant_of

    try:
        return instant_of(value)
    except Problem as problem:
        raise click.BadParameter(str(problem)) from None


@click.command("grade")
@config_option
@lab_option
@click.option(
    "--as-of",
    "as_of",
    metavar="INSTANT",
    callback=_instant,
    help="Grade from what was recorded by this instant, e.g. 2026-12-10T17:00:00Z (default: now); "
    "the same history and instant give the same grades.",
)
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--out",
    "out_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write to this file instead of standard output ('-': standard output).",
)
@handles_errors
def grade_command(
    config_path: str, labs: tuple[str, ...], as_of: datetime | None, output_format: str, out_path: str | None
) -> None:
    """Grade each lab step by step from the recorded history (no AWS call): the guide's steps as a rubric.

    The daemon, or `auditor audit`, keeps the history; a lab never audited has every step missing.
    Steps first done after [class] due are late and earn nothing; cleanup is judged after the class ends.

    \b
    Example:
      auditor grade
      auditor grade --as-of 2026-12-10T17:00:00Z --format csv --out grades.csv
      auditor grade --format json --lab pair-07
    """
    from auditor.app import reading
    from auditor.app.grading import grade_document
    from auditor.report.output import write_report

    config = read_config(config_path)
    now = utc_now()
    moment = as_of or now
    rubric = config.rubric
    grades = reading.grades(config, labs, moment)
    if output_format == "json":
        document = (
            json.dumps(grade_document(grades, rubric, moment, now), indent=2, ensure_ascii=False) + "\n"
        )
    elif output_format == "csv":
        document = grade_csv(grades, rubric)
    else:
        document = "\n".join(grade_table(grades, rubric, moment)) + "\n"
    if out_path is None or out_path == STDOUT:
        click.echo(document.encode("utf-8"), nl=False)  # bytes: UTF-8 whatever the locale, BOM and all
        return
    write_report(Path(out_path), document)
    click.echo(f"grades of {len(grades)} labs as of {iso(moment)} written to {out_path}")


def grade_table(grades: Sequence[LabGrade], rubric: Rubric, as_of: datetime) -> list[str]:
    """A header line, then a row a lab: a column a step (its earned points, or its status when it earned
    none), the points, the step the student is at and since when they are stuck."""
    from auditor.cli.render import aligned

    student = any(grade.student_name for grade in grades)
    header = ["LAB", *(["STUDENT"] if student else []), *rubric.ids, "POINTS", "CURRENT", "STUCK"]
    rows = [
        [
            grade.lab,
            *([grade.student_name or "-"] if student else []),
            *(str(step.earned) if step.earned else step.status.value for step in grade.steps),
            f"{grade.points}/{grade.max_points}",
            grade.current_step or "-",
            iso(grade.stuck_since) if grade.stuck_since else "-",
        ]
        for grade in grades
    ]
    return [f"rubric: {rubric.name}, as of {iso(as_of)}", *aligned([header, *rows])]


def grade_csv(grades: Sequence[LabGrade], rubric: Rubric) -> str:
    """The grade sheet: the lab, the student's name, a column a step (its earned points) and `points`;
    with a UTF-8 byte-order mark."""
    from auditor.report.csv_report import BOM, safe_cell

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["lab", "student_name", *rubric.ids, "points"])
    for grade in grades:
        writer.writerow(
            [
                safe_cell(grade.lab),
                safe_cell(grade.student_name),
                *(str(step.earned) for step in grade.steps),
                str(grade.points),
            ]
        )
    return BOM + buffer.getvalue()
