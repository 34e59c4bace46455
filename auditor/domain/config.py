"""`config.toml`: loaded and validated once into frozen typed values.

The values are pydantic dataclasses: each setting is one typed field with its default, and its rule
is a validator on that field (or on its table, for rules that tie keys together). Adding a setting
is one line in its table's class. Loading reads the TOML (and the roster CSV) and hands the plain
data to pydantic; the first problem it finds is reported as a `ConfigError` naming the file, the key
and what is wrong, before anything is touched (interface.md). The CLI turns it into exit code 2.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, field, fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, get_args, get_type_hints

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Strict, TypeAdapter, ValidationError
from pydantic import model_validator as table_rule
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails

from auditor.common.schedule import check_schedulable
from auditor.common.suggest import account_id_hint, closest, same_name
from auditor.domain.model import Severity
from auditor.domain.rubric_file import GUIDE, RubricError, load_rubric, shipped_rubric
from auditor.domain.steps import Rubric

DEFAULT_CONFIG_PATH = "config.toml"
DEFAULT_DATABASE_URL = "sqlite:///auditor.db"  # beside the configuration file
EMBEDDED = "embedded"

InvokeVia = Literal["auto", "lambda", "local"]

ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_LAB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_RUNTIME = re.compile(r"^python3\.(\d+)$")
_ENDPOINT = re.compile(r"^https?://[^\s/]+")
_LOG_RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557}
_INVOKE_VIA = get_args(InvokeVia)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PAGE_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")

# Every table of the file is a pydantic dataclass made with `@dataclass(frozen=True, config=TABLE)`:
# frozen once built (mypy knows it from the decorator), and a key it does not know is a typo to refuse.
TABLE = ConfigDict(extra="forbid", hide_input_in_errors=True)


class ConfigError(Exception):
    """A configuration problem: which file, which key, what is wrong."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class Problem(ValueError):
    """What a validator finds wrong, in the operator's words; `key` names a key inside the value checked."""

    def __init__(self, problem: str, key: str = "") -> None:
        super().__init__(problem)
        self.problem, self.key = problem, key


# ---------------------------------------------------------------------------------- value rules (pure)

_TYPE_WORDS = {
    str: "a string (in quotes)",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    datetime: "a timestamp",
}


def _wrong_type(value: object, *kinds: type) -> Problem:
    wanted = " or ".join(_TYPE_WORDS[kind] for kind in kinds)
    return Problem(f"must be {wanted}, not {value!r}")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _wrong_type(value, str)
    return value


def duration_of(text: object) -> timedelta:
    """`90s`, `5m`, `8h`, `2d` as a timedelta longer than zero; raises Problem otherwise."""
    if not isinstance(text, str) or not (match := _DURATION.match(text.strip())):
        raise Problem(f"{text!r} is not a duration (write it like 90s, 5m, 8h or 2d)")
    amount = int(match.group(1))
    if amount == 0:
        raise Problem(f"{text!r} must be longer than zero")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: amount})


def instant_of(value: str | datetime) -> datetime:
    """An ISO 8601 timestamp with a zone (or a TOML offset date-time) as an aware UTC datetime."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Problem(f"{value!r} is not a timestamp (write it like 2026-12-01T17:00:00Z)") from None
    else:
        moment = value
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Problem(f"{value!s} has no time zone (end it with Z for UTC)")
    return moment.astimezone(UTC)


def database_url_problem(url: str) -> str | None:
    """Why no installed driver serves this URL (naming it without any password), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "is not a database URL (sqlite:///file.db or postgresql+psycopg://...)"
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        return f"{shown!r}: no installed driver serves it (use sqlite:/// or postgresql+psycopg://)"
    return None


def _duration(value: object) -> timedelta:
    return value if isinstance(value, timedelta) else duration_of(_text(value))


def _duration_or_forever(value: object) -> timedelta | None:
    return None if value in ("", "forever", None) else _duration(value)


def _duration_or_zero(value: object) -> timedelta:
    return timedelta(0) if value in ("0", "0s") else _duration(value)


def _timestamp(value: object) -> datetime | None:
    if value in ("", None):
        return None
    if not isinstance(value, str | datetime):
        raise _wrong_type(value, str, datetime)
    return instant_of(value)


def _account_id(value: object) -> str:
    if not isinstance(value, str) or not ACCOUNT_ID_PATTERN.match(value):
        hint = account_id_hint(value)
        raise Problem(
            f"{value!r} is not an AWS account id (12 digits, as a string)" + (f"; {hint}" if hint else "")
        )
    return value


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


