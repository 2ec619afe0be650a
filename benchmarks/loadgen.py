"""The fleet load generator shared by fleet.py, reconnect_storm.py and command_roundtrip.py.

Cheap on purpose: raw OCPP-J frames over the ``websockets`` library (compression off, no client
pings), one asyncio loop per generator process (``multiprocessing``, fork), each holding a share of
the chargers. The parent drives all generators through phases (connect, idle, rate, closed loop,
close) over pipes and merges what they measured. Loopback only; every phase ends by itself.

A charger plays a fixed script: BootNotification, a StatusNotification per connector, then
sessions of Authorize, start (StartTransaction / TransactionEvent Started), StatusNotification,
METER_READINGS meter readings (MeterValues / TransactionEvent Updated), stop (StopTransaction /
TransactionEvent Ended), StatusNotification and a Heartbeat. Its clock is simulated (each step
advances it), starting days in the past so every timestamp is plausible and never in the future.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gc
import itertools
import json
import multiprocessing
import random
import resource
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

PREFIX = "BENCH-F-"
TAG = "BENCH-TAG"
CONNECTORS = 2
METER_READINGS = 4
SAMPLES_PER_READING = 2  # energy register and power
STEP = timedelta(seconds=10)  # simulated time per script step
WH_PER_STEP = 100  # 36 kW: well under the meter plausibility limit
CALL_TIMEOUT = 15.0  # beyond this a CALL counts as a timeout (and a phase ends at most this late)
PERSISTING = ("start", "meter", "stop")  # the kinds whose rows are verified in PostgreSQL
# Names this run's 2.0.1 transactionIds (the generators fork: they share it). A run's ids must not
# be an earlier run's: a Started event naming a session an earlier run left open (its chargers'
# Available after the new boot refused, say under database pressure) is that session's replay,
# acknowledged without a new row, and the verify phase would count a start (and its stop) missing.
RUN = uuid.uuid4().hex[:8]
# The same for 1.6: a StartTransaction is a replay of an earlier one with the same connector, idTag,
# meterStart and timestamp (its start key). Clocks start at a random second of an hour three days
# back, so a charger of this run would now and then send an earlier run's start again (a few per
# run of 1,000 chargers on one benchmark database). This run's meters start at a register of its own.
METER_BASE = 1000 + int(RUN, 16) % 100_000 * 10
# What a charger's configuration read answers (a few of the Core profile's keys; 2.0.1: the same
# settings in the device model), so its reboots within CSMS_CONFIGURATION_REFRESH_MAX_AGE are not read.
CONFIGURATION_KEYS = [
    {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
    {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
    {"key": "MeterValuesSampledData", "readonly": False, "value": "Energy.Active.Import.Register,Power.Active.Import"},
    {"key": "NumberOfConnectors", "readonly": True, "value": str(CONNECTORS)},
    {"key": "ConnectionTimeOut", "readonly": False, "value": "60"},
    {"key": "AuthorizeRemoteTxRequests", "readonly": False, "value": "true"},
]
DEVICE_MODEL_REPORT = [
    {
        "component": {"name": component},
        "variable": {"name": variable},
        "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
    }
    for component, variable, value in (
        ("OCPPCommCtrlr", "HeartbeatInterval", "300"),
        ("SampledDataCtrlr", "TxUpdatedInterval", "60"),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "Energy.Active.Import.Register,Power.Active.Import"),
        ("TxCtrlr", "EVConnectionTimeOut", "60"),
        ("AuthCtrlr", "AuthorizeRemoteStart", "true"),
    )
]
SCRIPT = ["authorize", "start", "charging", *["meter"] * METER_READINGS, "stop", "available", "heartbeat"]


def raise_nofile() -> None:
    """Lift the open-files limit to the hard limit (raised first when running as root)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (200_000, 200_000))
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def charger_ids(count: int) -> list[tuple[str, str]]:
    """(charge_point_id, OCPP version): even numbers speak 1.6, odd ones 2.0.1."""
    return [(f"{PREFIX}{n}", "1.6" if n % 2 == 0 else "2.0.1") for n in range(count)]


