"""Model instances read with a plain statement, for the gateway's busiest reads (issue 15).

Building a query through the ORM (filters, joins, ordering, compiling) costs several times
running it; a statement written once as text skips that and still yields the model instances
the services expect: the same columns, converted as the ORM converts them (JSON, decimals).
Rows are written with COPY likewise. PostgreSQL only: callers keep the ORM for other databases.

Their parameters are bound by the server (``bound_cursor``): psycopg sends them apart from the
text, dumped by its compiled adapters, where Django's connection quotes each into the text as a
literal (``ClientCursor``; a tenth of the gateway's CPU in a fleet's closed loop, issue 15). So a
statement here casts a parameter whose type PostgreSQL cannot infer from where it stands (a
bare ``%s IS NULL``, a select list's value); an array is cast in any case, and passed as one text
literal (``array_text``).
"""

from __future__ import annotations

import json
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Model
from django.db.models.base import ModelState
from django.utils import timezone
from psycopg import pq
from psycopg.types.json import Jsonb

from kernel.deferred_begin import begin_for_pipeline, begun_alone, in_pipeline
from kernel.model_instances import init_unobserved

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


def bound_cursor() -> AbstractContextManager[CursorWrapper]:
    """``with bound_cursor() as cursor``: Django's cursor on the current connection, in its
    transaction, whose parameters the server binds (``csms.postgresql``'s ``bound_cursor``: a
    psycopg ``Cursor``); Django's own elsewhere (SQLite). Errors, execute wrappers and the query
    log are Django's, as for ``connection.cursor()``. Inside ``bound_cursors_kept`` the same cursor
    each time (not closed at the block's end): take its rows before the next statement."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each use of the proxy is a lookup (asgiref's Local)
    kept: _KeptCursor | None = getattr(_kept, "cursor", None)
    if kept is not None and kept.key == (db.connection, db.queries_logged):
        return kept
    bound: Callable[[], CursorWrapper] | None = getattr(db, "bound_cursor", None)
    if kept is None:
        return bound() if bound is not None else db.cursor()
    if kept.cursor is not None:
        kept.cursor.close()  # the connection was opened again, or its query log switched on or off
    cursor = bound() if bound is not None else db.cursor()
    kept.cursor, kept.key = cursor, (db.connection, db.queries_logged)
    return kept


class _KeptCursor:
    """The cursor ``bound_cursor`` lends inside ``bound_cursors_kept``: a block's end leaves it open."""

    __slots__ = ("cursor", "key")

    def __init__(self) -> None:
        self.cursor: CursorWrapper | None = None
        self.key: tuple[Any, bool] | None = None  # (the psycopg connection, whether Django logs queries)

    def __enter__(self) -> CursorWrapper:
        assert self.cursor is not None  # lent only once built
        return self.cursor

    def __exit__(self, *exc_info: object) -> None:
        return None


_kept = threading.local()


@contextmanager
def bound_cursors_kept() -> Iterator[None]:
    """Within the block, ``bound_cursor`` in this thread lends one cursor, closed at the end
    (a batch's: psycopg finds a parameter type's dumper and a column type's loader once per
    cursor, so a cursor per statement finds them again for each; about 15 µs a statement). A block
    inside another lends the outer block's cursor."""
    if getattr(_kept, "cursor", None) is not None:
        yield
        return
    kept = _kept.cursor = _KeptCursor()
    try:
        yield
    finally:
        _kept.cursor = None
        if kept.cursor is not None:
            kept.cursor.close()


def array_text(values: Sequence[Any]) -> str | list[Any]:
    """``values`` as PostgreSQL's text form of an array (``{1,NULL,"a\\"b"}``), for a parameter
    cast to its array type (``%s::bigint[]``): one ``str`` psycopg sends as it is, where a list is
    dumped element by element by its Python ``ListDumper`` (looked up, upgraded and run anew at
    every execute: about 2 µs per element, 3.7 times the cost of this; issue 15, round 11).

    Elements of the types the gateway's statements pass (``_ELEMENT_TEXT``: None, ``int``, ``bool``,
    ``Decimal``, ``str`` and its subclasses such as ``TextChoices``, ``Jsonb``, ``datetime``) are
    written as psycopg's dumpers write them; text and JSON always quoted, their ``"`` and ``\\``
    escaped. A ``datetime`` is written in ISO 8601 with its offset, for a ``timestamptz[]`` cast
    (every ``DateTimeField``'s type; a naive one is read in the session's time zone, as psycopg's
    ``timestamp[]`` is cast). Any other element type: the list itself, for psycopg to dump."""
    parts = []
    for value in values:
        text = _ELEMENT_TEXT.get(type(value))
        if text is None:
            if not isinstance(value, str):
                return list(values)
            text = _quoted
        parts.append(text(value))
    return "{" + ",".join(parts) + "}"


def _quoted(value: str) -> str:
    """An array element's quoted text: ``"`` and ``\\`` escaped by a backslash."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _decimal_text(value: Decimal) -> str:
    """psycopg's ``DecimalDumper``: a signalling NaN as ``NaN`` (PostgreSQL has no other)."""
    return "NaN" if value.is_nan() else str(value)


def _jsonb_text(value: Jsonb) -> str:
    """psycopg's ``JsonbDumper``: the wrapper's ``dumps`` (Django's gives its encoder's), else ``json.dumps``."""
    data = (value.dumps or json.dumps)(value.obj)
    return _quoted(data if isinstance(data, str) else bytes(data).decode())


_ELEMENT_TEXT: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "NULL",
    int: int.__repr__,
    bool: lambda value: "t" if value else "f",
    Decimal: _decimal_text,
    str: _quoted,
    datetime: datetime.isoformat,
    Jsonb: _jsonb_text,
}


def column_of(field: Field[Any, Any]) -> str:
    """A concrete field's column name (the stubs allow None, which only non-concrete fields have)."""
    assert field.column is not None
    return field.column


@cache
def columns_of(model: type[Model], alias: str) -> str:
    """The select list ``model_rows`` needs: every concrete column, qualified by ``alias``, in model order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(column_of(field))}" for field in model._meta.concrete_fields)


def condition_holds(condition: str, params: Sequence[Any]) -> bool:
    """Whether the SQL boolean expression ``condition`` is true now: ``SELECT condition``, one statement."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {condition}", params)
        row = cursor.fetchone()
    return bool(row and row[0])