def _role_arn(arn: str | None) -> str | None:
    if arn is not None and not _ROLE_ARN.match(arn):
        raise Problem(f"{arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return arn


def _external_id(external_id: str | None) -> str | None:
    if external_id is not None and not EXTERNAL_ID_PATTERN.match(external_id):
        raise Problem("must be 2 to 1224 characters of letters, digits and +=,.@:/-")
    return external_id


def _lab_name(name: str) -> str:
    if not _LAB_NAME.match(name):
        raise Problem(f"{name!r} is not a lab name (letters, digits, '-', '_', '.'; at most 64)")
    return name


def known_regions() -> set[str]:
    """Every region of every partition in botocore's endpoint data (what this installation can reach)."""
    endpoints = _botocore_own_endpoints()
    if endpoints is None:
        import botocore.session  # here, not at the top: only the [lab] region check needs botocore's data

        endpoints = botocore.session.get_session().get_data("endpoints")
    return {region for partition in endpoints["partitions"] for region in partition["regions"]}


def _botocore_own_endpoints() -> Any:
    """The endpoint data botocore ships, read as its loader would, when nothing could put other data in
    its place (AWS_DATA_PATH, ~/.aws/models, a data_path in the AWS configuration file); else None.
    botocore's session costs a command 0.15 s of imports, which `auditor status` would pay for this."""
    config_file = Path(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()
    if (
        os.environ.get("AWS_DATA_PATH")
        or Path("~/.aws/models").expanduser().exists()
        or (
            config_file.is_file() and "data_path" in config_file.read_text(encoding="utf-8", errors="replace")
        )
    ):
        return None
    botocore = importlib.util.find_spec("botocore")
    folders = botocore.submodule_search_locations if botocore is not None else None
    if not folders:
        return None
    shipped = Path(next(iter(folders))) / "data" / "endpoints.json"
    return json.loads(shipped.read_text(encoding="utf-8")) if shipped.is_file() else None


def _region(region: str) -> str:
    known = known_regions()
    if not _REGION.match(region) or region not in known:
        hint = closest(region, known)
        raise Problem(f"{region!r} is not an AWS region" + (f" (did you mean {hint!r}?)" if hint else ""))
    return region


def _runtime(runtime: str) -> str:
    match = _RUNTIME.match(runtime)
    if not match or int(match.group(1)) < 12:
        raise Problem(f"{runtime!r}: use a supported Python runtime, python3.12 or newer")
    return runtime


def _log_retention(days: int) -> int:
    if days not in _LOG_RETENTION_DAYS:
        raise Problem(f"{days} is not a CloudWatch retention period")
    return days


def _endpoint_url(value: object) -> str | None:
    if value is None:
        return None
    endpoint = _text(value).strip()
    if endpoint and endpoint != EMBEDDED and not _ENDPOINT.match(endpoint):
        raise Problem(f'{endpoint!r}: use "embedded", "" or an http(s) URL')
    return endpoint or None


def _invoke_via(value: object) -> object:
    if value not in _INVOKE_VIA:
        raise Problem(f'{value!r}: use "auto", "lambda" or "local"')
    return value


def sqlite_path_from(url: str, folder: Path) -> str:
    """A SQLite URL whose file is a relative path, made absolute from `folder` (the configuration's, as
    the roster is read beside it), so that every command of a configuration reads one history
    whatever the current folder; any other URL as it is."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # the validation names what is wrong with it
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return url
    if Path(path).is_absolute():
        return url
    return parsed.set(database=os.path.abspath(folder / path)).render_as_string(hide_password=False)


def _database_url(url: str) -> str:
    if problem := database_url_problem(url):
        raise Problem(problem)
    return url


def _env_name(name: str) -> str:
    if name and not _ENV_NAME.match(name):
        raise Problem(f"{name!r} is not the name of an environment variable")
    return name


def notify_url_problem(url: str) -> str | None:
    """Why Apprise cannot send to this URL, without repeating it (it may hold a secret), or None."""
    import apprise  # here, not at the top: only a [notify] section needs its 0.2 s of imports

    if apprise.Apprise.instantiate(url) is not None:
        return None
    scheme = url.split("://", 1)[0] if "://" in url else ""
    what = f"a {scheme}:// URL" if scheme.isalnum() and len(scheme) <= 20 else "this"
    return f"{what} is not a notification URL Apprise can send to (the value is not shown)"


def _notify_url(url: str) -> str:
    if problem := notify_url_problem(url):
        raise Problem(problem)
    return url


def _notify_event(value: object) -> object:
    known = [event.value for event in NotifyEvent]
    if not isinstance(value, str):
        raise _wrong_type(value, str)
    if value not in known:
        hint = closest(value, set(known))
        raise Problem(
            f"{value!r} is not a notification event (use {', '.join(known)})"
            + (f"; did you mean {hint!r}?" if hint else "")
        )
    return value


def _severity(value: object) -> object:
    if not isinstance(value, str):
        raise _wrong_type(value, str)
    if value not in {severity.value for severity in Severity}:
        raise Problem(f"{value!r} is not a severity (use {', '.join(s.value for s in Severity)})")
    return value


def _page_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url and not _PAGE_URL.match(url):
        raise Problem(f"{url!r} is not an http(s) URL")
    return url


DAEMON_MODES = ("single", "replicas")


def _daemon_mode(mode: str) -> str:
    if mode not in DAEMON_MODES:
        raise Problem(f"{mode!r} is not a mode: use one of {', '.join(map(repr, DAEMON_MODES))}")
    return mode


def _takeover(period: timedelta) -> timedelta:
    if period < timedelta(seconds=2):
        raise Problem("must be at least 2s (a replica's heartbeat comes four times in it)")
    return period


def _one_of(*choices: str) -> BeforeValidator:
    """A string that is one of `choices`, with a "did you mean" for a near miss."""

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _wrong_type(value, str)
        if value not in choices:
            hint = closest(value, set(choices))
            raise Problem(
                f"{value!r}: use {' or '.join(map(repr, choices))}"
                + (f" (did you mean {hint!r}?)" if hint else "")
            )
        return value

    return BeforeValidator(check)


def _rubric_name(name: str) -> str:
    if not name.strip():
        raise Problem(f'must not be empty: use "{GUIDE}" or the path of a rubric TOML file')
    return name


def _within(low: int, high: int, problem: str) -> AfterValidator:
    """A whole number from low to high; `problem` may name the number as {value}."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise Problem(problem.format(value=value))
        return value

    return AfterValidator(check)


# ------------------------------------------------------------------------------------- value types

Text = Annotated[str, Strict()]
Whole = Annotated[int, Strict()]
Number = Annotated[float, Strict()]  # a whole number is a number too
Flag = Annotated[bool, Strict()]
OptionalText = Annotated[Text | None, BeforeValidator(_empty_is_none)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
AccountId = Annotated[str, BeforeValidator(_account_id)]
RoleArn = Annotated[OptionalText, AfterValidator(_role_arn)]
ExternalId = Annotated[OptionalText, AfterValidator(_external_id)]
EnvName = Annotated[Text, AfterValidator(_env_name)]


# ------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True, config=TABLE)
class AccountAccess:
    """How to reach one account: a profile, a role to assume, or the operator's own credentials."""

    account_id: AccountId
    profile: OptionalText = None
    role_arn: RoleArn = None
    external_id: ExternalId = field(default=None, repr=False)

    @table_rule(mode="after")
    def _one_way_in(self) -> Self:
        if self.profile and self.role_arn:
            raise Problem("give either profile or role_arn, not both")
        if self.role_arn and (owner := _ROLE_ARN.match(self.role_arn)) and owner.group(1) != self.account_id:
            raise Problem(
                f"{self.role_arn!r} is a role of account {owner.group(1)}, not of {self.account_id}",
                "role_arn",
            )
        if self.external_id and not self.role_arn:
            raise Problem("an external_id needs a role_arn to go with it", "external_id")
        return self

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.account_id, self.profile, self.role_arn)


@dataclass(frozen=True, config=TABLE)
class LabConfig:
    name: Annotated[Text, AfterValidator(_lab_name)]
    origin: AccountAccess
    destination: AccountAccess
    expires_at: Timestamp = None
    # What the class keeps about the lab (a roster's other columns: student_name, student_email, ...),
    # shown in the status and the reports, never used to reach AWS.
    info: dict[Text, Text] = field(default_factory=dict, hash=False)

    @table_rule(mode="before")
    @classmethod
    def _single_account(cls, data: Any) -> Any:
        """A single-account lab may leave out its destination: it is the origin."""
        if isinstance(data, Mapping) and "origin" in data and "destination" not in data:
            return {**data, "destination": data["origin"]}
        return data

    @property
    def single_account(self) -> bool:
        return self.origin.account_id == self.destination.account_id


@dataclass(frozen=True, config=TABLE)
class LabSettings:
    region: Annotated[Text, AfterValidator(_region)] = "us-east-1"
    ttl: Duration = timedelta(hours=8)
    runtime: Annotated[Text, AfterValidator(_runtime)] = "python3.12"
    log_retention_days: Annotated[Whole, AfterValidator(_log_retention)] = 7
    roster: OptionalText = None  # a CSV beside the file, standing for [[labs]] tables
    # How long a command waits for a lab whose lease another command or the daemon holds.
    lease_wait: Annotated[timedelta, BeforeValidator(_duration_or_zero)] = timedelta(seconds=30)


@dataclass(frozen=True, config=TABLE)
class AwsSettings:
    # None: real AWS (written ""); "embedded": a moto server inside the process; otherwise an http(s) URL.
    endpoint_url: Annotated[str | None, BeforeValidator(_endpoint_url)] = EMBEDDED
    max_attempts: Annotated[Whole, _within(1, 20, "{value} must be between 1 and 20")] = 5
    connect_timeout: Number = 5.0
    read_timeout: Number = 30.0

    @property
    def emulated(self) -> bool:
        return self.endpoint_url is not None


@dataclass(frozen=True, config=TABLE)
class AuditSettings:
    interval: Duration = timedelta(minutes=5)
    invoke: Flag = True
    invoke_via: Annotated[InvokeVia, BeforeValidator(_invoke_via)] = "auto"
    concurrency: Annotated[Whole, _within(1, 256, "{value} must be between 1 and 256")] = 16
    # How long the policy engine may take to decide one comparison or one request of the lab's path;
    # past it the answer is "could not be decided in time" (a hostile policy never stalls an audit).
    policy_time_limit: Duration = timedelta(seconds=2)


@dataclass(frozen=True, config=TABLE)
class DatabaseSettings:
    url: Annotated[Text, AfterValidator(_database_url)] = DEFAULT_DATABASE_URL
    # "" or "forever": never prune.
    keep: Annotated[timedelta | None, BeforeValidator(_duration_or_forever)] = timedelta(days=90)


@dataclass(frozen=True, config=TABLE)
class EventsSettings:
    """Change events: an EventBridge rule in each lab account delivering to the operator's SQS queue."""

    queue_url: Text = ""
    wait_seconds: Annotated[Whole, _within(0, 20, "must be between 0 and 20 (the SQS long-poll limit)")] = 10
    coalesce: Duration = timedelta(seconds=2)


@dataclass(frozen=True, config=TABLE)
class DaemonSettings:
    health_port: Annotated[Whole, _within(0, 65535, "{value} is not a port (0 turns the endpoint off)")] = (
        8080
    )
    health_host: Text = "127.0.0.1"
    # The NAME of the environment variable holding the page's token (needed when bound off loopback).
    web_token_env: EnvName = ""
    jitter: Annotated[timedelta, BeforeValidator(_duration_or_zero)] = timedelta(seconds=30)
    reconcile_interval: Duration = timedelta(minutes=1)
    stop_timeout: Duration = timedelta(seconds=20)
    # "single": this process schedules the whole class (APScheduler; SQLite or PostgreSQL). "replicas":
    # any number of daemons share it through a task queue in the PostgreSQL database (auditor.daemon.drivers.replicas).
    mode: Annotated[Text, AfterValidator(_daemon_mode)] = "single"
    # Replicas: one silent this long is taken for dead, and its labs' work is taken over by the others.
    takeover: Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_takeover)] = timedelta(
        seconds=30
    )


