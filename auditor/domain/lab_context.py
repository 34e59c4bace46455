"""The lab's access path as the requests AWS makes, with the context values it sets (lab.md, "Judging
by IAM's own rules: the lab's request context"). Pure: expected and collected state in, hops out.

Each hop names the documents IAM evaluates for it; everything a hop does not fix (a principal tag,
the source IP of the Lambda service, the random session name of the destination session) is left
unknown, so that a condition on it is neither proof that the lab works nor that it is broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditor.domain.actual import ActualLab, ActualRole
from auditor.domain.model import Check
from auditor.domain.spec import ExpectedLab, RoleSpec
from auditor.policy import (
    Choice,
    Hop,
    Kind,
    Literal,
    Policies,
    Policy,
    PolicyError,
    Principal,
    Run,
    Setting,
    Shape,
    Token,
)

LAMBDA_SERVICE = "lambda.amazonaws.com"
DESTINATION_SESSION = "lab-auditor-session"  # the function names it at random: never read by a hop

# What lambda_src's AssumeRole call does not pass: no external id, no source identity, no tags (a key
# ending in / stands for the family of keys it starts).
FUNCTION_ASSUMES_WITHOUT = frozenset(
    {"sts:externalid", "sts:sourceidentity", "aws:tagkeys", "sts:transitivetagkeys", "aws:requesttag/"}
)

# The function and its sessions call STS, S3 and CloudWatch Logs themselves, not through another
# service: AWS sets aws:ViaAWSService to false and no aws:CalledVia* key (present only when a service
# calls on a principal's behalf); neither Lambda's session nor the function's sets a source identity.
DIRECT_CALL = (("aws:viaawsservice", "false"),)
DIRECT_CALL_WITHOUT = frozenset(
    {"aws:calledvia", "aws:calledviafirst", "aws:calledvialast", "aws:sourceidentity"}
)

# AssumeRole requires a session name, so every AssumeRole request carries sts:RoleSessionName (Lambda
# names its session after the function, the function picks a random one): present, value unknown.
NAMED_SESSION = (("sts:rolesessionname", "*"),)

# Every request carries the time it is made: the audit's moment stands for it. Only in labs whose
# documents read the clock, so that the hops of every other lab stay the same (and stay cached).
CLOCK_KEYS = ("aws:currenttime", "aws:epochtime")

IDENTITY_CHECKS = frozenset({Check.INLINE_POLICY, Check.MANAGED_POLICIES, Check.PERMISSIONS_BOUNDARY})
TRUST_CHECKS = frozenset({Check.TRUST_POLICY})


@dataclass(frozen=True)
class Suspect:
    """Documents that can explain a hop's failure: these checks on this role (its ARN as found, its
    account and name as the spec has them)."""

    checks: frozenset[str]
    role_arn: str
    account_id: str
    role_name: str


@dataclass(frozen=True)
class LabHop:
    """One request of the access path, the documents IAM evaluates for it, and what it means to fail."""

    name: str
    failure: str  # what it means when the hop cannot work
    requests: tuple[Hop, ...]  # the hop works when every one of these does
    policies: Policies
    suspects: tuple[Suspect, ...]
    # The same request judged against one side at a time, to blame the side that refuses it.
    sides: tuple[tuple[Policies, Suspect], ...] = ()


# The User-Agent's unknown parts, as sets of characters: version numbers are runs of digits and dots;
# the kernel's release (5.10.219-229.866.amzn2.x86_64) a version, then after a dash letters, digits,
# dots and dashes, an underscore only in a closing "_64": never a space, a slash or an "_L", so that
# no other runtime's name (AWS_Lambda_nodejs...) can hide in it. The features botocore counts (m/E,Z,b)
# are letters, digits and commas.
_DIGITS = frozenset("0123456789")
_VERSION = Run(_DIGITS | {"."})
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KERNEL = (
    _VERSION,
    Choice(((), (Literal("-"), Run(_DIGITS | _LETTERS | {".", "-"})))),
    Choice(((), (Literal("_64"),))),
)
_FEATURES = Run(_DIGITS | _LETTERS | {","})
# What platform.machine() says on Lambda's two architectures (arm64 as some systems spell it).
ARCHITECTURES = ("x86_64", "aarch64", "arm64")
# lambda_src configures botocore's standard retry mode for its clients (Config(retries=...)).
FUNCTION_RETRY_MODE = "standard"


def user_agent_shape(runtime: str) -> tuple[Token, ...]:
    """The User-Agent boto3 sends from inside the Lambda Python runtime, known but for its version
    numbers (botocore/useragent.py, format ua/2.x): the runtime sets AWS_EXECUTION_ENV, which botocore
    sends as exec-env/; newer botocores add the features they used (m/...). No awscrt (not in Lambda's
    runtime), no app id and no extra (the function sets neither)."""
    version = runtime.removeprefix("python")
    return (
        Literal("Boto3/"),
        _VERSION,
        Literal(" md/Botocore#"),
        _VERSION,
        Literal(" ua/"),
        _VERSION,
        Literal(" os/linux#"),
        *_KERNEL,
        Literal(" md/arch#"),
        Choice(tuple((Literal(architecture),) for architecture in ARCHITECTURES)),
        Literal(f" lang/python#{version}."),
        _VERSION,
        Literal(f" md/pyimpl#CPython exec-env/AWS_Lambda_python{version}"),
        Choice(((), (Literal(" m/"), _FEATURES))),
        Literal(f" cfg/retry-mode#{FUNCTION_RETRY_MODE} Botocore/"),
        _VERSION,
    )


def user_agent_example(runtime: str) -> str:
    """One User-Agent of that shape (with made-up version numbers): what a witness shows."""
    version = runtime.removeprefix("python")
    return (
        f"Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#5.10.0-1.0.amzn2.x86_64 md/arch#x86_64 "
        f"lang/python#{version}.0 md/pyimpl#CPython exec-env/AWS_Lambda_python{version} "
        f"cfg/retry-mode#{FUNCTION_RETRY_MODE} Botocore/1.35.0"
    )


# A stream as Lambda names the function's (YYYY/MM/DD/[$LATEST]<32 hex digits>): a witness's example.
LOG_STREAM_EXAMPLE = "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef"


def witness_setting(expected: ExpectedLab, actual: ActualLab, role: RoleSpec) -> Setting:
    """Where a role's documents apply, for their witnesses (auditor.iam.ranking): the role's account,
    the lab's region, the lab's own names (the role, the function, its log group, the marker bucket)
    and the User-Agent of the lab's requests."""
    runtime = actual.function.runtime or expected.function.runtime
    names = (
        ("RoleNameWithPath", role.name),
        ("FunctionName", expected.function.name),
        ("LogGroupName", expected.function.log_group),
        ("LogStreamName", LOG_STREAM_EXAMPLE),
        ("BucketName", expected.marker_bucket.name),
    )
    return Setting(
        role.account_id,
        expected.region,
        role.arn.split(":")[1],
        names,
        (("aws:useragent", user_agent_example(runtime)),),
    )


