"""The event loop's CPU per OCPP message in the router alone: ``route_message`` from the frame's
text to the answer's, without sockets, daphne or the database.

The commit group and the id-tag lookup are replaced by stubs that answer at once (a start opens
transaction 42, every tag is Accepted), and the message log and heartbeat buffers keep nothing: what
is left is the frame's reading, validation, dispatch, the handler and the answer's writing. Prints
the process CPU µs per message of each hot action, the best of five passes of ``--frames`` frames.

    .venv/bin/python benchmarks/router_cost.py --frames 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import harness  # noqa: F401  (Django)

from chargepoints.selectors import STRICT_PROFILE
from charging.selectors import IdTagInfo
from ocpp_gateway import group_commit, id_tags
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.versions import ROUTERS

AUTHORIZED = IdTagInfo(status="Accepted")
T = "2026-12-01T10:00:00Z"
SAMPLES16 = [
    {"value": "1234", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
    {"value": "36000", "measurand": "Power.Active.Import", "unit": "W"},
]
READINGS16 = [{"timestamp": T, "sampledValue": SAMPLES16}]
SAMPLES201 = [
    {"value": 1234, "measurand": "Energy.Active.Import.Register", "context": "Sample.Periodic"},
    {"value": 36000, "measurand": "Power.Active.Import", "context": "Sample.Periodic"},
]


def transaction_event(event_type: str) -> dict[str, Any]:
    """A TransactionEvent as benchmarks/loadgen.py sends it."""
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": T,
        "triggerReason": "Authorized",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "TX-1"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": T, "sampledValue": SAMPLES201}],
    }
    if event_type == "Started":
        payload["idToken"] = {"idToken": "TAG-1", "type": "ISO14443"}
    if event_type == "Ended":
        payload["transactionInfo"]["stoppedReason"] = "Local"
    return payload


ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("1.6", "Heartbeat", {}),
    ("1.6", "Authorize", {"idTag": "TAG-1"}),
    ("1.6", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": T}),
    ("1.6", "StartTransaction", {"connectorId": 1, "idTag": "TAG-1", "meterStart": 1000, "timestamp": T}),
    (
        "1.6",
        "MeterValues",
        {"connectorId": 1, "transactionId": 42, "meterValue": [{"timestamp": T, "sampledValue": SAMPLES16}]},
    ),
    ("1.6", "StopTransaction", {"transactionId": 42, "meterStop": 2000, "timestamp": T, "reason": "Local"}),
    ("2.0.1", "Heartbeat", {}),
    ("2.0.1", "Authorize", {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}}),
    ("2.0.1", "StatusNotification", {"timestamp": T, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
    ("2.0.1", "TransactionEvent", transaction_event("Started")),
    ("2.0.1", "TransactionEvent", transaction_event("Updated")),
    ("2.0.1", "TransactionEvent", transaction_event("Ended")),
]


async def _committed(func: Any, **kwargs: Any) -> Any:
    if func.__name__ in ("transaction_start", "transaction_stop"):
        return SimpleNamespace(transaction=SimpleNamespace(pk=42), id_tag_info=AUTHORIZED)
    if func.__name__ == "_transaction_event":
        payload = kwargs["payload"]  # as sent; before round 9 in snake_case
        return {"idTokenInfo": {"status": "Accepted"}} if payload.get("idToken") or payload.get("id_token") else {}
    return None


async def _authorized(*, id_tag: str, charge_point_id: str = "", token_type: str = "") -> IdTagInfo:
    return AUTHORIZED


def stubs_install() -> None:
    group_commit.commit_group.run = _committed  # type: ignore[method-assign]
    id_tags.id_tag_authorize = _authorized
    message_log.add = lambda item: None  # type: ignore[method-assign]
    heartbeats.add = lambda item: None  # type: ignore[method-assign]


class Connection:
    async def send(self, text_data: str) -> None: ...


async def us_per_message(ocpp_version: str, action: str, payload: dict[str, Any], frames: int) -> float:
    router = ROUTERS[ocpp_version]("BENCH-ROUTER", Connection())
    router.state_loaded(commissioned=True, profile=STRICT_PROFILE)
    router._frame_budget.take = lambda: True  # type: ignore[method-assign]
    texts = [json.dumps([2, str(n), action, payload], separators=(",", ":")) for n in range(frames)]
    for text in texts[:200]:
        await router.route_message(text)
    passes = []
    for _ in range(5):
        started = time.process_time()
        for text in texts:
            await router.route_message(text)
        passes.append((time.process_time() - started) / frames * 1e6)
    return min(passes)


async def main(frames: int) -> None:
    stubs_install()
    for ocpp_version, action, payload in ROWS:
        name = f"{action} {payload.get('eventType', '')}".strip()
        print(f"{name + f' ({ocpp_version})':40} {await us_per_message(ocpp_version, action, payload, frames):6.1f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3000, help="frames per pass, per row")
    asyncio.run(main(parser.parse_args().frames))
