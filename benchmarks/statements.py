"""Statements per session message in the group commit's batch thread (issue 15): noise-free.

Runs the session services the handlers call (``transaction_start``, ``meter_values_record``,
``transaction_stop``, the 2.0.1 ``TransactionEvent`` path) for CHARGERS chargers, each with its
own connection context (``open_sessions_bind``, as a handshake does), through one real
``CommitGroup`` on PostgreSQL: each phase is one message per charger, queued together so that
they share batches as on a busy server. Counts every statement psycopg sends (``execute``,
``executemany``, ``COPY``) while the phase runs, the batch's shared writes and its BEGIN/COMMIT
included, and prints them per 100 messages. No sockets, no timing: the count is the result.

    .venv/bin/python benchmarks/statements.py [--chargers 50] [--readings 3] [--cpu] [--max-units 64]

Needs a migrated database of its own (DATABASE_URL); it adds chargers named ``STMT-<run>-<n>``.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import harness  # sets up Django

import psycopg
from asgiref.sync import sync_to_async

from chargepoints.services import charge_point_register
from charging.services.meter_ledger import meter_values_record
from charging.services.open_sessions import open_sessions_bind
from charging.services.transaction_start import StartRequest
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.handshake_auth import _attached_with_sessions as handshake_attached
from ocpp_gateway.v16.transactions import sampled_values as sampled16
from ocpp_gateway.v201.transactions import _transaction_event

try:  # the caches a gateway process keeps while subscribed to their changes
    from kernel import cache_changes
except ImportError:  # a commit before them: measured as it was
    cache_changes = None  # type: ignore[assignment]

_sent = [0]
_trips = [0]  # round trips: the client waited for the server's answer (see ``round_trips_counted``)
_trip_kinds: dict[str, int] = {}  # --texts: round trips by psycopg generator
_texts: dict[str, int] | None = None  # --texts: each statement's first words -> sends, in the phase
_phase_cpu = [
    0.0,
    0.0,
    0.0,
]  # CPU seconds of the last phase: this process (every thread), its batch thread, PostgreSQL's
_batch_cpu = [0.0]  # the batch thread's CPU seconds so far
_phase_trips = [0]  # round trips of the last phase (--round-trips)


def _batch_thread_timed() -> None:
    """Count the CPU the group commit's batch thread spends in ``batch_committed`` (``thread_time``)."""
    from ocpp_gateway import group_commit

    committed = group_commit.batch_committed

    def timed(*args: Any, **kwargs: Any) -> Any:
        at = time.thread_time()
        try:
            return committed(*args, **kwargs)
        finally:
            _batch_cpu[0] += time.thread_time() - at

    group_commit.batch_committed = timed  # type: ignore[assignment]


# psycopg's generators that send without waiting for an answer: a COPY's data, a pipeline's
# entry, its sends and the results already there (its syncs and flushed fetches wait: those
# count), a setting's change outside a pipeline.
_NOT_WAITING = {"copy_to", "_communicate_gen", "_enter_gen"}
_SETTINGS = {"_set_autocommit_gen", "_set_isolation_level_gen", "_set_read_only_gen", "_set_deferrable_gen"}


