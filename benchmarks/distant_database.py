"""PostgreSQL at a distance: a TCP proxy that delays every chunk it forwards (issue 15, round 30).

On loopback a round trip to PostgreSQL costs about 0.1 ms; across a data centre's network 0.3 to
1 ms, the price of each round trip a batch waits for. This proxy listens on PORT and forwards to
PostgreSQL (127.0.0.1:5432 by default), holding each chunk DELAY ms in each direction, in order,
so a benchmark's server reaches its database as if it were that far (``DATABASE_URL`` pointing at
PORT). It prints the round trip it measured through itself (``SELECT 1``, the median of 200) and
runs until interrupted or for ``--seconds``. Loopback only, bounded in time.

    .venv/bin/python benchmarks/distant_database.py --port 15432 --delay-ms 0.25 --seconds 900
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import socket
import statistics
import threading
import time

import psycopg


def _forwarded(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Every chunk ``source`` gives sent to ``target`` ``delay`` seconds after it came, in order
    (a thread reads, another sends: ``time.sleep`` keeps a fraction of a millisecond, where an
    event loop's timers round up to one)."""
    chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def sent() -> None:
        with contextlib.suppress(OSError):
            while data := (chunk := chunks.get())[1]:
                wait = chunk[0] - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=sent, daemon=True)
    sender.start()
    with contextlib.suppress(OSError):
        while data := source.recv(1 << 16):
            chunks.put((time.monotonic() + delay, data))
    chunks.put((0.0, b""))
    sender.join()


def _connection_served(client: socket.socket, upstream: tuple[str, int], delay: float) -> None:
    try:
        server = socket.create_connection(upstream)
    except OSError:
        client.close()
        return
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_forwarded, args=(server, client, delay), daemon=True)
    back.start()
    _forwarded(client, server, delay)
    back.join()
    client.close()
    server.close()


def _served(listener: socket.socket, upstream: tuple[str, int], delay: float) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connection_served, args=(client, upstream, delay), daemon=True).start()


def _round_trip_ms(port: int) -> float:
    """The median of 200 ``SELECT 1`` round trips to PostgreSQL at ``port``, in ms."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        times = []
        for _ in range(200):
            at = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - at) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=15432)
    parser.add_argument("--upstream-port", type=int, default=5432, help="PostgreSQL's, on 127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=0.5, help="each direction")
    parser.add_argument("--seconds", type=float, default=900, help="stop after this long")
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port))
    upstream = ("127.0.0.1", args.upstream_port)
    threading.Thread(target=_served, args=(listener, upstream, args.delay_ms / 1e3), daemon=True).start()
    direct, proxied = _round_trip_ms(args.upstream_port), _round_trip_ms(args.port)
    print(f"round trip: direct {direct:.3f} ms, through the proxy {proxied:.3f} ms", flush=True)
    time.sleep(args.seconds)


if __name__ == "__main__":
    main()
