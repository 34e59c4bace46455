"""`[class]` of config.toml (interface.md, "Students build it"): its keys, each refused with the file and
the key as the file spells it (`class.built_by`), exit 2 from the command line; the rubric it names read
and validated with the configuration, a problem in it naming the rubric file and its key."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli.main import main
from auditor.domain.config import ClassSettings, ConfigError, config_from, load_config
from auditor.domain.rubric_file import RubricError, shipped_rubric
from auditor.domain.steps import Rubric, RubricStep

LAB = """
[[labs]]
name = "pair-01"
origin      = { account_id = "111111111111" }
destination = { account_id = "222222222222" }
"""

RUBRIC = """
name = "week 3"

[[steps]]
step = "dest-role"
title = "Create the role"
points = 1
fails_on = ["resource.missing"]
subject = "destination_role"

[[steps]]
step = "dest-trust"
title = "Trust account 1"
points = 2
needs = ["dest-role"]
fails_on = ["trust_policy.widened"]
hardened_by = ["trust_policy.narrowed"]
subject = "destination_role"
"""


def write(folder: Path, text: str, name: str = "config.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def with_class(table: str) -> str:
    return "[class]\n" + textwrap.dedent(table) + LAB


def test_without_a_class_table_the_provisioner_builds_and_the_rubric_is_the_guide(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, LAB), env={})
    assert config.classroom == ClassSettings()
    assert not config.classroom.students_build
    assert config.classroom.rubric == "guide"
    assert config.rubric is shipped_rubric()
    assert config.rubric.name == "guide"


def test_a_full_class_table_becomes_typed_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        with_class(
            """
            built_by = "students"
            rubric = "guide"
            due = "2026-12-10T17:00:00Z"
            ends = "2026-12-10T19:00:00+01:00"
            stuck_after = "20m"
            hardening = "credit"
            """
        ),
    )
    classroom = load_config(path, env={}).classroom
    assert classroom.students_build
    assert classroom.due == datetime(2026, 12, 10, 17, tzinfo=UTC)
    assert classroom.ends == datetime(2026, 12, 10, 18, tzinfo=UTC)
    assert classroom.stuck_after == timedelta(minutes=20)
    assert classroom.hardening == "credit"
    assert classroom.loaded_rubric is shipped_rubric()


def test_the_class_may_end_when_its_work_is_due(tmp_path: Path) -> None:
    text = with_class('due = "2026-12-10T17:00:00Z"\nends = "2026-12-10T17:00:00Z"\n')
    classroom = load_config(write(tmp_path, text), env={}).classroom
    assert classroom.ends == classroom.due


def test_toml_dates_are_instants_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, with_class("due = 2026-12-10T17:00:00Z\n")), env={})
    assert config.classroom.due == datetime(2026, 12, 10, 17, tzinfo=UTC)


BAD_CLASS = {
    "built_by a near miss": (
        with_class('built_by = "student"\n'),
        "class.built_by",
        "'student': use 'provisioner' or 'students' (did you mean 'students'?)",
    ),
    "built_by not a string": (with_class("built_by = 1\n"), "class.built_by", "must be a string"),
    "hardening": (with_class('hardening = "credits"\n'), "class.hardening", "did you mean 'credit'?"),
    "hardening unknown": (with_class('hardening = "strict"\n'), "class.hardening", "use 'credit' or 'drift'"),
    "stuck_after": (with_class('stuck_after = "soon"\n'), "class.stuck_after", "'soon' is not a duration"),
    "stuck_after zero": (with_class('stuck_after = "0m"\n'), "class.stuck_after", "longer than zero"),
    "due not an instant": (with_class('due = "tomorrow"\n'), "class.due", "'tomorrow' is not a timestamp"),
    "due without a zone": (with_class('due = "2026-12-10T17:00:00"\n'), "class.due", "has no time zone"),
    "ends not an instant": (
        with_class("ends = 5\n"),
        "class.ends",
        "must be a string (in quotes) or a timestamp",
    ),
    "ends before due": (
        with_class('due = "2026-12-10T17:00:00Z"\nends = "2026-12-10T16:59:59Z"\n'),
        "class.ends",
        "2026-12-10T16:59:59Z is before due (2026-12-10T17:00:00Z)",
    ),
    "rubric empty": (with_class('rubric = ""\n'), "class.rubric", 'must not be empty: use "guide"'),
    "rubric not a string": (with_class("rubric = true\n"), "class.rubric", "must be a string"),
    "rubric file missing": (with_class('rubric = "rubrics/week3.toml"\n'), "class.rubric", "no rubric file"),
    "rubric a folder": (with_class('rubric = "."\n'), "class.rubric", "no rubric file"),
    "unknown key": (
        with_class('buit_by = "students"\n'),
        "class.buit_by",
        "unknown key (did you mean 'built_by'?)",
    ),
    "not a table": ('class = "students"\n' + LAB, "class", "must be a table"),
    "the code's name": ("[classroom]\nbuilt_by = 'students'\n" + LAB, "classroom", "did you mean 'class'?"),
    "a near table name": ("[clas]\nbuilt_by = 'students'\n" + LAB, "clas", "did you mean 'class'?"),
}


@pytest.mark.parametrize(("text", "key", "problem"), BAD_CLASS.values(), ids=BAD_CLASS.keys())
def test_a_bad_class_table_names_the_file_and_the_key_as_the_file_spells_it(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert (caught.value.file, caught.value.key) == (str(path), key)
    assert problem in caught.value.problem


@pytest.mark.parametrize(("text", "key", "problem"), BAD_CLASS.values(), ids=BAD_CLASS.keys())
def test_the_cli_refuses_a_bad_class_table_with_exit_2_before_touching_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(main, ["status", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: {key}: "), result.output
    assert problem in result.output
    assert list(workdir.iterdir()) == []  # no database file, nothing written


def test_an_instructors_rubric_is_read_from_the_configuration_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "class"
    write(folder, RUBRIC, "rubrics/week3.toml")
    path = write(folder, with_class('built_by = "students"\nrubric = "rubrics/week3.toml"\n'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, env={})
    assert config.classroom.rubric == "rubrics/week3.toml"
    assert config.rubric.name == "week 3"
    assert config.rubric.ids == ("dest-role", "dest-trust")
    assert config.rubric["dest-trust"] == RubricStep(
        step="dest-trust",
        title="Trust account 1",
        points=2,
        needs=("dest-role",),
        fails_on=("trust_policy.widened",),
        hardened_by=("trust_policy.narrowed",),
        subject="destination_role",
    )
    assert config.classroom.loaded_rubric is config.rubric


def test_a_rubric_without_a_name_is_called_by_its_path_as_the_configuration_writes_it(tmp_path: Path) -> None:
    write(tmp_path, RUBRIC.replace('name = "week 3"', ""), "week3.toml")
    config = load_config(write(tmp_path, with_class('rubric = "week3.toml"\n')), env={})
    assert config.rubric.name == "week3.toml"


def test_an_absolute_rubric_path_is_read_as_it_is(tmp_path: Path) -> None:
    rubric = write(tmp_path / "shared", RUBRIC, "week3.toml")
    config = load_config(write(tmp_path / "class", with_class(f"rubric = {str(rubric)!r}\n")), env={})
    assert config.rubric.name == "week 3"


BAD_RUBRIC = {
    "a need that is not earlier": (
        RUBRIC.replace('needs = ["dest-role"]', 'needs = ["dest-rol"]'),
        "steps[1].needs",
        "'dest-rol' is not an earlier step (a step needs only steps above it); did you mean 'dest-role'?",
    ),
    "an undeclared code": (
        RUBRIC.replace('"trust_policy.widened"', '"trust_policy.widen"'),
        "steps[1].fails_on",
        "'trust_policy.widen' is not a finding code any kind declares (did you mean 'trust_policy.widened'?)",
    ),
    "an unknown key": (RUBRIC.replace("points = 1", "point = 1"), "steps[0].point", "did you mean 'points'?"),
    "not TOML": ("[[steps]\n", "", "TOML syntax error"),
}


@pytest.mark.parametrize(("text", "key", "problem"), BAD_RUBRIC.values(), ids=BAD_RUBRIC.keys())
def test_a_bad_rubric_is_a_configuration_error_naming_the_rubric_file_and_its_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    rubric = write(tmp_path, text, "rubrics/week3.toml")
    path = write(tmp_path, with_class('rubric = "rubrics/week3.toml"\n'))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert (caught.value.file, caught.value.key) == (str(rubric), key)
    assert problem in caught.value.problem
    result = CliRunner().invoke(main, ["status", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {rubric}: {key + ': ' if key else ''}"), result.output
    assert problem in result.output


def test_a_rubric_is_read_with_the_configuration_even_when_the_provisioner_builds(tmp_path: Path) -> None:
    write(tmp_path, "[[steps]]\nstep = 'a'\n", "week3.toml")
    with pytest.raises(ConfigError, match=r"week3\.toml: steps\[0\]\.title: is missing"):
        load_config(write(tmp_path, with_class('built_by = "provisioner"\nrubric = "week3.toml"\n')), env={})


def test_a_parsed_document_reads_its_rubric_beside_the_folder_it_is_given(tmp_path: Path) -> None:
    write(tmp_path, RUBRIC, "week3.toml")
    import tomllib

    data = tomllib.loads(with_class('rubric = "week3.toml"\n'))
    assert config_from(data, "inline", tmp_path).rubric.name == "week 3"
    with pytest.raises(ConfigError) as caught:
        config_from(data, "inline", tmp_path / "nowhere")
    assert (caught.value.file, caught.value.key) == ("inline", "class.rubric")


def test_settings_built_in_code_find_their_rubric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClassSettings(built_by="students").loaded_rubric is shipped_rubric()
    own = Rubric(name="mine", steps=(RubricStep(step="a", title="Do A", points=1),))
    settings = ClassSettings(built_by="students").using(own)
    assert settings.loaded_rubric is own
    assert settings == ClassSettings(built_by="students")  # the rubric is not a key of the file
    monkeypatch.chdir(tmp_path)
    write(tmp_path, RUBRIC, "week3.toml")
    assert ClassSettings(rubric="week3.toml").loaded_rubric.name == "week 3"
    with pytest.raises(RubricError, match="rubric file not found"):
        _ = ClassSettings(rubric="nowhere.toml").loaded_rubric
