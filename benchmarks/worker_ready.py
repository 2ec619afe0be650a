"""How soon `make serve`'s workers answer a charger after scripts/serve.py starts (issue 15's storm).

Starts scripts/serve.py (``--production``, WORKERS workers, PostgreSQL + Redis on loopback) ``--starts``
times; from the moment it is started, ``--probes`` chargers (each from its own loopback address,
so SO_REUSEPORT spreads them over the workers) try to connect every 20 ms and send a
BootNotification once connected. Per start: when the port was bound (``listening_s``), when each
probe's Boot was answered, and which worker answered it (its socket found in /proc), so each
worker's first answer (``workers_ready_s``) and the last of them (``all_ready_s``, the time a storm
waits for its slowest worker); then SIGTERM and how long serve.py took to stop with its workers.
Every start is bounded by ``--max-seconds``. Loopback only.

    python benchmarks/worker_ready.py --port 18600 --starts 10 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import MACHINE, ROOT, process_tree  # also sets up Django
from websockets.asyncio.client import connect

from chargepoints.models import ChargePoint

PREFIX = "BENCH-READY-"


def prepare(probes: int) -> list[str]:
    ids = [f"{PREFIX}{n}" for n in range(probes)]
    ChargePoint.objects.bulk_create(
        [ChargePoint(charge_point_id=i, heartbeat_interval=300) for i in ids], ignore_conflicts=True
    )
    return ids


def _socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> str | None:
    """The inode of the server's end of a loopback connection (Linux /proc/net/tcp)."""

    def hex_address(address: tuple[str, int]) -> str:
        return f"{socket.inet_aton(address[0])[::-1].hex().upper()}:{address[1]:04X}"

    server_end, client_end = hex_address(remote), hex_address(local)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == server_end and fields[2] == client_end:
            return fields[9]
    return None


def _owner(inode: str | None, pids: list[int]) -> int | None:
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


async def probe(charge_point_id: str, n: int, port: int, started: float, deadline: float) -> dict[str, Any]:
    """Connect until it works, Boot, and keep the connection open (its owner is looked up after)."""
    url = f"ws://127.0.0.1:{port}/ocpp/1.6/{charge_point_id}"
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            websocket = await connect(
                url,
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                compression=None,
                ping_interval=None,
                open_timeout=max(0.1, deadline - time.monotonic()),
                local_addr=(f"127.2.0.{n + 1}", 0),
            )
        except (OSError, TimeoutError, Exception):  # refused before listening, 503 while starting
            await asyncio.sleep(0.02)
            continue
        await websocket.send(
            json.dumps([2, "boot", "BootNotification", {"chargePointVendor": "R", "chargePointModel": "Ready"}])
        )
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            while True:
                message = json.loads(await websocket.recv())
                if message[1] == "boot":
                    break
        local = websocket.transport.get_extra_info("sockname")
        return {
            "booted_s": time.monotonic() - started,
            "attempts": attempts,
            "status": message[2].get("status"),
            "socket": (local, ("127.0.0.1", port)),
            "websocket": websocket,
        }
    return {"booted_s": None, "attempts": attempts}


def one_start(ids: list[str], port: int, workers: int, max_seconds: float) -> dict[str, Any]:
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(workers), "CSMS_LOG_LEVEL": "WARNING"}
    listening: list[float] = []

    async def main() -> list[dict[str, Any]]:
        started = time.monotonic()
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py"), "--production"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        async def watch_listening() -> None:
            while not listening and time.monotonic() < started + max_seconds:
                if f":{port:04X} 00000000:0000 0A" in Path("/proc/net/tcp").read_text():
                    listening.append(time.monotonic() - started)
                    return
                await asyncio.sleep(0.005)

        deadline = started + max_seconds
        results = await asyncio.gather(
            watch_listening(), *(probe(i, n, port, started, deadline) for n, i in enumerate(ids))
        )
        probes = results[1:]
        pids = process_tree(server.pid)
        for result in probes:
            if result.get("websocket") is not None:
                result["worker"] = _owner(_socket_inode(*result.pop("socket")), pids[1:])
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for result in probes:
            websocket = result.pop("websocket", None)
            if websocket is not None:
                await websocket.close()
        try:
            code = await asyncio.to_thread(server.wait, 30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            code = None
        left = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        return [{"stopped_s": round(time.monotonic() - stopping, 2), "exit_code": code, "left": left}, *probes]

    stop, *probes = asyncio.run(main())
    booted = sorted(p["booted_s"] for p in probes if p["booted_s"] is not None)
    per_worker: dict[int, float] = {}
    for p in probes:
        if p.get("worker"):
            per_worker[p["worker"]] = min(per_worker.get(p["worker"], 1e9), p["booted_s"])
    ready = sorted(per_worker.values())
    return {
        "load": os.getloadavg()[0],
        "listening_s": round(listening[0], 3) if listening else None,
        "first_boot_s": round(booted[0], 3) if booted else None,
        "workers_ready_s": [round(s, 3) for s in ready],
        "all_ready_s": round(ready[-1], 3) if len(ready) == workers else None,
        "all_probes_booted_s": round(booted[-1], 3) if len(booted) == len(ids) else None,
        "probes_booted": len(booted),
        **stop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--probes", type=int, default=16, help="chargers probing (spread over the workers)")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=60)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ids = prepare(args.probes)
    from django.db import connections

    connections.close_all()
    runs = []
    for _ in range(args.starts):
        run = one_start(ids, args.port, args.workers, args.max_seconds)
        runs.append(run)
        print(json.dumps(run), flush=True)
        time.sleep(1)
    result = {
        "benchmark": "worker_ready",
        "machine": MACHINE,
        "options": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