def rows_pipelined(statements: Sequence[tuple[str, Any]]) -> list[list[tuple[Any, ...]]]:
    """Run ``statements`` (SQL, parameters) in order; the rows of each (none: a statement that
    returns none). On PostgreSQL two or more go in one round trip: a pipeline
    (``kernel.deferred_begin.in_pipeline``), after the transaction's BEGIN and settings when they
    wait (``begin_for_pipeline``), each by a cursor of its own (a pipelined cursor keeps its last
    result). PostgreSQL runs each once the one before it is done, so that under READ COMMITTED each
    reads as of its own start: after the row locks the ones before it took. One alone, off
    PostgreSQL, or inside a pipeline already: one after the other, by ``bound_cursor``. Raises the
    first refused statement's error, as Django's (the later ones skipped)."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: every use of the proxy looks it up
    db.ensure_connection()
    raw = db.connection if db.vendor == "postgresql" else None
    if raw is None or raw._pipeline is not None or not hasattr(db, "bound_cursor") or len(statements) < 2:
        found = []
        with bound_cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
                if raw is not None and raw._pipeline is not None:
                    with db.wrap_database_errors:  # a refusal read here is psycopg's
                        raw._pipeline.sync()  # its result read now
                found.append(cursor.fetchall() if cursor.description is not None else [])
        return found
    _inserts_written()  # a pipelined statement passes no execute wrapper's write first
    with ExitStack() as cursors_closed:
        lent = [bound_cursor(), *(db.bound_cursor() for _ in statements[1:])]  # the first kept (``bound_cursors_kept``)
        cursors: list[CursorWrapper] = [cursors_closed.enter_context(cursor) for cursor in lent]
        begin = begin_for_pipeline(raw)  # from here on ``in_pipeline`` restores psycopg's BEGIN

        def sent() -> None:
            for statement in begin:  # on the first cursor: its result is then the first statement's
                cursors[0].execute(statement)
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)

        with db.wrap_database_errors:  # an error read at the pipeline's end is psycopg's
            in_pipeline(raw, sent, begun=bool(begin))
        return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]


def model_rows(
    model: type[M], sql: str, params: Sequence[Any], *, related: tuple[str, type[Model]] | None = None
) -> list[M]:
    """``model`` instances for the rows of ``sql``, whose select list is ``columns_of(model, ...)``,
    then, with ``related`` (a foreign key's name and its model), ``columns_of(that model, ...)``:
    the instances come with that row attached, as ``select_related`` gives them. Rows read before
    an update gathered for them (of either model) was written: it is written, and ``sql`` run again."""
    rows = _rows_read(model, sql, params, related)
    width = len(model._meta.concrete_fields)
    instances = []
    for row in rows:
        instance = _instance(model, row[:width])
        if related is not None:  # a LEFT JOIN that found none: None, as select_related gives
            related_row = row[width:]
            related_model = related[1]
            found = related_row[related_model._meta.concrete_fields.index(related_model._meta.pk)] is not None
            setattr(instance, related[0], _instance(related_model, related_row) if found else None)
        instances.append(instance)
    return instances


def model_rows_with(model: type[M], sql: str, params: Sequence[Any]) -> list[tuple[M, tuple[Any, ...]]]:
    """``model_rows`` for a select list that goes on past ``columns_of(model, ...)`` with the
    caller's own columns: each instance with the rest of its row."""
    width = len(model._meta.concrete_fields)
    return [(_instance(model, row[:width]), tuple(row[width:])) for row in _rows_read(model, sql, params, None)]


def rows_of(model: type[Model], sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``sql``, whose select list begins with ``columns_of(model, ...)`` (a row that
    found none: its primary key NULL) and goes on with the caller's own columns (``instance_of``
    converts the model's slice). Read again after writing, as ``model_rows`` does, when read before
    an update gathered for one of them."""
    return _rows_read(model, sql, params, None)


def _rows_read(
    model: type[Model], sql: str, params: Sequence[Any], related: tuple[str, type[Model]] | None
) -> list[tuple[Any, ...]]:
    """The rows of ``model_rows``'s statement, read again if read before an update gathered for them."""
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return rows_current(model, rows, sql, params, related=related)


def rows_current(
    model: type[Model],
    rows: list[tuple[Any, ...]],
    sql: str,
    params: Sequence[Any],
    *,
    related: tuple[str, type[Model]] | None = None,
) -> list[tuple[Any, ...]]:
    """``rows``, read by ``sql`` (as ``rows_of`` or ``model_rows`` reads them; by a pipeline, say:
    ``rows_pipelined``), or, when read before an update gathered for one of them was written, that
    update written and ``sql`` run again: its rows."""
    width = len(model._meta.concrete_fields)
    pending: list[type[Model]] = [model] if _pending_among(model, rows) else []
    if related is not None and _pending_among(related[1], [row[width:] for row in rows]):
        pending.append(related[1])
    if not pending:
        return rows
    for stale in pending:  # read before its gathered update was written: write, read again
        gathered_rows_written(stale)
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def instance_of(model: type[M], row: Sequence[Any]) -> M:
    """The ``model`` instance of a row read by the caller's own statement, whose select list (or a
    slice of it) is ``columns_of(model, ...)``: converted as ``model_rows`` converts them."""
    return _instance(model, row)


def _instance(model: type[M], row: Sequence[Any]) -> M:
    values = list(row)
    db = connections[DEFAULT_DB_ALIAS]
    for index, expression, functions in _converters(model):
        for convert in functions:
            values[index] = convert(values[index], expression, db)
    return instance_of_row(model, _attnames(model), values)


def instance_of_row(model: type[M], attnames: Sequence[str], values: Sequence[Any]) -> M:
    """``model.from_db(DEFAULT_DB_ALIAS, attnames, values)``: an instance of a row read, the fields
    not in ``attnames`` (given in the model's field order, as ``from_db`` needs) deferred (read when
    first used). Without ``Model.__init__``'s loop over every field (its cost on the batch thread's
    status and session reads, issue 15) when nothing
    listens to the model's ``pre_init``/``post_init`` and it keeps Django's ``__init__`` and
    ``from_db``; otherwise through ``from_db``."""
    if not init_unobserved(model) or model.from_db.__func__ is not Model.from_db.__func__:  # type: ignore[attr-defined]
        return model.from_db(DEFAULT_DB_ALIAS, list(attnames), list(values))
    instance = model.__new__(model)
    state = ModelState()
    state.adding, state.db = False, DEFAULT_DB_ALIAS
    instance._state = state
    instance.__dict__.update(zip(attnames, values, strict=True))
    return instance


@cache
def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@cache
def _converters(model: type[Model]) -> list[tuple[int, Any, list[Converter]]]:
    """Per column that has any: the backend's and the field's converters, as the ORM applies them."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            found.append((index, column, functions))
    return found


def rows_copied(
    model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]], *, may_gather: bool = False
) -> None:
    """``rows`` (values of ``columns``, in order) into ``model``'s table with one COPY: no model
    instance nor INSERT to compile per row, and psycopg converts the values in C.

    ``may_gather``: inside ``copies_gathered`` the rows join the other callers' rows for the same
    table and columns, written by one COPY when the block ends (the caller must not read them
    back before then)."""
    gathered: dict[tuple[type[Model], tuple[str, ...]], list[Sequence[Any]]] | None = getattr(
        _gathering, "copies", None
    )
    if may_gather and gathered is not None:
        gathered.setdefault((model, tuple(columns)), []).extend(rows)
        return
    _copy(model, columns, rows)


def _copy(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """One COPY; a refusal raised as Django's error (``IntegrityError``...), as a statement's is."""
    _inserts_written()  # a COPY passes no execute wrapper: rows it refers to are written first
    begun_alone()  # nor may a pipeline take it: the transaction's BEGIN, if it waits, goes first
    quote = connection.ops.quote_name
    names = ", ".join(map(quote, columns))
    statement = f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN"
    with connection.wrap_database_errors, bound_cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


_gathering = threading.local()  # .copies, .updates, .upserts, .inserts: what this copies_gathered block gathered


@contextmanager
def copies_gathered(*, commit: bool = False) -> Iterator[None]:
    """Within the block, ``rows_copied(..., may_gather=True)`` of every caller in this thread only
    gathers the rows, ``instance_updated(..., may_gather=True)`` the rows' new values,
    ``instance_upserted(..., may_gather=True)`` and ``instance_inserted(..., may_gather=True)``
    their rows; when the block ends without an error they are written, in the transaction the
    block ran in (``_gathered_all_written``): first, a model's INSERTs by a COPY when it has more
    than one row or any copy is written by COPY, then the copies of more than
    ``PIPELINED_COPY_ROWS`` rows by theirs; then in one round trip (``_writes_sent``) the other
    INSERTs (a row each), one UPDATE per table and set of columns, one upsert per model and the
    smaller copies as ``INSERT ... SELECT FROM unnest(...)``. So a copied row may refer to an
    inserted one, never to a row an upsert of the block inserts (none does: meter samples refer
    to sessions and chargers). An error leaves them unwritten. A row read back through
    ``model_rows`` before then is written first; gathered INSERTs are written before any statement
    that names their table or a table referring to it (``_inserts_first``).

    ``commit``: the block ends its transaction (the group commit's batch: Django's outermost atomic
    block, nothing run in it after this block): its writes carry the transaction's COMMIT in their
    round trip, when there are some and the transaction may commit (no savepoint open, not marked
    for rollback); the atomic block's own COMMIT is then nothing to send. Their row counts are
    then checked by the statements themselves (``_counted_in_sql``): a wrong one leaves the
    COMMIT unsent, and Django rolls back. Those writes are planned once per connection
    (``_GATHERED_WRITES_PLAN_SETTINGS``)."""
    _gathering.copies, _gathering.updates, _gathering.upserts, _gathering.inserts = {}, {}, {}, {}
    try:
        yield
        _gathered_all_written(commit=commit)
    finally:
        _gathering.copies = _gathering.updates = _gathering.upserts = _gathering.inserts = None
        _inserts_unwatched()


# A gathered copy of at most this many rows goes in the block's last round trip as an INSERT
# (a COPY takes two of its own); a larger one stays a COPY, which PostgreSQL and psycopg write for
# less CPU per row (rounds 20 and 28; issue 15, round 30).
PIPELINED_COPY_ROWS = 32


def _gathered_all_written(*, commit: bool) -> None:
    """``copies_gathered``'s writes at its end: those that go before its pipeline, then it."""
    copies: dict[tuple[type[Model], tuple[str, ...]], list[Sequence[Any]]] = _gathering.copies
    _gathering.copies = None
    copies = {key: rows for key, rows in copies.items() if rows}
    writes = _single_inserts_taken(copies)
    _inserts_written()  # the others, a COPY each: before any row of the block that may refer to them
    _inserts_unwatched()  # the single rows go first in the pipeline, before any statement naming them
    for (model, columns), rows in copies.items():
        if len(rows) > PIPELINED_COPY_ROWS:
            _copy(model, columns, rows)
    writes += _gathered_writes(_gathering.updates, _gathering.upserts)
    writes += [
        (_rows_insert_of(model, columns), [array_text(column) for column in zip(*rows, strict=True)], None)
        for (model, columns), rows in copies.items()
        if len(rows) <= PIPELINED_COPY_ROWS
    ]
    _writes_sent(writes, commit=commit and bool(writes) and _may_commit_here())


def _single_inserts_taken(copies: dict[tuple[type[Model], tuple[str, ...]], list[Sequence[Any]]]) -> list[_Write]:
    """The gathered INSERTs as the pipeline's first statements, taken from those pending, when each
    model has one row and nothing is written before the pipeline (no larger copy); else none (all
    are then written first, by ``_inserts_written``)."""
    inserts: _PendingInserts = _gathering.inserts
    if any(len(rows) > 1 for rows in inserts.values()) or any(
        len(rows) > PIPELINED_COPY_ROWS for rows in copies.values()
    ):
        return []
    writes: list[_Write] = [(_insert_of(model, False)[2], rows[0], None) for model, rows in inserts.items()]
    inserts.clear()
    return writes


def _may_commit_here() -> bool:
    """Whether the current transaction may be committed by a statement of ours now: PostgreSQL,
    Django's outermost atomic block, no savepoint open, not marked for rollback, begun or to begin."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or not db.in_atomic_block or db.savepoint_ids or db.needs_rollback:
        return False
    raw = db.connection
    status = raw.pgconn.transaction_status
    return status == pq.TransactionStatus.INTRANS or (status == pq.TransactionStatus.IDLE and not raw.autocommit)


@lru_cache(maxsize=64)
def _rows_insert_of(model: type[Model], columns: tuple[str, ...]) -> str:
    """The INSERT of a gathered copy's rows: its parameters are the arrays of its columns' values."""
    quote = connection.ops.quote_name
    fields = {column_of(field): field for field in model._meta.concrete_fields}
    arrays = ", ".join(f"%s::{_cast_type(fields[column])}[]" for column in columns)
    names = ", ".join(map(quote, columns))
    return f"INSERT INTO {quote(model._meta.db_table)} ({names}) SELECT * FROM unnest({arrays})"


@contextmanager
def gathering_paused() -> Iterator[None]:
    """Inside ``copies_gathered``: what was gathered so far is written first, and within the block
    nothing is gathered (a unit in its own savepoint: a rollback of it then undoes only its own
    rows, and rows it wrote never wait for the end of a block it may fail in). Outside, nothing."""
    copies: dict[tuple[type[Model], tuple[str, ...]], list[Sequence[Any]]] | None = getattr(_gathering, "copies", None)
    updates: dict[type[Model], _PendingUpdates] | None = getattr(_gathering, "updates", None)
    if copies is None or updates is None:
        yield
        return
    _inserts_written()
    upserts: _PendingUpserts = _gathering.upserts
    _gathered_writes_sent(updates, upserts)
    for (model, columns), rows in copies.items():
        _copy(model, columns, rows)
    copies.clear()
    inserts: _PendingInserts = _gathering.inserts
    _gathering.copies = _gathering.updates = _gathering.upserts = _gathering.inserts = None
    try:
        yield
    finally:
        _gathering.copies, _gathering.updates, _gathering.upserts = copies, updates, upserts
        _gathering.inserts = inserts


def gathering() -> bool:
    """Whether this thread is inside ``copies_gathered`` and gathering (not paused)."""
    return getattr(_gathering, "updates", None) is not None


def gathered_rows_written(model: type[Model]) -> None:
    """Inside ``copies_gathered``: write now the rows gathered so far for ``model``'s table, so that
    a read of that table in the block sees them (a stop reading its session's ledger after an
    earlier unit of the batch stored readings), and every INSERT gathered (rows it may refer to).
    Outside the block, nothing to do."""
    _inserts_written()
    updates: dict[type[Model], _PendingUpdates] | None = getattr(_gathering, "updates", None)
    if updates and model in updates:
        _updates_written(model, updates.pop(model))
    gathered: dict[tuple[type[Model], tuple[str, ...]], list[Sequence[Any]]] | None = getattr(
        _gathering, "copies", None
    )
    if not gathered:
        return
    for key in [key for key in gathered if key[0] is model]:
        _copy(model, key[1], gathered.pop(key))


def gathered_rows_of(model: type[Model], columns: Sequence[str], where: tuple[str, Any]) -> list[list[Any]]:
    """Inside ``copies_gathered``: the values of ``columns`` of the rows gathered for ``model``'s
    table whose column ``where[0]`` holds ``where[1]``, in the order gathered (as prepared for the
    database), for a read that adds them to what it reads instead of writing them first (a stop
    reading its session's ledger with the readings it brought). Outside the block, none."""
    gathered: dict[tuple[type[Model], tuple[str, ...]], list[Sequence[Any]]] | None = getattr(
        _gathering, "copies", None
    )
    found: list[list[Any]] = []
    for (of, names), rows in (gathered or {}).items():
        if of is model:
            key, wanted = names.index(where[0]), [names.index(column) for column in columns]
            found += [[row[index] for index in wanted] for row in rows if row[key] == where[1]]
    return found


def instances_copied(model: type[Model], instances: Sequence[object], *, may_gather: bool = False) -> None:
    """``bulk_create(instances)`` as one COPY, for a model whose primary key the database sets;
    the instances' primary keys stay unset (None). ``instances``: the model's, or any objects with
    its concrete fields' attnames (``transaction_id``...), which cost less to build than a model
    instance (a row class with slots). ``may_gather``: as for ``rows_copied``."""
    fields = _copied_fields(model)
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: every use of the proxy looks it up
    values_of = _values_of(model)
    rows = (
        [_db_value(db, field, kind, value) for (field, kind), value in zip(fields, values_of(instance), strict=True)]
        for instance in instances
    )
    rows_copied(model, [column_of(field) for field, _ in fields], rows, may_gather=may_gather)


@cache
def _values_of(model: type[Model]) -> Callable[[object], tuple[Any, ...]]:
    """An object's values of ``_copied_fields(model)``, in order (one C call per row)."""
    return operator.attrgetter(*(field.attname for field, _ in _copied_fields(model)))


# Fields that hold a value of this exact type as PostgreSQL takes it: ``get_db_prep_save`` would
# return it unchanged (an int wrapped for the driver at most), so it is not called, the costliest
# part of a COPY's rows. Any other field or value type goes through ``get_db_prep_save``.
_AS_IS: dict[type, type] = {
    models.BigIntegerField: int,
    models.IntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.SmallIntegerField: int,
    models.CharField: str,
    models.TextField: str,
    models.BooleanField: bool,
    models.DateTimeField: datetime,
    models.DecimalField: Decimal,  # a finite one (PostgreSQL's backend adapts none)
    models.AutoField: int,  # a primary key handed out ahead (a batch's new session's)
    models.BigAutoField: int,
}
_INTEGER_KEYS = (models.AutoField, models.BigAutoField)


@cache
def _copied_fields(model: type[Model]) -> list[tuple[Field[Any, Any], type | None]]:
    """The columns ``instances_copied`` writes, each with the value type it passes as is (or None)."""
    return [(field, _kind_of(field)) for field in model._meta.concrete_fields if not field.primary_key]


def _kind_of(field: Field[Any, Any]) -> type | None:
    """The value type ``field`` passes as is (``_AS_IS``; an integer foreign key's ``int``), or None."""
    if type(field) is models.ForeignKey:
        return int if type(field.target_field) in _INTEGER_KEYS else None
    return _AS_IS.get(type(field))


@cache
def _kinds(model: type[Model]) -> dict[str, type | None]:
    """attname -> ``_kind_of`` each concrete field of ``model``: a statement's values are prepared
    as a COPY's rows are (``_db_value``), at a fifth of ``get_db_prep_save``'s cost for a row."""
    return {field.attname: _kind_of(field) for field in model._meta.concrete_fields}


def _db_value(db: BaseDatabaseWrapper, field: Field[Any, Any], kind: type | None, value: Any) -> Any:
    """``field.get_db_prep_save(value, db)``, skipped for a value PostgreSQL takes as it is (``_AS_IS``;
    other backends adapt more: SQLite writes times as naive UTC text, Decimals quantized)."""
    if kind is None or db.vendor != "postgresql":
        return field.get_db_prep_save(value, db)
    if value is None:
        return None
    if type(value) is kind:
        if kind is datetime and getattr(value, "tzinfo", None) is None:
            return field.get_db_prep_save(value, db)  # a naive time is made aware (with a warning)
        if isinstance(value, Decimal) and not value.is_finite():
            return field.get_db_prep_save(value, db)  # refused (ValidationError)
        return value
    return field.get_db_prep_save(value, db)


def instance_updated(
    instance: Model,
    attnames: Sequence[str],
    *,
    may_gather: bool = False,
    unless: tuple[str, Sequence[Any]] | None = None,
    guard: tuple[str, Any] | None = None,
) -> bool:
    """``instance.save(update_fields=attnames)`` as one plain UPDATE: its ``auto_now`` columns are
    set too; ``DatabaseError`` when the row is gone, as ``save`` raises. The statement and its
    fields are built once per model and set of columns (``_update_of``).

    ``may_gather``: inside ``copies_gathered`` the new values wait for the block's end, written
    with the other callers' by one UPDATE per set of columns (the caller must not read the row
    back but through ``model_rows``, which writes them first; nor may anything else). A second
    update of the same row writes the first at once.

    ``unless`` (not with ``may_gather``): an SQL boolean expression and its parameters; when it
    holds, the statement writes nothing and False is returned (the row is then not checked), else
    True. For a write that needs company in a transaction only in some cases: one statement
    decides and writes (issue 15).

    ``guard``: a field's attname and the value the row must still hold for the write to happen
    (an optimistic check of a row read without its lock: ``updated_at`` as cached); when it does
    not, ``DatabaseError``, now or when the gathered rows are written."""
    if may_gather and unless is not None:
        raise ValueError("instance_updated: unless needs its statement now, not gathered")
    model = type(instance)
    fields, statement = _update_of(model, tuple(attnames))
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: every use of the proxy looks it up
    kinds = _kinds(model)
    values = [_db_value(db, field, kinds[field.attname], field.pre_save(instance, False)) for field in fields]
    updates: dict[type[Model], _PendingUpdates] | None = getattr(_gathering, "updates", None)
    guarded = _guarded(model, guard, db)
    if may_gather and updates is not None:
        if instance.pk in updates.get(model, {}):
            gathered_rows_written(model)
        updates.setdefault(model, {})[instance.pk] = (tuple(attnames), values, guarded)
        return True
    if updates and instance.pk in updates.get(model, {}):  # after the one gathered before it
        gathered_rows_written(model)
    with bound_cursor() as cursor:
        params = [*values, instance.pk]
        if unless is not None:
            statement += f" AND NOT {unless[0]}"
            params += unless[1]
        if guarded is not None:
            statement += f" AND {db.ops.quote_name(column_of(guarded[0]))} = %s"
            params.append(guarded[1])
        cursor.execute(statement, params)
        if cursor.rowcount == 0:
            if unless is not None:
                return False
            if guarded is not None:
                raise DatabaseError("Save of a row changed since it was read: nothing written.")
            raise DatabaseError("Save with update_fields did not affect any rows.")
    return True


def _guarded(
    model: type[Model], guard: tuple[str, Any] | None, db: BaseDatabaseWrapper
) -> tuple[Field[Any, Any], Any] | None:
    """``instance_updated``'s guard as its field and the value prepared for the database ``db``."""
    if guard is None:
        return None
    field, value = _guard_field(model, guard[0]), guard[1]
    aware = type(value) is datetime and value.tzinfo is not None
    if aware and db.vendor == "postgresql" and _kinds(model)[field.attname] is datetime:
        return field, value  # what get_db_prep_value returns for it (every kept session's save): no prep
    return field, field.get_db_prep_value(value, db)


@cache
def _guard_field(model: type[Model], name: str) -> Field[Any, Any]:
    return _concrete(model._meta.get_field(name))


@lru_cache(maxsize=256)  # a session saves a few sets of changed columns
def _update_of(model: type[Model], attnames: tuple[str, ...]) -> tuple[list[Field[Any, Any]], str]:
    """The fields ``instance_updated`` sets (``attnames``, then the ``auto_now`` ones) and its UPDATE."""
    meta = model._meta
    fields = [_concrete(meta.get_field(name)) for name in attnames]
    fields += [field for field in meta.concrete_fields if getattr(field, "auto_now", False) and field not in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column_of(field))} = %s" for field in fields)
    assert meta.pk is not None
    return fields, f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(column_of(meta.pk))} = %s"


# pk -> (attnames, the values of _update_of's fields, the guard's field and value or None)
_PendingUpdates = dict[Any, tuple[tuple[str, ...], list[Any], "tuple[Field[Any, Any], Any] | None"]]


def _pending_among(model: type[Model], rows: Sequence[Sequence[Any]]) -> bool:
    """Whether a row read of ``model`` (its primary key in its model's column order) has an update gathered."""
    updates: dict[type[Model], _PendingUpdates] | None = getattr(_gathering, "updates", None)
    pending = updates.get(model) if updates else None
    if not pending:
        return False
    index = _pk_index(model)
    return any(row[index] in pending for row in rows)


@cache
def _pk_index(model: type[Model]) -> int:
    return model._meta.concrete_fields.index(model._meta.pk)


def _cast_type(field: Field[Any, Any]) -> str | None:
    """The type of a gathered column's array's elements: a character column's without its length,
    since an explicit cast to ``varchar(n)`` truncates where the assignment raises, as a plain
    UPDATE does ("value too long")."""
    db_type = field.db_type(connection) or ""
    return "text" if db_type.startswith(("varchar", "char")) else db_type


# A gathered write: its text, its parameters, and the rows it must affect (None: not checked).
_Write = tuple[str, list[Any], int | None]


def _updates_written(model: type[Model], pending: _PendingUpdates) -> None:
    """The gathered updates of ``model``'s rows (``_update_writes``), sent as ``_writes_sent`` sends them."""
    _writes_sent(_update_writes(model, pending))


def _gathered_writes_sent(updates: dict[type[Model], _PendingUpdates], upserts: _PendingUpserts) -> None:
    """Every gathered update and upsert written together (``_gathered_writes``, ``_writes_sent``:
    on PostgreSQL one round trip for them all)."""
    _writes_sent(_gathered_writes(updates, upserts))


def _gathered_writes(updates: dict[type[Model], _PendingUpdates], upserts: _PendingUpserts) -> list[_Write]:
    """The statements of every gathered update (each model's, in the order gathered) then of every
    gathered upsert; both emptied."""
    writes: list[_Write] = []
    for model in list(updates):
        writes += _update_writes(model, updates.pop(model))
    writes += _upsert_writes(upserts)
    upserts.clear()
    return writes


def _update_writes(model: type[Model], pending: _PendingUpdates) -> list[_Write]:
    """The statements of the gathered updates of ``model``'s rows: one ``UPDATE ... FROM unnest(...)``
    per set of columns (and guard field), each column's values one array parameter, each to affect
    every row it names (``_writes_sent`` raises ``DatabaseError`` when a row is gone or a guarded
    row no longer holds its guard's value, as ``instance_updated`` raises)."""
    by_columns: dict[tuple[tuple[str, ...], Field[Any, Any] | None], list[list[Any]]] = {}
    for pk, (attnames, values, guarded) in pending.items():
        guard_field, guard_value = guarded if guarded is not None else (None, None)
        row_values = [pk, *values] + ([guard_value] if guard_field is not None else [])
        by_columns.setdefault((attnames, guard_field), []).append(row_values)
    # One array per column: the statement's text is the same whatever the number of rows, so
    # psycopg parses it once (a VALUES list of a placeholder per value was parsed anew for every
    # batch, a fifth of the batch thread's CPU; issue 15).
    return [
        (
            _gathered_update_of(model, attnames, guard_field),
            [array_text(column) for column in zip(*rows, strict=True)],
            len(rows),
        )
        for (attnames, guard_field), rows in by_columns.items()
    ]


def _writes_sent(writes: list[_Write], *, commit: bool = False) -> None:
    """Run ``writes`` in order; ``DatabaseError`` when one affected fewer rows than it must.

    On PostgreSQL two or more are sent in one pipeline (``_pipelined``): every statement sent,
    then one Sync, one round trip for them all where each waited for its answer (issue 15, round
    22: a third of PostgreSQL's CPU is the kernel's, per round trip); the transaction's BEGIN at
    their head when it waits (``kernel.deferred_begin``). Nothing is read from them but their row
    counts, checked once all are answered; the first refused statement's error is raised
    (PostgreSQL skips the rest: the transaction has failed), as Django's error, as a cursor raises
    it. Each has a cursor of its own (a pipelined cursor keeps only its last statement's result).

    ``commit`` (PostgreSQL, the transaction's last statements: ``copies_gathered``): ``COMMIT``
    goes last in the pipeline, and each statement checks its own row count (``_counted_in_sql``),
    so that a wrong count stops the COMMIT; the writes are planned once per connection
    (``_GATHERED_WRITES_PLAN_SETTINGS``)."""
    if not writes:
        return
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: every use of the proxy looks it up
    raw = db.connection if db.vendor == "postgresql" else None
    if raw is None or raw._pipeline is not None or not hasattr(db, "bound_cursor") or (len(writes) == 1 and not commit):
        for statement, params, rows in writes:
            with bound_cursor() as cursor:
                cursor.execute(statement, params)
                _rows_checked(cursor.rowcount, rows)
        return  # a COMMIT too is Django's
    _inserts_written()  # a pipelined statement passes no execute wrapper's write first
    if commit:
        writes = [_counted_in_sql(write) for write in writes]
    sent = _Sent()
    try:
        with db.wrap_database_errors:
            try:
                _pipelined(raw, db.bound_cursor, writes, sent, commit=commit)
            except Exception as error:  # psycopg's, or Django's from a cursor
                if sent.commit and connection_lost(raw, error):
                    raw.close()  # whatever it still looks like: it is not used again
                    raise CommitOutcomeUnknown(f"the connection was lost with the COMMIT in flight: {error}") from error
                raise
        for cursor, rows in sent.cursors:
            _rows_checked(cursor.rowcount, rows)
    finally:
        for cursor, _ in sent.cursors:
            cursor.close()


# admin_shutdown (pg_terminate_backend) and crash_shutdown: a session PostgreSQL ended, told by an
# error that carries no severity (made by psycopg, not read from PostgreSQL).
_SESSION_ENDED_STATES = frozenset({"57P01", "57P02"})


def connection_lost(raw: psycopg.Connection[Any], error: BaseException) -> bool:
    """Whether ``error``, raised by a pipeline of ``raw`` once its COMMIT was sent, leaves the
    COMMIT's outcome unknown rather than refused: ``raw`` closed or broken, PostgreSQL ended the
    session (a FATAL or PANIC error, read before the socket's end), or psycopg lost track of it
    (its own ``OperationalError``, no SQLSTATE: "cannot exit pipeline mode while busy", ``raw``
    still looking open). A refused statement is an ERROR with its SQLSTATE (``PipelineAborted``:
    one before it was, the COMMIT skipped)."""
    if raw.closed or raw.broken:
        return True
    cause = error if isinstance(error, psycopg.Error) else error.__cause__
    if not isinstance(cause, psycopg.Error) or isinstance(cause, psycopg.errors.PipelineAborted):
        return False
    if cause.sqlstate is None:
        return isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError)
    return cause.diag.severity_nonlocalized in ("FATAL", "PANIC") or cause.sqlstate in _SESSION_ENDED_STATES


