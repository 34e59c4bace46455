"""config.toml: every rule of interface.md, refused with file, key and problem, exit code 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from auditor.cli.main import main
from auditor.domain.config import (
    AccountAccess,
    AuditSettings,
    AwsSettings,
    Config,
    ConfigError,
    DaemonSettings,
    DatabaseSettings,
    EventsSettings,
    LabConfig,
    LabSettings,
    config_from,
    load_config,
    unvalidated,
)
from conftest import examples

GOOD_LAB = """
[[labs]]
name = "pair-01"
origin      = { account_id = "111111111111", role_arn = "arn:aws:iam::111111111111:role/Admin", external_id = "class-1" }
destination = { account_id = "222222222222", profile = "student-02" }
expires_at  = "2026-12-01T17:00:00Z"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_shipped_config_loads() -> None:
    config = load_config(Path(__file__).parent.parent / "config.toml", env={})
    assert config.aws.endpoint_url == "embedded"
    assert len(config.labs) >= 3
    assert any(lab.single_account for lab in config.labs)


def test_a_full_config_becomes_frozen_typed_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [lab]
        region = "eu-west-1"
        ttl = "2d"
        runtime = "python3.13"
        [aws]
        endpoint_url = ""
        [audit]
        interval = "90s"
        invoke = false
        invoke_via = "lambda"
        concurrency = 4
        policy_time_limit = "5s"
        [database]
        url = "sqlite:///x.db"
        keep = "30d"
        """
        + GOOD_LAB,
    )
    config = load_config(path, env={})
    assert config.lab.region == "eu-west-1"
    assert config.lab.ttl == timedelta(days=2)
    assert config.aws.endpoint_url is None
    assert config.audit.interval == timedelta(seconds=90)
    assert (config.audit.invoke, config.audit.invoke_via, config.audit.concurrency) == (False, "lambda", 4)
    assert config.audit.policy_time_limit == timedelta(seconds=5)
    assert config.database.keep == timedelta(days=30)
    lab = config.labs[0]
    assert lab.origin.role_arn == "arn:aws:iam::111111111111:role/Admin"
    assert lab.origin.external_id == "class-1"
    assert lab.destination.profile == "student-02"
    assert lab.expires_at == datetime(2026, 12, 1, 17, tzinfo=UTC)
    with pytest.raises(AttributeError):
        config.lab.region = "us-east-2"  # type: ignore[misc]


def test_the_external_id_is_kept_out_of_the_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD_LAB), env={})
    assert "class-1" not in repr(config)


def test_a_single_account_lab_may_leave_out_the_destination(tmp_path: Path) -> None:
    path = write(tmp_path, '[[labs]]\nname = "solo"\norigin = { account_id = "111111111111" }\n')
    lab = load_config(path, env={}).labs[0]
    assert lab.single_account and lab.destination.account_id == "111111111111"


def test_a_roster_stands_for_the_labs_tables(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_text(
        "name,origin_account_id,destination_account_id,origin_role_arn,destination_role_arn,expires_at\n"
        "pair-01,111111111111,222222222222,arn:aws:iam::111111111111:role/Admin,,2026-12-01T17:00:00Z\n"
        "pair-02,333333333333,444444444444,,,\n",
        encoding="utf-8",
    )
    config = load_config(write(tmp_path, '[lab]\nroster = "roster.csv"\n'), env={})
    assert [lab.name for lab in config.labs] == ["pair-01", "pair-02"]
    assert config.labs[0].origin.role_arn == "arn:aws:iam::111111111111:role/Admin"
    assert config.labs[0].destination.role_arn is None
    assert config.labs[1].expires_at is None


def test_the_database_url_comes_from_the_environment_when_set(tmp_path: Path) -> None:
    url = "postgresql+psycopg://auditor@db.example:5432/class"
    config = load_config(write(tmp_path, GOOD_LAB), env={"AUDITOR_DATABASE_URL": url})
    assert config.database.url == url


@pytest.mark.parametrize(
    ("written", "file"),
    [
        (None, "auditor.db"),  # the default
        ('url = "sqlite:///auditor.db"', "auditor.db"),
        ('url = "sqlite:///history/class20.db"', "history/class20.db"),
    ],
)
def test_a_relative_sqlite_path_is_beside_the_configuration_whatever_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str | None, file: str
) -> None:
    folder = tmp_path / "class20"
    folder.mkdir()
    path = write(folder, GOOD_LAB + (f"[database]\n{written}\n" if written else ""))
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("class20") / path.name, env={})
    assert config.database.url == f"sqlite:///{folder / file}"


@pytest.mark.parametrize("url", ["sqlite:////var/lib/auditor/history.db", "sqlite://", "sqlite:///:memory:"])
def test_an_absolute_or_in_memory_sqlite_url_is_kept_as_written(tmp_path: Path, url: str) -> None:
    config = load_config(write(tmp_path, GOOD_LAB + f'[database]\nurl = "{url}"\n'), env={})
    assert config.database.url == url


def test_a_relative_sqlite_path_in_the_environment_is_the_current_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    path = write(tmp_path / "elsewhere", GOOD_LAB)
    monkeypatch.chdir(tmp_path)
    config = load_config(path, env={"AUDITOR_DATABASE_URL": "sqlite:///other.db"})
    assert config.database.url == f"sqlite:///{tmp_path / 'other.db'}"


def test_the_config_path_comes_from_auditor_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_LAB, name="elsewhere.toml")
    assert load_config(None, env={"AUDITOR_CONFIG": str(path)}).path == str(path)


# Each case: the file's text (after the good lab unless it replaces it), the key named, words of the problem.
BAD_CONFIGS = {
    "toml_syntax": ('[lab]\nregion = "us-east-1\n', "", "TOML syntax error"),
    "toml_syntax_line": ('[lab]\nregion = "us-east-1"\nttl = \n', "", "line 3"),
    "unknown_top_level_key": ("[labz]\n" + GOOD_LAB, "labz", "unknown key"),
    "typo_in_a_section": (
        '[audit]\nintervall = "5m"\n' + GOOD_LAB,
        "audit.intervall",
        "did you mean 'interval'",
    ),
    "typo_in_a_lab": (GOOD_LAB + 'expires = "x"\n', "labs[0].expires", "unknown key"),
    "typo_in_an_account": (
        '[[labs]]\nname = "a"\norigin = { account_id = "111111111111", rolearn = "x" }\n',
        "labs[0].origin.rolearn",
        "unknown key",
    ),
    "short_account_id": (
        '[[labs]]\nname = "a"\norigin = { account_id = "12345" }\n',
        "labs[0].origin.account_id",
        "not an AWS account id",
    ),
    "account_id_as_number": (
        '[[labs]]\nname = "a"\norigin = { account_id = 111111111111 }\n',
        "labs[0].origin.account_id",
        "12 digits",
    ),
    "role_arn_not_an_iam_role": (
        '[[labs]]\nname = "a"\norigin = { account_id = "111111111111", role_arn = "arn:aws:iam::111111111111:user/bob" }\n',
        "labs[0].origin.role_arn",
        "not an IAM role ARN",
    ),
    "role_arn_of_another_account": (
        '[[labs]]\nname = "a"\norigin = { account_id = "111111111111", role_arn = "arn:aws:iam::999999999999:role/Admin" }\n',
        "labs[0].origin.role_arn",
        "of account 999999999999, not of 111111111111",
    ),
    "profile_and_role": (
        '[[labs]]\nname = "a"\norigin = { account_id = "111111111111", profile = "p", role_arn = "arn:aws:iam::111111111111:role/A" }\n',
        "labs[0].origin",
        "either profile or role_arn",
    ),
    "external_id_without_role": (
        '[[labs]]\nname = "a"\norigin = { account_id = "111111111111", external_id = "abc" }\n',
        "labs[0].origin.external_id",
        "needs a role_arn",
    ),
    "bad_duration": ('[lab]\nttl = "8 hours"\n' + GOOD_LAB, "lab.ttl", "not a duration"),
    "zero_duration": ('[audit]\ninterval = "0m"\n' + GOOD_LAB, "audit.interval", "longer than zero"),
    "zero_policy_time_limit": (
        '[audit]\npolicy_time_limit = "0s"\n' + GOOD_LAB,
        "audit.policy_time_limit",
        "longer than zero",
    ),
    "bad_timestamp": (
        GOOD_LAB.replace("2026-12-01T17:00:00Z", "tomorrow"),
        "labs[0].expires_at",
        "not a timestamp",
    ),
    "timestamp_without_zone": (
        GOOD_LAB.replace("2026-12-01T17:00:00Z", "2026-12-01T17:00:00"),
        "labs[0].expires_at",
        "no time zone",
    ),
    "duplicate_lab_names": (
        GOOD_LAB + GOOD_LAB.replace("111111111111", "333333333333").replace("222222222222", "444444444444"),
        "labs",
        "duplicate lab name 'pair-01'",
    ),
    "no_labs": ('[lab]\nregion = "us-east-1"\n', "labs", "no labs"),
    "database_url_without_driver": (
        '[database]\nurl = "mysql://u@h/db"\n' + GOOD_LAB,
        "database.url",
        "no installed driver",
    ),
    "database_url_not_a_url": (
        '[database]\nurl = "not a url"\n' + GOOD_LAB,
        "database.url",
        "not a database URL",
    ),
    "old_runtime": ('[lab]\nruntime = "python3.6"\n' + GOOD_LAB, "lab.runtime", "python3.12 or newer"),
    "bad_invoke_via": ('[audit]\ninvoke_via = "docker"\n' + GOOD_LAB, "audit.invoke_via", "'docker'"),
    "wrong_type": (
        '[audit]\nconcurrency = "many"\n' + GOOD_LAB,
        "audit.concurrency",
        "must be a whole number",
    ),
    "bad_endpoint": (
        '[aws]\nendpoint_url = "localhost:5000"\n' + GOOD_LAB,
        "aws.endpoint_url",
        "http(s) URL",
    ),
    "shared_origin_account": (
        GOOD_LAB + GOOD_LAB.replace("pair-01", "pair-02").replace("222222222222", "444444444444"),
        "labs",
        "account 111111111111 is the origin of both 'pair-01' and 'pair-02'",
    ),
    "typo_in_a_top_level_table": ('[audti]\ninterval = "5m"\n' + GOOD_LAB, "audti", "did you mean 'audit'"),
    "typo_in_events": (
        "[events]\nwait_second = 3\n" + GOOD_LAB,
        "events.wait_second",
        "did you mean 'wait_seconds'",
    ),
    "path_is_not_a_key_of_the_file": ('path = "other.toml"\n' + GOOD_LAB, "path", "unknown key"),
    "labs_written_as_one_table": ('[labs]\nname = "a"\n', "labs", "must be a list"),
    "a_section_that_is_not_a_table": ("aws = 5\n" + GOOD_LAB, "aws", "must be a table, not int"),
    "a_lab_that_is_not_a_table": ("labs = [5]\n", "labs[0]", "must be a table, not int"),
    "lab_without_a_name": (
        '[[labs]]\norigin = { account_id = "111111111111" }\n',
        "labs[0].name",
        "is missing",
    ),
    "lab_without_an_origin": ('[[labs]]\nname = "a"\n', "labs[0].origin", "is missing"),
    "bad_lab_name": (
        '[[labs]]\nname = "-a b"\norigin = { account_id = "111111111111" }\n',
        "labs[0].name",
        "not a lab name",
    ),
    "flag_not_a_boolean": (
        '[audit]\ninvoke = "yes"\n' + GOOD_LAB,
        "audit.invoke",
        "must be true or false, not 'yes'",
    ),
    "timeout_not_a_number": (
        '[aws]\nread_timeout = "slow"\n' + GOOD_LAB,
        "aws.read_timeout",
        "a number, not 'slow'",
    ),
    "attempts_out_of_range": ("[aws]\nmax_attempts = 0\n" + GOOD_LAB, "aws.max_attempts", "between 1 and 20"),
    "port_out_of_range": ("[daemon]\nhealth_port = 70000\n" + GOOD_LAB, "daemon.health_port", "not a port"),
    "long_poll_out_of_range": (
        "[events]\nwait_seconds = 30\n" + GOOD_LAB,
        "events.wait_seconds",
        "SQS long-poll",
    ),
    "odd_retention": (
        "[lab]\nlog_retention_days = 8\n" + GOOD_LAB,
        "lab.log_retention_days",
        "retention period",
    ),
    "bad_region": ('[lab]\nregion = "Europe"\n' + GOOD_LAB, "lab.region", "not an AWS region"),
    "short_external_id": (GOOD_LAB.replace('"class-1"', '"x"'), "labs[0].origin.external_id", "2 to 1224"),
    "roster_not_a_string": (
        "[lab]\nroster = 5\n" + GOOD_LAB,
        "lab.roster",
        "must be a string (in quotes), not 5",
    ),
    "timestamp_a_number": (
        GOOD_LAB.replace('"2026-12-01T17:00:00Z"', "5"),
        "labs[0].expires_at",
        "a timestamp, not 5",
    ),
    "duration_a_number": ("[lab]\nttl = 8\n" + GOOD_LAB, "lab.ttl", "must be a string (in quotes), not 8"),
}


@pytest.mark.parametrize("text,key,problem", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_a_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert problem in str(caught.value)


@pytest.mark.parametrize("text,key,problem", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_the_cli_refuses_a_bad_config_with_exit_2_before_touching_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(main, ["provision", "--config", str(path)])
    assert list(workdir.iterdir()) == []  # no database file, nothing written
    assert result.exit_code == 2
    where = f"{path}: {key}: " if key else f"{path}: "
    assert result.output.startswith(f"error: {where}"), result.output
    assert problem in result.output


def test_a_bad_roster_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_text(
        "name,origin_account_id,destination_account_id\npair-01,111111111111,22222\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[lab]\nroster = "roster.csv"\n'), env={})
    assert caught.value.file == str(tmp_path / "roster.csv")
    assert caught.value.key == "line 2, column destination_account_id"


def test_a_roster_with_a_missing_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_text("name,origin_account_id\npair-01,111111111111\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing column"):
        load_config(write(tmp_path, '[lab]\nroster = "roster.csv"\n'), env={})


def test_a_missing_roster_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="roster file not found"):
        load_config(write(tmp_path, '[lab]\nroster = "nowhere.csv"\n'), env={})


def test_a_database_url_error_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD_LAB), env={"AUDITOR_DATABASE_URL": "mysql://root@h/db"})
    assert (caught.value.file, caught.value.key) == ("environment", "AUDITOR_DATABASE_URL")


def test_a_database_password_never_appears_in_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "mysql://u:hunter2@h/db"\n' + GOOD_LAB)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("command", [["provision"], ["provision", "--dry-run"], ["teardown"], ["audit"]])
def test_every_command_exits_2_on_a_bad_config(tmp_path: Path, command: list[str]) -> None:
    path = write(tmp_path, '[audit]\ninterval = "soon"\n' + GOOD_LAB)
    result = CliRunner().invoke(main, [*command, "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}: audit.interval: 'soon' is not a duration" in result.output


def test_an_unknown_lab_on_the_command_line_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_LAB)
    result = CliRunner().invoke(main, ["provision", "--dry-run", "--config", str(path), "--lab", "pair-99"])
    assert result.exit_code == 2
    assert "--lab: no lab named 'pair-99'" in result.output


@pytest.mark.slow
def test_a_missing_config_file_exits_2_through_the_real_entry_point(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "auditor", "provision", "--config", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "none.toml: file not found" in completed.stderr


def test_a_file_that_sets_nothing_gets_each_table_s_own_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[[labs]]\nname = "solo"\norigin = { account_id = "111111111111" }\n'), env={}
    )
    assert (config.lab, config.aws, config.audit) == (LabSettings(), AwsSettings(), AuditSettings())
    beside_the_file = DatabaseSettings(url=f"sqlite:///{tmp_path / 'auditor.db'}")
    assert (config.database, config.daemon, config.events) == (beside_the_file, DaemonSettings(), None)
    with_events = load_config(write(tmp_path, "[events]\n" + GOOD_LAB), env={})
    assert with_events.events == EventsSettings()


def test_empty_and_forever_mean_none_and_zero_turns_the_jitter_off(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[lab]\nroster = ""\n[database]\nkeep = "forever"\n[daemon]\njitter = "0"\n'
        + GOOD_LAB.replace('profile = "student-02"', 'profile = ""'),
    )
    config = load_config(path, env={})
    assert (config.lab.roster, config.database.keep, config.daemon.jitter) == (None, None, timedelta(0))
    assert config.labs[0].destination.profile is None


# Documents shaped like the file, each key holding a good value or anything TOML can hold (typos too),
# so that every rule and every kind of wrong value is reached.
GOOD_VALUES: dict[str, object] = {
    "region": "eu-west-1", "ttl": "8h", "runtime": "python3.13", "log_retention_days": 14, "roster": "",
    "endpoint_url": "", "max_attempts": 3, "connect_timeout": 2.5, "read_timeout": 10,
    "interval": "5m", "invoke": False, "invoke_via": "local", "concurrency": 4,
    "url": "sqlite://", "keep": "forever", "health_port": 0, "health_host": "0.0.0.0", "jitter": "0s",
    "reconcile_interval": "1m", "stop_timeout": "20s", "queue_url": "", "wait_seconds": 5, "coalesce": "2s",
    "name": "pair-01", "account_id": "111111111111", "profile": "", "expires_at": "2026-12-01T17:00:00Z",
    "role_arn": "arn:aws:iam::111111111111:role/Admin", "external_id": "class-1",
}  # fmt: skip
ANY_VALUE = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def mostly(good: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """The good value nine times in ten, so that a document gets past its first key now and then."""
    return st.sampled_from([True] * 9 + [False]).flatmap(lambda use_good: good if use_good else ANY_VALUE)


def value_of(key: str) -> st.SearchStrategy[object]:
    return mostly(st.just(GOOD_VALUES[key])) if key in GOOD_VALUES else ANY_VALUE


def keys_of(kind: type, **inner: st.SearchStrategy[object]) -> dict[str, st.SearchStrategy[object]]:
    return {f.name: inner.get(f.name, value_of(f.name)) for f in fields(kind)}


def table_of(
    keys: dict[str, st.SearchStrategy[object]], typo: str, required: tuple[str, ...] = ()
) -> st.SearchStrategy[object]:
    optional = {name: value for name, value in keys.items() if name not in required}
    known = st.fixed_dictionaries({name: keys[name] for name in required}, optional=optional)
    typos = st.integers(0, 9).flatmap(
        lambda n: st.fixed_dictionaries({typo: ANY_VALUE}) if n == 0 else st.just({})
    )
    return mostly(st.builds(lambda known, typo: {**known, **typo}, known, typos))


ACCOUNT = table_of(keys_of(AccountAccess), "rolearn", ("account_id",))
LAB = table_of(keys_of(LabConfig, origin=ACCOUNT, destination=ACCOUNT), "expires", ("name", "origin"))
DOCUMENTS = table_of(
    {
        "lab": table_of(keys_of(LabSettings), "regoin"),
        "aws": table_of(keys_of(AwsSettings), "endpoint"),
        "audit": table_of(keys_of(AuditSettings), "intervall"),
        "database": table_of(keys_of(DatabaseSettings), "uri"),
        "daemon": table_of(keys_of(DaemonSettings), "port"),
        "events": table_of(keys_of(EventsSettings), "queue"),
        "labs": mostly(st.lists(LAB, min_size=1, max_size=2)),
    },
    "labz",
    ("labs",),
).filter(lambda document: isinstance(document, dict))  # a TOML document is always a table


@given(DOCUMENTS, st.booleans())
@settings(max_examples=examples(200), deadline=None)
def test_whatever_the_file_holds_becomes_a_config_or_a_config_error(
    document: dict[str, object], good_labs: bool
) -> None:
    if good_labs:  # half the time, so that the tables after [[labs]] are reached too
        document = {**document, "labs": [{"name": "pair-01", "origin": {"account_id": "111111111111"}}]}
    try:
        config = config_from(document, "fuzz.toml", Path("/nonexistent"), env={})
    except ConfigError as error:
        assert error.file == "fuzz.toml" or error.file.startswith("/nonexistent/"), error  # a roster
        assert "Input should" not in error.problem, f"pydantic's own words reached the operator: {error}"
    else:
        assert config.labs and config.path == "fuzz.toml"


def test_tables_built_in_code_obey_the_same_rules() -> None:
    access = AccountAccess("111111111111", role_arn="arn:aws:iam::111111111111:role/Admin")
    lab = LabConfig("pair-01", access, access)
    with pytest.raises(ValidationError, match="not an AWS account id"):
        AccountAccess("12345")
    with pytest.raises(ValidationError, match="is a role of account 111111111111, not of 222222222222"):
        replace(access, account_id="222222222222")
    with pytest.raises(ValidationError, match="no labs"):
        Config(path="code", labs=())
    with pytest.raises(ValidationError, match="duplicate lab name"):
        Config(path="code", labs=(lab, replace(lab, origin=AccountAccess("333333333333"))))


def test_a_table_no_file_may_give_is_built_only_on_purpose() -> None:
    wildcard = unvalidated(AccountAccess, account_id="*")
    assert (wildcard.account_id, wildcard.profile, wildcard.role_arn) == ("*", None, None)
    with pytest.raises(TypeError, match="no field acount_id"):
        unvalidated(AccountAccess, acount_id="*")
    with pytest.raises(TypeError, match="needs account_id"):
        unvalidated(AccountAccess)
