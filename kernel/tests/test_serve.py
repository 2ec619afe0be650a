"""``make serve`` (scripts/serve.py): its port takes connections once a worker can answer them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, _test_database_url, free_port

START_SECONDS = 60  # bound on a worker's start-up on a loaded machine


def _first_connection_answered_after(port: int, process: subprocess.Popen[bytes]) -> float:
    """Seconds between the port's first accepted connection and the answer to a request sent on it."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve.py exited"
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=START_SECONDS)
        except ConnectionRefusedError:
            time.sleep(0.01)
            continue
        with connection:
            accepted = time.monotonic()
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert connection.recv(64).startswith(b"HTTP/1.1 ")
            return time.monotonic() - accepted
    raise AssertionError(f"serve.py took no connection within {START_SECONDS} s")


def test_a_connection_is_taken_only_once_a_worker_can_answer_it(django_db_setup, tmp_path: Path):
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CSMS_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "PORT": str(port),
        "WORKERS": "1",
    }
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "scripts/serve.py"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        # Before, the socket listened from the start: the first connection waited out the worker's
        # start-up (Django and the application imported: seconds) for its answer.
        assert _first_connection_answered_after(port, process) < 1.0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