def round_trips_counted() -> None:
    """Count round trips (every thread) from now on: each ``psycopg.Connection.wait`` of a
    generator that waits for the server's answer (a statement, a COPY's start and end, a commit,
    a pipeline's sync), and each BEGIN with the batch's settings (``_batch_session_set``: one
    ``exec_`` of libpq, outside ``wait``)."""
    from ocpp_gateway import group_commit

    wait = psycopg.Connection.wait

    def counted(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(gen, "__name__", "?")
        piped = self._pipeline is not None
        idle = self.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if name in ("_commit_gen", "_rollback_gen") and idle:  # nothing to end: psycopg sends nothing
            return wait(self, gen, *args, **kwargs)
        if name not in _NOT_WAITING and (name not in _SETTINGS or piped) and not (piped and name == "_execute_gen"):
            _trips[0] += 1
            _trip_kinds[name] = _trip_kinds.get(name, 0) + 1
        return wait(self, gen, *args, **kwargs)

    psycopg.Connection.wait = counted  # type: ignore[method-assign]
    try:  # the BEGIN and its settings sent alone by libpq's exec_ (before a COPY, say)
        from kernel import deferred_begin
    except ImportError:  # a commit before it: every batch's BEGIN went alone
        _begin_counted(group_commit, "_batch_session_set")
    else:
        _begin_counted(deferred_begin, "_sent_alone")


def _begin_counted(module: Any, name: str) -> None:
    """Count each call of ``module.name`` (a BEGIN with the batch's settings by ``exec_``) as a round trip."""
    original = getattr(module, name)

    def begun(*args: Any, **kwargs: Any) -> None:
        _trips[0] += 1
        _trip_kinds["BEGIN+SETs"] = _trip_kinds.get("BEGIN+SETs", 0) + 1
        original(*args, **kwargs)

    setattr(module, name, begun)


# A transaction's BEGIN, its settings and COMMIT: pipelined by a cursor since round 30, before sent
# by libpq or by the connection; not counted as statements, so that counts compare across rounds.
_TRANSACTION_CONTROL = ("BEGIN", "SET CONSTRAINTS", "SET LOCAL", "COMMIT")


@contextmanager
def statements_counted() -> Iterator[list[int]]:
    """Count psycopg's statement sends (every thread) while the block runs."""
    originals = {name: getattr(psycopg.Cursor, name) for name in ("execute", "executemany", "copy")}

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        def send(*args: Any, **kwargs: Any) -> Any:
            text = str(args[1] if len(args) > 1 else kwargs.get("query", ""))
            if text.startswith(_TRANSACTION_CONTROL):
                return original(*args, **kwargs)
            _sent[0] += 1
            if _texts is not None:
                _texts[text[:90]] = _texts.get(text[:90], 0) + 1
            return original(*args, **kwargs)

        return send

    for name, original in originals.items():
        setattr(psycopg.Cursor, name, counting(original))
    _sent[0] = 0
    try:
        yield _sent
    finally:
        for name, original in originals.items():
            setattr(psycopg.Cursor, name, original)


def start_request16(charge_point_id: str, t0: datetime) -> StartRequest:
    """A 1.6 StartTransaction on connector 1 at ``t0``, meter start 1,000 Wh."""
    return StartRequest(
        charge_point_id=charge_point_id,
        ocpp_version="1.6",
        start_key=f"1|t|1000|{t0.isoformat()}",
        started_at=t0,
        connector_id=1,
        id_tag="T",
        meter_start_wh=Decimal(1000),
    )


def _reading16(wh: int, at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": at.isoformat(),
            "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}],
        }
    ]


def _event201(kind: str, tx: str, seq_no: int, wh: int, at: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": at.isoformat(),
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": at.isoformat(),
                "sampledValue": [
                    {"value": wh, "context": "Transaction.Begin" if kind == "Started" else "Sample.Periodic"}
                ],
            }
        ],
    }
    if kind == "Ended":
        payload["transactionInfo"]["stoppedReason"] = "Local"
    return payload


async def _phase(
    group: CommitGroup,
    contexts: list[contextvars.Context],
    unit: Callable[[int], tuple[Callable[..., Any], dict[str, Any]]],
) -> tuple[int, list[Any]]:
    """One message per charger, queued at once in its connection's context: (statements, results)."""
    cpu_at, batch_at, database_at = time.process_time(), _batch_cpu[0], harness.database_cpu_seconds()
    trips_at = _trips[0]
    with statements_counted() as sent:
        tasks = []
        for n, context in enumerate(contexts):
            func, kwargs = unit(n)
            tasks.append(asyncio.get_running_loop().create_task(group.run(func, **kwargs), context=context))
        results = await asyncio.gather(*tasks)
    _phase_trips[0] = _trips[0] - trips_at
    _phase_cpu[:] = time.process_time() - cpu_at, _batch_cpu[0] - batch_at, harness.database_cpu_seconds() - database_at
    return sent[0], list(results)


