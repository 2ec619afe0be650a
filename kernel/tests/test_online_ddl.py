"""kernel.online_ddl's statements leave a table writable while a long transaction holds it (issue
15, round 23: no ``lock_timeout`` is needed for them). ``CREATE``/``DROP INDEX CONCURRENTLY`` and
``ALTER INDEX ... RENAME`` / ``ALTER TABLE ... SET (fillfactor)`` take PostgreSQL's SHARE UPDATE
EXCLUSIVE lock, which no write's ROW EXCLUSIVE waits behind, even while they wait (an index built
concurrently waits for the open writers to end, as it must; a ``lock_timeout`` would only make
that wait fail and leave an invalid index)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, connections, migrations

from conftest import _test_database_url
from kernel import online_ddl

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the locks are PostgreSQL's"),
]

_TABLE = "online_ddl_probe"


@pytest.fixture
def probe() -> Iterator[psycopg.Connection]:
    """A table of its own with an index on ``v``, and a connection that wrote a row of it in a transaction left open
    (a long transaction of another process: an admin's, a report's); committed at the end."""
    url = _test_database_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {_TABLE} (id int, v int)")
        admin.execute(f"CREATE INDEX online_ddl_probe_v ON {_TABLE} (v)")
    holder = psycopg.connect(url)
    holder.execute(f"INSERT INTO {_TABLE} VALUES (1, 1)")
    try:
        yield holder
    finally:
        holder.rollback()
        holder.close()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP TABLE {_TABLE}")


class _Step(threading.Thread):
    """The migration step's forwards, in a thread of its own (its own connection, outside a
    transaction); ``finished()`` waits for it and raises what it raised."""

    def __init__(self, step: migrations.RunPython) -> None:
        super().__init__()
        self.step = step
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with connection.schema_editor(atomic=False) as schema_editor:
                self.step.code(None, schema_editor)  # type: ignore[arg-type]  # the steps read no apps
        except BaseException as error:  # re-raised in the test's thread
            self.error = error
        finally:
            connections.close_all()

    def finished(self) -> None:
        self.join(30)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def _written() -> None:
    """A write of the table from a third connection, refused if it waits over 2 s for a lock."""
    with psycopg.connect(_test_database_url(), autocommit=True) as writer:
        writer.execute("SET lock_timeout = '2s'")
        writer.execute(f"INSERT INTO {_TABLE} VALUES (2, 2)")


def test_an_index_built_concurrently_behind_a_long_transaction_leaves_the_table_writable(probe):
    building = _Step(online_ddl.index_created("online_ddl_probe_id", _TABLE, "(id)"))
    building.join(1)
    assert building.is_alive()  # waiting for the open transaction, as a concurrent build must
    _written()
    probe.commit()
    building.finished()
    with psycopg.connect(_test_database_url()) as admin:
        valid = admin.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", ["online_ddl_probe_id"]
        )
        assert valid.fetchone() == (True,)


@pytest.mark.parametrize(
    ("step", "done"),
    [
        (
            online_ddl.fillfactor_set(_TABLE, 70),
            f"SELECT 'fillfactor=70' = ANY(reloptions) FROM pg_class WHERE oid = '{_TABLE}'::regclass",
        ),
        (
            online_ddl.index_renamed("online_ddl_probe_v", "online_ddl_probe_w", _TABLE, "(v)"),
            "SELECT to_regclass('online_ddl_probe_v') IS NULL AND to_regclass('online_ddl_probe_w') IS NOT NULL",
        ),
        (
            online_ddl.index_dropped("online_ddl_probe_v", _TABLE, "(v)"),
            "SELECT to_regclass('online_ddl_probe_v') IS NULL",
        ),
    ],
    ids=["fillfactor", "rename", "drop"],
)
def test_the_other_steps_behind_a_long_transaction_leave_the_table_writable(probe, step, done):
    running = _Step(step)
    running.join(1)
    _written()
    probe.commit()
    running.finished()
    with psycopg.connect(_test_database_url()) as admin:
        assert admin.execute(done).fetchone() == (True,)


class _StepUnderMigrate(_Step):
    """As ``_Step``, on a connection whose lock waits ``manage.py migrate`` bounds (``lock_timeout``)."""

    def run(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        super().run()


@pytest.mark.parametrize(
    "step",
    [
        online_ddl.index_created("online_ddl_probe_id", _TABLE, "(id)"),
        online_ddl.index_dropped("online_ddl_probe_v", _TABLE, "(v)"),
    ],
    ids=["create", "drop"],
)
def test_a_concurrent_index_step_under_migrate_s_lock_timeout_still_waits_for_the_long_transaction(probe, step):
    """``migrate`` bounds every statement's lock wait (csms/management/commands/migrate.py); a
    concurrent build or drop waits for older transactions without holding anyone up, and cut short
    by that bound it fails (a build leaves an invalid index)."""
    running = _StepUnderMigrate(step)
    running.join(1)
    assert running.is_alive()  # still waiting, past the 200 ms
    probe.commit()
    running.finished()
