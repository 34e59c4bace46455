"""`config.toml`: loaded and validated once into frozen typed values.

Every problem is reported as a `ConfigError` naming the file, the key and what is wrong, before
anything is touched (interface.md). The CLI turns it into exit code 2.
"""

from __future__ import annotations

import csv
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from auditor.model import Severity

DEFAULT_CONFIG_PATH = "config.toml"
EMBEDDED = "embedded"

InvokeVia = Literal["auto", "lambda", "local"]

ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_LAB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RUNTIME = re.compile(r"^python3\.(\d+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(Exception):
    """A configuration problem: which file, which key, what is wrong."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class AccountAccess:
    """How to reach one account: a profile, a role to assume, or the operator's own credentials."""

    account_id: str
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.account_id, self.profile, self.role_arn)


@dataclass(frozen=True)
class LabConfig:
    name: str
    origin: AccountAccess
    destination: AccountAccess
    expires_at: datetime | None = None

    @property
    def single_account(self) -> bool:
        return self.origin.account_id == self.destination.account_id


@dataclass(frozen=True)
class LabSettings:
    region: str = "us-east-1"
    ttl: timedelta = timedelta(hours=8)
    runtime: str = "python3.12"
    log_retention_days: int = 7


@dataclass(frozen=True)
class AwsSettings:
    # None: real AWS; "embedded": a moto server inside the process; otherwise an http(s) URL.
    endpoint_url: str | None = EMBEDDED
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    @property
    def emulated(self) -> bool:
        return self.endpoint_url is not None


@dataclass(frozen=True)
class AuditSettings:
    interval: timedelta = timedelta(minutes=5)
    invoke: bool = True
    invoke_via: InvokeVia = "auto"
    concurrency: int = 16


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///auditor.db"
    keep: timedelta | None = timedelta(days=90)


@dataclass(frozen=True)
class EventsSettings:
    """Change events: an EventBridge rule in each lab account delivering to the operator's SQS queue."""

    queue_url: str = ""
    wait_seconds: int = 10
    coalesce: timedelta = timedelta(seconds=2)


@dataclass(frozen=True)
class DaemonSettings:
    health_port: int = 8080
    health_host: str = "127.0.0.1"
    # The NAME of the environment variable holding the page's token (needed when bound off loopback).
    web_token_env: str = ""
    jitter: timedelta = timedelta(seconds=30)
    reconcile_interval: timedelta = timedelta(minutes=1)
    stop_timeout: timedelta = timedelta(seconds=20)


class NotifyEvent(StrEnum):
    """The transitions of a lab that `[notify] on` may name (interface.md, "Notifications")."""

    BROKEN = "broken"
    DRIFTED = "drifted"
    ERROR = "error"
    RECOVERED = "recovered"
    TEARDOWN_FAILED = "teardown_failed"


@dataclass(frozen=True)
class NotifySettings:
    """Where and when to notify. The URLs hold secrets (tokens, passwords): never log or show them."""

    urls: tuple[str, ...] = field(default=(), repr=False)  # from `urls` and then from `urls_env`
    urls_env: str = ""
    on: frozenset[NotifyEvent] = frozenset(NotifyEvent)
    min_severity: Severity = Severity.HIGH
    page_url: str = ""  # the page's address as people reach it; "" derives it from [daemon]


@dataclass(frozen=True)
class Config:
    path: str
    labs: tuple[LabConfig, ...]
    lab: LabSettings = LabSettings()
    aws: AwsSettings = AwsSettings()
    audit: AuditSettings = AuditSettings()
    database: DatabaseSettings = DatabaseSettings()
    daemon: DaemonSettings = DaemonSettings()
    events: EventsSettings | None = None
    notify: NotifySettings | None = None

    def select(self, names: tuple[str, ...] | list[str]) -> tuple[LabConfig, ...]:
        """The labs named on the command line, or all of them; an unknown name is a usage error."""
        if not names:
            return self.labs
        known = {lab.name: lab for lab in self.labs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                self.path, "--lab", f"no lab named {', '.join(map(repr, unknown))} in the configuration"
            )
        return tuple(known[n] for n in dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------- parsing


def parse_duration(text: object, file: str, key: str) -> timedelta:
    if not isinstance(text, str) or not (match := _DURATION.match(text.strip())):
        raise ConfigError(file, key, f"{text!r} is not a duration (write it like 90s, 5m, 8h or 2d)")
    amount = int(match.group(1))
    if amount == 0:
        raise ConfigError(file, key, f"{text!r} must be longer than zero")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: amount})


