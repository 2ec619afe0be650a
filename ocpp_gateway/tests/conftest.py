"""Fixtures of the gateway's tests: the statements a test sends, and for the fault tests a
PostgreSQL cluster and redis-servers of a test's own."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import ROOT, free_port
from kernel import deferred_begin

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


_TRANSACTION_CONTROL = ("BEGIN", "SET CONSTRAINTS ALL IMMEDIATE", "SET LOCAL lock_timeout", "COMMIT")
_COUNTED = re.compile(r"WITH csms_written AS \((.*) RETURNING 1\) SELECT CASE ", re.DOTALL)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The text of every statement psycopg executes or copies with (every thread) while the test
    runs: a batch's own, without its transaction's BEGIN, settings and COMMIT (sent in a pipeline
    with them: ``kernel.deferred_begin``); a write that checks its row count in SQL by the write's
    text (``kernel.plain_sql._counted_in_sql``)."""
    sent: list[str] = []
    for name in ("execute", "copy"):
        original = getattr(psycopg.Cursor, name)

        def recorded(self: psycopg.Cursor, query: Any, *args: Any, original: Any = original, **kwargs: Any) -> Any:
            text = str(query)
            counted = _COUNTED.match(text)
            if not text.startswith(_TRANSACTION_CONTROL):
                sent.append(counted.group(1) if counted else text)
            return original(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, name, recorded)
    yield sent


# psycopg's generators that send without waiting for an answer: a COPY's data, a pipeline's entry
# and its sends (its sync waits), and a setting's change outside a pipeline.
_NOT_WAITING = ("copy_to", "_communicate_gen", "_enter_gen", "_set_autocommit_gen")


@dataclass
class RoundTrip:
    """A wait for PostgreSQL's answer on one connection (``id`` of the psycopg connection): psycopg's
    generator, and the statements sent on that connection since its previous round trip."""

    connection: int
    kind: str
    statements: list[str]


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RoundTrip]]:
    """Each round trip (every thread) while the test runs: a statement's answer waited for, a
    pipeline's sync, a COPY's start and end, a COMMIT (one with nothing to end is not sent), a BEGIN
    sent alone; with the statements it carried. As ``benchmarks/statements.py --round-trips``
    counts them."""
    trips: list[RoundTrip] = []
    sent: dict[int, list[str]] = {}  # connection -> statements not answered yet
    wait, execute, sent_alone = psycopg.Connection.wait, psycopg.Cursor.execute, deferred_begin._sent_alone

    def executed(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.setdefault(id(self.connection), []).append(str(query))
        return execute(self, query, *args, **kwargs)

    def counted(self: psycopg.Connection[Any], gen: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(gen, "__name__", "?")
        piped = self._pipeline is not None
        idle = self.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ends_nothing = name in ("_commit_gen", "_rollback_gen") and idle
        if not (ends_nothing or name in _NOT_WAITING or (piped and name == "_execute_gen")):
            trips.append(RoundTrip(id(self), name, sent.pop(id(self), [])))
        return wait(self, gen, *args, **kwargs)

    def begun_alone(db: Any, raw: psycopg.Connection[Any], statements: Any) -> None:  # libpq's exec_
        if deferred_begin.begins_plainly(raw):  # else each setting goes by itself, counted as such
            trips.append(RoundTrip(id(raw), "BEGIN alone", list(statements)))
        sent_alone(db, raw, statements)

    monkeypatch.setattr(psycopg.Cursor, "execute", executed)
    monkeypatch.setattr(psycopg.Connection, "wait", counted)
    monkeypatch.setattr(deferred_begin, "_sent_alone", begun_alone)
    yield trips


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of one test's own: stopping it disturbs nobody else."""

    port: int
    data_dir: Path
    socket_dir: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data_dir), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-l", str(self.socket_dir / "server.log"), "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "-t", "30", "stop")


def _as_postgres() -> list[str]:
    """PostgreSQL's binaries refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """An initdb'd cluster (trust auth, loopback only) on a free port, migrated, running."""
    if not (POSTGRES_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL server binaries are not installed in {POSTGRES_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("runuser is needed to run PostgreSQL as the postgres user")
    base = Path(tempfile.mkdtemp(prefix="csms-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    cluster = PrivatePostgres(port=free_port(), data_dir=base / "data", socket_dir=base)
    try:
        subprocess.run(
            [
                *_as_postgres(),
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(cluster.data_dir),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster.start()
        manage(cluster, "migrate", "--noinput")
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def manage(cluster: PrivatePostgres, *args: str) -> str:
    """``manage.py`` against the private cluster (this process's ORM points at the test database)."""
    env = {**os.environ, "DATABASE_URL": cluster.url, "DJANGO_SECRET_KEY": "tests-only-secret-key"}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass
class PrivateRedis:
    """A redis-server of a test's own on ``port``; ``keeps_data``: an append-only file written at
    every command in the test's directory, so that a restart comes back with what it held."""

    port: int
    directory: Path
    keeps_data: bool
    processes: list[subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        arguments = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory), "--save", ""]
        arguments += ["--appendonly", "yes", "--appendfsync", "always"] if self.keeps_data else ["--appendonly", "no"]
        self.processes.append(subprocess.Popen(["redis-server", *arguments], stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self.processes[-1].terminate()
        self.processes[-1].wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    """Starts a redis-server of the test's own (``private_redis(keeps_data=True)`` for one that
    keeps its data across a restart); every one it started is killed when the test ends."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    started: list[PrivateRedis] = []

    def start(*, keeps_data: bool = False) -> PrivateRedis:
        server = PrivateRedis(free_port(), tmp_path, keeps_data, [])
        started.append(server)
        server.start()
        return server

    yield start
    for process in (process for server in started for process in server.processes):
        if process.poll() is None:
            process.kill()
            process.wait()
