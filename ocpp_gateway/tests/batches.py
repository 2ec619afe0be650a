"""What the group-commit tests share: units queued so that they run as one batch, each on its
charger's connection, a unit that refuses, and the start, reading and 2.0.1 event payloads they send."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg
import pytest
from asgiref.sync import sync_to_async

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_register
from charging.services.meter_ledger import SampledValue
from charging.services.open_sessions import open_sessions_bind
from charging.services.transaction_start import StartRequest
from kernel import plain_sql
from ocpp_gateway.group_commit import CommitGroup

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # recent: no reading is in the future

Unit = tuple[Callable[..., Any], dict[str, Any]] | tuple[contextvars.Context, Callable[..., Any], dict[str, Any]]


class Refused(Exception):
    """A unit's own refusal: its batch's first pass fails and the unit alone is answered with it."""


def refused() -> None:
    """A unit that refuses: raises ``Refused``."""
    raise Refused


def connection_context() -> contextvars.Context:
    """A charger's connection: its own context, keeping its open sessions (as a handshake binds)."""
    context = contextvars.copy_context()
    context.run(open_sessions_bind)
    return context


async def one_batch(group: CommitGroup, *units: Unit) -> list[Any]:
    """Run ``units`` ((connection,) func, kwargs) as one batch of ``group``: a blocker holds its
    writer while they queue. Their outcomes in order, an exception in place of a refused unit's."""
    release = threading.Event()
    first = asyncio.ensure_future(group.run(release.wait, timeout=5))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    queued = []
    for unit in units:
        context, func, kwargs = unit if len(unit) == 3 else (contextvars.copy_context(), *unit)
        queued.append(loop.create_task(group.run(func, **kwargs), context=context))
    release.set()
    await first
    return list(await asyncio.gather(*queued, return_exceptions=True))


@asynccontextmanager
async def charger_held(*registered: str, held: str, lock: str = "FOR UPDATE") -> AsyncIterator[psycopg.Connection[Any]]:
    """The chargers ``registered``, then ``held``'s row locked (``lock``) by a PostgreSQL
    connection of its own, as another process's write holds it (``FOR NO KEY UPDATE``: as a batch
    that set its ``last_seen``): that connection, whose ``commit`` releases the row; closed on the
    way out."""
    from conftest import _test_database_url

    for name in registered:
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    holder = await sync_to_async(psycopg.connect)(_test_database_url())
    try:
        await sync_to_async(holder.execute)(
            f"SELECT 1 FROM {ChargePoint._meta.db_table} WHERE charge_point_id = %s {lock}", [held]
        )
        yield holder
    finally:
        await sync_to_async(holder.close)()


def start16(charge_point_id: str, meter_start: int, started_at: datetime, id_tag: str = "TAG") -> StartRequest:
    """A 1.6 StartTransaction on connector 1: meter start in Wh."""
    return StartRequest(
        charge_point_id=charge_point_id,
        ocpp_version="1.6",
        start_key=f"1|{id_tag.lower()}|{meter_start}|{started_at.isoformat()}",
        started_at=started_at,
        connector_id=1,
        id_tag=id_tag,
        meter_start_wh=Decimal(meter_start),
    )


def register_reading(wh: int, at: datetime, context: str = "Sample.Periodic") -> list[SampledValue]:
    """One energy register reading of ``wh`` Wh at ``at``, as a MeterValues message's samples."""
    return [SampledValue(timestamp=at, raw_value=str(wh), context=context)]


def reading16(charge_point_id: str, pk: int, wh: int, at: datetime) -> dict[str, Any]:
    """``meter_values_record``'s arguments for a MeterValues of session ``pk`` on connector 1: one
    register reading of ``wh`` Wh at ``at``."""
    return {
        "charge_point_id": charge_point_id,
        "connector_id": 1,
        "ocpp_transaction_id": str(pk),
        "samples": register_reading(wh, at),
    }


def event201(kind: str, transaction_id: str, seq_no: int, wh: int, minutes: float) -> dict[str, Any]:
    """A 2.0.1 TransactionEvent payload (``kind``: Started, Updated or Ended) on EVSE 1 with one
    energy register reading of ``wh`` Wh, sent ``minutes`` after ``T0``."""
    sent_at = (T0 + timedelta(minutes=minutes)).isoformat()
    context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(kind, "Sample.Periodic")
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": sent_at,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": sent_at, "sampledValue": [{"value": wh, "context": context}]}],
    }
    if kind == "Ended":
        payload["transactionInfo"]["stoppedReason"] = "Local"
    return payload


def registered(*charge_point_ids: str) -> None:
    """Each charger registered (heartbeat interval 60 s)."""
    for charge_point_id in charge_point_ids:
        charge_point_register(charge_point_id=charge_point_id, heartbeat_interval=60)


# How a connection lost with a COMMIT in flight shows (``commit_lost_in_flight``): the socket closed
# under psycopg; psycopg's own error on leaving the pipeline, a FATAL waiting unread after the last
# answer and the connection still looking open (seen under ``pg_terminate_backend``, issue 15, round
# 37); PostgreSQL's FATAL read before the socket's end, the connection looking open (a safeguard).
CommitLoss = Literal["closed", "pipeline left busy", "terminated"]
COMMIT_LOSSES: tuple[CommitLoss, ...] = ("closed", "pipeline left busy", "terminated")


def commit_lost_in_flight(monkeypatch: pytest.MonkeyPatch, how: CommitLoss = "closed") -> list[psycopg.Connection[Any]]:
    """From now on, each pipeline that carries a COMMIT (``kernel.plain_sql._pipelined``) is sent
    and committed by PostgreSQL, then its connection is lost before the answer comes back, as
    ``how`` says. The connections so lost, as they are lost."""
    pipelined = plain_sql._pipelined
    lost: list[psycopg.Connection[Any]] = []

    def committed_then_lost(raw: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> None:
        pipelined(raw, *args, **kwargs)  # the rows and the COMMIT: PostgreSQL committed them...
        lost.append(raw)  # ...and the connection went before their answer came back
        if how == "closed":
            raw.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        if how == "pipeline left busy":
            raise psycopg.OperationalError("cannot exit pipeline mode while busy")
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")

    monkeypatch.setattr(plain_sql, "_pipelined", committed_then_lost)
    return lost
