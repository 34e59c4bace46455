"""The lab's Lambda function and its configuration (lab.md, "The function"); its code is function_code's.

A setting that only drifted (the timeout, the memory, an extra environment variable, another supported
runtime) is a `lambda_config` finding of severity low: the lab drifted. It is `broken` only where the
setting itself stops the function from doing its work (the execution role, the handler, the variable
naming the destination role), or when the invoke check proves it (a function that now times out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, ClassVar

import structlog
from botocore.exceptions import ClientError

from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualFunction, ActualLab
from auditor.domain.model import Action, Effect, Finding, Severity, Status, Step, Subject
from auditor.domain.near_names import near_name
from auditor.domain.package import packaged
from auditor.domain.spec import (
    FUNCTION_KIND,
    LAMBDA_SERVICE,
    ROLE_ARN_VARIABLE,
    ExpectedLab,
    FunctionSpec,
    LabShape,
    ResourceKey,
    render_function,
)
from auditor.resources.base import (
    ANY_LAB,
    READ,
    UNSCOPED,
    Clients,
    Coverage,
    Facts,
    Grant,
    Kind,
    Part,
    Scope,
    Sleep,
    call,
    finding,
    missing,
)

log = structlog.get_logger()

KIND_NAME = FUNCTION_KIND

LAB_FUNCTION = Scope("LabFunction", (ANY_LAB.function.arn,))
EXECUTION_ROLE_TO_LAMBDA = Scope(
    "PassExecutionRoleToLambda",
    (ANY_LAB.origin_role.arn,),
    {"StringEquals": {"iam:PassedToService": LAMBDA_SERVICE}},
)
_PASS_ROLE = Grant("iam:PassRole", EXECUTION_ROLE_TO_LAMBDA)

# When AWS stops accepting new functions in a runtime (Lambda runtime deprecation schedule).
RUNTIME_DEPRECATED_ON = {
    "python2.7": date(2021, 7, 15),
    "python3.6": date(2022, 7, 18),
    "python3.7": date(2023, 12, 4),
    "python3.8": date(2024, 10, 14),
    "python3.9": date(2025, 12, 15),
    "python3.10": date(2026, 10, 31),
    "python3.11": date(2027, 6, 30),
    "python3.12": date(2028, 10, 31),
    "python3.13": date(2029, 6, 30),
}

# Lambda refuses a role that IAM has not yet propagated; this is the only error worth waiting out.
_ROLE_NOT_READY = "cannot be assumed by Lambda"
ROLE_PROPAGATION_DELAYS = (1.0, 2.0, 4.0, 8.0, 10.0, 10.0)


def function_subject(spec: FunctionSpec) -> Subject:
    """The function, as its findings (and the invoke check's) name it."""
    return Subject(KIND_NAME, spec.account_id, spec.name, spec.name)


def collect_function(lambda_client: Any, spec: FunctionSpec) -> ActualFunction:
    try:
        answer = lambda_client.get_function(FunctionName=spec.name)
    except ClientError as error:
        if is_not_found(error):
            return ActualFunction(spec.name, exists=False)
        raise
    config = answer["Configuration"]
    return ActualFunction(
        name=spec.name,
        exists=True,
        arn=config.get("FunctionArn", ""),
        role=config.get("Role", ""),
        runtime=config.get("Runtime", ""),
        handler=config.get("Handler", ""),
        environment=dict((config.get("Environment") or {}).get("Variables") or {}),
        code_sha256=config.get("CodeSha256", ""),
        state=config.get("State", ""),
        timeout=int(config.get("Timeout", 0)),
        memory=int(config.get("MemorySize", 0)),
        code_location=(answer.get("Code") or {}).get("Location", ""),
    )


def near_function_name(lambda_client: Any, spec: FunctionSpec) -> str | None:
    """A near name of the function among its region's functions (ListFunctions)."""
    pages = lambda_client.get_paginator("list_functions").paginate()
    return near_name(
        spec.name, (function["FunctionName"] for page in pages for function in page["Functions"])
    )


# ------------------------------------------------------------------------------------------ compare


def _config_finding(
    spec: FunctionSpec,
    severity: Severity,
    message: str,
    expected: Any,
    actual: Any,
    *,
    effect: Effect = Effect.CHANGED,
    breaks: bool = False,
) -> Finding:
    return finding(
        "lambda_config.modified",
        function_subject(spec),
        spec.arn,
        Status.MODIFIED,
        effect,
        severity,
        message,
        expected,
        actual,
        breaks,
    )


def compare_runtime(spec: FunctionSpec, actual: ActualFunction, today: date) -> list[Finding]:
    deprecated_on = RUNTIME_DEPRECATED_ON.get(actual.runtime)
    if deprecated_on is not None and deprecated_on <= today:
        return [
            _config_finding(
                spec,
                Severity.MEDIUM,
                f"runtime {actual.runtime} is deprecated since {deprecated_on.isoformat()}; the spec has {spec.runtime}",
                spec.runtime,
                actual.runtime,
                effect=Effect.NONE,
            )
        ]
    if actual.runtime != spec.runtime:
        return [
            _config_finding(
                spec,
                Severity.LOW,
                f"runtime is {actual.runtime}, the spec has {spec.runtime}",
                spec.runtime,
                actual.runtime,
                effect=Effect.NONE,
            )
        ]
    return []


def compare_environment(spec: FunctionSpec, actual: ActualFunction) -> list[Finding]:
    want = spec.environment.get(ROLE_ARN_VARIABLE)
    have = actual.environment.get(ROLE_ARN_VARIABLE)
    findings = []
    if have != want:
        message = (
            f"{ROLE_ARN_VARIABLE} is not set: the function cannot know which role to assume"
            if have is None
            else f"{ROLE_ARN_VARIABLE} points to {have}, not to the destination role {want}"
        )
        findings.append(
            _config_finding(
                spec,
                Severity.HIGH if have else Severity.MEDIUM,
                message,
                spec.environment,
                actual.environment,
                breaks=True,
            )
        )
    extra = sorted(set(actual.environment) - set(spec.environment))
    if extra:
        findings.append(
            _config_finding(
                spec,
                Severity.LOW,
                f"extra environment variables: {', '.join(extra)}",
                sorted(spec.environment),
                sorted(actual.environment),
            )
        )
    return findings


def compare_sizes(spec: FunctionSpec, actual: ActualFunction) -> list[Finding]:
    """Timeout and memory: drift, not breakage; a function that no longer finishes fails the invoke check."""
    sizes = (
        ("timeout", "Timeout", spec.timeout_seconds, actual.timeout, "s"),
        ("memory", "MemorySize", spec.memory_mb, actual.memory, "MB"),
    )
    return [
        _config_finding(
            spec,
            Severity.LOW,
            f"{what} is {have} {unit}, the spec has {want} {unit}",
            {setting: want},
            {setting: have},
            effect=Effect.NONE,
        )
        for what, setting, want, have, unit in sizes
        if have != want
    ]


def compare_function(
    spec: FunctionSpec, actual: ActualFunction, today: date, *, own_code: bool = True
) -> list[Finding]:
    """`own_code`: the function is the project's, so its handler, variables and sizes are the spec's
    too; a student's function is judged by its run (only its role, state and runtime here)."""
    if not actual.exists:
        return [
            missing(function_subject(spec), spec.arn, f"function {spec.name} in account {spec.account_id}")
        ]
    findings = []
    if actual.role != spec.role_arn:
        findings.append(
            _config_finding(
                spec,
                Severity.HIGH,
                f"the function runs as {actual.role}, not as {spec.role_arn}",
                spec.role_arn,
                actual.role,
                breaks=True,
            )
        )
    if own_code and actual.handler != spec.handler:
        findings.append(
            _config_finding(
                spec,
                Severity.MEDIUM,
                f"handler is {actual.handler}, the code's handler is {spec.handler}",
                spec.handler,
                actual.handler,
                breaks=True,
            )
        )
    if actual.state and actual.state != "Active":
        findings.append(
            finding(
                "resource.inactive",
                function_subject(spec),
                spec.arn,
                Status.FAILED,
                Effect.NONE,
                Severity.MEDIUM,
                f"the function is {actual.state}, not Active",
                "Active",
                actual.state,
                breaks_lab=True,
            )
        )
    findings += compare_runtime(spec, actual, today)
    if own_code:
        findings += compare_environment(spec, actual) + compare_sizes(spec, actual)
    return findings


# -------------------------------------------------------------------------------------------- apply


def wait_until_ready(lambda_client: Any, name: str) -> None:
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 2})
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 2})


