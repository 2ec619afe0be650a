"""The configuration settings refuse nonsense at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "CSMS_CONFIGURATION_REFRESH_MAX_AGE"}
    environment.update(DJANGO_SETTINGS_MODULE="csms.settings", CSMS_VAR_DIR=str(tmp_path), **env)
    script = (
        "import django; django.setup(); from django.conf import settings;"
        " print(settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE)"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_the_read_after_a_boot_is_spared_for_an_hour_by_default(tmp_path):
    done = start(tmp_path)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "3600"


def test_a_negative_max_age_is_refused_naming_the_variable(tmp_path):
    done = start(tmp_path, CSMS_CONFIGURATION_REFRESH_MAX_AGE="-1")
    assert done.returncode != 0
    assert "CSMS_CONFIGURATION_REFRESH_MAX_AGE=-1 must be at least 0" in done.stderr


def test_a_max_age_that_is_no_number_is_refused(tmp_path):
    done = start(tmp_path, CSMS_CONFIGURATION_REFRESH_MAX_AGE="1h")
    assert done.returncode != 0 and "CSMS_CONFIGURATION_REFRESH_MAX_AGE='1h' is not an integer" in done.stderr