class CommitOutcomeUnknown(OperationalError):
    """The connection was lost in the round trip that carried the transaction's ``COMMIT``
    (``copies_gathered(commit=True)``): PostgreSQL may have committed it, or not. Its writes must
    not be made again as if they had not been (a 1.6 reading has no id to tell a second copy by):
    the caller reports the transaction's outcome as unknown, and whoever sent them decides."""


class _Sent:
    """What ``_pipelined`` sent: its cursors (a write's with the rows it must affect), and whether
    its COMMIT went (or was going when the error came)."""

    __slots__ = ("commit", "cursors")

    def __init__(self) -> None:
        self.cursors: list[tuple[CursorWrapper, int | None]] = []
        self.commit = False


def _pipelined(
    raw: psycopg.Connection[Any],
    bound: Callable[[], CursorWrapper],
    writes: list[_Write],
    sent: _Sent,
    *,
    commit: bool = False,
) -> None:
    """Send ``writes`` in one pipeline of ``raw`` (``kernel.deferred_begin.in_pipeline``), each by a
    cursor of its own (``bound``) added to ``sent``, after the transaction's BEGIN and settings
    if they wait (``begin_for_pipeline``) and before a ``COMMIT`` with ``commit``, these by one
    more cursor; the error of the first refused statement. With ``commit``, the writes are planned
    under ``_GATHERED_WRITES_PLAN_SETTINGS``, sent before them."""
    begin = begin_for_pipeline(raw)

    def send() -> None:
        own = bound() if begin or commit else None  # for BEGIN, settings, COMMIT: no result read
        if own is not None:
            sent.cursors.append((own, None))
            for statement in begin:
                own.execute(statement)
            if commit and raw.prepare_threshold is not None:
                own.execute(_GATHERED_WRITES_PLAN_SETTINGS)
        for statement, params, rows in writes:
            cursor = bound()
            sent.cursors.append((cursor, rows))
            cursor.execute(statement, params)  # Django's cursor: Django's error
        if own is not None and commit:
            sent.commit = True  # from here, a lost connection may have carried it
            own.execute("COMMIT")

    in_pipeline(raw, send, begun=bool(begin))


