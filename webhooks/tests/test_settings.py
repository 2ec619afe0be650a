"""The webhook worker's settings come from the environment and refuse nonsense at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import django; django.setup(); from django.conf import settings as s;"
    "print(s.CSMS_WEBHOOK_MAX_IN_FLIGHT, s.CSMS_WEBHOOK_MAX_IN_FLIGHT_PER_RECEIVER,"
    " s.CSMS_WEBHOOK_CLAIM_LEASE_SECONDS, s.CELERY_TASK_ROUTES['webhooks.tasks.*']['queue'],"
    " s.CSMS_WEBHOOK_DELIVERY_DAYS)"
)


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_the_delivery_bounds_are_read_from_the_environment(tmp_path):
    started = start(tmp_path, CSMS_WEBHOOK_MAX_IN_FLIGHT="100", CSMS_WEBHOOK_MAX_IN_FLIGHT_PER_RECEIVER="1")
    assert started.stdout.split() == ["100", "1", "120", "webhooks", "30"]
    assert start(tmp_path, CSMS_WEBHOOK_DELIVERY_DAYS="7").stdout.split()[-1] == "7"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CSMS_WEBHOOK_MAX_IN_FLIGHT", "0"),
        ("CSMS_WEBHOOK_MAX_IN_FLIGHT_PER_RECEIVER", "many"),
        ("CSMS_WEBHOOK_CLAIM_LEASE_SECONDS", "1"),  # an attempt must end a second before its lease
        ("CSMS_WEBHOOK_DELIVERY_DAYS", "0"),
        ("CSMS_WEBHOOK_DELIVERY_DAYS", "36501"),
    ],
)
def test_nonsense_stops_the_process_naming_the_variable(tmp_path, variable, value):
    started = start(tmp_path, **{variable: value})
    assert started.returncode != 0
    assert variable in started.stderr
