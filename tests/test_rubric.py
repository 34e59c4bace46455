"""The rubric as data (lab.md, "The guide as a rubric"): the shipped guide's rubric is lab.md's table, and
a rubric file is refused, naming the file and the key, for each thing that would make it unusable."""

from __future__ import annotations

import textwrap
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from auditor.domain.declarations import SHIPPED
from auditor.domain.rubric_file import RubricError, load_rubric, rubric_from_text, shipped_rubric
from auditor.domain.steps import SUBJECTS, Rubric, RubricStep, StepResult, StepStatus

REPO = Path(__file__).resolve().parent.parent

# lab.md's table, row by row: step, needs, points.
LAB_MD_TABLE = [
    ("dest-role", (), 1),
    ("dest-trust", ("dest-role",), 2),
    ("dest-policy", ("dest-role",), 2),
    ("origin-role", (), 2),
    ("origin-policy", ("origin-role",), 2),
    ("function", ("origin-role",), 2),
    ("function-code", ("function",), 2),
    ("function-run", ("function-code", "dest-trust", "dest-policy", "origin-policy"), 3),
    ("cleanup", (), 2),
]


def test_the_shipped_rubric_is_lab_mds_table_in_its_order() -> None:
    guide = shipped_rubric()
    assert guide.name == "guide"
    assert [(step.step, step.needs, step.points) for step in guide.steps] == LAB_MD_TABLE
    assert guide.max_points == 18
    assert [step.step for step in guide.steps if step.after_class] == ["cleanup"]


def test_the_shipped_rubric_titles_read_as_the_interface_shows_them() -> None:
    guide = shipped_rubric()
    assert guide["dest-role"].title == "Create role LambdaS3ListBuckets in account 2"
    assert guide["function-code"].title == "Put the guide's code in the function, with your role ARN"
    assert all(step.title.strip() for step in guide.steps)


def test_each_step_of_the_guide_says_which_resource_it_is_about() -> None:
    subjects = {step.step: step.subject for step in shipped_rubric().steps}
    assert subjects == {
        "dest-role": "destination_role",
        "dest-trust": "destination_role",
        "dest-policy": "destination_role",
        "origin-role": "origin_role",
        "origin-policy": "origin_role",
        "function": "function",
        "function-code": "function",
        "function-run": "function",
        "cleanup": "lab",
    }
    assert set(subjects.values()) <= set(SUBJECTS)


def test_the_guides_codes_are_the_kinds_and_the_trust_steps_are_the_trusts() -> None:
    guide = shipped_rubric()
    declared = set(SHIPPED.codes())
    for step in guide.steps:
        assert set(step.fails_on) <= declared, step.step
        assert set(step.hardened_by) <= declared, step.step
        assert not set(step.fails_on) & set(step.hardened_by), step.step
    trust = {"widened", "changed", "unreadable", "denies_lab", "unproven"}
    assert set(guide["dest-trust"].fails_on) == {f"trust_policy.{what}" for what in trust}
    assert guide["dest-trust"].hardened_by == ("trust_policy.narrowed",)
    assert guide["dest-role"].fails_on == ("resource.missing",)
    assert "inline_policy.narrowed" in guide["dest-policy"].hardened_by
    assert "managed_policies.attached" in guide["origin-policy"].fails_on
    assert guide["function-run"].fails_on == ("invoke.failed",)


def test_the_shipped_rubric_is_package_data() -> None:
    assert (files("auditor.domain.rubrics") / "guide.toml").is_file()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["auditor.domain.rubrics"]


def test_the_shipped_rubric_is_read_once() -> None:
    assert shipped_rubric() is shipped_rubric()


def test_a_rubric_finds_its_steps_by_id() -> None:
    guide = shipped_rubric()
    assert guide.ids[0] == "dest-role"
    assert "cleanup" in guide
    assert "teardown" not in guide
    with pytest.raises(KeyError):
        guide["teardown"]


def test_a_step_result_is_json() -> None:
    assert StepResult("dest-role", StepStatus.WRONG, "found role lambdas3listbuckets").to_json() == {
        "step": "dest-role",
        "status": "wrong",
        "feedback": "found role lambdas3listbuckets",
    }
    assert StepStatus.LATE.counts_as_done and not StepStatus.BLOCKED.counts_as_done


GOOD = """
name = "week 3"

[[steps]]
step = "dest-role"
title = "Create the role"
points = 1
fails_on = ["resource.missing"]

[[steps]]
step = "dest-trust"
title = "  Trust account 1  "
points = 0
needs = ["dest-role"]
fails_on = ["trust_policy.widened"]
hardened_by = ["trust_policy.narrowed"]
subject = "destination_role"

[[steps]]
step = "cleanup"
title = "Tear it down"
points = 2
after_class = true
subject = "lab"
"""


def test_a_rubric_file_in_the_shipped_form_reads() -> None:
    rubric = rubric_from_text(GOOD, "week3.toml", "week3.toml")
    assert rubric == Rubric(
        name="week 3",
        steps=(
            RubricStep(step="dest-role", title="Create the role", points=1, fails_on=("resource.missing",)),
            RubricStep(
                step="dest-trust",
                title="Trust account 1",
                points=0,
                needs=("dest-role",),
                fails_on=("trust_policy.widened",),
                hardened_by=("trust_policy.narrowed",),
                subject="destination_role",
            ),
            RubricStep(step="cleanup", title="Tear it down", points=2, after_class=True, subject="lab"),
        ),
    )
    assert rubric.max_points == 3


