"""Charging sessions under load: chargers on one daphne process run full sessions at once.

Starts one daphne process on PostgreSQL + Redis (loopback only). CHARGERS chargers (the ``ocpp``
package's clients, half OCPP 1.6, half 2.0.1) connect, boot, and each runs SESSIONS sessions
back to back: Authorize, a start (StartTransaction / TransactionEvent Started), METER_VALUES meter
readings (MeterValues / TransactionEvent Updated, energy and power) and a stop (StopTransaction /
TransactionEvent Ended). Every CALL's CALLRESULT latency is measured. At the end every session is
checked in PostgreSQL: ended, with its energy, its billing record and every sampled value.

    .venv/bin/python benchmarks/sessions.py [--chargers 50] [--sessions 4] [--meter-values 5] [--server daphne]

``--server uvicorn`` / ``--server granian`` serve the same ASGI application instead of daphne
(benchmarks/harness.py starts each; the server's CPU includes its worker processes).
``--heartbeats N``: each charger then sends N Heartbeats (``--sessions 0 --heartbeats 150``
measures the path without a synchronous database write); their rows are checked at the end.

Bounded: stops after the given sessions or --max-seconds, whichever comes first.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness import MACHINE, ROOT, SERVERS, cpu_seconds, percentiles, process_tree  # also sets up Django

from django.core.management import call_command
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint, Heartbeat
from charging.models import IdTag, MeterSample, Transaction

PORT = 18083
PREFIX = "BENCH-S-"
TAG = "BENCH-TAG"
SAMPLES_PER_READING = 2  # energy register and power


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class Timed:
    """Runs CALLs and keeps each CALL -> CALLRESULT latency."""

    def __init__(self, deadline: float) -> None:
        self.latencies: list[float] = []
        self.deadline = deadline

    async def __call__(self, send: Callable[[Any], Awaitable[Any]], payload: Any) -> Any:
        if time.monotonic() > self.deadline:
            raise TimeoutError("benchmark time is up")
        started = time.perf_counter()
        answer = await send(payload)
        self.latencies.append((time.perf_counter() - started) * 1000)
        return answer


async def v16_sessions(charger: V16Client, timed: Timed, args: argparse.Namespace, at: datetime) -> None:
    await timed(charger.call, call16.BootNotification(charge_point_vendor="Bench", charge_point_model="V16"))
    meter = 1000
    for session in range(args.sessions):
        await timed(charger.call, call16.Authorize(id_tag=TAG))
        start = at + timedelta(hours=session)
        started = await timed(
            charger.call, call16.StartTransaction(connector_id=1, id_tag=TAG, meter_start=meter, timestamp=iso(start))
        )
        for reading in range(1, args.meter_values + 1):
            meter += 500
            sampled = [
                {"value": str(meter), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
            ]
            stamp = iso(start + timedelta(minutes=reading))
            await timed(
                charger.call,
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=started.transaction_id,
                    meter_value=[{"timestamp": stamp, "sampledValue": sampled}],
                ),
            )
        meter += 500
        stop_at = iso(start + timedelta(minutes=args.meter_values + 1))
        await timed(
            charger.call,
            call16.StopTransaction(transaction_id=started.transaction_id, meter_stop=meter, timestamp=stop_at),
        )


async def v201_sessions(charger: V201Client, timed: Timed, args: argparse.Namespace, at: datetime) -> None:
    station = {"vendor_name": "Bench", "model": "V201"}
    await timed(charger.call, call201.BootNotification(charging_station=station, reason="PowerUp"))
    meter = 1000
    for session in range(args.sessions):
        token = {"idToken": TAG, "type": "ISO14443"}
        await timed(charger.call, call201.Authorize(id_token=token))
        transaction_id = f"{charger.id}-{session}"
        start = at + timedelta(hours=session)
        steps = ["Started"] + ["Updated"] * args.meter_values + ["Ended"]
        for seq_no, event_type in enumerate(steps):
            context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event_type, "Sample.Periodic")
            stamp = iso(start + timedelta(minutes=seq_no))
            sampled = [
                {"value": meter, "measurand": "Energy.Active.Import.Register", "context": context},
                {"value": 11000, "measurand": "Power.Active.Import", "context": context},
            ]
            await timed(
                charger.call,
                call201.TransactionEvent(
                    event_type=event_type,
                    timestamp=stamp,
                    trigger_reason="Authorized" if event_type == "Started" else "MeterValuePeriodic",
                    seq_no=seq_no,
                    transaction_info={"transactionId": transaction_id},
                    evse={"id": 1, "connectorId": 1},
                    id_token=token if event_type == "Started" else None,
                    meter_value=[{"timestamp": stamp, "sampledValue": sampled}],
                ),
            )
            meter += 500


async def run_charger(charge_point_id: str, version: str, timed: Timed, args: argparse.Namespace) -> None:
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    url = f"ws://127.0.0.1:{PORT}/ocpp/{version}/{charge_point_id}"
    async with connect(url, subprotocols=[subprotocol], compression=None) as websocket:
        client = V16Client if version == "1.6" else V201Client
        charger = client(charge_point_id, websocket, response_timeout=30)
        serving = asyncio.create_task(charger.start())
        at = datetime(2026, 5, 1, tzinfo=UTC)
        try:
            if version == "1.6":
                await v16_sessions(charger, timed, args, at)
            else:
                await v201_sessions(charger, timed, args, at)
            heartbeat = call16.Heartbeat() if version == "1.6" else call201.Heartbeat()
            for _ in range(args.heartbeats):
                await timed(charger.call, heartbeat)
        finally:
            serving.cancel()


def prepare(chargers: int) -> list[tuple[str, str]]:
    call_command("migrate", verbosity=0)
    BillingRecord.objects.filter(charge_point_identity__startswith=PREFIX).delete()
    MeterSample.objects.filter(charge_point__charge_point_id__startswith=PREFIX).delete()
    Transaction.objects.filter(charge_point__charge_point_id__startswith=PREFIX).delete()
    ChargePoint.objects.filter(charge_point_id__startswith=PREFIX).delete()
    IdTag.objects.get_or_create(id_tag=TAG)
    Tariff.objects.get_or_create(
        name="Bench default", defaults={"currency": "EUR", "price_per_kwh": Decimal("0.30"), "is_default": True}
    )
    chargers_and_versions = [(f"{PREFIX}{n}", "1.6" if n % 2 == 0 else "2.0.1") for n in range(chargers)]
    ChargePoint.objects.bulk_create(
        ChargePoint(charge_point_id=charge_point_id, heartbeat_interval=300)
        for charge_point_id, _ in chargers_and_versions
    )
    return chargers_and_versions


def verify(args: argparse.Namespace, chargers: int) -> dict[str, Any]:
    """What PostgreSQL holds after the run, against what every acknowledged message implies."""
    sessions = Transaction.objects.filter(charge_point__charge_point_id__startswith=PREFIX)
    expected_sessions = chargers * args.sessions
    energy_per_session = Decimal(500 * (args.meter_values + 1))
    return {
        "sessions_expected": expected_sessions,
        "sessions_ended": sessions.filter(status="ended").count(),
        "sessions_with_expected_energy": sessions.filter(energy_wh=energy_per_session).count(),
        "billing_records": BillingRecord.objects.filter(charge_point_identity__startswith=PREFIX).count(),
        "meter_samples": MeterSample.objects.filter(transaction__in=sessions).count(),
        # 1.6: the MeterValues only; 2.0.1: every TransactionEvent carries a reading.
        "heartbeats": Heartbeat.objects.filter(charge_point__charge_point_id__startswith=PREFIX).count(),
        "heartbeats_expected": chargers * args.heartbeats,
        "meter_samples_expected": SAMPLES_PER_READING
        * args.sessions
        * ((chargers + 1) // 2 * args.meter_values + chargers // 2 * (args.meter_values + 2)),
    }


async def run(args: argparse.Namespace, chargers_and_versions: list[tuple[str, str]]) -> dict[str, Any]:
    server = SERVERS[args.server](PORT, tempfile.mkdtemp(prefix="csms-bench-"), backlog=4096)
    pids = process_tree(server.pid)  # granian: its worker too
    timed = Timed(time.monotonic() + args.max_seconds)
    try:
        cpu_before, started = sum(map(cpu_seconds, pids)), time.monotonic()
        outcomes = await asyncio.gather(
            *(run_charger(cp, version, timed, args) for cp, version in chargers_and_versions), return_exceptions=True
        )
        elapsed, cpu = time.monotonic() - started, sum(map(cpu_seconds, pids)) - cpu_before
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    errors = [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]
    messages = len(timed.latencies)
    return {
        "benchmark": "sessions",
        "machine": MACHINE,
        "server": args.server,
        "chargers": len(chargers_and_versions),
        "sessions_per_charger": args.sessions,
        "meter_values_per_session": args.meter_values,
        "heartbeats_per_charger": args.heartbeats,
        "messages": messages,
        "seconds": round(elapsed, 2),
        "messages_per_s": round(messages / elapsed, 1),
        **percentiles(timed.latencies),
        "server_cpu_us_per_message": round(cpu / messages * 1e6) if messages else None,
        "charger_errors": errors[:5],
        "charger_error_count": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--meter-values", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=150)
    parser.add_argument("--server", choices=sorted(SERVERS), default="daphne")
    parser.add_argument("--json", type=Path, help="results file (default: benchmarks/results/sessions*.json)")
    parser.add_argument("--heartbeats", type=int, default=0)
    args = parser.parse_args()
    chargers_and_versions = prepare(args.chargers)
    result = asyncio.run(run(args, chargers_and_versions))
    result["persisted"] = verify(args, args.chargers)
    print(
        f"{args.server}: {result['chargers']} chargers x {args.sessions} sessions: {result['messages']} CALLs in "
        f"{result['seconds']} s = {result['messages_per_s']} msg/s; CALL->CALLRESULT p50 {result['p50_ms']} ms, "
        f"p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms; server CPU "
        f"{result['server_cpu_us_per_message']} us/msg; charger errors {result['charger_error_count']}"
    )
    print("persisted:", json.dumps(result["persisted"]))
    name = "sessions" + ("-heartbeats" if args.heartbeats and not args.sessions else "")
    suffix = "" if args.server == "daphne" else f"-{args.server}"
    out = args.json or ROOT / "benchmarks" / "results" / f"{name}{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