# Sent before the writes that carry a transaction's COMMIT (``_pipelined``), when psycopg prepares
# statements (``CSMS_DB_PREPARE_THRESHOLD``; unprepared, a generic plan would be made at every
# execution): once prepared, each of those writes is planned once per connection and its plan kept,
# instead of planned again at every batch. They are the gathered writes: an UPDATE joining its rows
# on the primary key (``UPDATE ... FROM unnest(...) WHERE pk = v.pk``), INSERTs from arrays (an
# upsert's ``ON CONFLICT`` on a unique column) and one-row INSERTs, which join nothing. PostgreSQL,
# costing a generic plan for arrays of unknown length (10 rows), chose to plan each UPDATE for its
# own arrays: 100-170 µs of its CPU a statement for 60-120 µs of execution. A generic plan alone,
# made from a young table's statistics, may scan the whole table (the fleet's fresh database:
# PostgreSQL's CPU per persisted message 1.1-1.3x, as rounds 23-25 found for generic plans
# everywhere); without sequential scans, hash or merge joins an UPDATE's plan goes through the key's
# index: a nested loop looking up each row of the arrays, or, on a table whose statistics say it
# holds a few rows, reading that index whole. A plan is kept until the table's next ANALYZE
# (autovacuum's: after 50 rows and a tenth of the table changed), which makes it again. The
# foreign key checks these writes fire (primary key lookups) are planned under the same settings.
# Nothing else runs after them in the transaction: the statements before keep PostgreSQL's choices
# (a read's plan may depend on its parameters: the stops' ledgers' ``ORDER BY ... LIMIT``). Issue
# 15, round 36 ("Round 36" in ``docs/performance.md``): PostgreSQL's CPU per persisted message in
# the fleet's rate phase 0.85x, the gateway's 1.02x (this statement).
_GATHERED_WRITES_PLAN_SETTINGS = (
    "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true),"
    " set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
)


