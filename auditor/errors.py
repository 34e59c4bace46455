"""Errors the CLI maps to exit codes (interface.md)."""


class OperationalError(Exception):
    """AWS unreachable after retries, database down, ...: exit code 1."""
