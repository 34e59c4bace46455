"""The function's code: exactly the packaged lambda_src/ (its CodeSha256 comes with GetFunction)."""

from __future__ import annotations

from typing import ClassVar

from auditor.domain.actual import ActualLab
from auditor.domain.model import Effect, Finding, Severity, Status, Step
from auditor.domain.package import packaged
from auditor.domain.spec import ExpectedLab
from auditor.resources.base import Clients, Facts, Kind, Part, Sleep, call, finding
from auditor.resources.kinds.function import LAB_FUNCTION, wait_until_ready


class FunctionCode(Kind):
    name = "function_code"
    apply_rank = (1, 1)
    removal_rank = (1, 1)  # goes with the function
    calls: ClassVar = (
        call("lambda:UpdateFunctionCode", LAB_FUNCTION, Part.PROVISION, used_by="function_code.apply"),
    )

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        function = actual.function
        if facts.code_sha256 is None or not function.exists or function.code_sha256 == facts.code_sha256:
            return []  # a student's own code is judged by its run
        return [
            finding(
                "lambda_code.modified",
                self.subject(expected.function.account_id, expected.function.name, expected.function.name),
                expected.function.arn,
                Status.MODIFIED,
                Effect.CHANGED,
                Severity.HIGH,
                "the function's code is not the packaged lambda_src: it was replaced",
                {"CodeSha256": facts.code_sha256},
                {"CodeSha256": function.code_sha256},
            )
        ]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        lambda_client = clients.client(step.account_id, "lambda")
        lambda_client.update_function_code(FunctionName=step.name, ZipFile=packaged()[0])
        wait_until_ready(lambda_client, step.name)


KIND = FunctionCode()