def _counted_in_sql(write: _Write) -> _Write:
    """``write`` checking the rows it must affect itself: an UPDATE as ``WITH ... RETURNING`` whose
    count, when it differs, is cast to an integer and refused (``invalid_text_representation``,
    the message naming both counts), the pipeline's later statements skipped."""
    statement, params, rows = write
    if rows is None:
        return write
    return _counted_text(statement), [*params, rows, rows], None


@lru_cache(maxsize=256)
def _counted_text(statement: str) -> str:
    return (
        f"WITH csms_written AS ({statement} RETURNING 1) SELECT CASE WHEN count(*) = %s::int THEN 1 ELSE"
        " ('csms: ' || count(*) || ' rows written of ' || %s::int || ': a row is gone or was changed')::int END"
        " FROM csms_written"
    )


def _rows_checked(affected: int, rows: int | None) -> None:
    if rows is not None and affected != rows:
        raise DatabaseError("Save with update_fields did not affect any rows (or a guarded row changed).")


# (model, conflict column, kept columns) -> conflict value -> the row's values (``_upsert_of``'s fields)
_PendingUpserts = dict[tuple[type[Model], str, tuple[str, ...]], dict[Any, list[Any]]]


def instance_upserted(instance: Model, *, conflict: str, kept: Sequence[str] = (), may_gather: bool = False) -> None:
    """``update_or_create`` of ``instance`` by its unique column ``conflict``, as one
    ``INSERT ... ON CONFLICT DO UPDATE``: the row holds the instance's values, but for the
    columns ``kept`` when it existed; ``auto_now`` columns set as the ORM sets them. The primary
    key the row has is read back onto the instance.

    ``may_gather``: inside ``copies_gathered`` the row waits for the block's end, written with
    the other callers' of its model by one statement (issue 15: a stop's billing record); a later
    row of the same ``conflict`` value replaces the earlier one, and the instance's primary key
    stays None (the caller must not read the row back before the block ends)."""
    fields, _ = _upsert_of(type(instance), conflict, tuple(kept))
    db, kinds = connections[DEFAULT_DB_ALIAS], _kinds(type(instance))
    values = [_db_value(db, field, kinds[field.attname], field.pre_save(instance, True)) for field in fields]
    pk = _upsert_row(type(instance), conflict, tuple(kept), getattr(instance, conflict), values, may_gather=may_gather)
    if pk is not None:
        instance.pk = pk
        instance._state.adding = False


