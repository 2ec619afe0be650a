"""``migrate`` run while the previous release serves (README "Upgrading": migrate first): a schema
change waiting for its table's lock behind a long transaction (a report, an admin's request) made
every other statement on that table wait behind it, the gateway's handshakes, boots and statuses
included, for as long as that transaction lasted. Real PostgreSQL, a real ``manage.py migrate``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from conftest import _test_database_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(*targets: str, tmp_path: Path, database_url: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url or _test_database_url(), "CSMS_VAR_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "manage.py", "migrate", *targets],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_migration_behind_a_long_transaction_gives_up_its_lock_wait_instead_of_stalling_the_table(
    tmp_path: Path,
) -> None:
    locked, release = threading.Event(), threading.Event()
    held_until_released = []

    def hold() -> None:  # a long transaction that read the sessions' table: it holds ACCESS SHARE
        with psycopg.connect(_test_database_url()) as connection:
            connection.execute("SELECT 1 FROM chargepoints_transaction LIMIT 1")
            locked.set()
            held_until_released.append(release.wait(60))

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        # Unapplying charging's newest migration drops a column of the sessions: an ALTER TABLE of the
        # table (not chargepoints' newest: its index is dropped CONCURRENTLY, which waits by design,
        # kernel.online_ddl).
        done = _migrate("charging", "0010", tmp_path=tmp_path)
        release.set()
        holder.join()
        assert held_until_released == [True]  # the command ended while the transaction still held its lock
        assert done.returncode == 1, done.stdout + done.stderr
        assert "waited 2000 ms for a lock held by another transaction" in done.stderr
        assert "trying again (2 of 3)" in done.stderr
    finally:
        release.set()
        holder.join()
        # Every app forward again, as the other tests expect it.
        again = _migrate(tmp_path=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr


def test_every_migration_is_applied_again_after_the_lock_test(django_db_blocker) -> None:
    """The test above unapplies migrations in the shared test database and applies them again: no
    app may be left behind (charging's were, its reservations then without ``parent_id_tag``)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    with django_db_blocker.unblock():
        executor = MigrationExecutor(connection)
        assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "database_url, reason",
    [
        (f"postgres://postgres:s3cret@127.0.0.1:{_closed_port()}/dyn", "Connection refused"),
        (_test_database_url().rsplit("/", 1)[0] + "/no_such_database", 'database "no_such_database" does not exist'),
    ],
)
def test_migrate_on_a_database_it_cannot_reach_stops_with_one_line_saying_why(
    database_url: str, reason: str, tmp_path: Path
) -> None:
    """``make run``'s first step on a ``DATABASE_URL`` naming no running PostgreSQL waited the pool's
    timeout and printed a traceback naming only that timeout ("couldn't get a connection after 10.00 sec")."""
    done = _migrate(tmp_path=tmp_path, database_url=database_url)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: cannot reach the database DATABASE_URL names:")
    assert reason in line
    assert "s3cret" not in line
