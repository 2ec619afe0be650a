"""Fault tests under database pressure: nothing is acknowledged to a charger before it is committed.

Chargers of both versions run charging sessions (start, two meter readings, stop) against a
daphne of their own, on a PostgreSQL cluster of their own (``private_postgres``), while the test
breaks the database under them: it terminates the gateway's backends mid-traffic (a connection
broken between a batch's writes and its COMMIT), or takes every connection slot the cluster has
(``too many clients``) so the gateway's pool can neither keep nor replace a connection.

Each charger resends a refused message, as chargers do, until it is acknowledged. Afterwards, in
PostgreSQL: every acknowledged start, reading and stop is there; a refusal was an InternalError
CALLERROR (never silence); the resends after a refusal were stored once (the same session for a
resent start, a seqNo once, a stop once), a 1.6 reading at most once per time it was sent (a
resend of a batch whose COMMIT's outcome was lost may store it again: 1.6 MeterValues carry no
id). Bounded: every wait has a deadline; nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from conftest import DaphneServer, raw_socket, start_daphne, stop_daphne
from ocpp_gateway.tests.conftest import PrivatePostgres, manage

TAG = "PRESSURE-TAG"
SESSIONS = 4  # per charger
CHARGERS = (("1.6", 3), ("2.0.1", 3))  # (version, how many)
POOL_TIMEOUT = 2  # CSMS_DB_POOL_TIMEOUT: how long a batch waits for a connection before it is refused
RETRY_SECONDS = 0.2  # a charger's pause before resending a refused message
MAX_ATTEMPTS = 150  # per message: at most about MAX_ATTEMPTS * (POOL_TIMEOUT + RETRY_SECONDS) s
ANSWER_TIMEOUT = 60  # silence this long fails the test: a message is answered, even when refused
HOG = "pressure-hog"  # application_name of the test's own connections


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def answer_to(websocket: ClientConnection, action: str, payload: dict[str, Any]) -> list[Any]:
    """Send one CALL and return its CALLRESULT or CALLERROR frame (the CSMS's own CALLs refused)."""
    unique_id = str(uuid.uuid4())
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    while True:
        frame = json.loads(await asyncio.wait_for(websocket.recv(), ANSWER_TIMEOUT))
        if frame[0] == 2:
            await websocket.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
        elif frame[1] == unique_id:
            return frame


@dataclass
class Charger:
    """One scripted charger and what it was told: the sessions and readings acknowledged to it."""

    charge_point_id: str
    version: str
    sessions: dict[str, Decimal] = field(default_factory=dict)  # acknowledged transactionId -> meterStop Wh
    readings_sent: Counter[str] = field(default_factory=Counter)  # raw value -> times sent
    readings_acknowledged: set[str] = field(default_factory=set)
    refusals: Counter[str] = field(default_factory=Counter)  # CALLERROR code -> count
    answers: int = 0  # CALLRESULTs and CALLERRORs received

    async def acknowledged(
        self, websocket: ClientConnection, action: str, payload: dict[str, Any], readings: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Send ``payload`` until it is acknowledged; its CALLRESULT payload."""
        for _ in range(MAX_ATTEMPTS):
            self.readings_sent.update(readings)
            frame = await answer_to(websocket, action, payload)
            self.answers += 1
            if frame[0] == 3:
                self.readings_acknowledged.update(readings)
                return frame[2]
            self.refusals[frame[2]] += 1
            await asyncio.sleep(RETRY_SECONDS)
        raise AssertionError(f"{self.charge_point_id}: {action} {payload} was never acknowledged")

    async def boot(self, websocket: ClientConnection) -> None:
        if self.version == "1.6":
            payload: dict[str, Any] = {"chargePointVendor": "Acme", "chargePointModel": "P1"}
        else:
            payload = {"chargingStation": {"vendorName": "Acme", "model": "P2"}, "reason": "PowerUp"}
        assert (await self.acknowledged(websocket, "BootNotification", payload))["status"] == "Accepted"

    async def run_sessions(self, websocket: ClientConnection) -> None:
        for n in range(1, SESSIONS + 1):
            meter = 10_000 * n
            if self.version == "1.6":
                await self._session16(websocket, meter)
            else:
                await self._session201(websocket, f"{self.charge_point_id}-{n}", meter)

    async def _session16(self, websocket: ClientConnection, meter: int) -> None:
        start = {"connectorId": 1, "idTag": TAG, "meterStart": meter, "timestamp": _now()}
        answer = await self.acknowledged(websocket, "StartTransaction", start)
        assert answer["idTagInfo"]["status"] == "Accepted"
        transaction_id = answer["transactionId"]
        for value in (meter + 100, meter + 200):
            sample = {"value": str(value), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            reading = {"timestamp": _now(), "sampledValue": [sample]}
            payload = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading]}
            await self.acknowledged(websocket, "MeterValues", payload, readings=(str(value),))
        stop = {"transactionId": transaction_id, "meterStop": meter + 300, "timestamp": _now(), "reason": "Local"}
        await self.acknowledged(websocket, "StopTransaction", stop)
        self.sessions[str(transaction_id)] = Decimal(meter + 300)

    async def _session201(self, websocket: ClientConnection, transaction_id: str, meter: int) -> None:
        events = ("Started", "Updated", "Updated", "Ended")
        for seq_no, event_type in enumerate(events):
            value = meter + 100 * seq_no
            context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event_type, "Sample.Periodic")
            sample = {"value": value, "measurand": "Energy.Active.Import.Register", "context": context}
            payload: dict[str, Any] = {
                "eventType": event_type,
                "timestamp": _now(),
                "triggerReason": {"Started": "Authorized", "Ended": "StopAuthorized"}.get(
                    event_type, "MeterValuePeriodic"
                ),
                "seqNo": seq_no,
                "transactionInfo": {"transactionId": transaction_id},
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": [{"timestamp": _now(), "sampledValue": [sample]}],
            }
            if event_type == "Started":
                payload["idToken"] = {"idToken": TAG, "type": "ISO14443"}
            if event_type == "Ended":
                payload["transactionInfo"]["stoppedReason"] = "Local"
            answer = await self.acknowledged(websocket, "TransactionEvent", payload, readings=(str(value),))
            if event_type == "Started":
                assert answer["idTokenInfo"]["status"] == "Accepted"
        self.sessions[transaction_id] = Decimal(meter + 300)


@dataclass
class Fleet:
    gateway: DaphneServer
    chargers: list[Charger]

    @property
    def answers(self) -> int:
        return sum(charger.answers for charger in self.chargers)

    async def run(self, disturb: Callable[[Fleet, asyncio.Event], Any]) -> None:
        """Boot every charger, then run their sessions while ``disturb(fleet, done)`` breaks the
        database (``done`` is set once every charger finished); then check PostgreSQL."""
        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(raw_socket(self.gateway, charger.version, charger.charge_point_id))
                for charger in self.chargers
            ]
            for charger, websocket in zip(self.chargers, sockets, strict=True):
                await charger.boot(websocket)
            done = asyncio.Event()
            disturbing = asyncio.create_task(disturb(self, done))
            try:
                await asyncio.gather(*(c.run_sessions(w) for c, w in zip(self.chargers, sockets, strict=True)))
            finally:
                done.set()
                await disturbing


@pytest.fixture
def fleet(private_postgres: PrivatePostgres, tmp_path: Path) -> Iterator[Fleet]:
    with fleet_serving(private_postgres, tmp_path, private_postgres.url) as fleet:
        yield fleet


@contextlib.contextmanager
def fleet_serving(private_postgres: PrivatePostgres, tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    """The chargers registered on the private cluster and a daphne serving them from it, through
    ``database_url`` (the cluster, or a proxy in front of it)."""
    chargers = [
        Charger(f"CP-PRESSURE-{version}-{n}", version) for version, count in CHARGERS for n in range(1, count + 1)
    ]
    ids = [charger.charge_point_id for charger in chargers]
    manage(
        private_postgres,
        "shell",
        "-c",
        "from chargepoints.services import charge_point_register; from charging.models import IdTag;"
        f" IdTag.objects.create(id_tag={TAG!r});"
        f" [charge_point_register(charge_point_id=cp, heartbeat_interval=300) for cp in {ids!r}]",
    )
    gateway = start_daphne(
        tmp_path,
        DATABASE_URL=database_url,
        CELERY_BROKER_URL="memory://",
        CSMS_DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        CSMS_DB_POOL_MIN="1",
        CSMS_DB_POOL_MAX="4",
        CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS="30000",  # a batch held by the test's row lock waits for its termination
    )
    try:
        yield Fleet(gateway, chargers)
    finally:
        stop_daphne(gateway)


async def monitor_connection(cluster: PrivatePostgres) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(cluster.url, autocommit=True, application_name=HOG)


async def gateway_backends_terminated(monitor: psycopg.AsyncConnection[Any]) -> int:
    """Terminate every backend of the cluster but the test's own; how many there were."""
    cursor = await monitor.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND application_name <> %s",
        [HOG],
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def slots_taken(cluster: PrivatePostgres, hogs: list[psycopg.AsyncConnection[Any]]) -> bool:
    """Open connections until PostgreSQL refuses one with ``too many clients`` (53300); whether it did."""
    for _ in range(200):
        try:
            hogs.append(await monitor_connection(cluster))
        except psycopg.OperationalError as error:
            if "too many clients" in str(error):  # 53300, though a refused connection carries no sqlstate
                return True
            raise
    return False


def check_postgres(cluster: PrivatePostgres, chargers: list[Charger]) -> None:
    """Every acknowledged session, stop and reading is in PostgreSQL, each session once."""
    with psycopg.connect(cluster.url, application_name=HOG) as conn:
        for charger in chargers:
            sessions = conn.execute(
                "SELECT CASE WHEN t.ocpp_transaction_id = '' THEN t.id::text ELSE t.ocpp_transaction_id END,"
                " t.status, t.closed_by_csms, t.meter_stop_wh FROM chargepoints_transaction t"
                " JOIN chargepoints_chargepoint c ON c.id = t.charge_point_id WHERE c.charge_point_id = %s",
                [charger.charge_point_id],
            ).fetchall()
            assert len(sessions) == SESSIONS == len(charger.sessions), (charger.charge_point_id, sessions)
            stored = {ocpp_id: (status, closed_by_csms) for ocpp_id, status, closed_by_csms, _ in sessions}
            assert stored == dict.fromkeys(charger.sessions, ("ended", False)), charger.charge_point_id
            if charger.version == "1.6":  # 2.0.1 has no meterStop: its Transaction.End reading is checked below
                assert {ocpp_id: meter_stop for ocpp_id, *_, meter_stop in sessions} == charger.sessions
            copies: dict[str, int] = dict(
                conn.execute(
                    "SELECT s.raw_value, count(*) FROM chargepoints_metersample s"
                    " JOIN chargepoints_chargepoint c ON c.id = s.charge_point_id"
                    " WHERE c.charge_point_id = %s AND s.measurand = 'Energy.Active.Import.Register'"
                    " AND s.source <> 'StopTransaction' GROUP BY s.raw_value",
                    [charger.charge_point_id],
                ).fetchall()
            )
            assert charger.readings_acknowledged == set(charger.readings_sent), charger.charge_point_id
            for value, sent in charger.readings_sent.items():
                if charger.version == "1.6":  # MeterValues carry no id: a resend after a lost COMMIT outcome may repeat
                    assert 1 <= copies.get(value, 0) <= sent, (charger.charge_point_id, value, copies.get(value), sent)
                else:  # a TransactionEvent's seqNo is stored once
                    assert copies.get(value) == 1, (charger.charge_point_id, value, copies.get(value))
        assert not [c.refusals for c in chargers if set(c.refusals) - {"InternalError"}]


async def test_connections_broken_mid_batch_acknowledge_only_what_was_committed(fleet, private_postgres):
    """The gateway's backends are terminated again and again while chargers charge: a batch that
    loses its connection before its COMMIT answers each of its messages with an InternalError
    CALLERROR; the charger's resend is stored once; every acknowledged message is in PostgreSQL."""
    terminated = 0

    async def terminate_backends(fleet: Fleet, done: asyncio.Event) -> None:
        nonlocal terminated
        monitor = await monitor_connection(private_postgres)
        try:
            for _ in range(60):
                if done.is_set():
                    return
                await asyncio.sleep(random.uniform(0.02, 0.3))
                terminated += await gateway_backends_terminated(monitor)
        finally:
            await monitor.close()

    await fleet.run(terminate_backends)

    check_postgres(private_postgres, fleet.chargers)
    assert terminated > 0


async def test_a_batch_that_loses_its_connection_after_writing_acknowledges_none_of_it(fleet, private_postgres):
    """The test locks a charger's row; the batch that needs it waits, holding the rows its other
    units wrote already, uncommitted. Its connection is terminated while it waits: every message
    of the batch gets an InternalError CALLERROR, the resends are stored once, and every
    acknowledged message is in PostgreSQL."""
    caught_waiting = 0

    async def terminate_a_waiting_batch(fleet: Fleet, done: asyncio.Event) -> None:
        nonlocal caught_waiting
        monitor = await monitor_connection(private_postgres)
        locker = await psycopg.AsyncConnection.connect(private_postgres.url, application_name=HOG)
        try:
            for charger in fleet.chargers:
                if done.is_set():
                    return
                await locker.execute(
                    "SELECT 1 FROM chargepoints_chargepoint WHERE charge_point_id = %s FOR UPDATE",
                    [charger.charge_point_id],
                )
                for _ in range(int(20 / RETRY_SECONDS)):  # until a batch waits for the lock
                    cursor = await monitor.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE application_name <> %s AND wait_event_type = 'Lock'",
                        [HOG],
                    )
                    row = await cursor.fetchone()
                    if done.is_set() or (row and row[0]):
                        break
                    await asyncio.sleep(RETRY_SECONDS)
                else:
                    continue
                if row and row[0] and await gateway_backends_terminated(monitor):
                    caught_waiting += 1
                await locker.rollback()
        finally:
            await locker.close()
            await monitor.close()

    await fleet.run(terminate_a_waiting_batch)

    check_postgres(private_postgres, fleet.chargers)
    assert caught_waiting > 0


COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # the simple-query COMMIT psycopg sends
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


class CommitAnswerLoser:
    """A TCP proxy in front of PostgreSQL which, while ``armed``, forwards a COMMIT, waits for the
    server to finish it (ReadyForQuery) and drops the connection instead of relaying the answer:
    the transaction is committed, and its client cannot know it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = 0  # how many COMMITs still to lose
        self.lost = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        committing = asyncio.Event()

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                if self.armed and COMMIT in data:
                    self.armed -= 1
                    committing.set()  # before the COMMIT leaves: its answer must not reach the client
                server_writer.write(data)
                await server_writer.drain()

        async def downstream() -> None:
            answer = b""
            while data := await server_reader.read(65536):
                if committing.is_set():
                    answer += data
                    if READY_FOR_QUERY in answer:  # the server finished the COMMIT
                        self.lost += 1
                        return
                    continue
                client_writer.write(data)
                await client_writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            client_writer.transport.abort()
            server_writer.transport.abort()
            self._tasks.difference_update(tasks)


async def test_a_commit_whose_answer_is_lost_is_refused_and_its_resend_recognised(private_postgres, tmp_path):
    """PostgreSQL commits a batch but the answer never reaches the gateway (the connection drops
    during the COMMIT): the outcome is unknown to it, so every message of the batch gets an
    InternalError CALLERROR. Each charger resends; the resend is recognised as the message
    already stored: a start names the same session, a stop and a seqNo are stored once."""
    loser = CommitAnswerLoser(private_postgres.port)
    port = await loser.start()
    try:
        with fleet_serving(private_postgres, tmp_path, f"postgres://postgres@127.0.0.1:{port}/postgres") as fleet:

            async def lose_commit_answers(fleet: Fleet, done: asyncio.Event) -> None:
                for _ in range(6):
                    loser.armed = 4  # batches in a row: a resend's answer is lost too
                    for _ in range(int(20 / RETRY_SECONDS)):  # until those COMMITs' answers were lost
                        if done.is_set() or not loser.armed:
                            break
                        await asyncio.sleep(RETRY_SECONDS)
                    loser.armed = 0
                    if done.is_set():
                        return
                    await asyncio.sleep(random.uniform(0.05, 0.3))

            await fleet.run(lose_commit_answers)
    finally:
        await loser.close()

    check_postgres(private_postgres, fleet.chargers)
    assert loser.lost > 0
    assert sum(charger.refusals["InternalError"] for charger in fleet.chargers) > 0


async def test_exhausted_connections_acknowledge_nothing_until_the_database_takes_them_again(fleet, private_postgres):
    """Every connection slot of the cluster is taken (``too many clients``) and the gateway's own
    connections are terminated: the pool can get none. Messages meanwhile get an InternalError
    CALLERROR once the pool gives up; when the slots are free again the resends are acknowledged
    and stored once, and every acknowledged message is in PostgreSQL."""
    monitor = await monitor_connection(private_postgres)
    await monitor.execute("ALTER SYSTEM SET max_connections = 20")
    await monitor.close()
    private_postgres.stop()
    private_postgres.start()  # the gateway's pool finds its connections dead, and reconnects
    exhausted = 0

    async def take_every_slot(fleet: Fleet, done: asyncio.Event) -> None:
        nonlocal exhausted
        for _ in range(3):
            await asyncio.sleep(random.uniform(0.05, 0.3))
            hogs: list[psycopg.AsyncConnection[Any]] = []
            try:
                if not await slots_taken(private_postgres, hogs):
                    return
                await gateway_backends_terminated(hogs[0])
                if await slots_taken(private_postgres, hogs):  # the slots the gateway held, taken before it reconnects
                    exhausted += 1
                answers = fleet.answers
                for _ in range(int(15 / RETRY_SECONDS)):  # until every charger was answered (refused) meanwhile
                    if done.is_set() or fleet.answers >= answers + 2 * len(fleet.chargers):
                        break
                    await asyncio.sleep(RETRY_SECONDS)
            finally:
                for hog in hogs:
                    await hog.close()

    await fleet.run(take_every_slot)

    check_postgres(private_postgres, fleet.chargers)
    assert exhausted > 0


async def test_a_handshake_the_database_cannot_take_is_answered_503_with_a_retry_after(private_postgres, tmp_path):
    """PostgreSQL away (stopped, restarting, out of connections) while a charger connects: its handshake
    fails. It was answered ``403 Forbidden``, which a charger reads as refused credentials (many back
    off for long on it, or stop); it is ``503 Service Unavailable`` with a ``Retry-After``, as a
    handshake beyond the gateway's cap, and the charger is admitted once the database is back."""
    await asyncio.to_thread(
        manage,
        private_postgres,
        "shell",
        "-c",
        "from chargepoints.services import charge_point_register;"
        " charge_point_register(charge_point_id='CP-DB-AWAY', heartbeat_interval=300)",
    )
    gateway = await asyncio.to_thread(
        start_daphne,
        tmp_path,
        DATABASE_URL=private_postgres.url,
        CELERY_BROKER_URL="memory://",
        CSMS_DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        CSMS_HANDSHAKE_TIMEOUT="60",  # the handshake's own failure answers, not the server's timeout
    )
    url = gateway.ws_url("1.6", "CP-DB-AWAY")
    try:
        await asyncio.to_thread(private_postgres.stop)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, subprotocols=["ocpp1.6"], open_timeout=30):
                pass
        assert refused.value.response.status_code == 503
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        assert "handshake failed" in gateway.log()
        await asyncio.to_thread(private_postgres.start)
        async with connect(url, subprotocols=["ocpp1.6"], open_timeout=30) as websocket:
            assert websocket.subprotocol == "ocpp1.6"
    finally:
        stop_daphne(gateway)