Parse = Callable[[Any], Policy]  # a document read, or PolicyError (the policy engine's `parse`)


def _documents(role: ActualRole, parse: Parse) -> tuple[Policy, ...]:
    raw = [*role.inline_policies.values(), *(d for d in role.managed_policies.values() if d is not None)]
    return tuple(p for p in (_parsed(d, parse) for d in raw) if p is not None)


def _parsed(document: object, parse: Parse) -> Policy | None:
    try:
        return parse(document)
    except PolicyError:
        return None


# A document nobody can read vouches for nothing: as a trust or a boundary it lets nothing through.
_NOTHING = Policy(())


def _boundary(role: ActualRole, parse: Parse) -> Policy | None:
    return (_parsed(role.boundary_policy, parse) or _NOTHING) if role.boundary_arn else None


def _trust(role: ActualRole, parse: Parse) -> Policy:
    return _parsed(role.trust_policy, parse) or _NOTHING


def _named(role: RoleSpec) -> tuple[str, str]:
    return (role.account_id, role.name)


def _session(role_arn: str, account: str, session: str) -> Principal:
    return Principal(Kind.ASSUMED_ROLE, role_arn, account, role_arn.split(":")[1], session)


def _known(pairs: Iterable[tuple[str, str | None]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((key, (value,)) for key, value in pairs if value)


def _clock(documents: Iterable[Policy | None], now: datetime | None) -> tuple[tuple[str, str], ...]:
    if now is None or not _reads_the_clock(documents):
        return ()
    return (
        ("aws:currenttime", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("aws:epochtime", str(int(now.timestamp()))),
    )


def _reads_the_clock(documents: Iterable[Policy | None]) -> bool:
    return any(c.key in CLOCK_KEYS for p in documents if p for s in p.statements for c in s.conditions)


def lab_hops(
    expected: ExpectedLab, actual: ActualLab, parse: Parse, now: datetime | None = None
) -> list[LabHop]:
    """The hops whose documents exist (a missing role or function is its own finding), their documents
    read with `parse`; `now` is the moment the requests are judged at, when a document reads the clock."""
    origin, destination, function = actual.origin_role, actual.destination_role, actual.function
    origin_trust, destination_trust = _trust(origin, parse), _trust(destination, parse)
    origin_side = Policies(_documents(origin, parse), _boundary(origin, parse))
    destination_side = Policies(_documents(destination, parse), _boundary(destination, parse))
    clock = _clock(
        [
            *origin_side.identity,
            *destination_side.identity,
            origin_side.boundary,
            destination_side.boundary,
            origin_trust,
            destination_trust,
        ],
        now,
    )
    origin_arn = origin.arn or expected.origin_role.arn
    destination_arn = destination.arn or expected.destination_role.arn
    function_arn = function.arn or expected.function.arn
    runtime = function.runtime or expected.function.runtime
    user_agent: tuple[tuple[str, Shape], ...] = (("aws:useragent", user_agent_shape(runtime)),)
    region = expected.region
    as_function = _session(origin_arn, expected.origin_account, expected.function.name)
    from_function = _known(
        [
            *DIRECT_CALL,
            *clock,
            ("aws:securetransport", "true"),
            ("aws:requestedregion", region),
            ("lambda:sourcefunctionarn", function_arn),
            ("aws:userid", f"{origin.unique_id}:{expected.function.name}" if origin.unique_id else None),
        ]
    )
    origin_suspect = Suspect(IDENTITY_CHECKS, origin_arn, *_named(expected.origin_role))
    hops: list[LabHop] = []
    if origin.exists:
        hops.append(
            LabHop(
                "lambda_assumes_origin_role",
                "Lambda can no longer assume the origin role",
                (
                    Hop(
                        "sts:AssumeRole",
                        origin_arn,
                        Principal(Kind.SERVICE, LAMBDA_SERVICE),
                        _known([("aws:sourceaccount", expected.origin_account), *clock]),
                        NAMED_SESSION,
                    ),
                ),
                Policies(trust=origin_trust, trust_only=True),
                (Suspect(TRUST_CHECKS, origin_arn, *_named(expected.origin_role)),),
            )
        )
    if origin.exists and destination.exists:
        identity = origin_side
        trust_side = Policies(trust=destination_trust, trust_only=True)
        destination_suspect = Suspect(TRUST_CHECKS, destination_arn, *_named(expected.destination_role))
        hops.append(
            LabHop(
                "origin_assumes_destination_role",
                "the origin role can no longer assume the destination role",
                (
                    Hop(
                        "sts:AssumeRole",
                        destination_arn,
                        as_function,
                        from_function,
                        user_agent + NAMED_SESSION,
                        absent=FUNCTION_ASSUMES_WITHOUT | DIRECT_CALL_WITHOUT,
                    ),
                ),
                Policies(
                    identity.identity,
                    identity.boundary,
                    destination_trust,
                    same_account=expected.origin_account == expected.destination_account,
                ),
                (origin_suspect, destination_suspect),
                sides=((identity, origin_suspect), (trust_side, destination_suspect)),
            )
        )
    if destination.exists:
        as_destination = _session(destination_arn, expected.destination_account, DESTINATION_SESSION)
        hops.append(
            LabHop(
                "destination_lists_buckets",
                "the destination role can no longer list buckets",
                (
                    Hop(
                        "s3:ListAllMyBuckets",
                        "*",
                        as_destination,
                        _known(
                            [
                                *DIRECT_CALL,
                                *clock,
                                ("aws:securetransport", "true"),
                                ("aws:requestedregion", region),
                            ]
                        ),
                        user_agent,
                        absent=DIRECT_CALL_WITHOUT,
                    ),
                ),
                destination_side,
                (Suspect(IDENTITY_CHECKS, destination_arn, *_named(expected.destination_role)),),
            )
        )
    if origin.exists:
        # Lambda names the function's log streams YYYY/MM/DD/[$LATEST]<hex>: any stream of that shape.
        log_group = f"arn:aws:logs:{region}:{expected.origin_account}:log-group:{expected.function.log_group}"
        streams = f"{log_group}:log-stream:*/*/*/[$LATEST]*"
        hops.append(
            LabHop(
                "function_writes_logs",
                "the function can no longer write its logs",
                tuple(
                    Hop(
                        action,
                        streams,
                        as_function,
                        from_function,
                        user_agent,
                        resource_pattern=streams,
                        absent=DIRECT_CALL_WITHOUT,
                    )
                    for action in ("logs:CreateLogStream", "logs:PutLogEvents")
                ),
                origin_side,
                (origin_suspect,),
            )
        )
    return hops
