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

Then daphne and the application (``csms.asgi``) are imported once, here, and every worker is forked
from this process ready to serve: a worker's start-up was nearly all imports (about 1.4 s of CPU
each, every worker at once, and again for a worker started after one died), which a reconnect storm
waited for. Nothing that belongs to one process crosses the fork: no thread is running and no
database, Redis or other connection is open here (checked before every fork; ``make serve`` refuses
to start otherwise), the channel layer is made by each worker at its first use, and the asyncio
reactor daphne installed at import gets a new event loop in each worker (``reactor_renewed``).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import compileall
import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESTART_PAUSE = 1.0  # s before a worker that died is started again
# Its own lines go through the settings' logging (CSMS_LOG_FORMAT), configured by the application's import.
logger = logging.getLogger("csms.serve")


def _positive_int(name: str, default: int, maximum: int | None = None) -> int:
    raw = os.environ.get(name) or str(default)
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or (maximum is not None and int(raw) > maximum):
        bounds = "of at least 1" if maximum is None else f"from 1 to {maximum}"
        sys.exit(f"{name} must be a whole number {bounds}, not {raw!r}")
    return int(raw)


def listen_address() -> tuple[str, int]:
    """HOST and PORT, checked before anything is imported: a TCP port, and an IPv4 address or a
    host name with one (daphne adopts IPv4 sockets only)."""
    host, port = os.environ.get("HOST") or "127.0.0.1", _positive_int("PORT", 8000, maximum=65535)
    if ":" in host:
        sys.exit(f"HOST={host}: make serve listens on IPv4 only; give an IPv4 address or a host name with one")
    try:
        socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as error:
        sys.exit(f"HOST={host} is not an IPv4 address or a host name with one ({error.strerror})")
    return host, port


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