def step_table(**keys: object) -> str:
    """A rubric of `dest-role` and one more step with these keys (a value None leaves the key out)."""
    step = {"step": "dest-trust", "title": "Trust account 1", "points": 2, "needs": ["dest-role"]} | keys
    body = "\n".join(f"{key} = {_toml(value)}" for key, value in step.items() if value is not None)
    return f'[[steps]]\nstep = "dest-role"\ntitle = "Create the role"\npoints = 1\n\n[[steps]]\n{body}\n'


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


BAD = {
    "an unknown key at the top": ('title = "x"\n' + step_table(), "title", "unknown key"),
    "an unknown step key": (step_table(point=2), "steps[1].point", "unknown key (did you mean 'points'?)"),
    "no steps": ('name = "x"\n', "steps", "is missing"),
    "steps not tables": ("steps = [1]\n", "steps[0]", "must be a table"),
    "steps not a list": ('steps = "all"\n', "steps", "must be a list of [[steps]] tables"),
    "a name not a string": ("name = 3\n" + step_table(), "name", "must be a string"),
    "a step without an id": (step_table(step=None), "steps[1].step", "is missing"),
    "a step without a title": (step_table(title=None), "steps[1].title", "is missing"),
    "a step without points": (step_table(points=None), "steps[1].points", "is missing"),
    "a step id not an id": (step_table(step="Dest Trust"), "steps[1].step", "'Dest Trust' is not a step id"),
    "a duplicate step id": (step_table(step="dest-role"), "steps[1].step", "duplicate step id 'dest-role'"),
    "an empty title": (step_table(title="  "), "steps[1].title", "must not be empty"),
    "a title not a string": (step_table(title=5), "steps[1].title", "must be a string"),
    "negative points": (
        step_table(points=-1),
        "steps[1].points",
        "must be a whole number, 0 or more, not -1",
    ),
    "fractional points": (step_table(points=1.5), "steps[1].points", "must be a whole number"),
    "points as a flag": (step_table(points=True), "steps[1].points", "must be a whole number"),
    "points as a string": (step_table(points="2"), "steps[1].points", "must be a whole number"),
    "a need that comes later": (
        step_table(needs=["cleanup"]),
        "steps[1].needs",
        "'cleanup' is not an earlier step",
    ),
    "a need of itself": (step_table(needs=["dest-trust"]), "steps[1].needs", "cannot need itself"),
    "needs not a list": (step_table(needs="dest-role"), "steps[1].needs", "must be a list of strings"),
    "a need twice": (step_table(needs=["dest-role", "dest-role"]), "steps[1].needs", "listed twice"),
    "an undeclared code": (
        step_table(fails_on=["trust_policy.opened"]),
        "steps[1].fails_on",
        "'trust_policy.opened' is not a finding code any kind declares",
    ),
    "an undeclared hardening code": (
        step_table(hardened_by=["trust_policy.narrow"]),
        "steps[1].hardened_by",
        "did you mean 'trust_policy.narrowed'?",
    ),
    "a code in both": (
        step_table(fails_on=["trust_policy.narrowed"], hardened_by=["trust_policy.narrowed"]),
        "steps[1].hardened_by",
        "'trust_policy.narrowed' is in fails_on too",
    ),
    "codes not strings": (step_table(fails_on=[1]), "steps[1].fails_on", "must be a list of strings"),
    "after_class not a flag": (
        step_table(after_class="yes"),
        "steps[1].after_class",
        "must be true or false",
    ),
    "an unknown subject": (
        step_table(subject="destination"),
        "steps[1].subject",
        "'destination' is not a subject (use destination_role, origin_role, function, lab); did you mean 'destination_role'?",
    ),
}


@pytest.mark.parametrize(("text", "key", "problem"), BAD.values(), ids=BAD.keys())
def test_a_bad_rubric_names_the_file_and_the_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(RubricError) as caught:
        rubric_from_text(text, "week3.toml", "week3.toml")
    assert (caught.value.file, caught.value.key) == ("week3.toml", key)
    assert problem in caught.value.problem
    assert str(caught.value) == f"week3.toml: {key}: {caught.value.problem}"


def test_a_step_of_the_class_cannot_need_one_judged_after_it() -> None:
    text = textwrap.dedent(
        """
        [[steps]]
        step = "cleanup"
        title = "Tear it down"
        points = 2
        after_class = true

        [[steps]]
        step = "late-step"
        title = "Something"
        points = 1
        needs = ["cleanup"]
        """
    )
    with pytest.raises(RubricError, match=r"steps\[1\]\.needs: 'cleanup' is judged only after the class"):
        rubric_from_text(text, "week3.toml", "week3.toml")
    after = rubric_from_text(
        text.replace('needs = ["cleanup"]', 'needs = ["cleanup"]\nafter_class = true'), "f", "f"
    )
    assert after["late-step"].needs == ("cleanup",)


def test_a_rubric_file_is_read_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "week3.toml"
    path.write_text(GOOD.replace('name = "week 3"', ""), encoding="utf-8")
    assert load_rubric(path).name == str(path)
    assert load_rubric(path, name="week3.toml").name == "week3.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_rubric(path, name="week3.toml").name == "week 3"


def test_a_rubric_file_that_is_not_there_or_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RubricError) as caught:
        load_rubric(tmp_path / "nowhere.toml")
    assert (caught.value.file, caught.value.key, caught.value.problem) == (
        str(tmp_path / "nowhere.toml"),
        "",
        "rubric file not found",
    )
    (tmp_path / "broken.toml").write_text("[[steps]\n", encoding="utf-8")
    with pytest.raises(RubricError, match="TOML syntax error"):
        load_rubric(tmp_path / "broken.toml")
