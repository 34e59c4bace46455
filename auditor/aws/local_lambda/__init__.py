"""The local Lambda stand-in: the deployed function's code run in a process of its own, as Lambda's
Python runtime runs it, for emulators that cannot run code (`[audit] invoke_via = "local"`)."""

from auditor.aws.local_lambda.stand_in import LocalLambda, LocalLambdaClosed
from auditor.aws.local_lambda.zygote import Completed, base_environment

__all__ = ["Completed", "LocalLambda", "LocalLambdaClosed", "base_environment"]
