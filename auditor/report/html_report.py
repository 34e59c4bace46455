"""The report as one self-contained HTML file: styles and charts inline, nothing fetched, every value escaped.

The charts are inline SVG whose geometry is computed here; the template (auditor/templates/report.html.j2)
only places it. Jinja2 autoescapes every value, and the page's Content-Security-Policy forbids scripts
and every fetch, so even a value that escaped escaping could neither run nor call out.

When students build the labs (the report holds their grades), `student_pages` renders a page per
student (auditor/templates/report_student.html.j2), self-contained in the same way, from that lab's
grade alone: the template is never handed the report, so no other student's data and no operator
detail can reach it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from itertools import groupby
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from auditor.app.grading import LabGrade
from auditor.domain.explain import explanation
from auditor.domain.model import Verdict
from auditor.report.diff import folded
from auditor.report.model import (
    VERDICT_ORDER,
    ClassReport,
    ConformanceBucket,
    LabReport,
    TimelineCell,
)
from auditor.report.text import (
    RETIRED,
    iso,
    last_conformant,
    percent,
    period,
    span,
    student_label,
    verdict_summary,
    when,
)

CHART_WIDTH, CHART_HEIGHT = 960, 220
_PLOT_LEFT, _PLOT_RIGHT, _PLOT_TOP, _PLOT_BOTTOM = 44, 8, 10, 28
_UNSAFE_IN_ID = re.compile(r"[^A-Za-z0-9_.-]")


def render_html(report: ClassReport, *, student_pages: str | None = None) -> str:
    """The report; `student_pages`: the folder of the pages of `student_pages(report)`, relative to the
    report's own file, which its grades card then links to (None: written without them)."""
    template = _environment().get_template("report.html.j2")
    links = (
        {lab: f"{quote(student_pages)}/{quote(page)}" for lab, page in student_page_names(report).items()}
        if student_pages is not None
        else {}
    )
    return template.render(
        report=report,
        student_links=links,
        now=report.generated_at,
        chart=conformance_chart(report.conformance, report.bucket_width),
        verdicts=VERDICT_ORDER,
        title=f"Lab audit report · {len(report.labs)} labs · {when(report.generated_at)}",
        summary=verdict_summary(report),
        period=period(report),
    )


def student_pages(report: ClassReport) -> dict[str, str]:
    """A page per student, by file name (`pair-07.html`): what that student may be handed."""
    names = student_page_names(report)
    return {names[grade.lab]: render_student_page(grade, report.generated_at) for grade in report.grades}


def render_student_page(grade: LabGrade, as_of: datetime) -> str:
    """One student's page: their lab, name, points and each step of the rubric, from their grade only."""
    template = _environment().get_template("report_student.html.j2")
    who = grade.student_name or grade.lab
    return template.render(
        grade=grade,
        as_of=as_of,
        title=f"{who} · lab {grade.lab} · {grade.points}/{grade.max_points} points",
        current=_current_title(grade),
    )


def student_page_names(report: ClassReport) -> dict[str, str]:
    """Each graded lab's page file name: its name made safe (a configured lab's name already is), and
    unique even where the file system ignores case."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for grade in report.grades:
        stem = _UNSAFE_IN_ID.sub("-", grade.lab).lstrip(".") or "lab"
        name, suffix = f"{stem}.html", 1
        while name.casefold() in taken:
            suffix += 1
            name = f"{stem}-{suffix}.html"
        taken.add(name.casefold())
        names[grade.lab] = name
    return names


def _current_title(grade: LabGrade) -> str:
    if grade.current_step is None:
        return ""
    return grade[grade.current_step].step.title


def render_page(template: str, **context: Any) -> str:
    """Another page on the report's templates, filters and styles (the daemon's live page)."""
    return _environment().get_template(template).render(verdicts=VERDICT_ORDER, **context)


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("auditor", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=when,
        iso=iso,
        percent=percent,
        span=span,
        anchor=anchor,
        strip=strip_segments,
        fold=folded,
    )
    environment.globals.update(
        last_conformant=last_conformant,
        expires_in=expires_in,
        is_quiet=is_quiet,
        retired=RETIRED,
        explain=explanation,
        lab_link=lab_link,
        student_label=student_label,
        current_title=_current_title,
    )
    return environment


def anchor(name: str) -> str:
    """An id for a lab's section, safe as a URL fragment whatever the name holds."""
    return "lab-" + _UNSAFE_IN_ID.sub("-", name)


def lab_link(name: str, live: bool) -> str:
    """A lab's section in the report file, or its own page on the daemon's live page."""
    return f"/labs/{quote(name, safe='')}" if live else f"#{anchor(name)}"