def parse_timestamp(text: object, file: str, key: str) -> datetime:
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, str):
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                file, key, f"{text!r} is not a timestamp (write it like 2026-12-01T17:00:00Z)"
            ) from None
    else:
        raise ConfigError(file, key, f"{text!r} is not a timestamp (write it like 2026-12-01T17:00:00Z)")
    if moment.tzinfo is None:
        raise ConfigError(file, key, f"{text!s} has no time zone (end it with Z for UTC)")
    return moment.astimezone(UTC)


_TYPE_NAMES = {
    str: "a string (in quotes)",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    datetime: "a timestamp",
}


class _Table:
    """A TOML table read key by key, so that unknown keys (typos) can be refused afterwards."""

    def __init__(self, raw: object, file: str, key: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(file, key, f"must be a table, not {type(raw).__name__}")
        self.raw, self.file, self.key = raw, file, key
        self.read: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.read.add(name)
        if name not in self.raw:
            return default
        value = self.raw[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            kinds = (kind,) if isinstance(kind, type) else kind
            wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise ConfigError(self.file, self.path(name), f"must be {wanted}, not {value!r}")
        return value

    def table(self, name: str) -> _Table:
        self.read.add(name)
        return _Table(self.raw.get(name, {}), self.file, self.path(name))

    def refuse_unknown(self) -> None:
        for name in self.raw:
            if name not in self.read:
                hint = _closest(name, self.read)
                raise ConfigError(
                    self.file, self.path(name), "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
                )


def _closest(name: str, known: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, sorted(known), n=1)
    return matches[0] if matches else None


def _account(raw: object, file: str, key: str) -> AccountAccess:
    table = _Table(raw, file, key)
    account_id = _account_id(table.get("account_id", object), file, table.path("account_id"))
    profile = table.get("profile", str) or None
    role_arn = table.get("role_arn", str) or None
    external_id = table.get("external_id", str) or None
    table.refuse_unknown()
    if profile and role_arn:
        raise ConfigError(file, key, "give either profile or role_arn, not both")
    if role_arn:
        _check_role_arn(role_arn, account_id, file, table.path("role_arn"))
    if external_id is not None and not EXTERNAL_ID_PATTERN.match(external_id):
        raise ConfigError(
            file, table.path("external_id"), "must be 2 to 1224 characters of letters, digits and +=,.@:/-"
        )
    if external_id and not role_arn:
        raise ConfigError(file, table.path("external_id"), "an external_id needs a role_arn to go with it")
    return AccountAccess(account_id, profile, role_arn, external_id)


def _account_id(value: object, file: str, key: str) -> str:
    if not isinstance(value, str) or not ACCOUNT_ID_PATTERN.match(value):
        raise ConfigError(file, key, f"{value!r} is not an AWS account id (12 digits, as a string)")
    return value


def _check_role_arn(arn: str, account_id: str, file: str, key: str) -> None:
    match = _ROLE_ARN.match(arn)
    if not match:
        raise ConfigError(file, key, f"{arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    if match.group(1) != account_id:
        raise ConfigError(file, key, f"{arn!r} is a role of account {match.group(1)}, not of {account_id}")


def _lab(raw: object, file: str, key: str) -> LabConfig:
    table = _Table(raw, file, key)
    name = table.get("name", str)
    if name is None or not _LAB_NAME.match(name):
        raise ConfigError(
            file,
            table.path("name"),
            f"{name!r} is not a lab name (letters, digits, '-', '_', '.'; at most 64)",
        )
    if "origin" not in table.raw:
        raise ConfigError(file, table.path("origin"), "is missing")
    table.read.update({"origin", "destination"})
    origin = _account(table.raw["origin"], file, table.path("origin"))
    destination = (
        _account(table.raw["destination"], file, table.path("destination"))
        if "destination" in table.raw
        else origin
    )
    raw_expiry = table.get("expires_at", (str, datetime))
    expires_at = parse_timestamp(raw_expiry, file, table.path("expires_at")) if raw_expiry else None
    table.refuse_unknown()
    return LabConfig(name, origin, destination, expires_at)


_ROSTER_REQUIRED = ("name", "origin_account_id", "destination_account_id")
_ROSTER_OPTIONAL = ("origin_role_arn", "destination_role_arn", "expires_at")


def _roster(path: Path) -> tuple[LabConfig, ...]:
    file = str(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise ConfigError(file, "", "roster file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(file, "", f"cannot read the roster: {exc}") from None
    missing = [c for c in _ROSTER_REQUIRED if c not in columns]
    if missing:
        raise ConfigError(file, "header", f"missing column(s) {', '.join(missing)}")
    unknown = [c for c in columns if c not in _ROSTER_REQUIRED + _ROSTER_OPTIONAL]
    if unknown:
        raise ConfigError(file, "header", f"unknown column(s) {', '.join(unknown)}")
    return tuple(_roster_row(row, file, f"line {number}") for number, row in enumerate(rows, start=2))


def _roster_row(row: dict[str, str], file: str, where: str) -> LabConfig:
    def side(prefix: str) -> dict[str, str]:
        account: dict[str, str] = {"account_id": (row.get(f"{prefix}_account_id") or "").strip()}
        if arn := (row.get(f"{prefix}_role_arn") or "").strip():
            account["role_arn"] = arn
        return account

    raw: dict[str, object] = {
        "name": (row.get("name") or "").strip(),
        "origin": side("origin"),
        "destination": side("destination"),
    }
    if expiry := (row.get("expires_at") or "").strip():
        raw["expires_at"] = expiry
    return _lab(raw, file, where)


def _labs(top: _Table, settings: _Table, config_dir: Path) -> tuple[LabConfig, ...]:
    file = top.file
    labs: list[LabConfig] = []
    raw_labs = top.get("labs", list, [])
    for index, raw in enumerate(raw_labs):
        labs.append(_lab(raw, file, f"labs[{index}]"))
    roster = settings.get("roster", str)
    if roster:
        labs.extend(_roster(config_dir / roster))
    if not labs:
        raise ConfigError(file, "labs", "no labs: add [[labs]] tables or a roster in [lab]")
    seen: set[str] = set()
    for lab in labs:
        if lab.name in seen:
            raise ConfigError(file, "labs", f"duplicate lab name {lab.name!r}")
        seen.add(lab.name)
    _refuse_shared_accounts(labs, file)
    return tuple(labs)


def _refuse_shared_accounts(labs: list[LabConfig], file: str) -> None:
    """Role and function names are fixed by the lab, so two labs on one side of an account would collide."""
    for side in ("origin", "destination"):
        owner: dict[str, str] = {}
        for lab in labs:
            account = getattr(lab, side).account_id
            if account in owner:
                raise ConfigError(
                    file,
                    "labs",
                    f"account {account} is the {side} of both {owner[account]!r} and {lab.name!r}",
                )
            owner[account] = lab.name


def _lab_settings(table: _Table) -> LabSettings:
    file = table.file
    region = table.get("region", str, "us-east-1")
    if not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", region):
        raise ConfigError(file, table.path("region"), f"{region!r} is not an AWS region name")
    runtime = table.get("runtime", str, "python3.12")
    runtime_match = _RUNTIME.match(runtime)
    if not runtime_match or int(runtime_match.group(1)) < 12:
        raise ConfigError(
            file, table.path("runtime"), f"{runtime!r}: use a supported Python runtime, python3.12 or newer"
        )
    retention = table.get("log_retention_days", int, 7)
    if retention not in _LOG_RETENTION_DAYS:
        raise ConfigError(
            file, table.path("log_retention_days"), f"{retention} is not a CloudWatch retention period"
        )
    return LabSettings(
        region=region,
        ttl=parse_duration(table.get("ttl", str, "8h"), file, table.path("ttl")),
        runtime=runtime,
        log_retention_days=retention,
    )


_LOG_RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557}


def _aws_settings(table: _Table) -> AwsSettings:
    file = table.file
    endpoint = table.get("endpoint_url", str, EMBEDDED).strip()
    if endpoint and endpoint != EMBEDDED and not re.match(r"^https?://[^\s/]+", endpoint):
        raise ConfigError(
            file, table.path("endpoint_url"), f'{endpoint!r}: use "embedded", "" or an http(s) URL'
        )
    attempts = table.get("max_attempts", int, 5)
    if not 1 <= attempts <= 20:
        raise ConfigError(file, table.path("max_attempts"), f"{attempts} must be between 1 and 20")
    return AwsSettings(
        endpoint_url=endpoint or None,
        max_attempts=attempts,
        connect_timeout=float(table.get("connect_timeout", (int, float), 5)),
        read_timeout=float(table.get("read_timeout", (int, float), 30)),
    )


def _audit_settings(table: _Table) -> AuditSettings:
    file = table.file
    invoke_via = table.get("invoke_via", str, "auto")
    if invoke_via not in ("auto", "lambda", "local"):
        raise ConfigError(file, table.path("invoke_via"), f'{invoke_via!r}: use "auto", "lambda" or "local"')
    concurrency = table.get("concurrency", int, 16)
    if not 1 <= concurrency <= 256:
        raise ConfigError(file, table.path("concurrency"), f"{concurrency} must be between 1 and 256")
    return AuditSettings(
        interval=parse_duration(table.get("interval", str, "5m"), file, table.path("interval")),
        invoke=table.get("invoke", bool, True),
        invoke_via=invoke_via,
        concurrency=concurrency,
    )


def _database_settings(table: _Table, env: Mapping[str, str]) -> DatabaseSettings:
    file = table.file
    url = table.get("url", str, "sqlite:///auditor.db")
    key = table.path("url")
    if env.get("AUDITOR_DATABASE_URL"):
        url, file, key = env["AUDITOR_DATABASE_URL"], "environment", "AUDITOR_DATABASE_URL"
    check_database_url(url, file, key)
    keep_raw = table.get("keep", str, "90d")
    keep = None if keep_raw in ("", "forever") else parse_duration(keep_raw, table.file, table.path("keep"))
    return DatabaseSettings(url=url, keep=keep)


def check_database_url(url: str, file: str, key: str) -> None:
    """Refuse a URL that no installed driver serves, naming it (without any password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            file, key, "is not a database URL (sqlite:///file.db or postgresql+psycopg://...)"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise ConfigError(
            file, key, f"{shown!r}: no installed driver serves it (use sqlite:/// or postgresql+psycopg://)"
        ) from None


def _events_settings(top: _Table) -> EventsSettings | None:
    if "events" not in top.raw:
        top.read.add("events")
        return None
    table = top.table("events")
    settings = EventsSettings(
        queue_url=table.get("queue_url", str, ""),
        wait_seconds=table.get("wait_seconds", int, 10),
        coalesce=parse_duration(table.get("coalesce", str, "2s"), table.file, table.path("coalesce")),
    )
    if not 0 <= settings.wait_seconds <= 20:
        raise ConfigError(
            table.file, table.path("wait_seconds"), "must be between 0 and 20 (the SQS long-poll limit)"
        )
    table.refuse_unknown()
    return settings


def _daemon_settings(table: _Table) -> DaemonSettings:
    file = table.file
    port = table.get("health_port", int, 8080)
    if not 0 <= port <= 65535:
        raise ConfigError(file, table.path("health_port"), f"{port} is not a port (0 turns the endpoint off)")
    token_env = table.get("web_token_env", str, "")
    if token_env and not _ENV_NAME.match(token_env):
        raise ConfigError(
            file, table.path("web_token_env"), f"{token_env!r} is not the name of an environment variable"
        )
    return DaemonSettings(
        health_port=port,
        health_host=table.get("health_host", str, "127.0.0.1"),
        web_token_env=token_env,
        jitter=_optional_duration(table, "jitter", "30s"),
        reconcile_interval=parse_duration(
            table.get("reconcile_interval", str, "1m"), file, table.path("reconcile_interval")
        ),
        stop_timeout=parse_duration(table.get("stop_timeout", str, "20s"), file, table.path("stop_timeout")),
    )


def _notify_settings(top: _Table, env: Mapping[str, str]) -> NotifySettings | None:
    if "notify" not in top.raw:
        top.read.add("notify")
        return None
    table = top.table("notify")
    file = table.file
    urls = _strings(table, "urls")
    for index, url in enumerate(urls):
        _check_notify_url(url, file, f"{table.path('urls')}[{index}]")
    urls_env = table.get("urls_env", str, "")
    if urls_env:
        if not _ENV_NAME.match(urls_env):
            raise ConfigError(
                file, table.path("urls_env"), f"{urls_env!r} is not the name of an environment variable"
            )
        from_env = env.get(urls_env, "").split()
        for index, url in enumerate(from_env):
            _check_notify_url(url, "environment", f"{urls_env} (URL {index + 1})")
        urls = [*urls, *from_env]
    settings = NotifySettings(
        urls=tuple(urls),
        urls_env=urls_env,
        on=frozenset(_notify_events(table)),
        min_severity=_severity(table, "min_severity", Severity.HIGH),
        page_url=_page_url(table),
    )
    table.refuse_unknown()
    return settings


def _strings(table: _Table, name: str) -> list[str]:
    values: list[object] = table.get(name, list, [])
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ConfigError(table.file, f"{table.path(name)}[{index}]", f"must be a string, not {value!r}")
    return [str(value) for value in values]


def _check_notify_url(url: str, file: str, key: str) -> None:
    """Apprise knows every service's URL form; the URL itself is never repeated (it may hold a secret)."""
    import apprise  # here, not at the top: only a [notify] section needs its 0.2 s of imports

    if apprise.Apprise.instantiate(url) is None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        what = f"a {scheme}:// URL" if scheme.isalnum() and len(scheme) <= 20 else "this"
        raise ConfigError(
            file, key, f"{what} is not a notification URL Apprise can send to (the value is not shown)"
        )


def _notify_events(table: _Table) -> list[NotifyEvent]:
    names = _strings(table, "on") if "on" in table.raw else [event.value for event in NotifyEvent]
    known = {event.value for event in NotifyEvent}
    for index, name in enumerate(names):
        if name not in known:
            hint = _closest(name, known)
            raise ConfigError(
                table.file,
                f"{table.path('on')}[{index}]",
                f"{name!r} is not a notification event (use {', '.join(e.value for e in NotifyEvent)})"
                + (f"; did you mean {hint!r}?" if hint else ""),
            )
    return [NotifyEvent(name) for name in names]


def _severity(table: _Table, name: str, default: Severity) -> Severity:
    value = table.get(name, str, default.value)
    if value not in {severity.value for severity in Severity}:
        raise ConfigError(
            table.file,
            table.path(name),
            f"{value!r} is not a severity (use {', '.join(s.value for s in Severity)})",
        )
    return Severity(value)


def _page_url(table: _Table) -> str:
    url = table.get("page_url", str, "").strip().rstrip("/")
    if url and not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
        raise ConfigError(table.file, table.path("page_url"), f"{url!r} is not an http(s) URL")
    return url


def _optional_duration(table: _Table, name: str, default: str) -> timedelta:
    raw = table.get(name, str, default)
    return timedelta(0) if raw in ("0", "0s") else parse_duration(raw, table.file, table.path(name))


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
    return _config_from(data, file, file_path.parent, env)


def _config_from(data: dict[str, Any], file: str, config_dir: Path, env: Mapping[str, str]) -> Config:
    top = _Table(data, file, "")
    lab_table = top.table("lab")
    lab_settings = _lab_settings(lab_table)
    labs = _labs(top, lab_table, config_dir)
    lab_table.refuse_unknown()
    sections = {name: top.table(name) for name in ("aws", "audit", "database", "daemon")}
    config = Config(
        path=file,
        labs=labs,
        lab=lab_settings,
        aws=_aws_settings(sections["aws"]),
        audit=_audit_settings(sections["audit"]),
        database=_database_settings(sections["database"], env),
        daemon=_daemon_settings(sections["daemon"]),
        events=_events_settings(top),
        notify=_notify_settings(top, env),
    )
    for table in sections.values():
        table.refuse_unknown()
    top.refuse_unknown()
    return config


def lab_expiry(lab: LabConfig, settings: LabSettings, provisioned_at: datetime | None) -> datetime | None:
    """A lab's end: its own expires_at, else provisioning time plus the ttl."""
    if lab.expires_at is not None:
        return lab.expires_at
    return provisioned_at + settings.ttl if provisioned_at is not None else None