async def _boot_and_statuses(
    group: CommitGroup,
    contexts: list[contextvars.Context],
    names: list[str],
    note: Callable[[str, int, int], None],
) -> None:
    """Boot (as the handlers queue it), the configuration read after it (answered with a CALLERROR),
    a second read answered with keys (as the fleet's chargers answer it) and StatusNotifications: a
    connector's first, then an unchanged one."""
    from chargepoints.services import charge_point_boot, connector_status_set
    from commands.rpc import call_outcome
    from commands.services import command_complete
    from configuration.changes import configuration_read_recent, configuration_refresh_on_boot

    def boot(n: int) -> tuple[Callable[..., Any], dict[str, Any]]:
        """As both versions' handlers queue it: with the condition the configuration read asks."""
        kwargs = {"charge_point_id": names[n], "vendor": "Bench", "model": "Stmt"}
        return charge_point_boot, {**kwargs, "condition": configuration_read_recent()}

    sent, _ = await _phase(group, contexts, boot)
    note("BootNotification", sent, len(names))
    sent, commands = await _phase(
        group, contexts, lambda n: (configuration_refresh_on_boot, {"charge_point_id": names[n]})
    )
    note("configuration read after a boot: recorded", sent, len(names))
    unanswered = {"outcome": "call_error", "error_code": "NotImplemented"}
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (command_complete, {"command": commands[n], "outcome": call_outcome(unanswered, started=0.0)}),
    )
    note("configuration read after a boot: completed", sent, len(names))
    await _answered_read(group, contexts, names, note)
    for label in ("StatusNotification (1.6), first", "StatusNotification (1.6), unchanged"):
        sent, _ = await _phase(
            group,
            contexts,
            lambda n: (
                connector_status_set,
                {"charge_point_id": names[n], "connector_id": 1, "status": "Available", "error_code": "NoError"},
            ),
        )
        note(label, sent, len(names))
    for label in ("StatusNotification (2.0.1), first", "StatusNotification (2.0.1), unchanged"):
        sent, _ = await _phase(
            group,
            contexts,
            lambda n: (
                connector_status_set,
                {"charge_point_id": names[n], "evse_id": 2, "connector_id": 1, "status": "Available"},
            ),
        )
        note(label, sent, len(names))


async def _answered_read(
    group: CommitGroup,
    contexts: list[contextvars.Context],
    names: list[str],
    note: Callable[[str, int, int], None],
) -> None:
    """A second configuration read after the boot, answered with keys as the fleet's chargers
    answer it (``loadgen.CONFIGURATION_KEYS``): its outcome and the keys' store."""
    from commands.rpc import call_outcome
    from commands.services import command_complete
    from configuration.changes import configuration_refresh_on_boot
    from loadgen import CONFIGURATION_KEYS

    sent, commands = await _phase(
        group, contexts, lambda n: (configuration_refresh_on_boot, {"charge_point_id": names[n]})
    )
    note("configuration read after a boot: recorded (a second, to be answered with keys)", sent, len(names))
    answered = {"outcome": "result", "payload": {"configurationKey": CONFIGURATION_KEYS}}
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (command_complete, {"command": commands[n], "outcome": call_outcome(answered, started=0.0)}),
    )
    note("configuration read after a boot: answered with keys, completed", sent, len(names))


async def _listening() -> None:
    """Subscribed to the caches' changes, as a gateway process is from its first connection (5 s at most)."""
    if cache_changes is None:
        return
    cache_changes.listener_started()
    for _ in range(100):
        if cache_changes.listening():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("no subscription to the caches' changes (Redis?)")


trips100: dict[str, float] = {}  # label -> round trips per 100 messages (--round-trips)
cpu_us: dict[str, float] = {}  # label -> this process's CPU µs per message (--cpu)
batch_us: dict[str, float] = {}  # label -> the batch thread's CPU µs per message (--cpu)
database_us: dict[str, float] = {}  # label -> PostgreSQL's CPU µs per message (--cpu)


async def _registered(names: list[str]) -> list[contextvars.Context]:
    """``names`` registered as chargers, and a connection's context for each (its open sessions bound)."""
    await sync_to_async(
        lambda: [charge_point_register(charge_point_id=name, heartbeat_interval=60) for name in names]
    )()
    contexts = []
    for _ in names:
        context = contextvars.copy_context()
        context.run(open_sessions_bind)
        contexts.append(context)
    return contexts


