"""`auditor demo --class`: a class of students building the lab on the embedded emulator, followed and
graded by the project's own code paths (students mode's provision, the audit, the record, the grade,
the report's pages per student); only the students are played, by auditor/cli/scripted_students.py.

Class time is simulated: each round of the students' work stands for ten minutes of the class, and
the audits after it are recorded at that moment, so that `due`, `stuck_after` and the class's end
mean what they would in a real afternoon; everything else is as it runs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.app.grading import LabGrade, grade_document
from auditor.app.reading import grades_in
from auditor.app.recording import open_store, record_run
from auditor.cli import scripted_students as do
from auditor.cli.demo import free_loopback_port, start_afresh
from auditor.cli.grade import grade_csv, grade_table
from auditor.common.clock import iso, utc_now
from auditor.domain.config import (
    AccountAccess,
    AuditSettings,
    AwsSettings,
    ClassSettings,
    Config,
    DaemonSettings,
    DatabaseSettings,
    LabConfig,
    LabSettings,
)
from auditor.domain.model import AuditRun, Trigger
from auditor.domain.steps import StepStatus
from auditor.report.build import build_report
from auditor.report.output import write_html_with_student_pages
from auditor.store import Store
from provisioner.provision import provision_targets

ROUND = timedelta(minutes=10)
DUE_AFTER_ROUND = 4  # the work is due between round 4 and round 5
CLASS_ROUNDS = 6  # rounds 0..5 in class; the class ends after them; then the students' teardown
Action = Callable[[do.Desk], str]


@dataclass(frozen=True)
class Student:
    lab: LabConfig
    story: str  # what the demo shows with this student
    rounds: dict[int, tuple[Action, ...]]

    @property
    def name(self) -> str:
        return self.lab.info["student_name"]


def _lab(number: int, student: str, origin: str, destination: str) -> LabConfig:
    def access(account: str) -> AccountAccess:
        return AccountAccess(account, role_arn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole")

    return LabConfig(
        f"pair-{number:02d}", access(origin), access(destination), info={"student_name": student}
    )


def _own_account_trust(desk: do.Desk) -> str:
    return do.create_destination_role(desk, trusted_account=desk.destination)


NEAR_NAME = "lambdas3listbuckets"

STUDENTS = (
    Student(
        _lab(1, "Ada Lovelace", "111111111111", "222222222222"),
        "follows the guide step by step and cleans up after the class",
        {
            0: (do.create_destination_role, do.put_destination_policy),
            1: (do.create_origin_role, do.put_origin_policy),
            2: (do.create_function,),
            3: (do.put_guide_code,),
            CLASS_ROUNDS: (do.tear_down,),
        },
    ),
    Student(
        _lab(2, "Grace Hopper", "333333333333", "444444444444"),
        "finishes early, then narrows the trust to the origin's role: hardened, and credited",
        {
            0: (do.create_destination_role, do.put_destination_policy, do.create_origin_role),
            1: (do.put_origin_policy, do.create_function),
            2: (do.put_guide_code,),
            3: (do.narrow_the_trust,),
            CLASS_ROUNDS: (do.tear_down,),
        },
    ),
    Student(
        _lab(3, "Alan Turing", "555555555555", "666666666666"),
        "makes the destination role, then nothing more: stuck",
        {0: (do.create_destination_role, do.put_destination_policy)},
    ),
    Student(
        _lab(4, "Barbara Liskov", "777777777777", "888888888888"),
        "leaves the guide's placeholder `account2` in the code, and fixes it after it was due: late",
        {
            0: (do.create_destination_role, do.put_destination_policy),
            1: (do.create_origin_role, do.put_origin_policy),
            2: (do.create_function,),
            3: (functools.partial(do.put_guide_code, role_arn=do.GUIDE_PLACEHOLDER_ARN),),
            5: (do.put_guide_code,),
            CLASS_ROUNDS: (do.tear_down,),
        },
    ),
    Student(
        _lab(5, "Edsger Dijkstra", "999999999991", "999999999992"),
        f"names the destination role {NEAR_NAME}: the feedback names both",
        {
            0: (
                functools.partial(do.create_destination_role, name=NEAR_NAME),
                functools.partial(do.put_destination_policy, role=NEAR_NAME),
            ),
            1: (do.create_origin_role, do.put_origin_policy),
            2: (do.create_function, do.put_guide_code),
        },
    ),
    Student(
        _lab(6, "Katherine Johnson", "999999999993", "999999999994"),
        "trusts the destination's own account instead of the origin",
        {
            0: (_own_account_trust, do.put_destination_policy),
            1: (do.create_origin_role, do.put_origin_policy),
            2: (do.create_function, do.put_guide_code),
        },
    ),
)


def class_config(workdir: Path, starts: datetime) -> Config:
    due = starts + DUE_AFTER_ROUND * ROUND + ROUND / 2
    return Config(
        path="(class demo)",
        labs=tuple(student.lab for student in STUDENTS),
        lab=LabSettings(ttl=timedelta(hours=8)),
        aws=AwsSettings(endpoint_url="embedded"),
        audit=AuditSettings(concurrency=8),
        database=DatabaseSettings(url=f"sqlite:///{workdir / 'class.db'}"),
        daemon=DaemonSettings(health_port=free_loopback_port()),
        classroom=ClassSettings(
            built_by="students",
            due=due,
            ends=starts + CLASS_ROUNDS * ROUND - ROUND / 2,
            stuck_after=timedelta(minutes=15),
            hardening="credit",
        ),
    )


@dataclass
class ClassStory:
    context: Context
    store: Store
    console: Console
    workdir: Path
    starts: datetime
    problems: list[str]

    @property
    def config(self) -> Config:
        return self.context.config

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)
            self.console.print(f"[bold red]unexpected:[/] {problem}")

    def at(self, round_number: int) -> datetime:
        return self.starts + round_number * ROUND

    def audit(self, moment: datetime) -> AuditRun:
        """Every lab audited as the daemon would after the round, recorded at the round's class time."""
        run = audit_targets(self.context, self.context.targets(), invoke=True)
        labs = tuple(replace(lab, started_at=moment, finished_at=moment) for lab in run.labs)
        record_run(self.store, replace(run, labs=labs), Trigger.SCHEDULE)
        return run

    def grades(self, moment: datetime) -> list[LabGrade]:
        return grades_in(self.store, self.config, self.config.labs, moment)


