"""The code passes its lint, format and type checks, as configured in pyproject.toml (``ruff``, ``mypy``).

Each tool runs once, from the venv, over the project; a finding fails the test with the tool's own
report. mypy keeps its cache in var/mypy_cache, so a run after the first checks only what changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(settings.BASE_DIR)}
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("ruff", "check", "--no-fix", "."), id="ruff-check"),
        pytest.param(("ruff", "format", "--check", "."), id="ruff-format"),
        pytest.param(("mypy",), id="mypy"),
    ],
)
def test_the_code_is_clean(command):
    result = _run(*command)
    assert result.returncode == 0, result.stdout + result.stderr
