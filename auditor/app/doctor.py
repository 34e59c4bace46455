"""`auditor doctor`: before class, each account checked as the daemon will use it.

What is checked: the operator's credentials (where they come from), AWS's clock against this machine's
(SigV4 refuses a request more than 5 minutes off), each account reached as configured (the role assumed
with its external id, a profile, or the operator's own credentials), each API call the daemon makes
there allowed, and with `[events]` the change events' wiring (the operator's queue, rule and bus policy;
each lab account's rules and a trail logging its management events).

How the calls are checked: on AWS, with IAM's policy simulator (`iam:SimulatePrincipalPolicy` on the
role's ARN, with the actions and the lab's resources: identity policies, boundary and SCPs as IAM
evaluates them; the daemon's policy lets the role simulate itself only). An emulator enforces no IAM and
has no simulator (moto answers it with an error): there the role's own documents are read and judged by
the project's policy engine (auditor.policy): the role exists, its trust admits the operator with the
configured external id, its policies and boundary allow each call. The diagnosis says which was used.

What a problem is and the sentence that fixes it are here, as values; auditor/cli/doctor.py prints them
and chooses the exit code.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from auditor.app.context import Context, open_context
from auditor.app.fleet import describe_fault
from auditor.app.target import LabClients, LabTarget
from auditor.aws.accounts import HOW_TO_SUPPLY_CREDENTIALS, OPERATOR, AccountAccessError
from auditor.aws.preflight import (
    CredentialSource,
    NoSimulator,
    OperatorWiring,
    RoleDocuments,
    aws_clock,
    credential_source,
    operator_wiring,
    role_documents,
    role_name_of,
    simulated_decisions,
)
from auditor.common.clock import utc_now
from auditor.common.errors import LabFault
from auditor.domain.config import DEFAULT_CONFIG_PATH, AccountAccess, Config, LabConfig
from auditor.domain.spec import EVENT_RULE, EventRuleSpec
from auditor.policy import PolicyError, is_allowed, parse_policy, permission_boundary_allows
from auditor.resources.base import ApiCall, Caller, Part
from auditor.resources.kinds.event_rule import collect_event_rule, compare_event_rule
from auditor.resources.kinds.trail import collect_coverage
from auditor.resources.permissions import CHECKS_THE_DAEMON, PolicyPart, api_calls

# AWS refuses a SigV4 request signed more than 5 minutes from its own clock.
MAX_SKEW = timedelta(minutes=5)
ROLE_TEMPLATE = "lab-auditor-role.yaml"
REAL_CLASS = "docs/real-class.md"


class Check(StrEnum):
    """What the doctor checks, in the order it reports them."""

    CREDENTIALS = "credentials"
    CLOCK = "clock"
    ROLE = "role"
    PERMISSIONS = "permissions"
    EVENTS = "events"


CHECK_ORDER = tuple(Check)


@dataclass(frozen=True)
class Problem:
    """Something that stops or weakens the daemon, where (`subjects`: the operator, or accounts), and the
    command or the setting that fixes it."""

    check: Check
    subjects: tuple[str, ...]
    message: str
    fix: str


@dataclass(frozen=True)
class Unchecked:
    """A check that could not be made, why, and what would make it possible (not a problem as such)."""

    check: Check
    subjects: tuple[str, ...]
    reason: str
    how: str


@dataclass(frozen=True)
class Diagnosis:
    config_path: str
    where: str  # "real AWS (us-east-1)", "the emulator at http://..."
    labs: int
    accounts: int
    # One line a check: how it was made and what it found (the problems are below).
    facts: tuple[tuple[Check, str], ...]
    problems: tuple[Problem, ...]
    unchecked: tuple[Unchecked, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            by_check = ", ".join(
                f"{count} {check}"
                for check in CHECK_ORDER
                if (count := sum(1 for p in self.problems if p.check is check))
            )
            them = "them" if len(self.problems) > 1 else "it"
            said = f"{plural(len(self.problems), 'problem')} ({by_check}): fix {them}, then run auditor doctor again"
        else:
            said = (
                f"No problems: {plural(self.labs, 'lab')} in {plural(self.accounts, 'account')} "
                "ready for the daemon"
            )
        if self.unchecked:
            said += f"; {plural(len(self.unchecked), 'check')} could not be made"
        return said + "."


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# ----------------------------------------------------------------------------------- the daemon's calls


def daemon_calls(config: Config) -> tuple[ApiCall, ...]:
    """The calls the daemon makes in a lab account: `auditor permissions --part daemon`'s, for who builds
    the class (auditor/resources/permissions.py), without the function's runs when `[audit] invoke` is
    off, and without the doctor's own simulation (which the part grants, for this check)."""
    calls = api_calls(PolicyPart.DAEMON, config.classroom.built_by, caller=Caller.LAB_ACCOUNT)
    return tuple(
        call
        for call in calls
        if (config.audit.invoke or call.parts != {Part.INVOKE}) and not call.parts <= CHECKS_THE_DAEMON
    )