def run_class_demo(workdir: Path, console: Console | None = None) -> int:
    start_afresh(workdir, "class.db")
    starts = utc_now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    config = class_config(workdir, starts)
    console = console or Console()
    with open_context(config, find_emulator=False) as context:
        story = ClassStory(context, open_store(config), console, workdir, starts, [])
        try:
            tell(story)
        finally:
            story.store.close()
    console.print()
    if story.problems:
        console.print(f"[bold red]The class demo did not go as expected:[/] {'; '.join(story.problems)}")
        return 1
    console.print('[bold green]That is a class.[/] README.md, "When students build the lab", for yours.')
    return 0


def tell(story: ClassStory) -> None:
    rules = story.config.classroom
    story.say("[bold]lab-auditor class demo[/]: six students build the lab by hand, as the guide says;")
    story.say(f"the project follows them on the embedded AWS emulator at {story.context.endpoint_url}.")
    story.say(
        f"Class time is simulated: a round is ten minutes; the work is due at {iso(rules.due or story.starts)},"
        f" the class ends at {iso(rules.ends or story.starts)}."
    )
    set_up(story)
    for round_number in range(CLASS_ROUNDS):
        a_round(story, round_number)
    after_the_class(story)
    final_grades(story)


def set_up(story: ClassStory) -> None:
    story.console.rule('[bold]The instructor\'s set-up: [class] built_by = "students"', align="left")
    outcomes = provision_targets(story.context, story.context.targets(), dry_run=False, store=story.store)
    for outcome in outcomes:
        story.expect(outcome.ok, f"{outcome.name}: the project's own parts could not be set up")
    story.say(
        "  auditor provision: students build the lab: set up the marker bucket and event rules only"
        f" ({len(outcomes)} labs; a marker bucket in each destination proves a listing crossed accounts)"
    )
    for student in STUDENTS:
        story.say(f"  {student.lab.name} {student.name}: {student.story}")


def a_round(story: ClassStory, round_number: int) -> None:
    moment = story.at(round_number)
    due = story.config.classroom.due
    late = " (after it was due)" if due is not None and moment > due else ""
    story.console.rule(f"[bold]{moment:%H:%M} UTC, class time{late}", align="left")
    worked = play(story, round_number)
    before = snapshot(story)
    story.audit(moment)
    story.expect(snapshot(story) == before, "an audit changed something of a student's")
    board(story, story.grades(moment), moment)
    if worked == 0:
        story.say("  (no one did anything this round)")


def play(story: ClassStory, round_number: int) -> int:
    done = 0
    for student in STUDENTS:
        desk = do.desk_of(story.context, student.lab)
        for action in student.rounds.get(round_number, ()):
            story.say(f"  {student.lab.name} {student.name} {action(desk)}")
            done += 1
    return done


