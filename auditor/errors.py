"""Errors the CLI maps to exit codes (interface.md)."""


class OperationalError(Exception):
    """AWS unreachable after retries, database down, ...: exit code 1."""


class LabFault(Exception):
    """A fault of one lab (its accounts, its credentials, its lease): that lab fails, the others go on."""