class NotifyEvent(StrEnum):
    """The transitions of a lab that `[notify] on` may name (interface.md, "Notifications")."""

    BROKEN = "broken"
    DRIFTED = "drifted"
    ERROR = "error"
    RECOVERED = "recovered"
    TEARDOWN_FAILED = "teardown_failed"


@dataclass(frozen=True, config=TABLE)
class NotifySettings:
    """Where and when to notify. The URLs hold secrets (tokens, passwords): never log or show them."""

    # From `urls` and then from the variable `urls_env` names (space separated).
    urls: tuple[Annotated[Text, AfterValidator(_notify_url)], ...] = field(default=(), repr=False)
    urls_env: EnvName = ""
    on: frozenset[Annotated[NotifyEvent, BeforeValidator(_notify_event)]] = frozenset(NotifyEvent)
    min_severity: Annotated[Severity, BeforeValidator(_severity)] = Severity.HIGH
    page_url: Annotated[Text, AfterValidator(_page_url)] = ""  # as people reach the page; "": from [daemon]


@dataclass(frozen=True, config=TABLE)
class ClassSettings:
    """`[class]`: who builds the labs, and how students' work is graded (interface.md, "Students build it")."""

    built_by: Annotated[Literal["provisioner", "students"], _one_of("provisioner", "students")] = (
        "provisioner"
    )
    # The shipped rubric ("guide"), or a rubric TOML file (relative: to the configuration file's folder),
    # read and validated with the configuration: `Config.rubric` is the Rubric it names.
    rubric: Annotated[Text, AfterValidator(_rubric_name)] = GUIDE
    due: Timestamp = None  # steps first done after it are `late`
    ends: Timestamp = None  # when `cleanup` is judged (None: each lab's expiry)
    stuck_after: Duration = timedelta(minutes=15)
    hardening: Annotated[Literal["credit", "drift"], _one_of("credit", "drift")] = "drift"

    @table_rule(mode="after")
    def _ends_after_due(self) -> Self:
        if self.due is not None and self.ends is not None and self.ends < self.due:
            raise Problem(
                f"{self.ends:%Y-%m-%dT%H:%M:%SZ} is before due ({self.due:%Y-%m-%dT%H:%M:%SZ}): "
                "the class cannot end before its work is due",
                "ends",
            )
        return self

    @property
    def students_build(self) -> bool:
        return self.built_by == "students"

    @property
    def loaded_rubric(self) -> Rubric:
        """The Rubric `rubric` names: as read and validated with the configuration file (`load_config`,
        `config_from`); for a table built in code, the shipped one it names, or the file as given (read
        now, relative to the current folder; a problem is a RubricError)."""
        loaded: Rubric | None = self.__dict__.get(_LOADED_RUBRIC)
        if loaded is not None:
            return loaded
        return shipped_rubric() if self.rubric == GUIDE else load_rubric(self.rubric, name=self.rubric)

    def using(self, rubric: Rubric) -> ClassSettings:
        """These settings with `rubric` as the loaded one (for code and tests that build a rubric)."""
        copy = replace(self)
        object.__setattr__(copy, _LOADED_RUBRIC, rubric)
        return copy