async def main(chargers: int, readings: int, max_units: int = 64) -> dict[str, float]:
    from chargepoints.services import connector_status_set
    from charging.services.transaction_start import transaction_start
    from charging.services.transaction_stop import StopRequest, transaction_stop

    run = uuid.uuid4().hex[:8]
    names = [f"STMT-{run}-{n}" for n in range(chargers)]
    contexts = await _registered(names)
    group = CommitGroup(max_units=max_units)
    await _listening()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    per100: dict[str, float] = {}

    def note(label: str, sent: int, count: int) -> None:
        if _texts is not None:
            print(f"{label}: {sent} statements for {count} messages")
            for text, times in sorted(_texts.items(), key=lambda item: -item[1]):
                print(f"  {times:4d}  {text}")
            _texts.clear()
            if _trip_kinds:
                print(f"  round trips: {_phase_trips[0]} {dict(sorted(_trip_kinds.items()))}")
                _trip_kinds.clear()
        per100[label] = per100.get(label, 0) + 100 * sent / count / (readings if "reading" in label else 1)
        trips100[label] = trips100.get(label, 0) + 100 * _phase_trips[0] / count / (
            readings if "reading" in label else 1
        )
        per = count * (readings if "reading" in label else 1) / 1e6
        cpu_us[label] = cpu_us.get(label, 0) + _phase_cpu[0] / per
        batch_us[label] = batch_us.get(label, 0) + _phase_cpu[1] / per
        database_us[label] = database_us.get(label, 0) + _phase_cpu[2] / per

    # The handshake's unit (admission, presence and, once admitted, the open sessions loaded).
    def handshake(n: int) -> tuple[Callable[..., Any], dict[str, Any]]:
        return handshake_attached, {
            "charge_point_id": names[n],
            "password": None,
            "ocpp_version": "1.6",
            "channel_name": f"statements.{names[n]}.{uuid.uuid4().hex[:6]}",
            "may_hash": False,
            "handshake_started_at": datetime.now(UTC),  # as the gateway's handshake passes it
        }

    sent, attached = await _phase(group, contexts, handshake)
    assert not any(isinstance(refusal, str) for refusal in attached), attached
    note("connect (the handshake's unit)", sent, chargers)
    await _boot_and_statuses(group, contexts, names, note)
    # Each charger reconnects, booted (its model's profile is looked up), no session open.
    contexts = [contextvars.copy_context() for _ in names]
    for context in contexts:
        context.run(open_sessions_bind)
    sent, _ = await _phase(group, contexts, handshake)
    note("reconnect (the handshake's unit, booted, no session open)", sent, chargers)
    # OCPP 1.6
    sent, started = await _phase(
        group,
        contexts,
        lambda n: (
            transaction_start,
            {"request": start_request16(names[n], t0)},
        ),
    )
    note("StartTransaction (1.6)", sent, chargers)
    pks = [result.transaction.pk for result in started]
    for status, charging in (("SuspendedEV", False), ("Charging", True)):
        sent, _ = await _phase(
            group,
            contexts,
            lambda n, status=status, charging=charging: (
                connector_status_set,
                {
                    "charge_point_id": names[n],
                    "connector_id": 1,
                    "status": status,
                    "error_code": "NoError",
                    "charging": charging,
                },
            ),
        )
        note("StatusNotification (1.6) SuspendedEV / Charging, its session open", sent, chargers * 2)
    for minute in range(1, readings + 1):
        sent, _ = await _phase(
            group,
            contexts,
            lambda n, minute=minute: (
                meter_values_record,
                {
                    "charge_point_id": names[n],
                    "connector_id": 1,
                    "ocpp_transaction_id": str(pks[n]),
                    "samples": sampled16(_reading16(1000 + 100 * minute, t0 + timedelta(minutes=minute))),
                },
            ),
        )
        note("MeterValues (1.6), a reading", sent, chargers)
    for minute in range(readings + 1, 2 * readings + 1):
        sent, _ = await _phase(
            group,
            contexts,
            lambda n, minute=minute: (
                meter_values_record,
                {
                    "charge_point_id": names[n],
                    "connector_id": 1,
                    "samples": sampled16(_reading16(1000 + 100 * minute, t0 + timedelta(minutes=minute))),
                },
            ),
        )
        note("MeterValues (1.6) without transactionId, a reading", sent, chargers)
    # Each charger reconnects (a new connection context, its handshake), then sends a reading.
    contexts = [contextvars.copy_context() for _ in names]
    for context in contexts:
        context.run(open_sessions_bind)
    sent, _ = await _phase(group, contexts, handshake)
    note("reconnect (the handshake's unit, a session open)", sent, chargers)
    minute = 2 * readings + 1
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (
            meter_values_record,
            {
                "charge_point_id": names[n],
                "connector_id": 1,
                "ocpp_transaction_id": str(pks[n]),
                "samples": sampled16(_reading16(1000 + 100 * minute, t0 + timedelta(minutes=minute))),
            },
        ),
    )
    note("MeterValues (1.6), first reading after the reconnect", sent, chargers)
    stop_at = t0 + timedelta(minutes=2 * readings + 2)
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (
            transaction_stop,
            {
                "request": StopRequest(
                    charge_point_id=names[n],
                    ocpp_transaction_id=str(pks[n]),
                    stopped_at=stop_at,
                    action="StopTransaction",
                    payload={},
                    meter_stop_wh=Decimal(5000),
                    reason="Local",
                )
            },
        ),
    )
    note("StopTransaction (1.6)", sent, chargers)
    # OCPP 2.0.1
    at = stop_at + timedelta(minutes=1)
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (
            _transaction_event,
            {"charge_point_id": names[n], "payload": _event201("Started", f"TX-{run}-{n}", 0, 6000, at)},
        ),
    )
    note("TransactionEvent Started (2.0.1)", sent, chargers)
    for seq in range(1, readings + 1):
        sent, _ = await _phase(
            group,
            contexts,
            lambda n, seq=seq: (
                _transaction_event,
                {
                    "charge_point_id": names[n],
                    "payload": _event201(
                        "Updated", f"TX-{run}-{n}", seq, 6000 + 100 * seq, at + timedelta(minutes=seq)
                    ),
                },
            ),
        )
        note("TransactionEvent Updated (2.0.1), a reading", sent, chargers)
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (
            _transaction_event,
            {
                "charge_point_id": names[n],
                "payload": _event201(
                    "Ended", f"TX-{run}-{n}", readings + 1, 7000, at + timedelta(minutes=readings + 1)
                ),
            },
        ),
    )
    note("TransactionEvent Ended (2.0.1)", sent, chargers)
    await _reboot_with_a_session_open(group, contexts, names, at + timedelta(minutes=readings + 2), note)
    await _first_connect201([f"{name}-201" for name in names], group, note)
    return per100


