"""The machine's ceiling: a bare asyncio WebSocket server answering every OCPP CALL at once.

No Django, no channel layer, no database: it parses each CALL ``[2, id, action, payload]`` and
answers ``[3, id, {...}]`` with a small plausible payload (Accepted, currentTime, a transaction id
for a 1.6 StartTransaction). fleet.py runs it as a separate process and drives it with the same
generator and frames as the CSMS, so ours/echo says what the product costs above the transport.

    .venv/bin/python benchmarks/echo_baseline.py --port 18190
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadgen import raise_nofile
from websockets.asyncio.server import ServerConnection, serve

_transaction_ids = itertools.count(1)


def answer(action: str, version: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    accepted = {"status": "Accepted"}
    if action == "BootNotification":
        return {"currentTime": now, "interval": 300, "status": "Accepted"}
    if action == "Heartbeat":
        return {"currentTime": now}
    if action in ("Authorize", "StopTransaction"):
        return {"idTagInfo": accepted} if version == "ocpp1.6" else {"idTokenInfo": accepted}
    if action == "StartTransaction":
        return {"transactionId": next(_transaction_ids), "idTagInfo": accepted}
    if action == "TransactionEvent":
        return {"idTokenInfo": accepted}
    return {}


async def handle(websocket: ServerConnection) -> None:
    version = websocket.subprotocol or "ocpp1.6"
    async for frame in websocket:
        message = json.loads(frame)
        if message[0] == 2:
            await websocket.send(json.dumps([3, message[1], answer(message[2], version)]))


async def main(port: int) -> None:
    raise_nofile()
    async with serve(
        handle,
        "127.0.0.1",
        port,
        subprotocols=["ocpp1.6", "ocpp2.0.1"],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
        backlog=4096,
    ) as server:
        await server.serve_forever()


def start(port: int) -> subprocess.Popen[bytes]:
    """Run the echo server in its own process; return once it accepts connections."""
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--port", str(port)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"echo server on {port} did not start")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18190)
    asyncio.run(main(parser.parse_args().port))