def retry_until_role_ready(call: Callable[[], Any], sleep: Sleep, lab: str) -> Any:
    for delay in (*ROLE_PROPAGATION_DELAYS, None):
        try:
            return call()
        except ClientError as error:
            message = str(error.response.get("Error", {}).get("Message", ""))
            if delay is None or _ROLE_NOT_READY not in message:
                raise
            log.info("waiting_for_role_propagation", lab=lab, delay=delay)
            sleep(delay)
    return None  # unreachable: the last attempt raises


class Function(Kind):
    name = KIND_NAME
    apply_rank = (1, 0)  # after the role it runs as
    removal_rank = (1, 0)
    calls: ClassVar = (
        call(
            "lambda:GetFunction",
            LAB_FUNCTION,
            *READ,
            used_by="function.collect_function; the function_active_v2 and function_updated_v2 waiters",
        ),
        call(
            "lambda:CreateFunction",
            LAB_FUNCTION,
            Part.PROVISION,
            also=[Grant("lambda:TagResource", LAB_FUNCTION), _PASS_ROLE],
            used_by="function.apply (created with tags, passing the execution role)",
        ),
        call(
            "lambda:UpdateFunctionConfiguration",
            LAB_FUNCTION,
            Part.PROVISION,
            also=[_PASS_ROLE],
            used_by="function.apply (passes the execution role again)",
        ),
        call("lambda:DeleteFunction", LAB_FUNCTION, Part.TEARDOWN, used_by="function.delete"),
        call(
            "lambda:ListFunctions",
            UNSCOPED,
            Part.AUDIT,
            used_by="function.near_function_name: a missing function's near name",
            coverage=Coverage.STUDENTS,
        ),
    )

    def render(self, shape: LabShape) -> Mapping[ResourceKey, Any]:
        return render_function(shape)

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        spec = expected.function
        return {spec.key: collect_function(clients.client(spec.account_id, "lambda"), spec)}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        own_code = facts.code_sha256 is not None
        return compare_function(expected.function, actual.function, facts.today, own_code=own_code)

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        spec = expected.function
        return [Step(self.name, spec.account_id, spec.name, spec.name, Action.NO_CHANGE)]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        spec = expected.function
        lambda_client = clients.client(spec.account_id, "lambda")
        settings: dict[str, Any] = {
            "Role": spec.role_arn,
            "Runtime": spec.runtime,
            "Handler": spec.handler,
            "Timeout": spec.timeout_seconds,
            "MemorySize": spec.memory_mb,
            "Environment": {"Variables": dict(spec.environment)},
        }
        if step.action is Action.CREATE:
            retry_until_role_ready(
                lambda: lambda_client.create_function(
                    FunctionName=spec.name,
                    Code={"ZipFile": packaged()[0]},
                    Publish=False,
                    Tags=expected.tags,
                    **settings,
                ),
                sleep,
                expected.name,
            )
        else:
            retry_until_role_ready(
                lambda: lambda_client.update_function_configuration(FunctionName=spec.name, **settings),
                sleep,
                expected.name,
            )
        wait_until_ready(lambda_client, spec.name)

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        spec = expected.function
        if not actual.function.exists:
            return []
        return [Step(self.name, spec.account_id, spec.name, spec.name, Action.DELETE)]

    def delete(self, step: Step, clients: Clients) -> None:
        clients.client(step.account_id, "lambda").delete_function(FunctionName=step.name)


KIND = Function()