def is_quiet(lab: LabReport) -> bool:
    """Nothing to look into: no finding, no error, no failed invoke; its section can be one line."""
    return not lab.findings and not lab.error and (lab.invoke is None or lab.invoke.ok)


def expires_in(lab: LabReport, now: datetime) -> str:
    if lab.expires_at is None:
        return ""
    left = lab.expires_at - now
    return f"in {span(left)}" if left > timedelta(0) else f"{span(-left)} ago"


# ------------------------------------------------------------------------------- a lab's verdict strip


@dataclass(frozen=True)
class Segment:
    """A run of alike timeline cells, in cell units (the strip's viewBox is one unit a cell)."""

    x: int
    width: int
    verdict: str  # a verdict, or "none" before the first audit and after a teardown
    audited: bool  # False: no audit in these cells, the verdict is carried from an earlier one
    title: str


def strip_segments(cells: Sequence[TimelineCell]) -> list[Segment]:
    segments = []
    position = 0
    for (verdict, audited), group in groupby(cells, key=_shown):
        run = list(group)
        title = _segment_title(verdict, audited, run)
        segments.append(Segment(position, len(run), _verdict_class(verdict), audited, title))
        position += len(run)
    return segments


def _shown(cell: TimelineCell) -> tuple[Verdict | None, bool]:
    """What a cell shows: the worst verdict audited in it, else the one the lab still stood at."""
    return (cell.verdict, True) if cell.audits else (cell.standing, False)


def _segment_title(verdict: Verdict | None, audited: bool, cells: list[TimelineCell]) -> str:
    audits = sum(cell.audits for cell in cells)
    if verdict is None:
        what = "not audited"
    elif audited:
        what = f"{verdict.value}, {audits} audit{'s' if audits != 1 else ''}"
    else:
        what = f"{verdict.value} since its last audit"
    return f"{when(cells[0].start)} onwards: {what}"


def _verdict_class(verdict: Verdict | None) -> str:
    return verdict.value if verdict else "none"


# ------------------------------------------------------------------------ the class conformance chart


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    verdict: str
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "end"  # SVG text-anchor


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    bars: tuple[Bar, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    empty: bool


def conformance_chart(buckets: Sequence[ConformanceBucket], width: timedelta) -> Chart:
    """Stacked columns, one a time bucket: conformant labs at the bottom, so its height reads as the share."""
    left, right = _PLOT_LEFT, CHART_WIDTH - _PLOT_RIGHT
    top, bottom = _PLOT_TOP, CHART_HEIGHT - _PLOT_BOTTOM
    column = (right - left) / max(1, len(buckets))
    bars = [
        bar
        for index, bucket in enumerate(buckets)
        for bar in _stack(bucket, left + index * column, column, top, bottom, width)
    ]
    y_ticks = tuple(Tick(bottom - share * (bottom - top), f"{share * 100:.0f} %") for share in (0, 0.5, 1))
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        bars=tuple(bars),
        y_ticks=y_ticks,
        x_ticks=_x_ticks(buckets, left, column, seconds=width < timedelta(minutes=1)),
        empty=not any(bucket.labs for bucket in buckets),
    )


def _stack(
    bucket: ConformanceBucket, x: float, column: float, top: float, bottom: float, width: timedelta
) -> list[Bar]:
    if not bucket.labs:
        return []
    gap = min(2.0, column * 0.15)
    title = _bucket_title(bucket, width)
    bars, base = [], bottom
    for verdict in VERDICT_ORDER:
        count = bucket.verdicts.get(verdict, 0)
        if not count:
            continue
        height = count / bucket.labs * (bottom - top)
        base -= height
        bars.append(
            Bar(
                round(x + gap / 2, 2),
                round(base, 2),
                round(column - gap, 2),
                round(height, 2),
                verdict.value,
                title,
            )
        )
    return bars


def _bucket_title(bucket: ConformanceBucket, width: timedelta) -> str:
    counts = ", ".join(f"{count} {verdict.value}" for verdict, count in bucket.verdicts.items())
    return f"{when(bucket.start)} + {span(width)}: {percent(bucket.share)} conformant ({counts})"


def _x_ticks(
    buckets: Sequence[ConformanceBucket], left: float, column: float, *, seconds: bool
) -> tuple[Tick, ...]:
    if not buckets:
        return ()
    last = len(buckets) - 1
    ticks = [Tick(left, when(buckets[0].start, seconds=seconds), "start")]
    if last >= 4:
        middle = last // 2
        ticks.append(
            Tick(left + (middle + 0.5) * column, when(buckets[middle].start, seconds=seconds), "middle")
        )
    if last >= 2:
        ticks.append(Tick(left + (last + 1) * column, when(buckets[last].end, seconds=seconds), "end"))
    return tuple(ticks)
