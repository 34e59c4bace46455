"""The User-Agent of the lab's requests as the runtime sends it (issue 22, item 8): boto3's, inside the
configured Lambda Python runtime, known but for its version numbers. A condition that only another
runtime's requests meet is refuted (the lab is broken); one that every request of the runtime meets is
proven (it works); one that depends on a version number cannot be told."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from botocore.config import Config
from botocore.useragent import UserAgentString

from auditor.domain.actual import ActualLab
from auditor.domain.config import AccountAccess, LabConfig, LabSettings
from auditor.domain.lab_context import ARCHITECTURES, user_agent_example, user_agent_shape
from auditor.domain.model import Check, Effect, Severity, Verdict
from auditor.domain.spec import DESTINATION_POLICY, ORIGIN_POLICY, render
from auditor.iam.automata import Atom, cells
from auditor.iam.evaluate import allows, request
from auditor.iam.patterns import matches, tokens
from auditor.policy import parse_policy, policy_engine
from auditor.resources.access import access_path
from auditor.resources.compare import Judgement, judge_lab

EXPECTED = render(
    LabConfig("pair-01", AccountAccess("111111111111"), AccountAccess("222222222222")), LabSettings()
)
RUNTIME = EXPECTED.function.runtime
SHA = "packaged-sha"
CANNOT_PROVE = "cannot prove that the origin role can still assume the destination role"
ENGINE = policy_engine()


def botocore_user_agent(runtime: str, machine: str, kernel: str, features: set[str]) -> str:
    """What the installed botocore builds inside the runtime (its version numbers, Lambda's values)."""
    built = UserAgentString(
        platform_name="Linux",
        platform_version=kernel,
        platform_machine=machine,
        python_version=f"{runtime.removeprefix('python')}.7",
        python_implementation="CPython",
        execution_env=f"AWS_Lambda_{runtime}",
    )
    built.set_session_config("Boto3", "1.35.36", "Botocore/1.35.36")
    client = built.with_client_config(Config(retries={"mode": "standard"}))
    client.set_client_features(features)
    return str(client.to_string())


def in_the_shape(value: str, runtime: str = RUNTIME) -> bool:
    return matches(user_agent_shape(runtime), value)


# ------------------------------------------------------------------------------------ the shape


@pytest.mark.parametrize("machine", ARCHITECTURES)
@pytest.mark.parametrize("features", [set(), {"E", "Z", "b"}])
def test_the_installed_botocores_user_agent_in_the_runtime_has_the_shape(
    machine: str, features: set[str]
) -> None:
    kernel = f"5.10.219-229.866.amzn2.{'x86_64' if machine == 'x86_64' else 'aarch64'}"
    sent = botocore_user_agent(RUNTIME, machine, kernel, features)
    assert f"exec-env/AWS_Lambda_{RUNTIME}" in sent
    assert in_the_shape(sent), sent


def test_an_older_botocores_user_agent_has_the_shape() -> None:
    """botocore 1.34 (ua/2.0, before the features it counts): what Lambda's python3.12 shipped first."""
    older = (
        "Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#5.10.205-211.813.amzn2.x86_64 md/arch#x86_64 "
        "lang/python#3.12.1 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#standard "
        "Botocore/1.34.34"
    )
    assert in_the_shape(older)


def test_the_example_is_of_the_shape_and_iam_lets_it_through_the_lab_s_condition() -> None:
    example = user_agent_example(RUNTIME)
    assert in_the_shape(example)
    policy = parse_policy(EXPECTED.origin_role.inline_policies[ORIGIN_POLICY])
    assume = request("sts:AssumeRole", EXPECTED.destination_role.arn, {"aws:UserAgent": example})
    assert allows([policy], assume)


@pytest.mark.parametrize(
    "other",
    [
        "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.1 os/linux#5.10 md/arch#x86_64 lang/python#3.12.7 "
        "md/pyimpl#CPython exec-env/AWS_Lambda_nodejs20.x cfg/retry-mode#standard Botocore/1.35.36",
        "aws-sdk-js/3.600.0 ua/2.1 os/linux#5.10 lang/js md/nodejs#20.15.1 exec-env/AWS_Lambda_nodejs20.x",
        "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.1 os/linux#5.10 md/arch#x86_64 lang/python#3.13.0 "
        "md/pyimpl#CPython exec-env/AWS_Lambda_python3.13 cfg/retry-mode#standard Botocore/1.35.36",
    ],
)
def test_another_runtime_s_user_agent_is_not_of_the_shape(other: str) -> None:
    assert not in_the_shape(other)


def test_no_unknown_part_can_hold_another_runtime_s_name() -> None:
    """The kernel's release and the features hold letters, but no underscore before a letter: no
    value of the shape matches *AWS_Lambda_nodejs* (a cell of both would be one)."""
    shape = Atom(user_agent_shape(RUNTIME))
    nodejs = Atom(tokens("*AWS_Lambda_nodejs*", arn_aware=False, variables=False))
    assert all(cell.matched != frozenset({0, 1}) for cell in cells((shape, nodejs)))


# ------------------------------------------------------------------------- the lab's judgement


def origin_user_agent(condition: dict[str, Any], runtime: str = RUNTIME) -> ActualLab:
    actual = ActualLab.as_specified(EXPECTED, SHA)
    policy = copy.deepcopy(EXPECTED.origin_role.inline_policies[ORIGIN_POLICY])
    policy["Statement"][0]["Condition"] = condition
    origin = replace(actual.origin_role, inline_policies={ORIGIN_POLICY: policy})
    return actual.with_role(origin).with_function(replace(actual.function, runtime=runtime))


def like(pattern: str) -> dict[str, Any]:
    return {"StringLike": {"aws:UserAgent": pattern}}


def judged(actual: ActualLab) -> Judgement:
    return judge_lab(EXPECTED, actual, SHA, date(2026, 11, 29), engine=ENGINE)


def assume_hop_works(actual: ActualLab) -> bool | None:
    return access_path(EXPECTED, actual, ENGINE)[1].works


def test_another_runtime_s_name_breaks_the_lab() -> None:
    actual = origin_user_agent(like("*AWS_Lambda_nodejs*"))
    assert assume_hop_works(actual) is False
    judgement = judged(actual)
    assert judgement.verdict is Verdict.BROKEN
    finding = next(f for f in judgement.findings if f.check == Check.INLINE_POLICY)
    assert finding.breaks_lab
    assert "so the origin role can no longer assume the destination role" in finding.message
    assert not any(CANNOT_PROVE in f.message for f in judgement.findings)


def test_the_spec_s_own_condition_is_met() -> None:
    actual = origin_user_agent(like("*AWS_Lambda_python*"))
    assert assume_hop_works(actual) is True
    assert judged(actual).verdict is Verdict.CONFORMANT


@pytest.mark.parametrize("pattern", ["*exec-env/AWS_Lambda_python3.12*", "Boto3/*", "*md/pyimpl#CPython*"])
def test_what_every_request_of_the_runtime_carries_is_proven(pattern: str) -> None:
    actual = origin_user_agent(like(pattern))
    assert assume_hop_works(actual) is True
    judgement = judged(actual)
    assert judgement.verdict is Verdict.DRIFTED
    assert not any(f.breaks_lab or CANNOT_PROVE in f.message for f in judgement.findings)


def test_the_runtime_pinned_is_a_hardening() -> None:
    judgement = judged(origin_user_agent(like("*exec-env/AWS_Lambda_python3.12*")))
    finding = next(f for f in judgement.findings if f.check == Check.INLINE_POLICY)
    assert (finding.effect, finding.severity) == (Effect.NARROWED, Severity.LOW)
    assert "a hardening" in finding.message


def test_another_python_runtime_than_the_function_s_breaks_the_lab() -> None:
    actual = origin_user_agent(like("*exec-env/AWS_Lambda_python3.12*"), runtime="python3.13")
    assert assume_hop_works(actual) is False
    assert judged(actual).verdict is Verdict.BROKEN


@pytest.mark.parametrize("pattern", ["*Botocore/1.34*", "*md/arch#arm64*", "*lang/python#3.12.1 *"])
def test_a_condition_on_a_version_number_or_the_architecture_cannot_be_told(pattern: str) -> None:
    actual = origin_user_agent(like(pattern))
    assert assume_hop_works(actual) is None
    judgement = judged(actual)
    assert judgement.verdict is Verdict.DRIFTED
    assert any(
        f"{CANNOT_PROVE}: it depends on aws:UserAgent, which the auditor cannot know" in f.message
        for f in judgement.findings
    )


def test_a_word_the_kernel_s_release_could_hold_cannot_be_told() -> None:
    """The kernel's release is unknown and holds letters: a condition on letters alone is not refuted."""
    assert assume_hop_works(origin_user_agent(like("*nodejs*"))) is None


def test_the_listing_s_user_agent_is_the_runtime_s_too() -> None:
    actual = ActualLab.as_specified(EXPECTED, SHA)
    listing = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:ListAllMyBuckets",
                "Resource": "*",
                "Condition": like("*AWS_Lambda_nodejs*"),
            }
        ],
    }
    destination = replace(actual.destination_role, inline_policies={DESTINATION_POLICY: listing})
    judgement = judged(actual.with_role(destination))
    assert judgement.verdict is Verdict.BROKEN
    assert any("can no longer list buckets" in f.message for f in judgement.findings)
