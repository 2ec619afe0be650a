"""``make run`` stops cleanly on Ctrl-C: every process gone, no traceback, no make error."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import ROOT, _test_database_url, free_port, http_request
from csms.tests.conftest import as_from_a_terminal, processes_started_with

pytestmark = pytest.mark.django_db(transaction=True)

_WORKER_READY = re.compile(r"\S+@\S+ ready\.")  # Celery's "celery@host ready.", "webhooks@host ready."


def _server_ready(port: int) -> bool:
    try:
        return http_request(f"http://127.0.0.1:{port}/readyz")[0] == 200
    except OSError:
        return False


def test_ctrl_c_stops_make_run_and_everything_it_started(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CSMS_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
    }
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        # The install and migrate prerequisites are taken as done (-o): this is about the stop.
        make = subprocess.Popen(
            ["make", "-o", "install", "-o", "migrate", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=as_from_a_terminal,
        )
    try:
        # Ctrl-C once everything has started: the server ready and both Celery workers too. (One
        # pressed while the worker's embedded beat is still importing can reach billiard's SIGTERM
        # handler inside a finalizer, which Python prints as an ignored SystemExit: Celery's start-up.)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and make.poll() is None:
            if _server_ready(port) and len(_WORKER_READY.findall(log.read_text())) >= 2:
                break
            time.sleep(0.2)
        assert make.poll() is None, log.read_text()
        assert len(_WORKER_READY.findall(log.read_text())) >= 2, log.read_text()
        assert len(processes_started_with(tmp_path)) >= 4  # make, the script, daphne, Celery (and its pool)

        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=30)
    finally:
        time.sleep(0.5)
        left = processes_started_with(tmp_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    output = log.read_text()
    assert make.returncode in (0, -signal.SIGINT), output
    assert "make: ***" not in output
    assert "Traceback" not in output
    assert "RecursionError" not in output
    assert left == []
