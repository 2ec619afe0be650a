"""``make serve`` (scripts/serve.py): its port listens only once every worker is ready."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, _test_database_url, free_port
from kernel import daphne_server

START_SECONDS = 120  # bound on two workers' start-up on a loaded machine


def _bound(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    return sock


def test_a_ready_worker_says_so_and_waits_until_its_socket_listens(monkeypatch: pytest.MonkeyPatch):
    sock = _bound()
    read_end, write_end = os.pipe()
    monkeypatch.setenv("CSMS_READY_FD", str(write_end))
    waiter = threading.Thread(target=daphne_server.serve_when_listening, args=([f"fd:fileno={sock.fileno()}"],))
    try:
        waiter.start()
        assert os.read(read_end, 1) == b"r"
        assert os.read(read_end, 1) == b""  # the worker closed its end: one byte, once
        assert waiter.is_alive()  # ready, but its socket does not listen yet
        sock.listen(8)
        waiter.join(timeout=10)
        assert not waiter.is_alive()
        assert "CSMS_READY_FD" not in os.environ  # a worker restarted later is not told to wait
    finally:
        sock.close()
        os.close(read_end)


def test_without_serve_py_a_worker_does_not_wait():
    assert "CSMS_READY_FD" not in os.environ
    daphne_server.serve_when_listening(["tcp:port=0:interface=127.0.0.1"])  # returns at once


def _ready_pipe(pid: int) -> str:
    """The pipe serve.py handed the worker as CSMS_READY_FD, or "" once the worker closed it."""
    environ = dict(
        entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry
    )
    if "CSMS_READY_FD" not in environ:
        return "no CSMS_READY_FD"
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/fd/{environ['CSMS_READY_FD']}")
    return ""


def _workers(pid: int) -> list[int]:
    return [
        int(child) for task in Path(f"/proc/{pid}/task").glob("*") for child in (task / "children").read_text().split()
    ]


def test_the_port_listens_once_every_worker_is_ready(django_db_setup, tmp_path: Path):
    """At the port's first accepted connection both workers have said they are ready (closed their
    pipe), and the connection is answered; before, the sockets listened before any worker started."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CSMS_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "PORT": str(port),
        "WORKERS": "2",
    }
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "scripts/serve.py"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline, refused = time.monotonic() + START_SECONDS, 0
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, f"serve.py took no connection within {START_SECONDS} s"
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=START_SECONDS)
                break
            except ConnectionRefusedError:
                refused += 1
                time.sleep(0.01)
        with connection:
            workers = _workers(process.pid)
            assert len(workers) == 2
            assert [_ready_pipe(pid) for pid in workers] == ["", ""]
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert connection.recv(64).startswith(b"HTTP/1.1 ")
        assert refused > 0  # refused at once while the workers started, not queued
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
