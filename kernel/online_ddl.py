"""Schema changes to the tables the gateway writes on every message (the OCPP log, meter samples,
sessions, chargers), made while it goes on writing them (issue 15).

On PostgreSQL an index is built and dropped ``CONCURRENTLY`` (the table stays writable: a plain
``CREATE``/``DROP INDEX`` would stop every charger's writes until it ends) and a table's storage
parameters are set with ``ALTER TABLE ... SET``; elsewhere (SQLite) the plain statement, and no
storage parameters. A migration using these sets ``atomic = False``: ``CONCURRENTLY`` runs outside
a transaction.

These change the database only: a migration pairs them with the state operation that says the
same in Django's terms (``SeparateDatabaseAndState``), where Django's own operation would do more
than needed (``AlterField`` on a foreign key drops and re-validates the constraint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

Step = Callable[[Any, BaseDatabaseSchemaEditor], None]


def _on_postgresql(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


def _concurrently(schema_editor: BaseDatabaseSchemaEditor) -> str:
    return "CONCURRENTLY " if _on_postgresql(schema_editor) else ""


def _dropped(name: str) -> Step:
    def step(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
        _waiting_as_long_as_needed(schema_editor, f'DROP INDEX {_concurrently(schema_editor)}IF EXISTS "{name}"')

    return step


def _waiting_as_long_as_needed(schema_editor: BaseDatabaseSchemaEditor, sql: str) -> None:
    """``sql`` (a ``CONCURRENTLY`` index build or drop) without the session's ``lock_timeout``
    (``migrate`` bounds lock waits): it waits for older transactions to end, blocking no one's
    reads or writes meanwhile, and cut short it leaves an invalid index behind."""
    if not _on_postgresql(schema_editor):
        schema_editor.execute(sql)
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', '0', false)")
        (previous, _) = cursor.fetchone()
    try:
        schema_editor.execute(sql)
    finally:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [previous])


def _created(name: str, table: str, definition: str) -> Step:
    def step(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if _on_postgresql(schema_editor):
            _invalid_dropped(name, schema_editor)
        concurrently = _concurrently(schema_editor)
        _waiting_as_long_as_needed(
            schema_editor, f'CREATE INDEX {concurrently}IF NOT EXISTS "{name}" ON "{table}" {definition}'
        )
        if _on_postgresql(schema_editor) and not _valid(name, schema_editor):
            raise RuntimeError(f"index {name} was built invalid: run the migration again")

    return step


def _valid(name: str, schema_editor: BaseDatabaseSchemaEditor) -> bool | None:
    """Whether index ``name`` is valid (PostgreSQL's ``indisvalid``); None when there is none."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [f'"{name}"'])
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def _invalid_dropped(name: str, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Drop what an interrupted ``CREATE INDEX CONCURRENTLY`` left under ``name``: an invalid index,
    which writes still maintain and no query uses, and which ``IF NOT EXISTS`` would keep."""
    if _valid(name, schema_editor) is False:
        _waiting_as_long_as_needed(schema_editor, f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


def index_dropped(name: str, table: str, definition: str) -> migrations.RunPython:
    """Drop index ``name`` of ``table``; backwards, build it again as ``definition`` (the SQL after
    ``ON table``, e.g. ``("charge_point_id")``)."""
    return migrations.RunPython(_dropped(name), _created(name, table, definition))


def index_created(name: str, table: str, definition: str) -> migrations.RunPython:
    """Build index ``name`` of ``table`` as ``definition`` (as in ``index_dropped``); backwards, drop it."""
    return migrations.RunPython(_created(name, table, definition), _dropped(name))


def postgresql_only_index_dropped(name: str, table: str, definition: str) -> migrations.RunPython:
    """``index_dropped`` for an index only PostgreSQL has (Django's ``varchar_pattern_ops`` twin
    of an indexed ``CharField``, named ``<index>_like``)."""
    dropped, created = _dropped(name), _created(name, table, definition)

    def forwards(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if _on_postgresql(schema_editor):
            dropped(apps, schema_editor)

    def backwards(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if _on_postgresql(schema_editor):
            created(apps, schema_editor)

    return migrations.RunPython(forwards, backwards)


def index_renamed(old: str, new: str, table: str, definition: str) -> migrations.RunPython:
    """Rename an index (PostgreSQL: ``ALTER INDEX ... RENAME``, instant); elsewhere drop it and
    build it under the new name (SQLite cannot rename one). ``definition`` as in ``index_dropped``."""

    def renamed(before: str, after: str) -> Step:
        def step(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
            if _on_postgresql(schema_editor):
                schema_editor.execute(f'ALTER INDEX IF EXISTS "{before}" RENAME TO "{after}"')
            else:
                _dropped(before)(apps, schema_editor)
                _created(after, table, definition)(apps, schema_editor)

        return step

    return migrations.RunPython(renamed(old, new), renamed(new, old))


def fillfactor_set(table: str, percent: int) -> migrations.RunPython:
    """Leave ``100 - percent`` % of each heap page of ``table`` free (PostgreSQL), so that an
    update of columns no index covers stays on its page (a HOT update: no index entry written).
    Pages written from now on; the existing ones keep their fill until rewritten. Backwards: the
    default (100)."""

    def forwards(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if _on_postgresql(schema_editor):
            schema_editor.execute(f'ALTER TABLE "{table}" SET (fillfactor = {int(percent)})')

    def backwards(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if _on_postgresql(schema_editor):
            schema_editor.execute(f'ALTER TABLE "{table}" RESET (fillfactor)')

    return migrations.RunPython(forwards, backwards)
