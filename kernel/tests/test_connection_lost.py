"""``kernel.plain_sql.connection_lost``: which errors of a pipeline that carried a COMMIT leave the
COMMIT's outcome unknown (the batch is not written again) and which are a refused statement (the
batch is written again, each message in its own savepoint, so that the refused one fails alone)."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
import pytest
from django.db import IntegrityError, OperationalError
from psycopg import pq

from kernel.plain_sql import connection_lost


def _from_postgresql(error_class: type[psycopg.Error], severity: str, sqlstate: str) -> psycopg.Error:
    """An error as psycopg builds it from PostgreSQL's answer: with its severity and SQLSTATE."""
    info: dict[int, bytes | None] = {
        pq.DiagnosticField.SEVERITY_NONLOCALIZED: severity.encode(),
        pq.DiagnosticField.SQLSTATE: sqlstate.encode(),
    }
    return error_class("from PostgreSQL", info=info)


def _django(error_class: type[Exception], cause: psycopg.Error) -> Exception:
    """A psycopg error as Django's cursor raises it (``wrap_database_errors``)."""
    error = error_class(str(cause))
    error.__cause__ = cause
    return error


OPEN = SimpleNamespace(closed=False, broken=False)

LOST = [
    psycopg.OperationalError("cannot exit pipeline mode while busy"),
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    psycopg.InterfaceError("the connection is lost"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    _from_postgresql(psycopg.errors.AdminShutdown, "FATAL", "57P01"),
    _from_postgresql(psycopg.errors.InternalError, "PANIC", "XX000"),  # a failed WAL flush at COMMIT
    _django(OperationalError, psycopg.errors.AdminShutdown("terminating connection")),
]

REFUSED = [
    _from_postgresql(psycopg.errors.UniqueViolation, "ERROR", "23505"),
    _from_postgresql(psycopg.errors.InvalidTextRepresentation, "ERROR", "22P02"),  # a row count checked in SQL
    _from_postgresql(psycopg.errors.LockNotAvailable, "ERROR", "55P03"),
    _from_postgresql(psycopg.errors.ProtocolViolation, "ERROR", "08P01"),  # the session lives on
    psycopg.errors.PipelineAborted("pipeline aborted"),  # a statement before it was refused: no COMMIT ran
    psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),  # adapted before sending
    _django(IntegrityError, _from_postgresql(psycopg.errors.ForeignKeyViolation, "ERROR", "23503")),
    ValueError("a value no dumper takes"),
]


@pytest.mark.parametrize("error", LOST, ids=repr)
def test_an_error_of_a_lost_session_leaves_the_commit_s_outcome_unknown(error):
    assert connection_lost(OPEN, error)


@pytest.mark.parametrize("error", REFUSED, ids=repr)
def test_a_refused_statement_is_not_a_lost_connection(error):
    assert not connection_lost(OPEN, error)


@pytest.mark.parametrize(
    "raw",
    [SimpleNamespace(closed=True, broken=False), SimpleNamespace(closed=False, broken=True)],
    ids=["closed", "broken"],
)
def test_whatever_the_error_a_closed_or_broken_connection_is_lost(raw):
    assert connection_lost(raw, REFUSED[0])
