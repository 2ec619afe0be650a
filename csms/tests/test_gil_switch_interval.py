"""The server process's GIL switch interval comes from CSMS_GIL_SWITCH_INTERVAL_US (csms/asgi.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What daphne (and uvicorn, granian, `make serve`) do first: import the ASGI application.
SERVER_INTERVAL = "import sys, csms.asgi; print(sys.getswitchinterval())"


def server_started(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that imports ``csms.asgi`` as a server process does, with ``env`` set."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    environment.pop("CSMS_GIL_SWITCH_INTERVAL_US", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", SERVER_INTERVAL], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def interval_of(started: subprocess.CompletedProcess[str]) -> float:
    assert started.returncode == 0, started.stderr
    return float(started.stdout.strip().splitlines()[-1])


def test_a_server_process_switches_the_gil_every_half_millisecond_by_default(tmp_path):
    assert interval_of(server_started(tmp_path)) == 0.0005  # Python's own is 0.005


def test_the_switch_interval_is_the_setting_in_microseconds(tmp_path):
    assert interval_of(server_started(tmp_path, CSMS_GIL_SWITCH_INTERVAL_US="2000")) == 0.002


def test_a_switch_interval_out_of_range_stops_the_server_at_start_naming_the_variable(tmp_path):
    too_short = server_started(tmp_path, CSMS_GIL_SWITCH_INTERVAL_US="10")
    assert too_short.returncode != 0
    assert "CSMS_GIL_SWITCH_INTERVAL_US=10 must be at least 50" in too_short.stderr
    in_seconds = server_started(tmp_path, CSMS_GIL_SWITCH_INTERVAL_US="500000")
    assert in_seconds.returncode != 0
    assert "CSMS_GIL_SWITCH_INTERVAL_US is in microseconds" in in_seconds.stderr
