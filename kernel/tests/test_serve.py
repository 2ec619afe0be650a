"""``make serve``'s start-up (scripts/serve.py): what a worker needs is ready before the port listens."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_script", ROOT / "scripts" / "serve.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cached(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


def test_the_packages_modules_get_current_bytecode_and_their_tests_none(tmp_path: Path) -> None:
    serve = _serve()
    package, tests, loose = tmp_path / "app", tmp_path / "app" / "tests", tmp_path / "not_a_package"
    for directory in (package, tests, loose):
        directory.mkdir()
    for path in (package / "__init__.py", package / "models.py", tests / "__init__.py", tests / "test_x.py"):
        path.write_text("VALUE = 1\n")
    (loose / "helper.py").write_text("VALUE = 1\n")

    assert serve.bytecode_compiled(tmp_path)

    assert _cached(package / "models.py").is_file()  # written although PYTHONDONTWRITEBYTECODE may be set
    assert not _cached(tests / "test_x.py").exists()
    assert not _cached(loose / "helper.py").exists()  # not a package: nothing a worker imports
    written = _cached(package / "models.py").stat().st_mtime_ns
    assert serve.bytecode_compiled(tmp_path)  # current: left as it is
    assert _cached(package / "models.py").stat().st_mtime_ns == written

    (package / "models.py").write_text("VALUE = 2  # changed\n")
    os.utime(package / "models.py", ns=(written + 10**9, written + 10**9))
    assert serve.bytecode_compiled(tmp_path)
    assert _cached(package / "models.py").stat().st_mtime_ns != written  # stale: written again


def test_a_worker_s_application_does_not_load_the_webhook_delivery_s_http_client() -> None:
    """aiohttp (about 5 % of a worker's start-up) is the webhook delivery's, not the gateway's."""
    code = "import sys, csms.asgi; print('aiohttp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
