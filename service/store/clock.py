"""The database's own clock as a SQL expression: leases are compared with one clock, the
store's, so the clocks of worker machines never matter."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class db_now(FunctionElement[float]):
    """Seconds since the epoch, as a float, on the database server."""

    type = sa.Float()
    inherit_cache = True


@compiles(db_now, "postgresql")
def _pg(_: Any, __: Any, **___: Any) -> str:
    return "EXTRACT(EPOCH FROM clock_timestamp())::float8"


@compiles(db_now, "sqlite")
def _sqlite(_: Any, __: Any, **___: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"