# Where a ClassSettings keeps the Rubric read with the file: an attribute, not a field (it is no key of
# the file, and the table's equality and hash stay those of its keys).
_LOADED_RUBRIC = "_loaded_rubric"
_DEFAULT_CLASS = ClassSettings()  # no [class] table: the project builds the labs, the guide's rubric


@dataclass(frozen=True, config=TABLE)
class Config:
    path: str  # the file it was read from; not a key of the file
    labs: tuple[LabConfig, ...]
    lab: LabSettings = LabSettings()
    aws: AwsSettings = AwsSettings()
    audit: AuditSettings = AuditSettings()
    database: DatabaseSettings = DatabaseSettings()
    daemon: DaemonSettings = DaemonSettings()
    events: EventsSettings | None = None  # no [events] table: no change events
    notify: NotifySettings | None = None  # no [notify] table: no notifications
    classroom: ClassSettings = _DEFAULT_CLASS  # the file's [class] table ("class" is Python's own word)

    @property
    def rubric(self) -> Rubric:
        """The rubric of `[class] rubric`, read and validated when the file was loaded."""
        return self.classroom.loaded_rubric

    @table_rule(mode="after")
    def _labs_fit_together(self) -> Self:
        if not self.labs:
            raise Problem("no labs: add [[labs]] tables or a roster in [lab]", "labs")
        names: set[str] = set()
        for lab in self.labs:
            if lab.name in names:
                raise Problem(f"duplicate lab name {lab.name!r}", "labs")
            names.add(lab.name)
        _refuse_shared_accounts(self.labs)
        return self

    @table_rule(mode="after")
    def _replicas_fit(self) -> Self:
        """Replicas share their work through PostgreSQL, on audits due at the ticks of a cron schedule."""
        if self.daemon.mode != "replicas":
            return self
        from sqlalchemy.engine import make_url

        if make_url(self.database.url).get_backend_name() != "postgresql":
            raise Problem(
                "replicas share their work through PostgreSQL: set [database] url to a postgresql+psycopg:// URL",
                "daemon.mode",
            )
        if self.aws.endpoint_url == EMBEDDED:
            raise Problem(
                "replicas cannot share an emulator embedded in each of them: set [aws] endpoint_url",
                "daemon.mode",
            )
        if problem := check_schedulable(self.audit.interval):
            raise Problem(f"with replicas, {problem}", "audit.interval")
        return self

    def select(self, names: tuple[str, ...] | list[str]) -> tuple[LabConfig, ...]:
        """The labs named on the command line, or all of them; an unknown name is a usage error."""
        if not names:
            return self.labs
        known = {lab.name: lab for lab in self.labs}
        unknown = [n for n in names if n not in known]
        if unknown:
            hint = closest(unknown[0], set(known))
            raise ConfigError(
                self.path,
                "--lab",
                f"no lab named {', '.join(map(repr, unknown))} in the configuration"
                + (f" (did you mean {hint!r}?)" if hint else ""),
            )
        return tuple(known[n] for n in dict.fromkeys(names))


