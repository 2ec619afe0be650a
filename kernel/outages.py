"""Whether an exception is a dependency's outage (PostgreSQL or Redis away, restarting or busy), not
a bug of the code that met it: such a failure is logged as one line and answered "unavailable"; a
deadlock, a serialization failure or a statement cancelled stays an error with its traceback."""

from __future__ import annotations

import psycopg
import redis
from django.db import InterfaceError, OperationalError

# SQLSTATEs of a server going away or refusing work: 08xxx (connection exceptions) are matched by
# their class; admin/crash shutdown, cannot connect now (57P01-03); a lock wait timed out (55P03,
# ``lock_timeout``: the database busy); too many connections (53300).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "55P03", "53300"})


def dependency_outage(error: BaseException | None) -> bool:
    """True for a Redis connection error or timeout, and for a database error raised without a server
    SQLSTATE (the connection lost or refused, the pool's timeout) or with one of an unavailable server
    (``_UNAVAILABLE_SQLSTATES``, class 08). False for anything else, a deadlock (40P01) included."""
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return True
    if not isinstance(error, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError):
        return False
    database_error = error if isinstance(error, psycopg.Error) else error.__cause__
    sqlstate = getattr(database_error, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
