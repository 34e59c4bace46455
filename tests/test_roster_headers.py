"""Issue 25, the instructor's screens: a roster's headers as people write them, and the suggestions and
hints of what the configuration is given (the shared function itself: test_suggest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli.main import main
from auditor.domain.config import ConfigError, load_config

EXCEL_HEADER = "Name, Origin Account ID, Destination Account ID, Student Name, Student E-mail, Seat"


def write_roster(tmp_path: Path, *lines: str, bom: bool = True) -> Path:
    """A roster as Excel saves it (a byte-order mark, Windows line ends), and a configuration naming it."""
    roster = tmp_path / "roster.csv"
    roster.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    config = tmp_path / "config.toml"
    config.write_text('[lab]\nroster = "roster.csv"\n[aws]\nendpoint_url = "http://127.0.0.1:9"\n')
    return config


def refusal(config: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    return caught.value


def test_headers_written_for_people_are_the_roster_s_columns(tmp_path: Path) -> None:
    config = write_roster(
        tmp_path,
        EXCEL_HEADER,
        "pair-01, 111111111111, 222222222222, Karen Spärck Jones, karen@example.edu, 4",
    )
    (lab,) = load_config(config, env={}).labs
    assert (lab.name, lab.origin.account_id, lab.destination.account_id) == (
        "pair-01",
        "111111111111",
        "222222222222",
    )
    # The student's columns under the names every screen reads; a column of the class's own as written.
    assert lab.info == {
        "student_name": "Karen Spärck Jones",
        "student_email": "karen@example.edu",
        "Seat": "4",
    }


ROLE = "arn:aws:iam::111111111111:role/Admin"


@pytest.mark.parametrize(
    ("header", "row"),
    [
        (
            "NAME,ORIGIN_ACCOUNT_ID,DESTINATION_ACCOUNT_ID,STUDENT_NAME",
            "pair-01,111111111111,222222222222,Ada",
        ),
        (
            " name , origin-account-id ,\tdestination-account-id , student-name ",
            "pair-01,111111111111,222222222222,Ada",
        ),
        # A second byte-order mark (the decoder takes only the first), CamelCase.
        (
            "\ufeffName,OriginAccountId,Destination Account Id,StudentName",
            "pair-01,111111111111,222222222222,Ada",
        ),
        (
            "Name,Origin Role ARN,Origin Account ID,Destination Account ID,Student Name",
            f"pair-01,{ROLE},111111111111,222222222222,Ada",
        ),
    ],
)
def test_case_spaces_hyphens_underscores_and_a_bom_do_not_matter(
    tmp_path: Path, header: str, row: str
) -> None:
    (lab,) = load_config(write_roster(tmp_path, header, row), env={}).labs
    assert (lab.name, lab.origin.account_id, lab.destination.account_id, lab.info) == (
        "pair-01",
        "111111111111",
        "222222222222",
        {"student_name": "Ada"},
    )
    assert lab.origin.role_arn == (ROLE if "Role" in header else None)


def test_status_shows_the_student_of_a_roster_saved_by_excel(tmp_path: Path) -> None:
    """Before: the names went to `info` under "Student Name" and `status` showed no student."""
    config = write_roster(
        tmp_path,
        EXCEL_HEADER,
        "pair-01, 111111111111, 222222222222, Karen Spärck Jones, karen@example.edu, 4",
    )
    result = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Karen Spärck Jones <karen@example.edu>" in result.output


@pytest.mark.parametrize(
    ("header", "cell", "meant"),
    [
        ("Name, Origin Account ID, Dest Account", "Dest Account", "destination_account_id"),
        ("Lab Name, Origin Account ID, Destination Account ID", "Lab Name", "name"),
        ("Name, Origin Account, Destination Account ID", "Origin Account", "origin_account_id"),
    ],
)
def test_a_header_near_a_missing_column_is_refused_with_a_did_you_mean(
    tmp_path: Path, header: str, cell: str, meant: str
) -> None:
    error = refusal(write_roster(tmp_path, header, "pair-01, 111111111111, 222222222222"))
    assert error.file == str(tmp_path / "roster.csv")
    assert error.key == f"line 1, column {cell!r}"
    assert error.problem.startswith(f"not a column the roster knows: did you mean {meant}?")


def test_a_missing_column_with_nothing_near_it_names_the_header_found(tmp_path: Path) -> None:
    error = refusal(write_roster(tmp_path, "Name, Origin Account ID, Seat", "pair-01, 111111111111, 4"))
    assert (error.key, error.problem) == (
        "line 1",
        "missing column(s) destination_account_id (the header has 'Name', 'Origin Account ID', 'Seat')",
    )


def test_two_headers_for_one_column_are_refused(tmp_path: Path) -> None:
    error = refusal(
        write_roster(
            tmp_path, "Name, Origin Account ID, origin_account_id, Destination Account ID", "p,1,1,2"
        )
    )
    assert error.problem == "'Origin Account ID' and 'origin_account_id' are both column origin_account_id"


def test_a_cell_s_problem_names_the_column_as_the_file_spells_it_and_an_eleven_digit_id_gets_a_hint(
    tmp_path: Path,
) -> None:
    error = refusal(write_roster(tmp_path, EXCEL_HEADER, "pair-01, 11111111111, 222222222222, Ada, a@b.c, 1"))
    assert error.key == "line 2, column 'Origin Account ID'"
    assert error.problem == (
        "'11111111111' is not an AWS account id (12 digits, as a string); "
        "it has 11 digits: did a spreadsheet drop a leading zero? '011111111111'"
    )


def test_a_refused_roster_exits_2_naming_the_file_and_the_header(tmp_path: Path) -> None:
    config = write_roster(
        tmp_path, "Name, Origin Account ID, Dest Account", "pair-01, 111111111111, 222222222222"
    )
    result = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"error: {tmp_path / 'roster.csv'}: line 1, column 'Dest Account': not a column the roster knows: "
        "did you mean destination_account_id?"
    )
    assert not (tmp_path / "auditor.db").exists()  # nothing touched


# ------------------------------------------------------------------ suggestions of what is typed


def config_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


LAB = '[[labs]]\nname = "{}"\norigin = {{ account_id = "{}" }}\n'


def test_a_region_in_capitals_gets_its_spelling(tmp_path: Path) -> None:
    config = config_with(tmp_path, '[lab]\nregion = "EU-WEST-1"\n' + LAB.format("p", "111111111111"))
    error = refusal(config)
    assert (error.key, error.problem) == (
        "lab.region",
        "'EU-WEST-1' is not an AWS region (did you mean 'eu-west-1'?)",
    )


def test_an_unknown_lab_is_matched_by_its_number_not_its_digits(tmp_path: Path) -> None:
    labs = "".join(LAB.format(f"pair-{n:02d}", f"1000000000{n:02d}") for n in (1, 6, 7, 17))
    config = load_config(config_with(tmp_path, labs), env={})
    with pytest.raises(
        ConfigError, match=r"no lab named 'pair-7' in the configuration \(did you mean 'pair-07'\?\)"
    ):
        config.select(("pair-7",))
    without_seven = load_config(config_with(tmp_path, labs.replace("pair-07", "pair-08")), env={})
    with pytest.raises(ConfigError) as caught:
        without_seven.select(("pair-7",))
    assert caught.value.problem == "no lab named 'pair-7' in the configuration"  # not pair-17


def test_an_account_id_given_as_a_toml_number_is_told_to_be_quoted(tmp_path: Path) -> None:
    config = config_with(tmp_path, '[[labs]]\nname = "p"\norigin = { account_id = 12345678901 }\n')
    assert refusal(config).problem == (
        "12345678901 is not an AWS account id (12 digits, as a string); "
        'write it in quotes, as a string: "012345678901"'
    )