def _refuse_shared_accounts(labs: Sequence[LabConfig]) -> None:
    """Role and function names are fixed by the lab, so two labs on one side of an account would collide."""
    for side in ("origin", "destination"):
        owner: dict[str, str] = {}
        for lab in labs:
            account = getattr(lab, side).account_id
            if account in owner:
                raise Problem(
                    f"account {account} is the {side} of both {owner[account]!r} and {lab.name!r}", "labs"
                )
            owner[account] = lab.name


_NOT_IN_THE_FILE = frozenset({"path"})
# Tables whose field is named otherwise than the file's key: the file's [class] is `Config.classroom`.
_FILE_NAMES = {"classroom": "class"}


# ---------------------------------------------------------------------------------------- errors

# pydantic's error types for a value of the wrong type, as the types the operator was asked for.
_WRONG_TYPE: dict[str, tuple[type, ...]] = {
    "string_type": (str,),
    "int_type": (int,),
    "float_type": (int, float),
    "bool_type": (bool,),
    "tuple_type": (list,),
    "list_type": (list,),
    "frozen_set_type": (list,),
    "set_type": (list,),
}
_NOT_A_TABLE = {"dataclass_type", "dataclass_exact_type", "dict_type", "model_type"}
_UNKNOWN_KEY = {"unexpected_keyword_argument", "extra_forbidden"}