def concrete_resource(pattern: str, account_id: str, region: str) -> str:
    """A policy's resource pattern for one account: the lab's region and the account where it says *."""
    parts = pattern.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return pattern
    if parts[3] == "*":
        parts[3] = region
    if parts[4] == "*":
        parts[4] = account_id
    return ":".join(parts)


# Actions IAM allows every caller whatever its policies say.
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})


def daemon_requests(calls: Iterable[ApiCall], account_id: str, region: str) -> list[tuple[str, str]]:
    """Each (action, resource) the daemon's calls need in the account, once, in the calls' order."""
    requests = {
        (grant.action, concrete_resource(resource, account_id, region)): None
        for call in calls
        for grant in call.grants
        if grant.action not in ALWAYS_ALLOWED
        for resource in grant.scope.resources
    }
    return list(requests)


# ----------------------------------------------------------------------------------- pure judgements


def skew_of(local: datetime, aws_date: datetime) -> timedelta:
    """How far this machine's clock is ahead of AWS's (behind: negative). A Date header has whole
    seconds, cut off: AWS's clock was half a second past it, on average."""
    return local - (aws_date + timedelta(seconds=0.5))


def clock_problem(skew: timedelta) -> Problem | None:
    if abs(skew) < MAX_SKEW:
        return None
    return Problem(
        Check.CLOCK,
        ("this machine",),
        f"its clock is {duration_words(abs(skew))} {'ahead of' if skew > timedelta(0) else 'behind'} "
        "AWS's: AWS refuses requests signed more than 5 minutes off",
        "set the clock by NTP (sudo timedatectl set-ntp true; or sudo chronyc makestep)",
    )


def duration_words(span: timedelta) -> str:
    seconds = round(span.total_seconds())  # AWS's Date has whole seconds
    if seconds < 60:
        return f"{span.total_seconds():.1f} s"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return " ".join(f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (seconds, "s")) if n)


_ORIGINS = {
    "env": "the environment (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "the credentials file (~/.aws/credentials)",
    "config-file": "the config file (~/.aws/config)",
    "sso": "an IAM Identity Center (SSO) sign-in",
    "login": "an AWS sign-in (aws login)",
    "assume-role": "a role the profile assumes",
    "custom-process": "the profile's credential_process",
    "assume-role-with-web-identity": "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "iam-role": "this instance's role (instance metadata)",
    "container-role": "the container's task role",
}

HOW_TO_SUPPLY = f"{HOW_TO_SUPPLY_CREDENTIALS} ({REAL_CLASS}, the operator's credentials)"


def credential_origin(source: CredentialSource) -> str:
    origin = _ORIGINS.get(source.method or "", f"botocore's {source.method!r}")
    if source.profile and source.method not in ("env", "iam-role", "container-role"):
        return f"profile {source.profile!r}, {origin}"
    return origin


def no_credentials_problem(source: CredentialSource) -> Problem:
    if source.problem:
        named = f" (AWS_PROFILE={source.profile})" if source.profile else ""
        return Problem(
            Check.CREDENTIALS,
            ("the operator",),
            f"no AWS credentials: {source.problem}{named}",
            f"create the profile (aws configure sso --profile {source.profile or 'NAME'}), or unset "
            "AWS_PROFILE and export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    return Problem(
        Check.CREDENTIALS,
        ("the operator",),
        "no AWS credentials found (none in the environment, no profile, no instance or container role)",
        HOW_TO_SUPPLY,
    )


# The answers that mean the credentials themselves are refused, and those that mean a sign-in ran out.
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"}
_SIGN_IN_OVER = {"UnauthorizedSSOTokenError", "SSOTokenLoadError", "TokenRetrievalError", "SSOError"}
_CLOCK_CODES = {
    "SignatureDoesNotMatch",
    "RequestExpired",
    "RequestTimeTooSkewed",
    "InvalidSignatureException",
}


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return type(error).__name__


