"""One run of a beat sweep at a time: a tick that finds the sweep still running returns at once.

Celery beat queues each sweep on its interval whether or not the previous run has ended. A sweep
that outlasts its interval (a firmware campaigns' wave to chargers whose sockets are dead waits
CSMS_OCPP_CALL_TIMEOUT per wave, for minutes; an hourly prune of a large table) had the next
ticks start beside it, doing the same work again (or waiting on the same row and site locks),
until they held every slot of the worker and the other sweeps (offline detection, abandoned
commands) waited behind them in a growing queue. A sweep's task made with ``base=Sweep`` runs
under ``single_flight`` of its name: a run that starts while another is running, in any worker on
any host, returns at once.

On PostgreSQL the lock is a transaction-level advisory lock (``pg_try_advisory_xact_lock`` on a
64-bit key of the sweep's name) taken on a connection of its own, outside the pool, whose
transaction stays open (idle, holding no snapshot) while the sweep runs: the sweep's own
connections and transactions are its business. No lease to renew: the lock goes with that
connection's end, whether the sweep ends, its worker is killed (the socket closes) or PostgreSQL
restarts. A transaction's lock, not a session's, so that PgBouncer in transaction pooling mode
keeps it on one server connection and releases it with the transaction. On SQLite (``make run``:
one host, one worker) it is an exclusive ``flock`` on ``CSMS_VAR_DIR/locks/<name>.lock``, which
the kernel releases with the file, or the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from celery import Task
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

# How long the lock's own connection may take to open (a PostgreSQL that does not answer fails the
# tick, as it would fail the sweep).
CONNECT_TIMEOUT = 10
# The lock's connection in pg_stat_activity: this, then the sweep's name.
APPLICATION_NAME = "csms sweep "


def lock_key(name: str) -> int:
    """The advisory lock's key of sweep ``name``: a signed 64-bit integer (PostgreSQL's ``bigint``)."""
    digest = hashlib.blake2b(f"csms:single-flight:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def single_flight(name: str) -> Iterator[bool]:
    """Whether this run holds sweep ``name``'s lock (see the module), held until the block ends.
    False: another run holds it; the block should do nothing."""
    if connection.vendor == "postgresql":
        with _advisory_lock(name) as held:
            yield held
    else:
        with _file_lock(name) as held:
            yield held


class Sweep(Task):
    """A beat sweep's task (``@shared_task(base=Sweep)``): each run under ``single_flight`` of the
    task's name; a run that finds another running logs it (INFO) and returns None."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with single_flight(self.name) as held:
            if not held:
                logger.info("%s: the previous run is still running; this one is skipped", self.name)
                return None
            return super().__call__(*args, **kwargs)


@contextmanager
def _advisory_lock(name: str) -> Iterator[bool]:
    params = connection.get_connection_params()
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params["application_name"] = f"{APPLICATION_NAME}{name}"  # whole up to 63 bytes (every task's name)
    holder = psycopg.connect(**params, autocommit=False)
    try:
        row = holder.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_key(name)]).fetchone()
        yield bool(row and row[0])
    finally:
        # The lock goes with the transaction, and with the connection: closed, even broken (a
        # PostgreSQL restarted during the sweep has released it already).
        with contextlib.suppress(psycopg.Error):
            holder.rollback()
        holder.close()


@contextmanager
def _file_lock(name: str) -> Iterator[bool]:
    directory = Path(settings.VAR_DIR) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # flock's lock goes with the descriptor's close below, or the process
    finally:
        os.close(descriptor)
