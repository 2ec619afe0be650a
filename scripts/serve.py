"""The gateway, one daphne worker process per core on one port (``make serve``).

Opens WORKERS listening sockets on HOST:PORT with SO_REUSEPORT (the kernel spreads new
connections over them) and hands one to each daphne worker. A worker that dies is started again;
SIGTERM or SIGINT stops them all. Chargers stay on the worker that accepted them; commands reach
them from any process over the channel layer, so several workers need Redis (REDIS_URL), and
PostgreSQL (DATABASE_URL) for a database they can share.

    HOST=0.0.0.0 PORT=8000 WORKERS=2 python scripts/serve.py [--production] [-- daphne options]

Environment: HOST (127.0.0.1, an IPv4 address), PORT (8000), WORKERS (the number of cores). ``--production``
refuses to start without DATABASE_URL and REDIS_URL.

Before it listens, the application's sources are compiled to bytecode where it is missing or stale
(``__pycache__``, even under PYTHONDONTWRITEBYTECODE, which the image sets): otherwise every worker
compiles them again at every start (about a sixth of its start-up), which a reconnect storm waits for.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESTART_PAUSE = 1.0  # s before a worker that died is started again


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def _tests_below(root: Path) -> re.Pattern[str]:
    """The paths of the files in test directories below ``root`` (not imported by a worker), for
    ``compileall``'s ``rx``, which searches the whole path: a ``tests`` directory above ``root`` is
    not one."""
    return re.compile(r"\A" + re.escape(os.fspath(root)) + r"[/\\](?:.*[/\\])?tests[/\\]")


def bytecode_compiled(root: Path = ROOT) -> bool:
    """Writes ``__pycache__/*.pyc`` for the modules of the application's packages (the directories
    of ``root`` with an ``__init__.py``, their tests left out) whose bytecode is missing or older than
    their source: on an unchanged tree a ``stat`` per module (about 0.2 s). A tree it cannot write (the
    image compiles at build) is not read: the workers use the bytecode it has, or compile in memory as
    before. True when every module has current bytecode; False too when the tree is not writable."""
    root = root.absolute()
    if not os.access(root, os.W_OK):
        return False
    packages = sorted(path for path in root.iterdir() if (path / "__init__.py").is_file())
    tests = _tests_below(root)
    compiled = [compileall.compile_dir(package, quiet=2, rx=tests) for package in packages]  # every one
    return all(compiled)


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # daphne adopts IPv4 sockets only
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def start_worker(sock: socket.socket, daphne_args: list[str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), *daphne_args, "csms.asgi:application"]
    return subprocess.Popen(command, cwd=ROOT, pass_fds=[sock.fileno()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--production", action="store_true", help="require DATABASE_URL and REDIS_URL")
    parser.add_argument("--backlog", type=int, default=4096, help="listen queue per worker")
    parser.add_argument("daphne_args", nargs="*", help="after --: passed to every daphne worker")
    args = parser.parse_args()
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if args.production and missing:
        sys.exit(f"make serve needs {' and '.join(missing)} (PostgreSQL and Redis); `make run` is the local setup")
    host, port = os.environ.get("HOST") or "127.0.0.1", _positive_int("PORT", 8000)
    workers = _positive_int("WORKERS", os.cpu_count() or 1)
    if workers > 1 and missing:
        sys.exit(f"WORKERS={workers} needs {' and '.join(missing)}: workers share PostgreSQL and Redis")
    bytecode_compiled()
    sockets = [listening_socket(host, port, args.backlog) for _ in range(workers)]
    processes = {sock.fileno(): start_worker(sock, args.daphne_args) for sock in sockets}
    pids = [process.pid for process in processes.values()]
    print(f"serving on {host}:{port} with {workers} daphne worker(s): {pids}", flush=True)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes.values():
            process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(RESTART_PAUSE)
        for sock in sockets:
            if processes[sock.fileno()].poll() is not None and not stopping:
                print(f"worker {processes[sock.fileno()].pid} exited; starting another", flush=True)
                processes[sock.fileno()] = start_worker(sock, args.daphne_args)
    for process in processes.values():
        process.wait()


if __name__ == "__main__":
    main()