def refused_credentials_problem(
    subject: str, origin: str, error: BaseException, profile: str | None
) -> Problem:
    """The credentials are there but AWS (or the sign-in behind them) refused them."""
    code = error_code(error)
    if code in _SIGN_IN_OVER or code in _EXPIRED:
        fix = (
            f"sign in again: aws sso login --profile {profile}"
            if profile
            else "renew them (a new session: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)"
        )
        return Problem(
            Check.CREDENTIALS, (subject,), f"the credentials from {origin} have expired ({code})", fix
        )
    if code == "EndpointConnectionError" or code == "ConnectTimeoutError":
        return Problem(
            Check.CREDENTIALS,
            (subject,),
            f"AWS could not be reached to check the credentials from {origin}: {describe_fault(error)}",
            "check the network or the proxy (HTTPS_PROXY), and [aws] endpoint_url in the configuration",
        )
    return Problem(
        Check.CREDENTIALS,
        (subject,),
        f"AWS refused the credentials from {origin}: {describe_fault(error)}",
        f"sign in again (aws sso login --profile {profile})" if profile else HOW_TO_SUPPLY,
    )


def config_command(config_path: str, words: str) -> str:
    """An `auditor` command for this configuration, runnable as shown."""
    flag = "" if config_path == DEFAULT_CONFIG_PATH else f" --config {shlex.quote(config_path)}"
    head, _, rest = words.partition(" ")
    return f"auditor {head}{flag}{(' ' + rest) if rest else ''}"


def role_rollout(config_path: str) -> str:
    """How the lab-account role reaches the accounts: the template of the daemon's part, as a StackSet."""
    template = config_command(config_path, "permissions --format cloudformation --part daemon")
    return (
        f"roll out the lab-account role ({template} > {ROLE_TEMPLATE}, as a StackSet: {REAL_CLASS}, step 4)"
    )


def unassumable_problem(
    account: Account, operator_arn: str | None, error: BaseException, config_path: str
) -> Problem:
    """AssumeRole refused: on AWS, the role is not there, or its trust does not admit the operator with
    the external id given (AWS does not say which)."""
    access = account.access
    who = operator_arn or "the operator's credentials"
    external = "with the configured external id" if access.external_id else "without an external id"
    return Problem(
        Check.ROLE,
        (account.subject,),
        f"role {access.role_arn} cannot be assumed by {who} {external} ({describe_fault(error)}): "
        "it does not exist, or its trust does not admit that principal and external id",
        f"{role_rollout(config_path)}; or correct the account's role_arn and external_id in the "
        "configuration (or its roster)",
    )


def missing_role_problem(account: Account, config_path: str) -> Problem:
    access = account.access
    assert access.role_arn is not None
    return Problem(
        Check.ROLE,
        (account.subject,),
        f"role {role_name_of(access.role_arn)} does not exist in the account (an emulator lets the "
        "daemon in anyway; AWS would not)",
        f"{role_rollout(config_path)}; or correct the account's role_arn in the configuration (or its roster)",
    )


def trust_problem(
    account: Account, operator_arn: str, requires_external_id: bool, config_path: str
) -> Problem:
    access = account.access
    assert access.role_arn is not None
    if access.external_id and requires_external_id:
        said = f"does not let {operator_arn} assume it with the configured external id"
        fix = "set the account's external_id in the configuration to the one the role's trust requires"
    elif requires_external_id:
        said = "requires an external id, and the configuration gives the account none"
        fix = "add the account's external_id to the configuration (or its roster)"
    else:
        said = f"does not let {operator_arn} assume it"
        fix = "admit the operator's account in the role's trust"
    return Problem(
        Check.ROLE,
        (account.subject,),
        f"the trust policy of role {role_name_of(access.role_arn)} {said}",
        f"{fix}; or {role_rollout(config_path)}",
    )


def needed(requests: Sequence[tuple[str, str]]) -> int:
    return len({action for action, _ in requests})


def denied_problem(
    account: Account, denied: Sequence[tuple[str, str]], needed: int, config_path: str, *, by: str
) -> Problem:
    """The actions the role may not do in the account, of the `needed` ones the daemon's calls take."""
    actions = list(dict.fromkeys(action for action, _ in denied))
    shown = ", ".join(actions[:5]) + (f" and {len(actions) - 5} more" if len(actions) > 5 else "")
    return Problem(
        Check.PERMISSIONS,
        (account.subject,),
        f"the role may not do {len(actions)} of the {needed} actions the daemon needs in the account "
        f"({by}): {shown}",
        f"give the role the daemon's policy: {role_rollout(config_path)}",
    )