def row_upserted(
    model: type[Model], values: dict[str, Any], *, conflict: str, kept: Sequence[str] = (), may_gather: bool = False
) -> None:
    """``instance_upserted`` of a row given by its columns' values, with no model instance built
    (its constructor and its relations' descriptors were a third of a stop's billing record;
    issue 15): ``values`` maps the attname of every column written (``_upsert_of``'s fields) to
    its value, but for the ``auto_now`` / ``auto_now_add`` ones, set to the time now as
    ``instance_inserted`` sets them. For a writer that needs nothing back: the row's primary key
    is not read, gathered or not. Only for a model whose fields' ``pre_save`` reads the value."""
    attnames, stamped, kinds = _row_upsert_plan(model, conflict, tuple(kept))
    now = timezone.now() if stamped else None
    row = [now if attname in stamped else values[attname] for attname in attnames]
    _db_values_prepared(connections[DEFAULT_DB_ALIAS], kinds, row)
    _upsert_row(model, conflict, tuple(kept), values[conflict], row, may_gather=may_gather)


@lru_cache(maxsize=64)
def _row_upsert_plan(
    model: type[Model], conflict: str, kept: tuple[str, ...]
) -> tuple[tuple[str, ...], frozenset[str], tuple[tuple[Field[Any, Any], type | None], ...]]:
    """``row_upserted``'s plan: the attnames of ``_upsert_of``'s fields, those stamped with the
    time, each field with its ``_kind_of``; ``ValueError`` for a field whose ``pre_save`` needs an
    instance (keyed by the model, not by the fields: a field's hash is a Python call)."""
    fields, _ = _upsert_of(model, conflict, kept)
    stamped, custom, _, kinds = _fields_plan(fields)
    if custom:
        raise ValueError(f"row_upserted: {model.__name__} has fields whose pre_save needs an instance")
    return tuple(field.attname for field in fields), frozenset(stamped), kinds