def _config_error(error: ValidationError, root: type, file: str, prefix: str) -> ConfigError:
    """The first problem pydantic found, in the words and with the dotted key of interface.md."""
    details: ErrorDetails = error.errors()[0]
    loc: list[str | int] = list(details["loc"])
    kind = details["type"]
    cause = details.get("ctx", {}).get("error")
    if isinstance(cause, Problem):
        problem = cause.problem
        loc += [cause.key] if cause.key else []
    elif kind in _UNKNOWN_KEY:
        hint = closest(str(loc[-1]), _keys_at(root, loc[:-1]))
        problem = "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
    elif kind == "missing":
        problem = "is missing"
    elif kind in _WRONG_TYPE:
        problem = _wrong_type(details["input"], *_WRONG_TYPE[kind]).problem
    elif kind in _NOT_A_TABLE:
        problem = f"must be a table, not {type(details['input']).__name__}"
    else:
        problem = details["msg"]
    if root is Config and loc and isinstance(loc[0], str):
        loc[0] = _FILE_NAMES.get(loc[0], loc[0])  # the key as the file spells it: class.built_by
    return ConfigError(file, _dotted(prefix, loc), problem)


def _dotted(prefix: str, loc: Sequence[str | int]) -> str:
    key = prefix
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key


def _table_class(kind: Any) -> type | None:
    """The table class inside a field's type (`X`, `X | None`, `tuple[X, ...]`)."""
    if isinstance(kind, type) and is_dataclass(kind):
        return kind
    return next((found for arg in get_args(kind) if (found := _table_class(arg)) is not None), None)


def _keys_at(root: type, loc: Sequence[str | int]) -> set[str]:
    """The keys the table at `loc` knows."""
    table: type | None = root
    for part in loc:
        if isinstance(part, str) and table is not None:
            table = _table_class(get_type_hints(table).get(part))
    if table is None:
        return set()
    names = {f.name for f in fields(table)}
    if table is Config:
        return {_FILE_NAMES.get(name, name) for name in names - _NOT_IN_THE_FILE}
    return names


_Table = TypeVar("_Table")


def unvalidated(kind: type[_Table], **values: Any) -> _Table:
    """A table holding values that no file may give, built without the file's rules: the operator's own
    credentials (whose account is not known) and the lab rendered for any account (`*`) by `auditor
    permissions`. Everything read from a file goes through `_validated`."""
    items = fields(kind)  # type: ignore[arg-type]
    missing = [f.name for f in items if f.name not in values and f.default is MISSING]
    if unknown := values.keys() - {f.name for f in items}:
        raise TypeError(f"{kind.__name__} has no field {', '.join(sorted(unknown))}")
    if missing:
        raise TypeError(f"{kind.__name__} needs {', '.join(missing)}")
    table = object.__new__(kind)
    for item in items:
        object.__setattr__(table, item.name, values.get(item.name, item.default))
    return table


def _validated(kind: type[_Table], data: object, file: str, prefix: str = "") -> _Table:
    try:
        return TypeAdapter(kind).validate_python(data)
    except ValidationError as error:
        raise _config_error(error, kind, file, prefix) from None


# ---------------------------------------------------------------------------------------- loading


def parse_duration(text: object, file: str, key: str) -> timedelta:
    try:
        return duration_of(text)
    except Problem as problem:
        raise ConfigError(file, key, problem.problem) from None


def check_database_url(url: str, file: str, key: str) -> None:
    """Refuse a URL that no installed driver serves, naming it (without any password)."""
    if problem := database_url_problem(url):
        raise ConfigError(file, key, problem)


_ROSTER_REQUIRED = ("name", "origin_account_id", "destination_account_id")
_ROSTER_SIDES = ("origin", "destination")
_ROSTER_ACCESS = ("role_arn", "external_id", "profile")
_ROSTER_OPTIONAL = (*(f"{side}_{key}" for side in _ROSTER_SIDES for key in _ROSTER_ACCESS), "expires_at")
# Every other column (student_name, student_email, ...) is kept as the lab's `info`; these two show
# wherever a lab does, so a header written for people ("Student Name") is read as their name too.
_ROSTER_SHOWN = ("student_name", "student_email")
_ROSTER_COLUMNS = (*_ROSTER_REQUIRED, *_ROSTER_OPTIONAL, *_ROSTER_SHOWN)


