"""``make serve``'s start-up (scripts/serve.py): what a worker needs is ready before the port listens."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_script", ROOT / "scripts" / "serve.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cached(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


def _application(root: Path) -> tuple[Path, Path]:
    """A tree below ``root`` with one package: its module and its test module."""
    package, tests = root / "app", root / "app" / "tests"
    tests.mkdir(parents=True)
    for path in (package / "__init__.py", package / "models.py", tests / "__init__.py", tests / "test_x.py"):
        path.write_text("VALUE = 1\n")
    return package / "models.py", tests / "test_x.py"


def test_the_packages_modules_get_current_bytecode_and_their_tests_none(tmp_path: Path) -> None:
    serve = _serve()
    module, test_module = _application(tmp_path)
    (tmp_path / "not_a_package").mkdir()
    (tmp_path / "not_a_package" / "helper.py").write_text("VALUE = 1\n")

    assert serve.bytecode_compiled(tmp_path)

    assert _cached(module).is_file()  # written although PYTHONDONTWRITEBYTECODE may be set
    assert not _cached(test_module).exists()
    assert not _cached(tmp_path / "not_a_package" / "helper.py").exists()  # not a package: nothing a worker imports
    written = _cached(module).stat().st_mtime_ns
    assert serve.bytecode_compiled(tmp_path)  # current: left as it is
    assert _cached(module).stat().st_mtime_ns == written

    module.write_text("VALUE = 2  # changed\n")
    os.utime(module, ns=(written + 10**9, written + 10**9))
    assert serve.bytecode_compiled(tmp_path)
    assert _cached(module).stat().st_mtime_ns != written  # stale: written again


def test_a_tree_below_a_directory_named_tests_still_gets_its_bytecode(tmp_path: Path) -> None:
    root = tmp_path / "tests" / "csms"
    module, test_module = _application(root)

    assert _serve().bytecode_compiled(root)

    assert _cached(module).is_file()  # the old exclusion matched the "tests" above the root: none
    assert not _cached(test_module).exists()


def test_a_tree_it_cannot_write_is_not_compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The image ships its bytecode, read-only: compiling in the parent would be for nothing (and
    as root, as these tests may run, a mode does not stop a write: ``os.access`` answers for it)."""
    serve = _serve()
    module, _ = _application(tmp_path)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK and access(path, mode))

    assert not serve.bytecode_compiled(tmp_path)

    assert not _cached(module).exists()


def test_a_worker_s_application_does_not_load_the_webhook_delivery_s_http_client() -> None:
    """aiohttp (about 5 % of a worker's start-up) is the webhook delivery's, not the gateway's."""
    code = "import sys, csms.asgi; print('aiohttp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_an_application_import_that_fails_leaves_the_garbage_collector_enabled() -> None:
    """The import runs with the cyclic collector off (a worker's start-up); one that fails (here the
    gateway's routing cannot be imported) must not leave it off in the process that tried."""
    code = (
        "import gc, sys\n"
        "sys.modules['ocpp_gateway.routing'] = None  # its import raises ImportError\n"
        "try:\n"
        "    import csms.asgi\n"
        "except ImportError:\n"
        "    print(gc.isenabled())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