def port_held_elsewhere(host: str, port: int) -> str:
    """Why HOST:PORT cannot be this server's alone ("" when it can): a socket bound there without
    ``SO_REUSEPORT`` fails while any other listens on it, whether or not that one set the option.

    Without Redis (``make run``'s defaults) every gateway process keeps its chargers and commands in
    its own memory, so a second one sharing the port (a second ``make run`` on the same PORT) would
    take half of the new connections: half of the API's commands found their charger "not
    connected". With Redis the processes share everything, and a release started beside a running
    one on its port is how a restart hands over (``SO_REUSEPORT``)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket's TIME_WAIT is no holder
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return ""


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # daphne adopts IPv4 sockets only
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def application_imported() -> None:
    """Imports daphne's command line and then the application, as ``python -m daphne ...
    csms.asgi:application`` does from the project's directory (daphne's module installs Twisted's
    asyncio reactor; the application's import fits daphne's server to it), and closes the database
    connections the import may have opened: each worker opens its own."""
    os.chdir(ROOT)  # the workers' directory, as before (relative settings: CSMS_METRICS_DIR, var/)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import daphne.cli  # noqa: F401
    from django.db import connections

    import csms.asgi  # noqa: F401

    connections.close_all()


_SCHEMA_CHECK = "schema_check"  # the alias of ``schema_checked``'s connection


def schema_checked() -> None:
    """Stops ``make serve`` with one line naming them when the database lacks migrations of this
    release (README "Upgrading": ``migrate`` first): its workers served on, and every charger's
    handshake and API request failed with a traceback (a table or column missing). Checked on a
    connection of its own, outside the pool (whose threads must not cross the fork) and given up
    after 5 s: a database that cannot be reached now is left to the workers, whose pool retries
    (PostgreSQL may be starting too)."""
    from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS].copy(alias=_SCHEMA_CHECK)  # the migrations' recorder reads by alias
    options = {name: value for name, value in connection.settings_dict["OPTIONS"].items() if name != "pool"}
    if connection.vendor == "postgresql":
        options["connect_timeout"] = 5
    connection.settings_dict = {**connection.settings_dict, "OPTIONS": options}
    connections[_SCHEMA_CHECK] = connection
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        logger.warning("could not check the database's migrations (%s); serving all the same", error)
        return
    finally:
        connection.close()
        del connections[_SCHEMA_CHECK]
    if plan:
        missing = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan[:3])
        more = f" and {len(plan) - 3} more" if len(plan) > 3 else ""
        sys.exit(f"the database lacks migrations of this release ({missing}{more}): run `manage.py migrate` first")


def fork_hazards(listening: list[socket.socket]) -> list[str]:
    """What a worker forked now would share with this process and its siblings: threads, and open
    sockets (a database or Redis connection) other than the listening ones and the event loop's own
    wake-up pair (``reactor_renewed`` closes the child's copies). Empty when forking is safe."""
    from twisted.internet import reactor

    inherited: Any = reactor
    loop = inherited._asyncioEventloop
    expected = {sock.fileno() for sock in listening} | {loop._ssock.fileno(), loop._csock.fileno()}
    hazards = [f"thread {thread.name}" for thread in threading.enumerate() if thread is not threading.main_thread()]
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory's own descriptor, closed since it was listed
            continue
        if target.startswith("socket:") and int(fd) not in expected:
            hazards.append(f"socket {fd}")
    return hazards


def reactor_renewed() -> None:
    """In a forked worker: the asyncio reactor daphne installed at import gets an event loop of its
    own (a new epoll instance, wake-up pair and waker pipe) before it runs; the inherited ones are the
    parent's and its siblings' too. The reactor stays the same object, so every module that bound it
    at import (daphne's server, autobahn, the kernel's fittings) keeps using it."""
    from twisted.internet import reactor
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    inherited: Any = reactor
    inherited.waker.connectionLost(None)  # this process's ends of the parent's waker pipe
    inherited._asyncioEventloop.close()  # its copies of the parent's epoll and wake-up pair
    loop = asyncio.new_event_loop()
    if "ASGI_THREADS" in os.environ:  # as daphne.server does at import
        from concurrent.futures import ThreadPoolExecutor

        loop.set_default_executor(ThreadPoolExecutor(max_workers=int(os.environ["ASGI_THREADS"])))
    inherited.__dict__.clear()
    AsyncioSelectorReactor.__init__(inherited, loop)


def start_worker(sock: socket.socket, sockets: list[socket.socket], daphne_args: list[str]) -> int:
    """Forks a daphne worker serving ``sock``; returns its pid. The worker never returns: it ends
    when daphne stops (``worker_served``)."""
    hazards = fork_hazards(sockets)
    if hazards:
        sys.exit(f"cannot fork a worker: this process holds {', '.join(hazards)}")
    sys.stdout.flush()
    sys.stderr.flush()
    stopping = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)  # the parent's handlers never run in a worker
    supervisor = os.getpid()
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
        return pid
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a new process: daphne's reactor installs its own
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stopped_with_supervisor(supervisor)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
    for other in sockets:
        if other is not sock:
            other.close()
    reactor_renewed()
    stale_presence_released()
    os._exit(worker_served(sock, daphne_args))


PR_SET_PDEATHSIG = 1  # Linux's prctl option: a signal for this process when its parent dies


def stopped_with_supervisor(supervisor: int) -> None:
    """In a forked worker (Linux): SIGTERM when ``make serve``'s process dies, however it dies (a
    SIGKILL, the OOM killer), so the worker stops as on ``make serve``'s own SIGTERM (its chargers
    told to go, presence cleared) instead of serving on, orphaned, beside the release started after
    it on the same port (SO_REUSEPORT). A supervisor already gone by now is the same (the signal
    is pending until the worker's signals are unblocked)."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None or prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not Linux: an orphaned worker serves on until stopped
    if os.getppid() != supervisor:
        os.kill(os.getpid(), signal.SIGTERM)


def stale_presence_released() -> None:
    """In a forked worker, before it serves: without Redis it is the only gateway process, so the
    chargers still marked connected are a dead worker's (or a previous run's) and go offline now
    (``gateway_processes.stale_presence_release``), not at the heartbeat sweep minutes later. A
    failure (the database away) leaves them to that sweep."""
    from django.db import connections

    from ocpp_gateway.gateway_processes import stale_presence_release

    try:
        released = stale_presence_release()
    except Exception:
        logger.exception("the chargers a gone gateway process held are left to the offline sweep")
        return
    finally:
        connections.close_all()
    if released:
        logger.info("%d charger(s) of a gateway process that is gone marked offline", len(released))


def worker_served(sock: socket.socket, daphne_args: list[str]) -> int:
    """Runs daphne on ``sock`` in a forked worker until it stops; returns the worker's exit status
    once Python's exit work is done (the executors' threads joined, then the exit handlers: the
    write-behind buffers flushed, the metrics written). The interpreter's teardown is left out
    (``os._exit``): freeing the objects inherited from the parent wrote to every page they share,
    copying them all, and doubled a worker's stop (0.5 s to 1.1 s)."""
    from daphne.cli import CommandLineInterface

    try:
        CommandLineInterface().run(["--fd", str(sock.fileno()), *daphne_args, "csms.asgi:application"])
        status = 0
    except SystemExit as stopped:
        status = stopped.code if isinstance(stopped.code, int) else 1
    except BaseException:
        logger.exception("worker stopped by an error")
        status = 1
    threading._shutdown()  # type: ignore[attr-defined]  # as Python's exit and multiprocessing's children
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def exited(pid: int) -> bool:
    """True when the worker ``pid`` has exited (and is reaped)."""
    return os.waitpid(pid, os.WNOHANG)[0] == pid


