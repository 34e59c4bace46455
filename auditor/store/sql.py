"""Time arithmetic in SQL that reads the same on SQLite and PostgreSQL.

Times are `UtcDateTime` columns: integer microseconds since the epoch on SQLite, timestamptz on
PostgreSQL. These constructs let a query cut them into buckets, shift them and subtract them without
knowing which: each compiles to the spelling of the database at hand.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, SQLColumnExpression, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from auditor.store.types import UtcDateTime

MICROSECONDS = 1_000_000


def micros(width: timedelta) -> int:
    return width // timedelta(microseconds=1)


class epoch_us(FunctionElement[int]):
    """A time as whole microseconds since the epoch."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_us"


class truncated(FunctionElement[Any]):
    """A time rounded down to a multiple of `width` (given in microseconds) since the epoch."""

    type = UtcDateTime()
    inherit_cache = True
    name = "truncated"


class shifted(FunctionElement[Any]):
    """A time plus a number of microseconds."""

    type = UtcDateTime()
    inherit_cache = True
    name = "shifted"


def whole(value: int) -> ColumnElement[int]:
    """An integer written into the statement, not bound: a GROUP BY then matches its SELECT on PostgreSQL."""
    return literal_column(str(int(value)), BigInteger())


def truncate(moment: SQLColumnExpression[Any], width: timedelta) -> truncated:
    return truncated(moment, whole(micros(width)))


def shift(moment: SQLColumnExpression[Any], by: timedelta) -> shifted:
    return shifted(moment, whole(micros(by)))


def _arguments(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(argument, **kw) for argument in element.clauses]


@compiles(epoch_us, "sqlite")
def _epoch_us_sqlite(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    (moment,) = _arguments(element, compiler, **kw)
    return f"({moment})"


@compiles(epoch_us, "postgresql")
def _epoch_us_postgresql(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    (moment,) = _arguments(element, compiler, **kw)
    # EXTRACT gives numeric seconds with microseconds exact; round, never truncate, to whole microseconds.
    return f"CAST(round(EXTRACT(EPOCH FROM {moment}) * {MICROSECONDS}) AS BIGINT)"


@compiles(truncated, "sqlite")
def _truncated_sqlite(element: truncated, compiler: SQLCompiler, **kw: Any) -> str:
    moment, width = _arguments(element, compiler, **kw)
    return f"(({moment}) / {width} * {width})"


@compiles(truncated, "postgresql")
def _truncated_postgresql(element: truncated, compiler: SQLCompiler, **kw: Any) -> str:
    moment, width = _arguments(element, compiler, **kw)
    epoch = f"CAST(round(EXTRACT(EPOCH FROM {moment}) * {MICROSECONDS}) AS BIGINT)"
    return f"to_timestamp(CAST(div({epoch}, {width}) * {width} AS double precision) / {MICROSECONDS})"


@compiles(shifted, "sqlite")
def _shifted_sqlite(element: shifted, compiler: SQLCompiler, **kw: Any) -> str:
    moment, by = _arguments(element, compiler, **kw)
    return f"(({moment}) + {by})"


@compiles(shifted, "postgresql")
def _shifted_postgresql(element: shifted, compiler: SQLCompiler, **kw: Any) -> str:
    moment, by = _arguments(element, compiler, **kw)
    return f"(({moment}) + make_interval(secs => CAST({by} AS double precision) / {MICROSECONDS}))"