Line = TypeVar("Line", Problem, Unchecked)


def merged(lines: Iterable[Line]) -> tuple[Line, ...]:
    """The same problem (or unchecked check) with the same fix in many accounts is one line naming them
    all, in check order."""
    groups: dict[Line, list[str]] = {}
    for line in lines:
        subjects = groups.setdefault(replace(line, subjects=()), [])
        subjects.extend(s for s in line.subjects if s not in subjects)
    ordered = sorted(groups.items(), key=lambda group: CHECK_ORDER.index(group[0].check))
    return tuple(replace(line, subjects=tuple(subjects)) for line, subjects in ordered)


# --------------------------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Account:
    """One account as the configuration reaches it, and where the labs use it."""

    access: AccountAccess
    uses: tuple[str, ...]  # "pair-01 origin", "solo-01"

    @property
    def subject(self) -> str:
        return f"account {self.access.account_id} ({', '.join(self.uses)})"


def accounts_of(labs: Sequence[LabConfig]) -> list[Account]:
    """Each access once (two labs never share one side of an account), with the labs' uses of it."""
    uses: dict[tuple[Any, ...], tuple[AccountAccess, list[str]]] = {}
    for lab in labs:
        sides = (
            [(lab.name, lab.origin)]
            if lab.single_account
            else [
                (f"{lab.name} origin", lab.origin),
                (f"{lab.name} destination", lab.destination),
            ]
        )
        for use, access in sides:
            uses.setdefault(access.key, (access, []))[1].append(use)
    return [Account(access, tuple(names)) for access, names in uses.values()]


class Method(StrEnum):
    SIMULATOR = "simulator"
    ENGINE = "engine"


METHOD_WORDS = {
    Method.SIMULATOR: "IAM's policy simulator (iam:SimulatePrincipalPolicy on the role, with the lab's "
    "resources: its policies, boundary and the organization's SCPs)",
    Method.ENGINE: "the project's policy engine on each role's own trust, policies and boundary (the "
    "endpoint has no policy simulator: an emulator, which enforces no IAM)",
}


@dataclass
class AccountOutcome:
    problems: list[Problem] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)
    reached: bool = False
    method: Method | None = None

    @property
    def unreachable(self) -> bool:
        """Whether a problem keeps the daemon out of the account (a role not there, or not trusting)."""
        return any(problem.check in (Check.CREDENTIALS, Check.ROLE) for problem in self.problems)


# ------------------------------------------------------------------------------------------ the doctor


Clock = Callable[[], datetime]


def diagnose(
    config: Config,
    names: Sequence[str] = (),
    *,
    now: Clock = utc_now,
) -> Diagnosis:
    """Every check, for the labs named (or all): a Diagnosis (an unknown lab is a ConfigError)."""
    labs = config.select(tuple(names))
    source = CredentialSource("emulator", None) if config.aws.emulated else credential_source()
    if source.problem is not None:  # e.g. AWS_PROFILE names no profile: botocore makes no session at all
        return _Doctor(config, labs, None, now, source).run()
    with open_context(config) as context:
        return _Doctor(config, labs, context, now, source).run()


