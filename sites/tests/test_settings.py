"""The sites settings refuse nonsense at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path), **env}
    script = (
        "import django; django.setup(); from django.conf import settings; print(settings.CSMS_SITES_PROFILE_VALIDITY)"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_a_profile_validity_the_sweep_cannot_renew_in_time_is_refused(tmp_path):
    done = start(tmp_path, CSMS_SITES_PROFILE_VALIDITY="120", CSMS_SITES_RECOMPUTE_INTERVAL="60")
    assert done.returncode != 0
    assert "CSMS_SITES_PROFILE_VALIDITY must be at least 4 x CSMS_SITES_RECOMPUTE_INTERVAL" in done.stderr


def test_a_non_number_names_the_variable(tmp_path):
    done = start(tmp_path, CSMS_SITES_HYSTERESIS_A="one")
    assert done.returncode != 0 and "CSMS_SITES_HYSTERESIS_A='one' is not an integer" in done.stderr


def test_defaults(tmp_path):
    done = start(tmp_path)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "900"