def source_address(n: int) -> str:
    """The n-th charger's own loopback source address (127.1.0.1, 127.1.0.2, ...: all of 127/8 is loopback).

    Real chargers connect from their own addresses; from one address they would trip the
    gateway's per-address handshake limit (CSMS_MAX_HANDSHAKES_PER_IP) in a storm.
    """
    return f"127.1.{n // 250}.{n % 250 + 1}"


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class Charger:
    """One simulated charger: its socket, its place in the script and its simulated clock."""

    def __init__(self, charge_point_id: str, version: str, url: str, stats: Stats, source: str) -> None:
        self.id = charge_point_id
        self.source = source  # its own loopback address, as chargers have their own addresses
        self.version = version
        self.url = url
        self.stats = stats
        self.websocket: ClientConnection | None = None
        self.clock = datetime.now(UTC) - timedelta(days=3) + timedelta(seconds=random.randrange(3600))
        self.meter = METER_BASE
        self.sessions = 0
        self.transaction_id: int | str | None = None
        self.seq_no = 0
        self.position = 0  # index into SCRIPT of the next step
        self.unique_ids = itertools.count()
        self.booted_at = 0.0  # time.monotonic() of the last accepted Boot
        self._awaiting: tuple[str, asyncio.Future[list[Any]]] | None = None  # the CALL in flight: its id, its answer
        self._reader: asyncio.Task[None] | None = None  # held here: the loop keeps only a weak reference

    # --- frames -------------------------------------------------------------------------------
    def _tick(self) -> str:
        self.clock += STEP
        return iso(self.clock)

    def _sampled(self, context: str) -> list[dict[str, Any]]:
        if self.version == "1.6":
            return [
                {"value": str(self.meter), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "36000", "measurand": "Power.Active.Import", "unit": "W"},
            ]
        return [
            {"value": self.meter, "measurand": "Energy.Active.Import.Register", "context": context},
            {"value": 36000, "measurand": "Power.Active.Import", "context": context},
        ]

    def boot(self) -> tuple[str, dict[str, Any]]:
        if self.version == "1.6":
            return "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Fleet16"}
        return "BootNotification", {
            "chargingStation": {"vendorName": "Bench", "model": "Fleet201"},
            "reason": "PowerUp",
        }

    def status(self, connector: int, status: str) -> tuple[str, dict[str, Any]]:
        if self.version == "1.6":
            payload = {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": self._tick()}
            return "StatusNotification", payload
        v201 = {"Available": "Available", "Charging": "Occupied"}[status]
        payload = {"timestamp": self._tick(), "connectorStatus": v201, "evseId": connector, "connectorId": 1}
        return "StatusNotification", payload

    def _transaction_event(self, event_type: str) -> tuple[str, dict[str, Any]]:
        stamp = self._tick()
        context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event_type, "Sample.Periodic")
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": stamp,
            "triggerReason": {"Started": "Authorized", "Ended": "StopAuthorized"}.get(event_type, "MeterValuePeriodic"),
            "seqNo": self.seq_no,
            "transactionInfo": {"transactionId": self.transaction_id},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": stamp, "sampledValue": self._sampled(context)}],
        }
        if event_type == "Started":
            payload["idToken"] = {"idToken": TAG, "type": "ISO14443"}
        if event_type == "Ended":
            payload["transactionInfo"]["stoppedReason"] = "Local"
        self.seq_no += 1
        return "TransactionEvent", payload

    def frame_for(self, step: str) -> tuple[str, dict[str, Any]]:
        v16 = self.version == "1.6"
        if step == "authorize":
            return "Authorize", {"idTag": TAG} if v16 else {"idToken": {"idToken": TAG, "type": "ISO14443"}}
        if step == "start":
            self.sessions += 1
            if v16:
                return "StartTransaction", {
                    "connectorId": 1,
                    "idTag": TAG,
                    "meterStart": self.meter,
                    "timestamp": self._tick(),
                }
            self.transaction_id, self.seq_no = f"{self.id}-{RUN}-{self.sessions}", 0
            return self._transaction_event("Started")
        if step in ("charging", "available"):
            return self.status(1, "Charging" if step == "charging" else "Available")
        if step == "heartbeat":
            return "Heartbeat", {}
        self.meter += WH_PER_STEP
        if step == "meter":
            if v16:
                reading = [{"timestamp": self._tick(), "sampledValue": self._sampled("Sample.Periodic")}]
                return "MeterValues", {"connectorId": 1, "transactionId": self.transaction_id, "meterValue": reading}
            return self._transaction_event("Updated")
        if v16:  # stop
            payload = {
                "transactionId": self.transaction_id,
                "meterStop": self.meter,
                "timestamp": self._tick(),
                "reason": "Local",
            }
            return "StopTransaction", payload
        return self._transaction_event("Ended")

    # --- wire ---------------------------------------------------------------------------------
    async def open(self) -> None:
        subprotocol = "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"
        self.websocket = await connect(
            self.url,
            subprotocols=[subprotocol],  # type: ignore[list-item]
            compression=None,
            ping_interval=None,
            open_timeout=CALL_TIMEOUT,
            close_timeout=2,
            max_queue=4,
            local_addr=(self.source, 0),
        )
        self._reader = asyncio.create_task(self._frames_read(self.websocket))

    async def _frames_read(self, websocket: ClientConnection) -> None:
        """Every frame the CSMS sends on ``websocket``, read as a charger's firmware reads them, at
        any time: its CALLs (the configuration read after a boot) answered at once, the answer to
        the CALL in flight handed to it, anything else a late answer to a CALL that timed out. A
        frame it cannot read or answer is noted and closes the socket. The CALL in flight when the
        socket closes fails with ``ConnectionClosed``."""
        try:
            async for raw in websocket:
                message = json.loads(raw)
                if message[0] == 2:
                    for frame in self.answers_to(message):
                        await websocket.send(json.dumps(frame))
                    self.stats.count["server_calls"] += 1
                elif self._awaiting is not None and message[1] == self._awaiting[0] and not self._awaiting[1].done():
                    self._awaiting[1].set_result(message)
        except ConnectionClosed:
            pass
        except Exception as error:  # a frame it cannot handle: noted, the socket closed
            self.stats.note(f"reader: {describe(error)}")
            await websocket.close()
        finally:
            if self.websocket is websocket and self._awaiting is not None and not self._awaiting[1].done():
                protocol = websocket.protocol
                self._awaiting[1].set_exception(ConnectionClosed(protocol.close_rcvd, protocol.close_sent))

    async def call(self, action: str, payload: dict[str, Any], kind: str) -> dict[str, Any] | None:
        """Send one CALL and wait for its CALLRESULT (read by ``_frames_read``, which answers the CSMS's CALLs)."""
        assert self.websocket is not None
        unique_id = str(next(self.unique_ids))
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._awaiting = (unique_id, answer)
        started = time.perf_counter()
        try:
            await self.websocket.send(json.dumps([2, unique_id, action, payload]))
            async with asyncio.timeout(CALL_TIMEOUT):
                message = await answer
        except (TimeoutError, ConnectionClosed):
            if kind in PERSISTING:  # the server may still have stored it: an upper bound for the check
                self.stats.count[f"unanswered_{kind}_{self.version_key}"] += 1
            raise
        finally:
            self._awaiting = None
        latency = (time.perf_counter() - started) * 1000
        self.stats.latencies.append(latency)
        self.stats.latencies_by_kind.setdefault(action, []).append(latency)
        self.stats.latencies_at.append((time.monotonic(), latency))
        if message[0] != 3:
            self.stats.count["call_errors"] += 1
            self.stats.note(f"{action}: CALLERROR {message[2:4]}")
            return None
        self.stats.count["acked"] += 1
        self.stats.count[f"acked_{kind}"] += 1
        return message[2]

    def answers_to(self, call: list[Any]) -> list[list[Any]]:
        """What the charger sends for a CALL of the CSMS: its configuration read as a real charger
        answers it (both are mandatory: 1.6 GetConfiguration, 2.0.1 GetBaseReport, whose report
        follows in one NotifyReport; its CALLRESULT is read and dropped as a late answer), any
        other command ``NotImplemented``."""
        unique_id, action, payload = call[1], call[2], call[3]
        if action == "GetConfiguration" and self.version == "1.6":
            return [[3, unique_id, {"configurationKey": CONFIGURATION_KEYS}]]
        if action == "GetBaseReport" and self.version != "1.6":
            report = {
                "requestId": payload["requestId"],
                "generatedAt": iso(self.clock),
                "seqNo": 0,
                "tbc": False,
                "reportData": DEVICE_MODEL_REPORT,
            }
            return [[3, unique_id, {"status": "Accepted"}], [2, f"report-{unique_id}", "NotifyReport", report]]
        return [[4, unique_id, "NotImplemented", "", {}]]

    @property
    def version_key(self) -> str:
        return "v16" if self.version == "1.6" else "v201"

    async def boot_up(self) -> None:
        """Connect, boot and report every connector available."""
        await self.open()
        self.stats.count["connected"] += 1
        started = time.perf_counter()
        await self.call(*self.boot(), kind="boot")
        self.stats.boot_latencies.append((time.perf_counter() - started) * 1000)
        self.booted_at = time.monotonic()
        self.stats.count["booted"] += 1
        for connector in range(1, CONNECTORS + 1):
            await self.call(*self.status(connector, "Available"), kind="status")

    async def step(self) -> None:
        """Send the next message of the script."""
        step = SCRIPT[self.position % len(SCRIPT)]
        self.position += 1
        action, payload = self.frame_for(step)
        kind = step if step in ("start", "meter", "stop") else "other"
        answer = await self.call(action, payload, kind)
        if step == "start" and self.version == "1.6":
            self.transaction_id = (answer or {}).get("transactionId", -1)
        if answer is not None and kind in PERSISTING:
            self.stats.count[f"{kind}_{self.version_key}"] += 1

    async def join_mix(self) -> None:
        """Move to a random point of the script, opening a session first if that point is inside one.

        Without this every charger would start the mix in lockstep at Authorize; with it the fleet
        is a steady state: some chargers between sessions, most in one, at every reading.
        """
        target = random.randrange(len(SCRIPT))
        if SCRIPT.index("charging") <= target <= SCRIPT.index("stop"):
            await self.step()  # authorize
            await self.step()  # start
        self.position = target

    async def heartbeat(self) -> None:
        await self.call("Heartbeat", {}, kind="heartbeat")

    @property
    def is_open(self) -> bool:
        return self.websocket is not None and self.websocket.state.name == "OPEN"