async def _reboot_with_a_session_open(
    group: CommitGroup,
    contexts: list[contextvars.Context],
    names: list[str],
    at: datetime,
    note: Callable[[str, int, int], None],
) -> None:
    """A 1.6 start on connector 2, the charger boots again (its session left open), then connector 2
    reports Available: the session the reboot cut is closed (``transactions_close_after_reboot``)."""

    from chargepoints.services import connector_status_set
    from charging.services.transaction_start import transaction_start

    request = {
        "charge_point_id": "",
        "ocpp_version": "1.6",
        "start_key": f"2|t|9000|{at.isoformat()}",
        "started_at": at,
        "connector_id": 2,
        "id_tag": "T",
        "meter_start_wh": Decimal(9000),
    }
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (transaction_start, {"request": StartRequest(**{**request, "charge_point_id": names[n]})}),
    )
    note("StartTransaction (1.6), connector 2", sent, len(names))
    await _boot_and_statuses(  # the reboot, its statuses on connector 1
        group, contexts, names, lambda label, sent, count: note(f"{label} (a session open)", sent, count)
    )
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (
            connector_status_set,
            {"charge_point_id": names[n], "connector_id": 2, "status": "Available", "error_code": "NoError"},
        ),
    )
    note("StatusNotification (1.6) Available after a reboot, its session closed", sent, len(names))


def device_model_report() -> list[dict[str, Any]]:
    """The device model a 2.0.1 charger of the benchmarks reports after its first boot
    (``loadgen.DEVICE_MODEL_REPORT``), as the NotifyReport handler passes it (the ``ocpp``
    package's snake_case)."""
    from loadgen import DEVICE_MODEL_REPORT

    return [
        {"component": part["component"], "variable": part["variable"], "variable_attribute": part["variableAttribute"]}
        for part in DEVICE_MODEL_REPORT
    ]


