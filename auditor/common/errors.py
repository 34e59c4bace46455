"""Errors the CLI maps to exit codes (interface.md), and how AWS says that something is not there."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


class OperationalError(Exception):
    """AWS unreachable after retries, database down, ...: exit code 1."""


class LabFault(Exception):
    """A fault of one lab (its accounts, its credentials, its lease): that lab fails, the others go on."""


_NOT_FOUND = {"NoSuchEntity", "ResourceNotFoundException", "404", "NoSuchBucket", "NotFound"}


def is_not_found(error: ClientError) -> bool:
    """An AWS answer that the thing asked for does not exist (each service says it its own way)."""
    return str(error.response.get("Error", {}).get("Code", "")) in _NOT_FOUND
