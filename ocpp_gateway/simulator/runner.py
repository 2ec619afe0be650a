"""Connect a simulated charger to a CSMS and run it until its sessions are done."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from ocpp_gateway.consumers import SUBPROTOCOLS
from ocpp_gateway.simulator.base import SimulatorOptions
from ocpp_gateway.simulator.v16 import V16Simulator
from ocpp_gateway.simulator.v201 import V201Simulator

SIMULATORS: dict[str, type[V16Simulator] | type[V201Simulator]] = {"1.6": V16Simulator, "2.0.1": V201Simulator}


class ConnectionLost(Exception):
    """The CSMS closed the socket before the sessions were done."""


def charger_url(base_url: str, *, ocpp_version: str, charge_point_id: str) -> str:
    """``ws://host:port`` plus the charger's path, unless the URL already names one."""
    if "/ocpp/" in base_url:
        return base_url
    return f"{base_url.rstrip('/')}/ocpp/{ocpp_version}/{quote(charge_point_id, safe='')}"


async def charger_simulate(
    *, charge_point_id: str, ocpp_version: str, url: str, options: SimulatorOptions, password: str | None = None
) -> int:
    """Run the charger; returns the number of sessions it ran.

    Raises ``websockets.exceptions.InvalidStatus`` when the handshake is refused (unknown or
    decommissioned charger, wrong password) and ConnectionLost when the CSMS closes the socket.
    """
    headers = {}
    if password:
        credentials = base64.b64encode(f"{charge_point_id}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {credentials}"
    async with connect(
        url, subprotocols=[Subprotocol(SUBPROTOCOLS[ocpp_version])], additional_headers=headers, compression=None
    ) as websocket:
        charger = SIMULATORS[ocpp_version](charge_point_id, websocket, options)
        serving = asyncio.create_task(charger.start())
        simulating = asyncio.create_task(charger.simulate())
        try:
            await asyncio.wait({serving, simulating}, return_when=asyncio.FIRST_COMPLETED)
            if not simulating.done():
                raise ConnectionLost(f"the CSMS closed the connection after {charger.sessions_done} sessions")
            simulating.result()
            return charger.sessions_done
        finally:
            for task in (serving, simulating):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
