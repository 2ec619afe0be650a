"""The import contracts of pyproject.toml hold (``lint-imports``), and they catch a broken layer or a cycle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(config: Path, root: Path = settings.BASE_DIR) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(LINT_IMPORTS), "--config", str(config), "--no-cache", "--no-logo"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=240)


def _toml(value: Any) -> str:
    return json.dumps(value)  # strings and lists of strings read the same in TOML


def _config_without_ignore(tmp_path: Path, ignored: str) -> Path:
    """pyproject.toml's contracts, less the ignore of ``ignored``."""
    linter = tomllib.loads((settings.BASE_DIR / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[tool.importlinter]", f"root_packages = {_toml(linter['root_packages'])}"]
    for contract in linter["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        for key, value in contract.items():
            lines.append(f"{key} = {_toml([v for v in value if v != ignored] if key == 'ignore_imports' else value)}")
    path = tmp_path / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _copy_with_import(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the packages pyproject.toml names, and pyproject.toml, with ``line`` added to ``module``."""
    linter = tomllib.loads((settings.BASE_DIR / "pyproject.toml").read_text())["tool"]["importlinter"]
    for package in linter["root_packages"]:
        shutil.copytree(
            settings.BASE_DIR / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.html")
        )
    shutil.copy(settings.BASE_DIR / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")
    return tmp_path


def test_the_layers_and_cycle_contracts_are_kept():
    result = _lint_imports(settings.BASE_DIR / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("import_no_longer_ignored", "broken"),
    [
        ("*.tests.** -> **", "charging is not allowed to import ocpp_gateway"),
        ("webhooks.services -> webhooks.tasks", "No cycles are allowed in webhooks"),
    ],
)
def test_a_broken_contract_fails_and_names_the_import(tmp_path, import_no_longer_ignored, broken):
    result = _lint_imports(_config_without_ignore(tmp_path, import_no_longer_ignored))
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # Upward between domain apps: the fleet reaching into sessions, sessions into billing.
        (
            "chargepoints.selectors",
            "from charging.models import Transaction",
            "chargepoints is not allowed to import charging",
        ),
        ("charging.services.transaction_end", "import billing.services", "charging is not allowed to import billing"),
        ("charging.services.meter_ledger", "import sites.triggers", "charging is not allowed to import sites"),
        # Across an independent group ("|"): neither app may import the other.
        ("commands.services", "import billing.models", "commands is not allowed to import billing"),
        (
            "maintenance.services.firmware",
            "import configuration.models",
            "maintenance is not allowed to import configuration",
        ),
        # Two modules of one package importing each other.
        ("billing.pricing", "import billing.services", "No cycles are allowed in billing"),
    ],
)
def test_an_injected_import_that_breaks_a_contract_fails(tmp_path, module, line, broken):
    root = _copy_with_import(tmp_path, module, line)
    result = _lint_imports(root / "pyproject.toml", root)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout + result.stderr
