"""Django's ``migrate``, safe to run while the previous release serves (README "Upgrading").

On PostgreSQL a schema change (``ALTER TABLE``, ``CREATE``/``DROP INDEX`` without ``CONCURRENTLY``)
waits for its table's lock behind any transaction using the table (a report, an admin's long
request), and while it waits every other statement on the table waits behind it: the gateway's
handshakes, boots and statuses stalled for as long as that transaction lasted. Here each of its
statements waits at most ``LOCK_TIMEOUT_MS`` for a lock; the migration that could not get one is
rolled back and the command tries again (``ATTEMPTS`` in all, pausing between), then stops naming
the wait. ``kernel.online_ddl``'s concurrent index builds wait for older transactions without
blocking anyone, and are let wait as long as they must.

A database that cannot be reached (PostgreSQL down, a wrong host, port or name in ``DATABASE_URL``)
stops the command at once with one line saying why: through the pool it waited the pool's timeout
and ended in a traceback that named only the timeout (``make run``'s first step).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

LOCK_TIMEOUT_MS = 2000
ATTEMPTS = 3
PAUSE_SECONDS = 1.0  # times the attempt's number


def lock_wait_timed_out(error: BaseException) -> bool:
    """PostgreSQL's ``lock_not_available`` (55P03): a statement waited past ``lock_timeout``."""
    cause = error.__cause__ if isinstance(error, OperationalError) else error
    return isinstance(cause, psycopg.errors.LockNotAvailable)


@contextlib.contextmanager
def lock_waits_bounded(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """The session's ``lock_timeout`` at ``LOCK_TIMEOUT_MS`` within the block (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{LOCK_TIMEOUT_MS}ms"])
    try:
        yield
    finally:
        if connection.connection is not None:  # not closed meanwhile
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")


def reachable_or_stop(connection: BaseDatabaseWrapper) -> None:
    """Raises ``CommandError`` with PostgreSQL's reason on one line when a connection of its own
    (outside the pool, at most 5 s) cannot be opened to the database ``connection`` names."""
    try:
        psycopg.connect(**connection.get_connection_params(), connect_timeout=5).close()
    except psycopg.OperationalError as error:
        reason = " ".join(str(error).split())
        raise CommandError(f"cannot reach the database DATABASE_URL names: {reason}") from None


class Command(DjangoMigrate):
    help = (
        DjangoMigrate.help + f" On PostgreSQL a statement waits at most {LOCK_TIMEOUT_MS} ms for a lock"
        f" (the gateway's statements would queue behind it); tried {ATTEMPTS} times."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            super().handle(*args, **options)
            return
        reachable_or_stop(connection)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with lock_waits_bounded(connection):
                    super().handle(*args, **options)
                return
            except OperationalError as error:
                if not lock_wait_timed_out(error):
                    raise
                if attempt == ATTEMPTS:
                    raise CommandError(
                        f"A migration waited {LOCK_TIMEOUT_MS} ms for a lock held by another transaction,"
                        f" {ATTEMPTS} times ({error}): it was rolled back; run migrate again when that"
                        " transaction has ended (pg_stat_activity shows it)."
                    ) from None
                self.stderr.write(
                    f"A migration waited {LOCK_TIMEOUT_MS} ms for a lock held by another transaction and was"
                    f" rolled back; trying again ({attempt + 1} of {ATTEMPTS})"
                )
                time.sleep(PAUSE_SECONDS * attempt)
