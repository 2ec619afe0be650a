"""Shared fixtures: API keys and clients, registered chargers, real daphne processes, and
OCPP chargers from the ``ocpp`` package talking to them over real WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg_pool
import pytest
from django.db import connections, transaction
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v201 import ChargePoint as V201Client
from rest_framework.test import APIClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_register
from kernel.api_keys import api_key_create
from kernel.background_sends import broker_sends

ROOT = Path(__file__).resolve().parent


# --- Database connections of threads that end ------------------------------------------------
#
# A thread that ends holding a Django database connection never gives it back to psycopg's pool:
# the session is closed when the thread's connection is collected, but the pool still counts it
# taken, and a long run of the suite exhausted the pool (PoolTimeout after CSMS_DB_POOL_TIMEOUT s).


class _ConnectionsClosingExecutor(ThreadPoolExecutor):
    """The default executor of the tests' event loops (``asyncio.to_thread``, ``run_in_executor(None,
    ...)``, ``sync_to_async(thread_sensitive=False)``): each call's thread gives its database
    connections back to the pool when the call ends. The loop's threads end with the test, and a
    test client's request there (whose end, in a test, closes no connection) kept its slot for good."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(_connections_closed_after, fn, *args, **kwargs)


def _connections_closed_after(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    finally:
        connections.close_all()  # this thread's


def _test_event_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_default_executor(_ConnectionsClosingExecutor(thread_name_prefix="asyncio"))
    return loop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every async test's event loop is ``_test_event_loop``'s (one factory: test ids are unchanged)."""
    return {"asyncio": _test_event_loop}


class ConnectionLeftWarning(UserWarning):
    """A thread ended holding a database connection taken from the pool (given back by ``_pool_slots_back``)."""


_taken: dict[int, tuple[Any, psycopg_pool.ConnectionPool, threading.Thread]] = {}  # id(connection): who holds it
_taken_lock = threading.Lock()
_getconn, _putconn = psycopg_pool.ConnectionPool.getconn, psycopg_pool.ConnectionPool.putconn


def _getconn_recorded(self: psycopg_pool.ConnectionPool, timeout: float | None = None) -> Any:
    taken = _getconn(self, timeout)
    with _taken_lock:
        _taken[id(taken)] = (taken, self, threading.current_thread())
    return taken


def _putconn_recorded(self: psycopg_pool.ConnectionPool, conn: Any) -> None:
    with _taken_lock:
        _taken.pop(id(conn), None)
    _putconn(self, conn)


psycopg_pool.ConnectionPool.getconn = _getconn_recorded  # type: ignore[assignment]
psycopg_pool.ConnectionPool.putconn = _putconn_recorded  # type: ignore[assignment]


def pool_connections_taken() -> int:
    """How many of the database pool's connections are out (taken by a thread, not given back)."""
    pool: psycopg_pool.ConnectionPool = connections["default"].pool  # type: ignore[attr-defined]  # PostgreSQL's, pooled
    stats = pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


def pool_connections_of_ended_threads() -> list[str]:
    """Give back to the pool the connections of threads that ended without closing them; their names."""
    with _taken_lock:
        ended = [(key, held) for key, held in _taken.items() if not held[2].is_alive()]
    for _, (taken, pool, _thread) in ended:
        pool.putconn(taken)  # the thread's Django connection is gone with it: nothing else uses this one
    return [thread.name for _, (_, _, thread) in ended]


@pytest.fixture(autouse=True)
def _pool_slots_back(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test (its other fixtures torn down first), a connection that a thread which has
    ended still held is given back to the pool, with a ``ConnectionLeftWarning`` naming the thread:
    a thread of the test's that touches the database closes its connections before it ends
    (``connections.close_all()``), and a product thread that ends so is a leak to fix."""
    yield
    for thread in pool_connections_of_ended_threads():
        warnings.warn(
            f"{request.node.nodeid}: thread {thread!r} ended holding a database connection (given back to the pool)",
            ConnectionLeftWarning,
            stacklevel=1,
        )


@dataclass
class HungBroker:
    """What ``broker_hung`` saw: each task published (its name, the thread that published it)."""

    published: list[tuple[str, str]]
    publishing: threading.Event  # set at the first publish
    released: threading.Event  # set by the test (and at teardown): the publishes return


def _webhook_wakes_purged() -> None:
    """The webhook workers' queue emptied on the test broker (``webhooks.tasks.QUEUE``)."""
    from celery import current_app

    from webhooks.tasks import QUEUE

    with current_app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(QUEUE)  # type: ignore[attr-defined]  # raises when not declared


@pytest.fixture
def broker_hung(monkeypatch: pytest.MonkeyPatch) -> Iterator[HungBroker]:
    """Every Celery publish (``Task.apply_async``, so ``.delay``) hangs, as on a broker that does not
    answer, until the test sets ``released`` (10 s at most); each is recorded with its thread."""
    from celery.app.task import Task

    broker = HungBroker(published=[], publishing=threading.Event(), released=threading.Event())

    def apply_async(task: Any, *args: Any, **kwargs: Any) -> None:
        broker.published.append((task.name, threading.current_thread().name))
        broker.publishing.set()
        broker.released.wait(10)

    broker_sends.idle(10)  # an earlier test's sends are not this test's
    _webhook_wakes_purged()  # a wake-up left queued (an earlier run's, no worker) would skip the publish
    monkeypatch.setattr(Task, "apply_async", apply_async)
    try:
        yield broker
    finally:
        broker.released.set()
        broker_sends.idle(10)  # every send queued meanwhile made, to the hung broker, before it is undone


@pytest.fixture
def api_key(db: None) -> str:
    return api_key_create(name="tests")[1]


@pytest.fixture
def api_client(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def tx_default_profile() -> Callable[[Any], dict[str, Any]]:
    """A SetChargingProfile (OCPP 1.6) payload: a TxDefaultProfile on connector 1 of ``limit`` A from the start."""

    def payload(limit: Any) -> dict[str, Any]:
        return {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
                },
            },
        }

    return payload


@pytest.fixture
def register_charge_point(db: None) -> Callable[..., ChargePoint]:
    def register(charge_point_id: str = "CP-1", heartbeat_interval: int = 60, **kwargs: Any) -> ChargePoint:
        return charge_point_register(charge_point_id=charge_point_id, heartbeat_interval=heartbeat_interval, **kwargs)

    return register


# --- Row locks between two transactions (PostgreSQL) -----------------------------------------

LOCK_WAIT_SECONDS = 20  # bound on waiting for the other transaction to queue behind a lock


def _waits_for_a_lock(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


@pytest.fixture
def behind_a_lock(transactional_db: None) -> Callable[[Callable[[], Any], Callable[[], Any]], tuple[Any, Any]]:
    """``behind_a_lock(holder, waiter)``: ``holder`` runs in a transaction; while it holds its
    locks, ``waiter`` runs in another connection's transaction (the charger's other connection,
    in another process) until it waits for a lock; then the holder commits, the waiter finishes.
    Returns both results. PostgreSQL only (the caller skips elsewhere)."""
    from django.db import transaction

    def race(holder: Callable[[], Any], waiter: Callable[[], Any]) -> tuple[Any, Any]:
        pid: list[int] = []
        ready, outcome = threading.Event(), {}

        def wait_then_run() -> None:
            try:
                with transaction.atomic():
                    with connections["default"].cursor() as cursor:
                        cursor.execute("SELECT pg_backend_pid()")
                        pid.append(cursor.fetchone()[0])
                    ready.set()
                    outcome["waited"] = waiter()
            finally:
                connections.close_all()

        with transaction.atomic():
            held = holder()
            thread = threading.Thread(target=wait_then_run)
            thread.start()
            assert ready.wait(LOCK_WAIT_SECONDS)
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while not _waits_for_a_lock(pid[0]):
                assert thread.is_alive() and time.monotonic() < deadline, "the waiter never waited for a lock"
                time.sleep(0.01)
        thread.join(LOCK_WAIT_SECONDS)
        assert not thread.is_alive() and "waited" in outcome
        return held, outcome["waited"]

    return race


@pytest.fixture
def charger_locked_elsewhere(transactional_db: None) -> Callable[[str], bool]:
    """``charger_locked_elsewhere(charge_point_id)``: whether another connection (another
    process's transaction) finds the charger's row locked (PostgreSQL)."""
    import psycopg

    def locked(charge_point_id: str) -> bool:
        with psycopg.connect(_test_database_url(), autocommit=True) as other:
            try:
                other.execute(
                    f"SELECT 1 FROM {ChargePoint._meta.db_table} WHERE charge_point_id = %s FOR UPDATE NOWAIT",
                    [charge_point_id],
                )
            except psycopg.errors.LockNotAvailable:
                return True
        return False

    return locked


# --- Real daphne processes ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_database_url() -> str:
    settings_dict = connections["default"].settings_dict
    user = settings_dict.get("USER") or "postgres"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


@dataclass
class DaphneServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, version: str, charge_point_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{version}/{charge_point_id}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_daphne(
    tmp_dir: Path, application: str = "csms.asgi:application", *, daphne_args: Sequence[str] = (), **extra_env: str
) -> DaphneServer:
    """Start ``daphne csms.asgi:application`` (or another ``application``, e.g. one with a fault
    injected) on a free port against the test database; ``daphne_args`` are more of daphne's
    options (``--ping-interval``)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CSMS_VAR_DIR": str(tmp_dir),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "CSMS_MESSAGE_LOG_FLUSH_MS": "50",
        # The servers keep the default pool; the test process (many concurrent ORM threads) has a larger one.
        "CSMS_DB_POOL_MAX": "20",
        "CSMS_DB_POOL_TIMEOUT": "10",
        # The session's servers live until it ends (some 35): each gives back what a busy test opened,
        # so that together they stay within PostgreSQL's max_connections (100 by default).
        "CSMS_DB_POOL_MIN": "0",
        "CSMS_DB_POOL_MAX_IDLE": "5",
        # Tests script every frame; those of the configuration read after a boot ask for it.
        "CSMS_CONFIGURATION_REFRESH_ON_BOOT": "false",
        **extra_env,
    }
    log_path = tmp_dir / f"daphne-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *daphne_args, application],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = DaphneServer(port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return server
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"daphne did not listen on {port} within 30 s:\n{server.log()}")


def stop_daphne(server: DaphneServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database, whose other sessions are ended before it is dropped (on
    PostgreSQL): daphne's backends end asynchronously after it exits, and connections taken in
    threads other than the main one (asgiref's worker thread under async tests, a commit group's
    lanes) are never given back to the pool that Django closes first."""
    yield
    if connections["default"].vendor == "postgresql":
        with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(scope="session")
def daphne_factory(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., DaphneServer]]:
    """Start extra daphne processes; all are stopped at the end of the session."""
    servers: list[DaphneServer] = []

    def factory(**extra_env: str) -> DaphneServer:
        server = start_daphne(tmp_path_factory.mktemp("daphne"), **extra_env)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        stop_daphne(server)


@pytest.fixture(scope="session")
def daphne_server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    return daphne_factory()


def _others_in_a_transaction() -> int:
    """How many other connections to the test database are running a statement or hold a
    transaction open (a server's batch, a site recompute awaiting its chargers' answers)."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"
        )
        return cursor.fetchone()[0]


def wait_until_servers_done(timeout: float = 15) -> None:
    """Before the flush that empties the database after a transactional test: wait (``timeout`` s
    at most) until every charger the servers held is disconnected and no other connection is in a
    transaction twice in a row, 0.1 s apart. The flush's TRUNCATE takes every table's lock; a server
    still writing (a disconnect, the message log, a recompute awaiting a silent charger) deadlocks
    with it, and the flush fails ("couldn't be flushed"), leaving rows to the next test."""
    if connections["default"].vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    while ChargePoint.objects.exclude(connection_channel="").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        quiet = quiet + 1 if _others_in_a_transaction() == 0 else 0
        time.sleep(0.1)


@pytest.fixture
def servers_done(transactional_db: None) -> Iterator[None]:
    """After the test, ``wait_until_servers_done`` (set up after ``transactional_db``, so torn down
    before its flush)."""
    yield
    wait_until_servers_done()


@pytest.fixture
def daphne(daphne_server: DaphneServer, servers_done: None) -> Iterator[DaphneServer]:
    """The daphne process shared by the session's gateway tests, for one test; after it, the
    server is done with the test's chargers before the database is emptied (``servers_done``)."""
    yield daphne_server


def http_request(url: str, *, method: str = "GET", api_key: str | None = None, body: Any = None) -> tuple[int, Any]:
    """A blocking HTTP request to a live server; returns (status, decoded JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw) if raw else None
        except ValueError:
            return error.code, raw.decode(errors="replace")


async def ahttp(url: str, **kwargs: Any) -> tuple[int, Any]:
    return await asyncio.to_thread(http_request, url, **kwargs)


# --- Celery and webhook receivers -----------------------------------------------------------


@pytest.fixture
def celery_worker(daphne: DaphneServer, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``celery -A csms worker --beat`` on the test database and Redis, with extra settings."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(**extra_env: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "CSMS_VAR_DIR": str(tmp_path),
            "DJANGO_SECRET_KEY": "tests-only-secret-key",
            "CSMS_DB_POOL_MAX": "20",
            "CSMS_DB_POOL_TIMEOUT": "10",
            **extra_env,
        }
        with (tmp_path / f"celery-{len(processes)}.log").open("wb") as log:
            schedule = tmp_path / f"beat-{len(processes)}"
            command = [sys.executable, "-m", "celery", "-A", "csms", "worker", "--beat", "--pool", "solo"]
            command += ["-Q", "celery,webhooks", "--loglevel", "INFO", "--schedule", str(schedule)]
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class WebhookReceiver:
    """A tiny local HTTP server standing in for an integrator's webhook endpoint."""

    url: str
    requests: list[tuple[dict[str, str], bytes]]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="", requests=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(receiver.status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


# --- Chargers -------------------------------------------------------------------------------

SUBPROTOCOL = {"1.6": Subprotocol("ocpp1.6"), "2.0.1": Subprotocol("ocpp2.0.1")}
CLIENTS = {"1.6": V16Client, "2.0.1": V201Client}


@contextlib.asynccontextmanager
async def ocpp_charger(
    server: DaphneServer, version: str, charge_point_id: str, client_class: type | None = None, **connect_kwargs: Any
) -> AsyncIterator[Any]:
    """A charger from the ``ocpp`` package, connected and serving until the block ends."""
    async with connect(
        server.ws_url(version, charge_point_id),
        subprotocols=[SUBPROTOCOL[version]],
        compression=None,
        **connect_kwargs,
    ) as websocket:
        charger = (client_class or CLIENTS[version])(charge_point_id, websocket, response_timeout=10)
        serving = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await serving


@contextlib.asynccontextmanager
async def raw_socket(server: DaphneServer, version: str, charge_point_id: str) -> AsyncIterator[ClientConnection]:
    async with connect(
        server.ws_url(version, charge_point_id), subprotocols=[SUBPROTOCOL[version]], compression=None
    ) as websocket:
        yield websocket


@contextlib.asynccontextmanager
async def charger_row_held(charge_point_id: str, *, at_most: float = 10.0) -> AsyncIterator[threading.Event]:
    """Within the block, the charger's row locked (``SELECT ... FOR UPDATE``) by a transaction on a
    connection of its own, as an admin's long transaction holds it; released when the block ends, or
    earlier when the event it gives is set, or after ``at_most`` s."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            ChargePoint.objects.select_for_update().get(charge_point_id=charge_point_id)
            locked.set()
            release.wait(at_most)
        connections["default"].close()  # this thread's

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5), f"{charge_point_id}'s row was not locked"
        yield release
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


async def eventually(check: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll an async or sync check until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