def _roster(path: Path) -> list[LabConfig]:
    """The labs of a roster CSV (as Excel writes it too: a byte-order mark, spaces after the commas,
    headers written for people); a problem names the file, the line and the column."""
    file = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            written = [_as_written(cell) for cell in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise ConfigError(file, "", "roster file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(file, "", f"cannot read the roster: {exc}") from None
    header = [_roster_column_named(cell) for cell in written]
    _check_roster_header(file, written, header)
    labs = [(number, _roster_row(file, number, header, row, written)) for number, row in rows]
    _refuse_roster_clashes(file, labs)
    return [lab for _, lab in labs]


def _as_written(cell: str) -> str:
    # A byte-order mark the decoder did not take (a file saved twice, or pasted together) is no letter.
    return cell.replace("\ufeff", "").strip()


def _roster_column_named(written: str) -> str:
    """The roster's column a header stands for ("Origin Account ID" is origin_account_id, "Student
    Name" student_name), or the header as written: a column of the class's own."""
    return next((column for column in _ROSTER_COLUMNS if same_name(written, column)), written)


def _check_roster_header(file: str, written: list[str], header: list[str]) -> None:
    named = [(cell, column) for cell, column in zip(written, header, strict=True) if cell]
    columns = [column for _, column in named]
    for column in sorted({column for column in columns if columns.count(column) > 1}):
        cells = [cell for cell, named_column in named if named_column == column]
        raise ConfigError(file, "line 1", f"{' and '.join(map(repr, cells))} are both column {column}")
    if missing := [column for column in _ROSTER_REQUIRED if column not in columns]:
        unknown = [cell for cell, column in named if column not in _ROSTER_COLUMNS]
        for column in missing:
            if hint := closest(column, unknown):
                raise ConfigError(
                    file,
                    f"line 1, column {hint!r}",
                    f"not a column the roster knows: did you mean {column}? "
                    f"(it needs {', '.join(_ROSTER_REQUIRED)})",
                )
        found = f" (the header has {', '.join(repr(cell) for cell, _ in named)})" if named else ""
        raise ConfigError(file, "line 1", f"missing column(s) {', '.join(missing)}{found}")


def _roster_row(file: str, number: int, header: list[str], row: list[str], written: list[str]) -> LabConfig:
    if len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
        raise ConfigError(
            file, f"line {number}", f"{len(row)} cells, but the header has {len(header)} columns"
        )
    cells = {column: cell.strip() for column, cell in zip(header, row, strict=False) if column}
    try:
        return TypeAdapter(LabConfig).validate_python(_roster_lab(cells))
    except ValidationError as error:
        problem = _config_error(error, LabConfig, file, "")
        column = _roster_column(problem.key)
        shown = written[header.index(column)] if column in header else column  # as the file spells it
        raise ConfigError(
            file, f"line {number}, column {shown if shown == column else repr(shown)}", problem.problem
        ) from None


def _roster_column(key: str) -> str:
    """The roster column a key of the lab's table comes from (`origin.account_id` → `origin_account_id`)."""
    parts = key.split(".")
    if parts[0] in _ROSTER_SIDES:
        return f"{parts[0]}_{parts[1]}" if len(parts) > 1 else f"{parts[0]}_*"
    return parts[-1] if parts[0] == "info" else parts[0]


def _roster_lab(cells: dict[str, str]) -> dict[str, object]:
    """One roster line as the [[labs]] table it stands for."""

    def side(prefix: str) -> dict[str, str]:
        account = {"account_id": cells.get(f"{prefix}_account_id", "")}
        return account | {key: value for key in _ROSTER_ACCESS if (value := cells.get(f"{prefix}_{key}", ""))}

    known = {*_ROSTER_REQUIRED, *_ROSTER_OPTIONAL}
    lab: dict[str, object] = {
        "name": cells.get("name", ""),
        "origin": side("origin"),
        "destination": side("destination"),
        "info": {column: value for column, value in cells.items() if column not in known},
    }
    return lab | ({"expires_at": expiry} if (expiry := cells.get("expires_at")) else {})


def _refuse_roster_clashes(file: str, labs: Sequence[tuple[int, LabConfig]]) -> None:
    """Two lines with one name, or sharing an account on one side, named by their lines in the CSV."""
    names: dict[str, int] = {}
    for number, lab in labs:
        if lab.name in names:
            raise ConfigError(
                file,
                f"line {number}, column name",
                f"duplicate lab name {lab.name!r} (also on line {names[lab.name]})",
            )
        names[lab.name] = number
    for side in _ROSTER_SIDES:
        owner: dict[str, tuple[int, str]] = {}
        for number, lab in labs:
            account = getattr(lab, side).account_id
            if account in owner:
                line, name = owner[account]
                raise ConfigError(
                    file,
                    f"line {number}, column {side}_account_id",
                    f"account {account} is the {side} of both {name!r} (line {line}) and {lab.name!r}",
                )
            owner[account] = (number, lab.name)


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the whole file; raise ConfigError on the first problem."""
    env = os.environ if env is None else env
    file_path = Path(path or env.get("AUDITOR_CONFIG") or DEFAULT_CONFIG_PATH)
    file = str(file_path)
    try:
        data = tomllib.loads(file_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"TOML syntax error: {exc}") from None
    return config_from(data, file, file_path.parent, env)


def config_from(
    data: Mapping[str, Any], file: str, config_dir: Path = Path("."), env: Mapping[str, str] | None = None
) -> Config:
    """A parsed TOML document as a Config; `file` names it in errors, a roster is read beside it."""
    _refuse_keys_not_in_the_file(data, file)
    labs = data.get("labs", [])
    if isinstance(labs, list):  # anything else is the validation's to report
        labs = [*labs, *_roster_labs(data, config_dir)]
    document = {**data, "path": file, "labs": labs}
    database = data.get("database", {})
    if url := (env or {}).get("AUDITOR_DATABASE_URL"):
        check_database_url(url, "environment", "AUDITOR_DATABASE_URL")
        if isinstance(database, Mapping):  # a path in the variable is the shell's: the current folder's
            document["database"] = {**database, "url": sqlite_path_from(url, Path.cwd())}
    elif isinstance(database, Mapping) and isinstance(url := database.get("url", DEFAULT_DATABASE_URL), str):
        document["database"] = {**database, "url": sqlite_path_from(url, config_dir)}
    for field_name, name in _FILE_NAMES.items():
        if name in document:
            document[field_name] = document.pop(name)
    if isinstance(notify := data.get("notify"), Mapping):
        document["notify"] = _with_urls_from_the_environment(notify, file, env or {})
    config = _validated(Config, document, file)
    _load_the_rubric(config.classroom, file, config_dir)
    return config


def _with_urls_from_the_environment(notify: Mapping[str, Any], file: str, env: Mapping[str, str]) -> Any:
    """`[notify] urls_env` names a variable of space-separated URLs: checked there (naming the
    variable, never the URL), then appended to the file's own."""
    name, urls = notify.get("urls_env"), notify.get("urls", [])
    if not isinstance(name, str) or not name or not _ENV_NAME.match(name) or not isinstance(urls, list):
        return notify  # the validation reports what is wrong with them
    from_env = env.get(name, "").split()
    for number, url in enumerate(from_env, start=1):
        if problem := notify_url_problem(url):
            raise ConfigError("environment", f"{name} (URL {number})", problem)
    return {**notify, "urls": [*urls, *from_env]}


def _refuse_keys_not_in_the_file(data: Mapping[str, Any], file: str) -> None:
    for name in sorted({*_NOT_IN_THE_FILE, *_FILE_NAMES} & data.keys()):
        hint = _FILE_NAMES.get(name) or closest(name, _keys_at(Config, []))
        raise ConfigError(file, name, "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))


def _load_the_rubric(settings: ClassSettings, file: str, config_dir: Path) -> None:
    """Read and validate the rubric `[class] rubric` names (a file: relative to the configuration's
    folder) and keep it with the settings; a problem names the rubric file and its key."""
    if settings.rubric == GUIDE:
        rubric = shipped_rubric()
    else:
        path = config_dir / settings.rubric
        if not path.is_file():
            raise ConfigError(
                file,
                "class.rubric",
                f"no rubric file {str(path)!r} "
                f'(use "{GUIDE}" or the path of a rubric TOML file, relative to this file\'s folder)',
            )
        try:
            rubric = load_rubric(path, name=settings.rubric)
        except RubricError as error:
            raise ConfigError(error.file, error.key, error.problem) from None
    if settings is not _DEFAULT_CLASS:  # the default table is shared: it finds the guide by itself
        object.__setattr__(settings, _LOADED_RUBRIC, rubric)


def _roster_labs(data: Mapping[str, Any], config_dir: Path) -> list[LabConfig]:
    """The labs of `[lab] roster`, when it names a file (a wrong value is the validation's to report)."""
    lab = data.get("lab")
    roster = lab.get("roster") if isinstance(lab, Mapping) else None
    if not isinstance(roster, str) or not roster:
        return []
    return _roster(config_dir / roster)


def lab_expiry(lab: LabConfig, settings: LabSettings, provisioned_at: datetime | None) -> datetime | None:
    """A lab's end: its own expires_at, else provisioning time plus the ttl."""
    if lab.expires_at is not None:
        return lab.expires_at
    return provisioned_at + settings.ttl if provisioned_at is not None else None