@dataclass
class Stats:
    """What one generator measured in one phase (merged across generators by the parent)."""

    count: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    boot_latencies: list[float] = field(default_factory=list)
    latencies_by_kind: dict[str, list[float]] = field(default_factory=dict)  # ms by OCPP action
    latencies_at: list[tuple[float, float]] = field(default_factory=list)  # (time.monotonic() answered, ms)
    errors: Counter[str] = field(default_factory=Counter)
    boot_done_at: list[float] = field(default_factory=list)  # storm: time.monotonic() (system-wide on Linux)
    seconds: float = 0.0

    def note(self, error: str) -> None:
        self.errors[error[:160]] += 1

    def merge(self, other: Stats) -> None:
        self.count.update(other.count)
        self.latencies += other.latencies
        self.boot_latencies += other.boot_latencies
        for action, latencies in other.latencies_by_kind.items():
            self.latencies_by_kind.setdefault(action, []).extend(latencies)
        self.latencies_at += other.latencies_at
        self.errors.update(other.errors)
        self.boot_done_at += other.boot_done_at
        self.seconds = max(self.seconds, other.seconds)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def retry_after(error: BaseException) -> float | None:
    """Seconds a refused handshake was told to wait (a 503 or 429 with ``Retry-After``), else None.

    ``Retry-After`` is whole seconds or an HTTP date (RFC 9110 10.2.3); one that cannot be read,
    or a refusal without it, is None: the charger falls back on its own back-off.
    """
    if not isinstance(error, InvalidStatus) or error.response.status_code not in (429, 503):
        return None
    value = (error.response.headers.get("Retry-After") or "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, (email.utils.parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    return None


class Generator:
    """One generator process: its chargers and the phases the parent asks for."""

    def __init__(self, pipe: Connection, chargers: list[tuple[str, str, str, str]]) -> None:
        self.pipe = pipe
        self.stats = Stats()
        self.chargers = [Charger(cp, version, url, self.stats, source) for cp, version, url, source in chargers]
        self.stop = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        running: asyncio.Task[None] | None = None
        while True:
            command, options = await loop.run_in_executor(None, self.pipe.recv)
            if command == "stop":
                self.stop.set()
                continue
            if running is not None:
                await running
            if command == "exit":
                return
            self.stop = asyncio.Event()
            running = asyncio.create_task(self.run_phase(command, options))

    async def run_phase(self, command: str, options: dict[str, Any]) -> None:
        self.stats = Stats()
        for charger in self.chargers:
            charger.stats = self.stats
        # What the generator holds by now (its chargers' connections) out of the collector's generations:
        # a full collection walking them paused this process 105-204 ms every ~20 s, which fell in a
        # rate phase, stalled half the fleet's sends and piled them up at the server (round 23 tail).
        gc.collect()
        gc.freeze()
        started = time.monotonic()
        phase = getattr(self, f"phase_{command}")
        try:
            await phase(**options)
        finally:
            gc.unfreeze()  # the phase's leftovers collectable again; the next phase freezes what it holds
        self.stats.seconds = time.monotonic() - started
        self.stats.count["open_at_end"] = sum(charger.is_open for charger in self.chargers)
        self.pipe.send(self.stats)

    async def _guarded(self, charger: Charger, work: Any) -> None:
        try:
            await work
        except ConnectionClosed as error:
            self.stats.count["dropped"] += 1
            self.stats.note(f"dropped: {error}")
        except (TimeoutError, OSError) as error:
            self.stats.count["timeouts" if isinstance(error, TimeoutError) else "socket_errors"] += 1
            self.stats.note(describe(error))

    async def phase_connect(self, concurrency: int, retries: int, seconds: float, join_mix: bool = True) -> None:
        """Open every socket and boot (bounded handshakes in flight); a failed handshake is retried.

        Gives up after ``seconds``: whoever is not booted by then counts as not connected. Then,
        with ``join_mix``, each charger moves to a random point of its script (see join_mix).
        """
        gate = asyncio.Semaphore(concurrency)
        end = time.monotonic() + seconds

        async def bring_up(charger: Charger) -> None:
            for _ in range(retries + 1):
                async with gate:
                    if time.monotonic() > end:
                        return
                    try:
                        await charger.boot_up()
                    except Exception as error:  # any failed handshake or Boot is counted
                        self.stats.count["handshake_errors"] += 1
                        self.stats.note(describe(error))
                        if charger.websocket is not None:
                            await charger.websocket.close()
                    else:
                        break
                await asyncio.sleep(0.5 + random.random())
            if join_mix and charger.is_open:
                await self._guarded(charger, charger.join_mix())

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds + CALL_TIMEOUT):
                await asyncio.gather(*(bring_up(charger) for charger in self.chargers))

    async def phase_storm(self, deadline: float, honour_retry_after: bool = True) -> None:
        """Everyone reconnects at once until booted (the server may still be down).

        Like a charger's firmware: a refused connection (nobody listening) is retried after
        0.5-1.5 s; a handshake refused with ``Retry-After`` (the gateway's 503 when its handshakes
        in flight are at their cap) is retried after exactly that (unless not
        ``honour_retry_after``); any other failed handshake or Boot backs off exponentially (1, 2,
        4, 8, then 16 s at most, each times 0.5-1.5), so an overloaded server is not buried under
        retries.
        """

        async def come_back(charger: Charger) -> None:
            backoff = 1.0
            while time.monotonic() < deadline:
                try:
                    await charger.boot_up()
                    return
                except ConnectionRefusedError:
                    self.stats.count["refused"] += 1
                    await asyncio.sleep(0.5 + random.random())
                except Exception as error:  # a handshake that fails after listening
                    self.stats.count["handshake_errors"] += 1
                    self.stats.note(describe(error))
                    if charger.websocket is not None:
                        await charger.websocket.close()
                    wait = retry_after(error) if honour_retry_after else None
                    if wait is not None:  # the server's jitter spreads the retries; no back-off of our own
                        self.stats.count["retry_after_honoured"] += 1
                        await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                        continue
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    backoff = min(16.0, backoff * 2)

        for charger in self.chargers:
            charger.booted_at = 0.0
        await asyncio.gather(*(come_back(charger) for charger in self.chargers))
        self.stats.boot_done_at = [charger.booted_at for charger in self.chargers if charger.booted_at]

    async def phase_rate(self, seconds: float, interval: float) -> None:
        """Every charger sends its next script step every ``interval`` seconds (open loop)."""
        end = time.monotonic() + seconds

        async def paced(charger: Charger) -> None:
            at = time.monotonic() + random.random() * interval
            while charger.is_open and not self.stop.is_set() and at < end:
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -interval:
                    self.stats.count["late_sends"] += 1
                if time.monotonic() >= end or self.stop.is_set():
                    return
                await charger.step()
                at += interval

        await asyncio.gather(*(self._guarded(charger, paced(charger)) for charger in self.chargers))

    async def phase_closed(self, seconds: float, active: int) -> None:
        """The first ``active`` chargers send back to back (one CALL in flight each): throughput."""
        end = time.monotonic() + seconds

        async def flat_out(charger: Charger) -> None:
            while charger.is_open and time.monotonic() < end and not self.stop.is_set():
                await charger.step()

        busy = [charger for charger in self.chargers if charger.is_open][:active]
        await asyncio.gather(*(self._guarded(charger, flat_out(charger)) for charger in busy))

    async def phase_idle(self, seconds: float, heartbeat: float) -> None:
        """Hold the sockets; each charger sends a Heartbeat every ``heartbeat`` seconds."""
        end = time.monotonic() + seconds

        async def hold(charger: Charger) -> None:
            await asyncio.sleep(random.random() * heartbeat)
            while charger.is_open and time.monotonic() < end and not self.stop.is_set():
                await charger.heartbeat()
                await asyncio.sleep(min(heartbeat, max(0.0, end - time.monotonic())))

        await asyncio.gather(*(self._guarded(charger, hold(charger)) for charger in self.chargers))

    async def phase_close(self) -> None:
        gate = asyncio.Semaphore(500)

        async def close(charger: Charger) -> None:
            if charger.websocket is not None:
                async with gate:
                    with contextlib.suppress(Exception):
                        await charger.websocket.close()

        await asyncio.gather(*(close(charger) for charger in self.chargers))

    async def phase_abandon(self) -> None:
        """Forget the sockets without closing them (the server was killed under them)."""
        for charger in self.chargers:
            if charger.websocket is not None:
                charger.websocket.transport.abort()
            charger.websocket = None