def _upsert_row(
    model: type[Model],
    conflict: str,
    kept: tuple[str, ...],
    conflict_value: Any,
    values: list[Any],
    *,
    may_gather: bool,
) -> Any:
    """Write one upsert's ``values`` (``_upsert_of``'s fields'), or gather them (``may_gather``
    inside ``copies_gathered``: then None); the row's primary key when written now."""
    upserts: _PendingUpserts | None = getattr(_gathering, "upserts", None)
    key = (model, conflict, kept)
    if may_gather and upserts is not None:
        upserts.setdefault(key, {})[conflict_value] = values
        return None
    if upserts:  # an earlier gathered row of this key: this later one replaces it, now
        upserts.get(key, {}).pop(conflict_value, None)
    with bound_cursor() as cursor:
        cursor.execute(_upsert_of(model, conflict, kept)[1], values)
        return cursor.fetchone()[0]


def _upsert_writes(upserts: _PendingUpserts) -> list[_Write]:
    """The statements of the gathered upserts: one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT``
    per model, each column's values one array parameter (at most one row per conflict value, as
    gathered). Its text is the same whatever the number of rows: psycopg converts it once and
    prepares it (a VALUES list of a placeholder per value was converted per batch; issue 15)."""
    return [
        (
            _gathered_upsert_of(model, conflict, kept),
            [array_text(column) for column in zip(*rows.values(), strict=True)],
            None,
        )
        for (model, conflict, kept), rows in upserts.items()
        if rows
    ]


@lru_cache(maxsize=64)
def _gathered_upsert_of(model: type[Model], conflict: str, kept: tuple[str, ...]) -> str:
    """``_upsert_writes``'s statement: its parameters are the arrays of ``_upsert_of``'s fields' values."""
    fields, _ = _upsert_of(model, conflict, kept)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_of(field)) for field in fields)
    arrays = ", ".join(f"%s::{_cast_type(field)}[]" for field in fields)
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT * FROM unnest({arrays})"
        f"{_upsert_conflict_clause(model, conflict, kept)}"
    )


@lru_cache(maxsize=64)
def _upsert_of(model: type[Model], conflict: str, kept: tuple[str, ...]) -> tuple[tuple[Field[Any, Any], ...], str]:
    """The fields ``instance_upserted`` writes (every concrete one but the primary key) and its
    statement for one row (built once per model: issue 15)."""
    meta, quote = model._meta, connection.ops.quote_name
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    columns = ", ".join(quote(column_of(field)) for field in fields)
    row = f"({', '.join(['%s'] * len(fields))})"
    return fields, (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {row}{_upsert_conflict_clause(model, conflict, kept)}"
    )


def _upsert_conflict_clause(model: type[Model], conflict: str, kept: tuple[str, ...]) -> str:
    """`` ON CONFLICT (conflict) DO UPDATE SET <every written column but conflict and kept> RETURNING pk``:
    the end of both ``_upsert_of``'s and ``_gathered_upsert_of``'s statements."""
    meta, quote = model._meta, connection.ops.quote_name
    assert meta.pk is not None
    columns = [quote(column_of(field)) for field in meta.concrete_fields if not field.primary_key]
    unchanged = {quote(column_of(_concrete(meta.get_field(name)))) for name in (conflict, *kept)}
    return (
        f" ON CONFLICT ({quote(column_of(_concrete(meta.get_field(conflict))))}) DO UPDATE SET "
        + ", ".join(f"{column} = EXCLUDED.{column}" for column in columns if column not in unchanged)
        + f" RETURNING {quote(column_of(meta.pk))}"
    )


@lru_cache(maxsize=256)
def _gathered_update_of(model: type[Model], attnames: tuple[str, ...], guard_field: Field[Any, Any] | None) -> str:
    """``_updates_written``'s statement for one set of columns: its parameters are the arrays of
    the primary keys, of each of ``_update_of``'s fields, then of the guard's values (if any)."""
    meta, quote = model._meta, connection.ops.quote_name
    assert meta.pk is not None
    fields, _ = _update_of(model, attnames)
    pk_column = quote(column_of(meta.pk))
    table = quote(meta.db_table)
    casts = [f"%s::{meta.pk.rel_db_type(connection)}[]"] + [f"%s::{_cast_type(field)}[]" for field in fields]
    names = [pk_column] + [quote(column_of(field)) for field in fields]
    condition = f"{table}.{pk_column} = v.{pk_column}"
    if guard_field is not None:
        casts.append(f"%s::{_cast_type(guard_field)}[]")
        names.append("csms_guard")
        condition += f" AND {table}.{quote(column_of(guard_field))} = v.csms_guard"
    assignments = ", ".join(f"{quote(column_of(field))} = v.{quote(column_of(field))}" for field in fields)
    return (
        f"UPDATE {table} SET {assignments} FROM unnest({', '.join(casts)}) AS v({', '.join(names)}) WHERE {condition}"
    )


def instance_inserted(instance: Model, *, may_gather: bool = False) -> None:
    """``instance.save()`` of a new row as one plain INSERT: ``auto_now``/``auto_now_add`` columns
    set as the ORM sets them, a primary key the database makes read back onto the instance.

    ``may_gather``, for an instance that has its primary key (handed out beforehand: the batch's
    ``nextval``): inside ``copies_gathered`` the row waits, written with the other gathered rows
    of its model by one COPY (``_inserts_written``) before the first statement of the
    block that names its table or a table with a foreign key to it (the execute wrapper
    ``_inserts_first``), before any COPY, ``gathering_paused`` and ``gathered_rows_written``,
    else at the block's end, before the gathered UPDATEs. A refusal (a constraint) is then the
    block's error, or that statement's."""
    model = type(instance)
    database_sets_pk = instance.pk is None
    auto, _, statement = _insert_of(model, database_sets_pk)
    db = connections[DEFAULT_DB_ALIAS]
    values = _inserted_values(db, instance, database_sets_pk)
    inserts: _PendingInserts | None = getattr(_gathering, "inserts", None)
    if may_gather and auto is None and inserts is not None:
        if not inserts:
            _inserts_watched(db)
        inserts.setdefault(model, []).append(values)
        instance_saved(instance)
        return
    with bound_cursor() as cursor:
        cursor.execute(statement, values)
        if auto is not None:
            row = cursor.fetchone()
            assert row is not None
            setattr(instance, auto.attname, row[0])
    instance_saved(instance)


def _inserted_values(db: BaseDatabaseWrapper, instance: Model, database_sets_pk: bool) -> list[Any]:
    """The values of ``_insert_of(type(instance), database_sets_pk)``'s fields an INSERT of
    ``instance`` writes, as ``field.pre_save(instance, True)`` then ``_db_value`` give them, with
    less Python per field: the ``auto_now``/``auto_now_add`` columns set to one ``timezone.now()``
    (Django's ``save`` reads the clock once per such column), the fields whose ``pre_save`` only
    reads the attribute read by one C call, a value of the type PostgreSQL takes as it is
    (``_AS_IS``) passed without a call."""
    stamped, custom, read, kinds = _insert_plan(type(instance), database_sets_pk)
    if stamped:
        now = timezone.now()
        for attname in stamped:
            setattr(instance, attname, now)
    values = list(read(instance))
    for index, field in custom:
        values[index] = field.pre_save(instance, True)
    if db.vendor != "postgresql":
        return [field.get_db_prep_save(value, db) for (field, _), value in zip(kinds, values, strict=True)]
    _db_values_prepared(db, kinds, values)
    return values


def _db_values_prepared(
    db: BaseDatabaseWrapper, kinds: tuple[tuple[Field[Any, Any], type | None], ...], values: list[Any]
) -> None:
    """``values`` (of the fields of ``kinds``, ``_fields_plan``'s, in order; PostgreSQL) each replaced
    by ``_db_value``'s, without a call for a value of the type PostgreSQL takes as it is."""
    for index, (field, kind) in enumerate(kinds):
        value = values[index]
        if kind is None or (value is not None and (type(value) is not kind or kind in _CHECKED)):
            values[index] = _db_value(db, field, kind, value)