def stopped_listening(sockets: list[socket.socket]) -> None:
    """On stop, this process's copies of the listening sockets closed (the workers close theirs as they
    begin to stop): the kernel then hands new connections on the port only to sockets still accepting,
    a new release's started beside this one, instead of queueing them where nobody accepts them any
    more, to be reset at exit."""
    for sock in sockets:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--production", action="store_true", help="require DATABASE_URL and REDIS_URL")
    parser.add_argument("--backlog", type=int, default=4096, help="listen queue per worker")
    parser.add_argument("daphne_args", nargs="*", help="after --: passed to every daphne worker")
    args = parser.parse_args()
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if args.production and missing:
        sys.exit(f"make serve needs {' and '.join(missing)} (PostgreSQL and Redis); `make run` is the local setup")
    host, port = listen_address()
    workers = _positive_int("WORKERS", os.cpu_count() or 1)
    if workers > 1 and missing:
        sys.exit(f"WORKERS={workers} needs {' and '.join(missing)}: workers share PostgreSQL and Redis")
    if "REDIS_URL" in missing and (held := port_held_elsewhere(host, port)):
        sys.exit(f"cannot listen on HOST={host} PORT={port}: {held}")
    bytecode_compiled()
    application_imported()
    if args.production and not os.environ.get("CSMS_PUBLIC_URL"):
        from django.conf import settings

        logger.warning(
            "CSMS_PUBLIC_URL is not set: chargers are sent firmware download and diagnostics upload locations"
            " on %s, which they cannot reach; set it to the address chargers reach the CSMS's HTTP side at"
            " (behind the proxy: https://csms.example.com)",
            settings.CSMS_PUBLIC_URL,
        )
    schema_checked()  # before its sockets listen: beside a running release they would take its chargers meanwhile
    try:
        sockets = [listening_socket(host, port, args.backlog) for _ in range(workers)]
    except OSError as error:
        sys.exit(f"cannot listen on HOST={host} PORT={port}: {error.strerror}")
    processes = [start_worker(sock, sockets, args.daphne_args) for sock in sockets]
    logger.info("serving on %s:%s with %d daphne worker(s): %s", host, port, workers, processes)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        """SIGTERM to every worker (each lets its chargers go, at most a few seconds); a second
        SIGTERM or SIGINT (Ctrl-C again) kills those still stopping: one stuck (a database that does
        not answer) held ``make serve`` for ever."""
        nonlocal stopping
        again, stopping = stopping, True
        if again:
            logger.info("stopping again: killing the workers still running")
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):  # one that died meanwhile, already reaped
                os.kill(pid, signal.SIGKILL if again else signal.SIGTERM)
        stopped_listening(sockets)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(RESTART_PAUSE)
        for index, sock in enumerate(sockets):
            if not stopping and exited(processes[index]):
                logger.warning("worker %d exited; starting another", processes[index])
                processes[index] = start_worker(sock, sockets, args.daphne_args)
    for pid in processes:
        with contextlib.suppress(ChildProcessError):  # reaped already
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