def _generator_main(pipe: Connection, chargers: list[tuple[str, str, str, str]]) -> None:
    raise_nofile()
    asyncio.run(Generator(pipe, chargers).serve())


class Fleet:
    """The parent's handle on the generator processes."""

    def __init__(self, chargers: list[tuple[str, str]], ports: list[int], processes: int) -> None:
        raise_nofile()
        context = multiprocessing.get_context("fork")
        self.size = len(chargers)
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        targets = [
            (cp, version, f"ws://127.0.0.1:{ports[n % len(ports)]}/ocpp/{version}/{cp}", source_address(n))
            for n, (cp, version) in enumerate(chargers)
        ]
        for index in range(processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_generator_main, args=(child_end, targets[index::processes]), daemon=True)
            process.start()
            self.pipes.append(parent_end)
            self.processes.append(process)

    def start(self, command: str, **options: Any) -> None:
        for pipe in self.pipes:
            pipe.send((command, options))

    def start_split(self, command: str, total_key: str, total: int, **options: Any) -> None:
        """Like start, with ``total`` (e.g. active chargers) shared between the generators."""
        share = -(-total // len(self.pipes))
        for pipe in self.pipes:
            pipe.send((command, {**options, total_key: share}))

    def stop(self) -> None:
        self.start("stop")

    def finish(self) -> Stats:
        merged = Stats()
        for pipe in self.pipes:
            merged.merge(pipe.recv())
        return merged

    def run(self, command: str, **options: Any) -> Stats:
        self.start(command, **options)
        return self.finish()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run("close")
        self.start("exit")
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