# Kinds ``_db_value`` still checks when the type matches: a naive time, a non-finite Decimal.
_CHECKED = (datetime, Decimal)


@lru_cache(maxsize=64)
def _insert_plan(
    model: type[Model], database_sets_pk: bool
) -> tuple[
    tuple[str, ...],
    tuple[tuple[int, Field[Any, Any]], ...],
    Callable[[Model], tuple[Any, ...]],
    tuple[tuple[Field[Any, Any], type | None], ...],
]:
    """``_inserted_values``'s plan for ``_insert_of(model, database_sets_pk)``'s fields: the
    attnames stamped with the time (``auto_now``, ``auto_now_add``), the fields (by index) whose
    own ``pre_save`` must run, one getter of every field's attribute (a tuple, in order), and each
    field with its ``_kind_of``. Keyed by the model, not by its fields: a tuple of 33 fields
    hashed per call was ~3.5 µs of every INSERT (``Field.__hash__`` is Python; issue 15)."""
    return _fields_plan(_insert_of(model, database_sets_pk)[1])


def _fields_plan(
    fields: tuple[Field[Any, Any], ...],
) -> tuple[
    tuple[str, ...],
    tuple[tuple[int, Field[Any, Any]], ...],
    Callable[[Model], tuple[Any, ...]],
    tuple[tuple[Field[Any, Any], type | None], ...],
]:
    """``_insert_plan``'s for ``fields`` (not cached: its callers' caches are keyed by the model)."""
    stamped: list[str] = []
    custom: list[tuple[int, Field[Any, Any]]] = []
    for index, field in enumerate(fields):
        if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
            stamped.append(field.attname)
        elif isinstance(field, models.DateField) and (field.auto_now or field.auto_now_add):
            custom.append((index, field))  # a date: its own pre_save
        elif type(field).pre_save not in (Field.pre_save, models.DateField.pre_save, models.DateTimeField.pre_save):
            custom.append((index, field))
    getter = operator.attrgetter(*(field.attname for field in fields))
    read = getter if len(fields) > 1 else lambda instance: (getter(instance),)
    kinds = tuple((field, _kind_of(field)) for field in fields)
    return tuple(stamped), tuple(custom), read, kinds


@lru_cache(maxsize=64)
def _insert_of(
    model: type[Model], database_sets_pk: bool
) -> tuple[Field[Any, Any] | None, tuple[Field[Any, Any], ...], str]:
    """``instance_inserted``'s auto field read back (None: the instance has its primary key), the
    fields it writes and its statement, built once per model (issue 15)."""
    meta, quote = model._meta, connection.ops.quote_name
    auto = meta.auto_field if database_sets_pk else None
    fields = tuple(field for field in meta.local_concrete_fields if field is not auto)
    columns = ", ".join(quote(column_of(field)) for field in fields)
    statement = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    return auto, fields, statement if auto is None else f"{statement} RETURNING {quote(column_of(auto))}"


# model -> the gathered rows' values (``_insert_of(model, False)``'s fields), in order gathered
_PendingInserts = dict[type[Model], list[list[Any]]]


def _inserts_written() -> None:
    """Write the INSERTs gathered in this thread (none: nothing): per model, one row by its plain
    INSERT, more by one COPY (no array to dump per column: a COPY's rows are formatted in C, at
    about half the CPU per row of an ``INSERT ... SELECT FROM unnest(...)`` from 4 rows on). The
    execute wrapper goes with them."""
    inserts: _PendingInserts | None = getattr(_gathering, "inserts", None)
    if not inserts:
        return
    pending = list(inserts.items())
    inserts.clear()  # first: these statements pass the wrapper (and _copy) too
    _inserts_unwatched()
    for model, rows in pending:
        _, fields, statement = _insert_of(model, False)
        if len(rows) > 1:
            _copy(model, [column_of(field) for field in fields], rows)
            continue
        with bound_cursor() as cursor:
            cursor.execute(statement, rows[0])


def _inserts_first(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Django's execute wrapper while INSERTs are gathered: a statement naming a gathered row's
    table, or a table with a foreign key to it, is sent after them (a read sees the rows, a row
    referring to one finds it, under ``SET CONSTRAINTS ALL IMMEDIATE`` too)."""
    inserts: _PendingInserts | None = getattr(_gathering, "inserts", None)
    if inserts and (not isinstance(sql, str) or any(table in sql for model in inserts for table in _watched(model))):
        _inserts_written()
    return execute(sql, params, many, context)


def _inserts_watched(db: BaseDatabaseWrapper) -> None:
    """The outermost wrapper, first in the list: a ``connection.execute_wrapper`` block that opens
    and closes meanwhile (it ``pop()``s the last) takes its own off, never this one."""
    if _inserts_first not in db.execute_wrappers:
        db.execute_wrappers.insert(0, _inserts_first)


def _inserts_unwatched() -> None:
    wrappers = connections[DEFAULT_DB_ALIAS].execute_wrappers
    if _inserts_first in wrappers:
        wrappers.remove(_inserts_first)


@cache
def _watched(model: type[Model]) -> tuple[str, ...]:
    """``model``'s table and those of the models (and many-to-many tables) with a foreign key to it."""
    related = set()
    for rel in model._meta._get_fields(forward=False, reverse=True, include_hidden=True):  # related_name="+" too
        if rel.related_model is not None:
            related.add(rel.related_model._meta.db_table)
        through = getattr(rel, "through", None)
        if through is not None:
            related.add(through._meta.db_table)
    return tuple(sorted({model._meta.db_table, *related}))


def instance_insert_selecting(instance: Model, *, source: str, selected: dict[str, str]) -> tuple[str, list[Any]]:
    """``instance_inserted``'s INSERT as ``INSERT ... SELECT ... FROM source``, for a statement of
    the caller's (a CTE that ends it with a WHERE and RETURNING): the fields named in ``selected``
    (attname: an SQL expression over ``source``) come from there, the others from the instance as
    the ORM saves them. Returns the text and its parameters. The instance needs its primary key;
    the caller marks it ``instance_saved`` once the row is in. The text is built once per model,
    source and selection (``_insert_selecting_of``)."""
    fields, statement = _insert_selecting_of(type(instance), source, tuple(selected.items()))
    db, kinds = connections[DEFAULT_DB_ALIAS], _kinds(type(instance))
    return statement, [_db_value(db, field, kinds[field.attname], field.pre_save(instance, True)) for field in fields]


@lru_cache(maxsize=64)
def _insert_selecting_of(
    model: type[Model], source: str, selected: tuple[tuple[str, str], ...]
) -> tuple[tuple[Field[Any, Any], ...], str]:
    """``instance_insert_selecting``'s fields given as parameters, in order, and its text."""
    meta, quote, expression_of = model._meta, connection.ops.quote_name, dict(selected)
    columns = ", ".join(quote(column_of(field)) for field in meta.local_concrete_fields)
    expressions = ", ".join(expression_of.get(field.attname, "%s") for field in meta.local_concrete_fields)
    fields = tuple(field for field in meta.local_concrete_fields if field.attname not in expression_of)
    return fields, f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {expressions} FROM {source}"


def instance_saved(instance: Model) -> None:
    """Mark ``instance`` as a row of the database, as the ORM's save does."""
    instance._state.adding, instance._state.db = False, DEFAULT_DB_ALIAS


def _concrete(field: object) -> Field[Any, Any]:
    assert isinstance(field, Field), f"{field!r} is not a concrete field"
    return field