def board(story: ClassStory, grades: Sequence[LabGrade], moment: datetime) -> None:
    """The progress board as the daemon's page shows it: the stuck first, then the fewest points."""
    ordered = sorted(grades, key=lambda grade: (grade.stuck_since is None, grade.points, grade.lab))
    story.say("  [dim]progress board (as the daemon's page shows it):[/]")
    for grade in ordered:
        stuck = f", [bold red]stuck since {grade.stuck_since:%H:%M}[/]" if grade.stuck_since else ""
        story.say(
            f"    {grade.lab} {grade.student_name:<18} {grade.points:>2}/{grade.max_points}"
            f"  next: {grade.current_step or 'nothing, all done'}{stuck}"
        )


def after_the_class(story: ClassStory) -> None:
    moment = story.at(CLASS_ROUNDS)
    story.console.rule(f"[bold]{moment:%H:%M} UTC: the class has ended; the guide's teardown", align="left")
    play(story, CLASS_ROUNDS)
    story.audit(moment)


def final_grades(story: ClassStory) -> None:
    as_of = story.at(CLASS_ROUNDS) + ROUND / 2
    grades = story.grades(as_of)
    story.console.rule(f"[bold]auditor grade --as-of {iso(as_of)}", align="left")
    for line in grade_table(grades, story.config.rubric, as_of):
        story.say(f"  {line}")
    feedback(story, grades)
    written = write_outputs(story, grades, as_of)
    story.say("")
    for line in written:
        story.say(f"  {line}")
    check(story, {grade.lab: grade for grade in grades})


def feedback(story: ClassStory, grades: Sequence[LabGrade]) -> None:
    story.say("")
    story.say("  What each student reads (the steps not done, in their page's words):")
    for grade in grades:
        for graded in grade.steps:
            if graded.status not in (StepStatus.DONE,) and graded.feedback:
                story.say(f"    {grade.lab} {graded.step.step} [{graded.status.value}]: {graded.feedback}")


def write_outputs(story: ClassStory, grades: Sequence[LabGrade], as_of: datetime) -> list[str]:
    sheet = story.workdir / "grades.csv"
    sheet.write_text(grade_csv(grades, story.config.rubric), encoding="utf-8")
    document = grade_document(grades, story.config.rubric, as_of, utc_now())
    (story.workdir / "grades.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    report = replace(build_report(story.store, None, None, as_of), grades=tuple(grades))
    path = story.workdir / "class.html"
    folder = write_html_with_student_pages(path, report)
    return [
        f"the grade sheet for a spreadsheet: {sheet.resolve()}",
        f"the same as auditor.grade/v1 JSON: {(story.workdir / 'grades.json').resolve()}",
        f"the report, with a page per student to hand out: {path.resolve()} and {folder}/",
    ]


def check(story: ClassStory, grades: dict[str, LabGrade]) -> None:
    """What the demo claims of each student, checked, so that `make demo` fails when it stops being so."""
    ada, grace, alan, barbara, edsger, katherine = (grades[student.lab.name] for student in STUDENTS)
    story.expect(ada.points == ada.max_points, f"pair-01 has {ada.points}/{ada.max_points}, not all")
    story.expect(
        grace["dest-trust"].status is StepStatus.HARDENED, "pair-02's narrowed trust is not hardened"
    )
    story.expect(
        grace["dest-trust"].earned == grace["dest-trust"].step.points, "the hardening earned nothing"
    )
    story.expect(alan.stuck_since is not None, "pair-03 is not shown as stuck")
    story.expect(barbara["function-code"].status is StepStatus.LATE, "pair-04's code is not late")
    near = edsger["dest-role"]
    story.expect(
        near.status is StepStatus.WRONG and NEAR_NAME in (near.feedback or ""),
        "pair-05's near name is not named",
    )
    story.expect(katherine["dest-trust"].status is StepStatus.WRONG, "pair-06's trust is not wrong")
    story.expect(alan["cleanup"].status is StepStatus.WRONG, "pair-03's leftovers are not named")


def snapshot(story: ClassStory) -> dict[str, Any]:
    """What each student has made, as IAM and Lambda list it: an audit must leave it all as it was."""
    seen: dict[str, Any] = {}
    for student in STUDENTS:
        for side in ("origin", "destination"):
            iam = story.context.sessions.client(getattr(student.lab, side), "iam")
            for role in iam.list_roles()["Roles"]:
                name = role["RoleName"]
                policies = iam.list_role_policies(RoleName=name)["PolicyNames"]
                documents = [
                    iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"] for p in policies
                ]
                seen[f"{student.lab.name}/{side}/{name}"] = (role["AssumeRolePolicyDocument"], documents)
        functions = story.context.sessions.client(student.lab.origin, "lambda").list_functions()["Functions"]
        for function in functions:
            keep = ("Role", "Runtime", "Handler", "CodeSha256", "Timeout", "MemorySize", "Environment")
            seen[f"{student.lab.name}/function/{function['FunctionName']}"] = {
                key: function.get(key) for key in keep
            }
    return seen
