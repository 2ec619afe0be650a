"""README's Configuration table against the settings: each integer setting's default and bounds, as
``csms/settings.py`` reads them, are those its row gives (a newcomer's value outside an undocumented
bound stopped the start with a bound the README never named)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SETTING = re.compile(r'env_int\(\s*"(?P<name>[A-Z_]+)",\s*(?P<default>[^,)]+)(?P<options>[^)]*)\)')
_ROW = re.compile(r"^\| `(?P<names>[^|]+)` \| (?P<defaults>[^|]+) \| (?P<meaning>.*) \|$", re.M)


def _rows() -> dict[str, str]:
    """Each variable's whole row (a row may name several: `A` / `B`)."""
    text = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for row in _ROW.finditer(text):
        for name in re.findall(r"[A-Z][A-Z0-9_]+", row["names"]):
            rows[name] = row[0]
    return rows


def _default(expression: str) -> int | None:
    """A default written as arithmetic on literals (``200 * 1024 * 1024``); None for one that depends on
    other settings (``1 if _ONE_WRITER else 2``: its row says so in words)."""
    if not re.fullmatch(r"[0-9 *+]+", expression):
        return None
    return eval(expression, {"__builtins__": {}})


def _integer_settings() -> list[tuple[str, int | None, int | None]]:
    found = []
    for setting in _SETTING.finditer((ROOT / "csms" / "settings.py").read_text()):
        minimum = re.search(r"minimum=([0-9]+)", setting["options"])
        found.append((setting["name"], _default(setting["default"].strip()), int(minimum[1]) if minimum else None))
    return found


@pytest.mark.parametrize("name, default, minimum", _integer_settings())
def test_each_integer_setting_has_its_default_and_lower_bound_in_the_readme(name, default, minimum):
    row = _rows().get(name)
    assert row is not None, f"{name} has no row in README's Configuration table"
    if default is not None:
        assert re.search(rf"`[^`]*\b{default}\b[^`]*`", row), f"{name}: default {default} not in its row"
    if minimum not in (None, 1):
        assert re.search(rf"(?<![0-9.]){minimum}(?![0-9])", row.split(" | ", 2)[2]), (
            f"{name}: its lower bound {minimum} is not in its row"
        )