async def _first_connect201(names: list[str], group: CommitGroup, note: Callable[[str, int, int], None]) -> None:
    """A 2.0.1 charger's first connect as the fleet's make it (``loadgen.answers_to``), on chargers
    of its own: the handshake, BootNotification, the read after it (GetBaseReport, its report id
    reserved), its answer (Accepted), the NotifyReport (the device model stored), two first statuses."""
    from chargepoints.services import charge_point_boot, connector_status_set
    from commands.rpc import call_outcome
    from commands.services import command_complete
    from configuration.changes import configuration_read_recent, configuration_refresh_on_boot
    from configuration.services import device_model_report_record

    contexts = await _registered(names)
    sent, attached = await _phase(
        group,
        contexts,
        lambda n: (
            handshake_attached,
            {
                "charge_point_id": names[n],
                "password": None,
                "ocpp_version": "2.0.1",
                "channel_name": f"statements.{names[n]}.{uuid.uuid4().hex[:6]}",
                "may_hash": False,
                "handshake_started_at": datetime.now(UTC),
            },
        ),
    )
    assert not any(isinstance(refusal, str) for refusal in attached), attached
    note("2.0.1 first connect: connect (the handshake's unit)", sent, len(names))
    identity = {"vendor": "Bench", "model": "Stmt201", "serial_number": "", "firmware_version": "1.0"}
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (
            charge_point_boot,
            {
                "charge_point_id": names[n],
                **identity,
                "iccid": "",
                "imsi": "",
                "condition": configuration_read_recent(),
            },
        ),
    )
    note("2.0.1 first connect: BootNotification", sent, len(names))
    sent, commands = await _phase(
        group, contexts, lambda n: (configuration_refresh_on_boot, {"charge_point_id": names[n]})
    )
    assert all(command is not None and command.command == "get_base_report" for command in commands), commands
    note("2.0.1 first connect: GetBaseReport recorded (its report id reserved)", sent, len(names))
    accepted = {"outcome": "result", "payload": {"status": "Accepted"}}
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (command_complete, {"command": commands[n], "outcome": call_outcome(accepted, started=0.0)}),
    )
    note("2.0.1 first connect: GetBaseReport answered Accepted (completed)", sent, len(names))
    generated_at = datetime.now(UTC)
    sent, _ = await _phase(
        group,
        contexts,
        lambda n: (
            device_model_report_record,
            {
                "charge_point_id": names[n],
                "request_id": commands[n].request["request_id"],
                "seq_no": 0,
                "tbc": False,
                "generated_at": generated_at,
                "report_data": device_model_report(),
            },
        ),
    )
    note("2.0.1 first connect: NotifyReport (the device model stored)", sent, len(names))
    for evse in (1, 2):
        sent, _ = await _phase(
            group,
            contexts,
            lambda n, evse=evse: (
                connector_status_set,
                {"charge_point_id": names[n], "evse_id": evse, "connector_id": 1, "status": "Available"},
            ),
        )
        note("2.0.1 first connect: StatusNotification, first (two EVSEs)", sent, len(names) * 2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=50)
    parser.add_argument("--readings", type=int, default=3)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also CPU µs per message: this process's (every thread), its batch thread's, PostgreSQL's (noisy)",
    )
    parser.add_argument(
        "--round-trips",
        action="store_true",
        help="also round trips to PostgreSQL per 100 messages (waits for its answer)",
    )
    parser.add_argument("--texts", action="store_true", help="also each phase's statements (their first words)")
    parser.add_argument("--max-units", type=int, default=64, help="units per batch at most (few: its fixed part shows)")
    args = parser.parse_args()
    if args.cpu:
        _batch_thread_timed()
        # The gateway's collector (csms/asgi.py): what is loaded frozen, young objects collected after
        # 20,000. With the defaults, a full collection of the unfrozen heap (~60 ms) lands in whichever
        # phase runs then: 2.0.1 TransactionEvent Started's, 457 -> ~150 µs a message (round 19).
        gc.freeze()
        gc.set_threshold(20_000, 20, 10)
    if args.texts:
        _texts = {}
    if args.round_trips:
        round_trips_counted()
    result = asyncio.run(main(args.chargers, args.readings, args.max_units))
    print(json.dumps({label: round(value, 1) for label, value in result.items()}, indent=1))
    if args.round_trips:
        print(json.dumps({"round_trips_per_100": {label: round(v, 1) for label, v in trips100.items()}}, indent=1))
    if args.cpu:
        print(json.dumps({"cpu_us_per_message": {label: round(value) for label, value in cpu_us.items()}}, indent=1))
        print(json.dumps({"batch_thread_us_per_message": {label: round(v) for label, v in batch_us.items()}}, indent=1))
        print(
            json.dumps({"postgresql_us_per_message": {label: round(v) for label, v in database_us.items()}}, indent=1)
        )