class _Doctor:
    def __init__(
        self,
        config: Config,
        labs: Sequence[LabConfig],
        context: Context | None,
        now: Clock,
        source: CredentialSource,
    ) -> None:
        self.config, self.labs, self.now, self.source = config, labs, now, source
        self._context = context
        self.endpoint_url = context.endpoint_url if context is not None else None
        self.accounts = accounts_of(labs)
        self.emulated = self.endpoint_url is not None
        self.facts: list[tuple[Check, str]] = []
        self.problems: list[Problem] = []
        self.unchecked: list[Unchecked] = []
        self.operator_arn: str | None = None
        self.calls = daemon_calls(config)

    @property
    def context(self) -> Context:
        assert self._context is not None, "checked only with a session"
        return self._context

    def run(self) -> Diagnosis:
        skewed = self.check_clock()
        outcomes: dict[Any, AccountOutcome] = {}
        if self._context is None:  # no AWS session could be made: nothing past the clock is checked
            self.problems.append(no_credentials_problem(self.source))
            self.facts.append((Check.ROLE, f"{plural(len(self.accounts), 'account')} not checked"))
            operator_ok = False
        else:
            operator_ok = self.check_operator(skewed)
            outcomes = self.check_accounts(operator_ok)
        self.check_events(operator_ok, outcomes)
        return Diagnosis(
            self.config.path,
            self.where(),
            len(self.labs),
            len(self.accounts),
            tuple(sorted(self.facts, key=lambda fact: CHECK_ORDER.index(fact[0]))),
            merged(self.problems),
            merged(self.unchecked),
        )

    def where(self) -> str:
        region = self.config.lab.region
        if not self.emulated:
            return f"real AWS ({region})"
        if self.context.ephemeral_emulator:
            return (
                f"an embedded emulator started for this check, empty (none was running: "
                f"{config_command(self.config.path, 'emulator start')}) ({region})"
            )
        return f"the emulator at {self.endpoint_url} ({region})"

    # ---------------------------------------------------------------------------------------- clock

    def check_clock(self) -> bool:
        aws = aws_clock(self.endpoint_url, self.config.lab.region, self.config.aws.connect_timeout)
        if aws is None:
            self.unchecked.append(
                Unchecked(
                    Check.CLOCK,
                    ("this machine",),
                    "no answer of AWS carried a Date to compare the clock with",
                    "make sure STS is reachable from here, then run the doctor again",
                )
            )
            return False
        skew = skew_of(self.now(), aws)
        problem = clock_problem(skew)
        if problem is None:
            close = "a second" if abs(skew) < timedelta(seconds=1) else duration_words(abs(skew))
            self.facts.append((Check.CLOCK, f"within {close} of AWS's"))
            return False
        self.problems.append(problem)
        return True

    # ---------------------------------------------------------------------------------- operator

    def check_operator(self, skewed: bool) -> bool:
        """The operator's credentials and who they are; False when they cannot reach anything."""
        source = self.source
        if source.method is None:
            self.problems.append(no_credentials_problem(source))
            return False
        origin = "an emulator's (it takes any)" if self.emulated else credential_origin(source)
        try:
            self.operator_arn = str(
                self.context.sessions.client(OPERATOR, "sts").get_caller_identity()["Arn"]
            )
        except (ClientError, BotoCoreError) as error:
            if not (skewed and error_code(error) in _CLOCK_CODES):  # the clock's problem says it
                self.problems.append(
                    refused_credentials_problem("the operator", origin, error, source.profile)
                )
            return False
        said = (
            "none needed on an emulator (it takes any)" if self.emulated else f"the operator's, from {origin}"
        )
        self.facts.append((Check.CREDENTIALS, f"{said}: {self.operator_arn}"))
        return True

    # ---------------------------------------------------------------------------------- accounts

    def check_accounts(self, operator_ok: bool) -> dict[Any, AccountOutcome]:
        checked = [a for a in self.accounts if operator_ok or a.access.profile]
        workers = max(1, min(self.config.audit.concurrency, len(checked)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doctor") as pool:
            outcomes = dict(
                zip((a.access.key for a in checked), pool.map(self.check_account, checked), strict=True)
            )
        for outcome in outcomes.values():
            self.problems += outcome.problems
            self.unchecked += outcome.unchecked
        skipped = len(self.accounts) - len(checked)
        reached = sum(1 for o in outcomes.values() if o.reached and not o.unreachable)
        roles = sum(1 for a in checked if a.access.role_arn)
        self.facts.append(
            (
                Check.ROLE,
                f"{reached} of {plural(len(self.accounts), 'account')} reached as configured"
                + (
                    f" ({roles} through a role, assumed with its configured external id if any)"
                    if roles
                    else ""
                )
                + (f"; {skipped} not checked without the operator's credentials" if skipped else ""),
            )
        )
        self.permissions_fact(outcomes.values())
        return outcomes

    def permissions_fact(self, outcomes: Iterable[AccountOutcome]) -> None:
        methods = list(dict.fromkeys(o.method for o in outcomes if o.method is not None))
        if not methods:
            self.facts.append((Check.PERMISSIONS, "not checked: no account was reached"))
            return
        how = "; ".join(METHOD_WORDS[m] for m in methods)
        self.facts.append(
            (
                Check.PERMISSIONS,
                f"the {needed(daemon_requests(self.calls, '*', '*'))} actions the daemon's calls need in "
                f"each account, checked with {how}",
            )
        )

    def check_account(self, account: Account) -> AccountOutcome:
        outcome = AccountOutcome()
        if not self.reach(account, outcome):
            return outcome
        outcome.reached = True
        if self.emulated or not self.simulated(account, outcome):
            self.judge_with_engine(account, outcome)
        return outcome

    def reach(self, account: Account, outcome: AccountOutcome) -> bool:
        sessions, access = self.context.sessions, account.access
        try:
            sessions.client(access, "sts").get_caller_identity()
            sessions.verify(access)
        except (ClientError, BotoCoreError, LabFault) as error:
            outcome.problems.append(self.unreached(account, error))
            return False
        return True

    def unreached(self, account: Account, error: BaseException) -> Problem:
        access = account.access
        if access.role_arn:
            if getattr(error, "operation_name", "") == "AssumeRole" or error_code(error) == "AccessDenied":
                return unassumable_problem(account, self.operator_arn, error, self.config.path)
            return Problem(
                Check.ROLE,
                (account.subject,),
                f"the account could not be reached through its role: {describe_fault(error)}",
                f"{role_rollout(self.config.path)}; or correct the account's role_arn in the configuration",
            )
        if isinstance(error, AccountAccessError):
            return Problem(
                Check.CREDENTIALS,
                (account.subject,),
                str(error),
                "correct the account's profile or account_id in the configuration",
            )
        if access.profile and error_code(error) == "ProfileNotFound":
            return Problem(
                Check.CREDENTIALS,
                (account.subject,),
                f"profile {access.profile!r} is not in the AWS configuration (~/.aws/config)",
                f"aws configure sso --profile {access.profile}; or correct the account's profile in the "
                "configuration",
            )
        origin = f"profile {access.profile!r}" if access.profile else "the operator's credentials"
        return refused_credentials_problem(account.subject, origin, error, access.profile)

    def principal_arn(self, account: Account) -> str | None:
        """The IAM principal whose policies the daemon's requests in the account are made with."""
        if account.access.role_arn:
            return account.access.role_arn
        arn = str(self.context.sessions.client(account.access, "sts").get_caller_identity()["Arn"])
        return principal_of_session(arn)

    def simulated(self, account: Account, outcome: AccountOutcome) -> bool:
        """IAM's simulator on the role, its denials as a problem; False when the endpoint has none."""
        access = account.access
        requests = daemon_requests(self.calls, access.account_id, self.config.lab.region)
        try:
            principal = self.principal_arn(account)
            if principal is None:
                raise NoPrincipal
            decisions = simulated_decisions(self.context.sessions.client(access, "iam"), principal, requests)
        except NoSimulator:
            return False
        except NoPrincipal:
            outcome.unchecked.append(self.cannot_simulate(account, "its credentials are no IAM role or user"))
            return True
        except (ClientError, BotoCoreError) as error:
            how = self.older_role_fix() if access.role_arn and error_code(error) == "AccessDenied" else None
            outcome.unchecked.append(self.cannot_simulate(account, simulation_refused(error), how))
            return True
        outcome.method = Method.SIMULATOR
        denied = [request for request in requests if decisions.get(request, "implicitDeny") != "allowed"]
        if denied:
            outcome.problems.append(
                denied_problem(
                    account, denied, needed(requests), self.config.path, by="IAM's policy simulator"
                )
            )
        return True

    def cannot_simulate(self, account: Account, reason: str, how: str | None = None) -> Unchecked:
        return Unchecked(
            Check.PERMISSIONS,
            (account.subject,),
            f"the daemon's calls were not simulated: {reason}",
            how
            or "allow the role iam:SimulatePrincipalPolicy on its own ARN, or try its calls in the IAM "
            "console's policy simulator",
        )

    def older_role_fix(self) -> str:
        """A role refused the simulation of itself predates the daemon's policy granting it."""
        return (
            "give the role the daemon's policy, which allows it iam:SimulatePrincipalPolicy on its own "
            f"ARN (a role rolled out by an older auditor lacks it): {role_rollout(self.config.path)}; or "
            "try its calls in the IAM console's policy simulator"
        )

    def judge_with_engine(self, account: Account, outcome: AccountOutcome) -> None:
        """The role's own documents, judged by the project's engine (an emulator enforces none of them)."""
        access = account.access
        if not access.role_arn:
            outcome.unchecked.append(
                Unchecked(
                    Check.PERMISSIONS,
                    (account.subject,),
                    "an emulator holds no policies for a profile or the operator's own credentials",
                    "reach the account through a role_arn, or run the doctor on AWS",
                )
            )
            return
        outcome.method = Method.ENGINE
        try:
            documents = role_documents(self.context.sessions.client(access, "iam"), access.role_arn)
        except (ClientError, BotoCoreError) as error:
            outcome.problems.append(self.unreached(account, error))
            return
        if documents is None:
            outcome.problems.append(missing_role_problem(account, self.config.path))
            return
        if (problem := self.judged_trust(account, documents)) is not None:
            outcome.problems.append(problem)
            return
        requests = daemon_requests(self.calls, access.account_id, self.config.lab.region)
        denied = engine_denials(documents, requests)
        if denied:
            outcome.problems.append(
                denied_problem(
                    account, denied, needed(requests), self.config.path, by="its policies, judged here"
                )
            )

    def judged_trust(self, account: Account, documents: RoleDocuments) -> Problem | None:
        access = account.access
        operator = self.operator_arn or ""
        try:
            trust = parse_policy(documents.trust)
        except PolicyError:
            return trust_problem(account, operator, requires_external_id=False, config_path=self.config.path)
        context = {"sts:ExternalId": access.external_id} if access.external_id else {}
        if is_allowed([trust], "sts:AssumeRole", documents.arn, context, principal=operator):
            return None
        requires = "sts:externalid" in str(documents.trust).lower()
        return trust_problem(account, operator, requires_external_id=requires, config_path=self.config.path)

    # ------------------------------------------------------------------------------------ events

    def check_events(self, operator_ok: bool, outcomes: dict[Any, AccountOutcome]) -> None:
        settings = self.config.events
        if settings is None:
            self.facts.append(
                (Check.EVENTS, "off (no [events] table): the daemon audits on its schedule only")
            )
            return
        if not operator_ok:
            self.facts.append((Check.EVENTS, "not checked without the operator's credentials"))
            return
        wired = self.check_operator_wiring()
        bus = self.context.resolve_events_bus_arn() if wired else None
        rules = 0
        if bus is not None:
            reached = {key[0] for key, o in outcomes.items() if o.reached and not o.unreachable}
            rules = sum(
                self.check_lab_events(target, reached)
                for target in self.context.rendered_targets([lab.name for lab in self.labs], bus)
            )
        self.facts.append(
            (
                Check.EVENTS,
                "the operator's queue, rule and bus policy"
                + (
                    f", and {plural(rules, 'rule')} with the trail each needs in the lab accounts"
                    if rules
                    else ""
                ),
            )
        )

    def check_operator_wiring(self) -> bool:
        settings = self.config.events
        assert settings is not None
        provision = config_command(self.config.path, "provision")
        if not self.emulated and not settings.queue_url:
            self.problems.append(
                Problem(
                    Check.EVENTS,
                    ("the operator",),
                    "[events] queue_url is empty: on AWS the daemon reads change events from a queue of yours",
                    "aws sqs create-queue --queue-name lab-auditor-events, then set [events] queue_url to "
                    "the QueueUrl it prints",
                )
            )
            return False
        try:
            wiring = operator_wiring(settings, self.context.sessions, self.context.endpoint_url)
        except (ClientError, BotoCoreError) as error:
            self.problems.append(
                Problem(
                    Check.EVENTS,
                    ("the operator",),
                    f"the change events' queue, rule or bus could not be read: {describe_fault(error)}",
                    "give the operator's credentials the operator policy that "
                    f"{config_command(self.config.path, 'permissions')} prints",
                )
            )
            return False
        self.problems += wiring_problems(
            wiring, settings.queue_url, self.accounts, self.config.lab.region, provision
        )
        return True

    def check_lab_events(self, target: LabTarget, reached: set[str]) -> int:
        """The lab's change-event rules and their trails, in the accounts reached; the rules checked."""
        clients = LabClients(self.context.sessions, target)
        fix = config_command(self.config.path, f"provision --lab {target.name}")
        rules = [
            r for r in target.expected.event_rules if r.target_arn is not None and r.account_id in reached
        ]
        for rule in rules:
            subject = next(a.subject for a in self.accounts if a.access.account_id == rule.account_id)
            try:
                self.problems += lab_rule_problems(clients, rule, subject, fix)
            except (ClientError, BotoCoreError, LabFault) as error:
                self.problems.append(
                    Problem(
                        Check.EVENTS,
                        (subject,),
                        f"the change-event rule or trails in {rule.region} could not be read: {describe_fault(error)}",
                        f"give the role the daemon's policy: {role_rollout(self.config.path)}",
                    )
                )
        return len(rules)


class NoPrincipal(Exception):
    """The credentials are no IAM principal that the simulator knows (e.g. a federated user)."""


def principal_of_session(arn: str) -> str | None:
    """The IAM user or role behind the caller's ARN (a role session names its role without its path)."""
    parts = arn.split(":", 5)
    if len(parts) != 6:
        return None
    partition, service, account, rest = parts[1], parts[2], parts[4], parts[5]
    if service == "iam" and rest.startswith(("user/", "role/")):
        return arn
    if service == "sts" and rest.startswith("assumed-role/"):
        return f"arn:{partition}:iam::{account}:role/{rest.split('/')[1]}"
    return None


def simulation_refused(error: BaseException) -> str:
    if error_code(error) == "AccessDenied":
        return "the role may not call iam:SimulatePrincipalPolicy on itself"
    if error_code(error) in ("NoSuchEntity", "InvalidInput"):
        return f"IAM knows no such principal to simulate ({describe_fault(error)})"
    return describe_fault(error)


def engine_denials(documents: RoleDocuments, requests: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The requests the role's policies (and boundary) do not allow, as IAM would evaluate them."""
    try:
        policies = [parse_policy(document) for document in documents.permissions]
        boundary = parse_policy(documents.boundary) if documents.boundary is not None else None
    except PolicyError:
        return list(requests)  # a policy IAM would not take allows nothing
    return [
        (action, resource)
        for action, resource in requests
        if not (
            is_allowed(policies, action, resource) and permission_boundary_allows(boundary, action, resource)
        )
    ]


def wiring_problems(
    wiring: OperatorWiring, queue_url: str, accounts: Sequence[Account], region: str, provision: str
) -> list[Problem]:
    """What is missing of the operator's side of the change events, each fixed by a provision."""
    operator = ("the operator",)
    if wiring.queue_url is None:
        named = f"queue {queue_url}" if queue_url else "the emulator's change-event queue"
        return [
            Problem(
                Check.EVENTS,
                operator,
                f"{named} does not exist",
                "correct [events] queue_url, or create the queue (aws sqs create-queue --queue-name "
                "lab-auditor-events)"
                if queue_url
                else provision,
            )
        ]
    problems = []
    if not wiring.rule_exists:
        problems.append(f"rule {EVENT_RULE} is not on the operator's default event bus in {region}")
    elif not wiring.rule_targets_queue:
        problems.append(f"rule {EVENT_RULE} on the operator's default event bus does not send to the queue")
    if not wiring.queue_admits_rule:
        problems.append("the queue's policy does not let EventBridge deliver the operator's rule's events")
    missing = [a.access.account_id for a in accounts if a.access.account_id not in wiring.admitted]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        problems.append(
            f"the operator's default event bus does not admit the events of {plural(len(missing), 'account')} ({shown})"
        )
    return [Problem(Check.EVENTS, operator, message, provision) for message in problems]


TRAIL_FIX = (
    "log management events with a multi-Region trail in the account, or one organization trail for every "
    "student account from the management account: aws cloudtrail create-trail --name lab-auditor "
    "--s3-bucket-name BUCKET --is-multi-region-trail --is-organization-trail, then aws cloudtrail "
    "start-logging --name lab-auditor"
)


def lab_rule_problems(clients: LabClients, rule: EventRuleSpec, subject: str, fix: str) -> list[Problem]:
    """The rule as the provisioner makes it, and a trail that logs what it watches."""
    events = clients.client(rule.account_id, "events", rule.region)
    found = [
        Problem(Check.EVENTS, (subject,), message_without_account(f.message, rule.account_id), fix)
        for f in compare_event_rule(rule, collect_event_rule(events, rule))
    ]
    coverage = collect_coverage(partial(clients.client, rule.account_id, "cloudtrail"), rule)
    if coverage.trail is None:
        services = " and ".join(source.split(".")[0].upper() for source in coverage.sources).replace(
            "LAMBDA", "Lambda"
        )
        found.append(
            Problem(
                Check.EVENTS,
                (subject,),
                f"no CloudTrail trail logs the {services} management events in {rule.region}: the "
                "daemon hears of their changes only at its next scheduled audit",
                TRAIL_FIX,
            )
        )
    return found


def message_without_account(message: str, account_id: str) -> str:
    return message.replace(f" of account {account_id}", "").replace("this account's", "the account's")
