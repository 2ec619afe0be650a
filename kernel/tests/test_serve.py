"""``make serve``'s start-up (scripts/serve.py): what a worker needs is ready before the port listens."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import _test_database_url, free_port

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


def _script(body: str) -> str:
    """A Python program that loads scripts/serve.py as ``serve`` and runs ``body``."""
    return (
        "import importlib.util, os, sys, threading, socket\n"
        f"spec = importlib.util.spec_from_file_location('serve_script', {str(ROOT / 'scripts' / 'serve.py')!r})\n"
        "serve = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(serve)\n" + body
    )


def _run(body: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _script(body)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_forked_worker_runs_the_reactor_on_an_event_loop_of_its_own() -> None:
    """daphne's module installs Twisted's asyncio reactor at import, in the process that forks the
    workers: each worker's reactor gets a new event loop (epoll instance, wake-up pair, waker pipe),
    the same reactor object, and runs; the parent's are left open and as they were."""
    body = (
        "serve.application_imported()\n"
        "from twisted.internet import reactor\n"
        "inherited, waker = reactor._asyncioEventloop, reactor.waker\n"
        "epoll, pipe = inherited._selector._selector.fileno(), (waker.i, waker.o)\n"
        "pipe_inode = os.fstat(waker.i).st_ino\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    serve.reactor_renewed()\n"
        "    from twisted.internet import reactor as renewed\n"
        "    loop = renewed._asyncioEventloop\n"
        "    own = renewed is reactor and loop is not inherited and renewed.waker is not waker\n"
        "    own = own and os.fstat(renewed.waker.i).st_ino != pipe_inode  # a new pipe (fd numbers are reused)\n"
        "    renewed.callLater(0, renewed.stop)\n"
        "    renewed.run(installSignalHandlers=False)  # returns once stopped: it ran\n"
        "    os._exit(0 if own else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "[os.fstat(fd) for fd in (epoll, *pipe)]  # still open here\n"
        "print(os.waitstatus_to_exitcode(status), inherited.is_closed(), reactor.waker is waker)\n"
    )
    assert _run(body) == "0 False True"


def test_no_thread_or_connection_crosses_the_fork() -> None:
    """The application's import leaves no thread and no socket but the event loop's own; one
    opened since (a database connection, a thread) is named, and ``make serve`` refuses to fork."""
    body = (
        "serve.application_imported()\n"
        "listening = serve.listening_socket('127.0.0.1', 0, 8)\n"
        "print(serve.fork_hazards([listening]))\n"
        "connection = socket.create_connection(listening.getsockname())\n"
        "stop = threading.Event()\n"
        "threading.Thread(target=stop.wait, name='busy').start()\n"
        "print(sorted(hazard.split()[0] for hazard in serve.fork_hazards([listening])))\n"
        "stop.set()\n"
    )
    assert _run(body).splitlines() == ["[]", "['socket', 'thread']"]  # the connection's end (not accepted)


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(child) for child in (task / "children").read_text().split()}
    return children


def _until(condition: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/admin/login/")
        return connection.getresponse().status == 200
    return False


def test_forked_workers_answer_a_dead_one_is_replaced_and_sigterm_stops_them_all(
    django_db_setup: None, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "CSMS_VAR_DIR": str(tmp_path),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py"), "--production"],
            cwd=tmp_path,  # the workers run in the project's directory all the same
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        workers = _until(lambda: len(_children(serve.pid)) == 2 and _answers(port) and _children(serve.pid))
        assert all(Path(f"/proc/{pid}/cwd").resolve() == ROOT for pid in workers)
        dead = min(workers)
        os.kill(dead, signal.SIGKILL)
        replaced = _until(lambda: len(now := _children(serve.pid)) == 2 and dead not in now and now)
        assert _until(lambda: _answers(port))
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0, log.read_text()
        assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)
        assert f"worker {dead} exited; starting another" in log.read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("127.0.0.1", "70000", "PORT must be a whole number from 1 to 65535, not '70000'"),
        ("::1", "8000", "HOST=::1: make serve listens on IPv4 only"),
        ("no.such.host.invalid", "8000", "HOST=no.such.host.invalid is not an IPv4 address or a host name with one"),
    ],
)
def test_a_host_or_port_it_cannot_listen_on_stops_it_with_one_line_naming_it(
    tmp_path: Path, host: str, port: str, message: str
) -> None:
    """Was an OverflowError or a gaierror traceback."""
    env = {**os.environ, "CSMS_VAR_DIR": str(tmp_path), "HOST": host, "PORT": port, "WORKERS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "serve.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert done.stderr.strip().startswith(message) and "Traceback" not in done.stderr


def test_a_port_another_program_holds_stops_it_with_one_line_naming_it(django_db_setup: None, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CSMS_VAR_DIR": str(tmp_path), "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"}
    env["DATABASE_URL"] = _test_database_url()  # migrated: its schema is checked before it listens
    env.pop("REDIS_URL", None)
    with contextlib.closing(socket.socket()) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "serve.py")], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode != 0
    assert (
        done.stderr.strip().splitlines()[-1] == f"cannot listen on HOST=127.0.0.1 PORT={port}: Address already in use"
    )


def test_without_redis_a_second_server_on_the_port_of_a_running_one_stops_with_one_line(tmp_path: Path) -> None:
    """A second ``make run`` on the PORT of one already running (another terminal, forgotten) started
    beside it without a word (``SO_REUSEPORT``): each took half of the new connections with chargers
    and commands in its own memory, so half of the API's commands answered ``503 NotConnected``."""
    env = {**os.environ, "DJANGO_SECRET_KEY": "tests-only-secret-key", "CSMS_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True, timeout=120)
    port = free_port()
    env |= {"HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"}
    first = _serving(tmp_path, "first", env)
    try:
        _until(lambda: _answers(port) and _children(first.pid))
        second = _serving(tmp_path, "second", env)
        try:
            assert second.wait(timeout=60) == 1
        finally:
            if second.poll() is None:  # the old code: serving beside the first
                second.kill()
                second.wait()
        last = (tmp_path / "second.log").read_text().strip().splitlines()[-1]
        assert last == f"cannot listen on HOST=127.0.0.1 PORT={port}: Address already in use", last
        assert _answers(port)  # the first serves on
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)


def test_a_database_lacking_this_release_s_migrations_stops_it_with_one_line_naming_them(tmp_path: Path) -> None:
    """Its workers served on, and every charger's handshake failed with a traceback (a table missing)."""
    env = {**os.environ, "DJANGO_SECRET_KEY": "tests-only-secret-key", "CSMS_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    env |= {"HOST": "127.0.0.1", "PORT": str(free_port()), "WORKERS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "serve.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("the database lacks migrations of this release (contenttypes.0001_initial, "), last
    assert last.endswith("run `manage.py migrate` first") and "Traceback" not in done.stderr


def _charger_connected(database: Path, charge_point_id: str) -> bool:
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute(
            "SELECT connected FROM chargepoints_chargepoint WHERE charge_point_id = ?", (charge_point_id,)
        ).fetchone()
    return bool(row[0])


def _charger_held(database: Path, charge_point_id: str) -> None:
    """As a worker holding the charger's socket leaves it when it is killed."""
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "UPDATE chargepoints_chargepoint SET connected = 1, connection_channel = 'specific..inmemory!gone'"
            " WHERE charge_point_id = ?",
            (charge_point_id,),
        )


def test_without_redis_a_worker_s_start_marks_the_chargers_a_dead_one_held_offline(tmp_path: Path) -> None:
    """``make run``'s defaults: a killed worker's chargers stayed connected until the heartbeat sweep
    (up to 10 min), across a restart too. The worker is the only gateway process: at its start the
    chargers still held are a dead one's."""
    env = {**os.environ, "DJANGO_SECRET_KEY": "tests-only-secret-key", "CSMS_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=120)
    create = (
        "from chargepoints.models import ChargePoint;"
        " ChargePoint.objects.create(charge_point_id='CP-HELD', heartbeat_interval=300)"
    )
    subprocess.run([*manage, "shell", "-c", create], env=env, check=True, timeout=60)
    database = tmp_path / "db.sqlite3"
    _charger_held(database, "CP-HELD")  # by the previous run's worker
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py")],
            env={**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        (worker,) = _until(lambda: _answers(port) and _children(serve.pid))
        assert not _charger_connected(database, "CP-HELD")
        _charger_held(database, "CP-HELD")  # by this worker, which is then killed
        os.kill(worker, signal.SIGKILL)
        _until(lambda: log.read_text().count("1 charger(s) of a gateway process that is gone marked offline") == 2)
        assert not _charger_connected(database, "CP-HELD")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)


def _serving(tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (tmp_path / f"{name}.log").open("wb") as output:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py")], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def _healthz_answered(port: int) -> bool:
    with contextlib.suppress(OSError):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    return False


@pytest.mark.django_db(transaction=True)
async def test_a_release_started_beside_a_stopping_one_takes_every_new_connection(tmp_path: Path) -> None:
    """A rolling restart: the new ``make serve`` beside the old on the same port, then SIGTERM to the
    old, whose worker takes a moment to let its chargers go (a message in its batch). The old one's
    supervisor kept its copies of the listening sockets open until it exited: the kernel went on
    handing new connections to them, where nobody accepted them any more, to be reset at its exit."""
    from chargepoints.models import ChargePoint
    from conftest import DaphneServer as Server
    from conftest import charger_row_held, raw_socket

    await ChargePoint.objects.acreate(charge_point_id="CP-ROLLING", heartbeat_interval=3600)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "CSMS_VAR_DIR": str(tmp_path),
        "CSMS_CONFIGURATION_REFRESH_ON_BOOT": "0",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
    }
    old = _serving(tmp_path, "old", env)
    new = None
    try:
        await asyncio.to_thread(_until, lambda: _healthz_answered(port))
        address = Server(port=port, process=old, log_path=tmp_path / "old.log")
        async with raw_socket(address, "1.6", "CP-ROLLING") as websocket:  # on the old release: the only one
            await websocket.send(json.dumps([2, "hb", "Heartbeat", {}]))
            assert json.loads(await websocket.recv())[0] == 3
            new = _serving(tmp_path, "new", env)
            await asyncio.to_thread(_until, lambda: "Listening on TCP" in (tmp_path / "new.log").read_text())
            async with charger_row_held("CP-ROLLING", at_most=4):
                status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
                await websocket.send(json.dumps([2, "st", "StatusNotification", status]))
                await asyncio.sleep(0.5)  # its batch waits for the row: the old worker's stop waits for it
                old.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                answered = [await asyncio.to_thread(_healthz_answered, port) for _ in range(40)]
            assert all(answered), f"{answered.count(False)} of 40 new connections not answered"
        assert await asyncio.to_thread(old.wait, 30) == 0
    finally:
        for process in (old, new):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for whoever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_stop_when_make_serve_itself_is_killed(tmp_path: Path) -> None:
    """``make serve`` SIGKILLed (by an operator, the OOM killer) left its workers serving, orphaned:
    the release started next on the same port then served beside them (SO_REUSEPORT)."""
    port = free_port()
    env = {**os.environ, "DJANGO_SECRET_KEY": "tests-only-secret-key", "CSMS_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True, timeout=120)
    serve = _serving(tmp_path, "serve", {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"})
    worker = 0
    try:
        (worker,) = _until(lambda: _answers(port) and _children(serve.pid))
        serve.kill()
        serve.wait()
        assert _until(lambda: _gone(worker), seconds=30)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if worker and not _gone(worker):
            os.kill(worker, signal.SIGKILL)  # the old code's orphan


def test_a_second_sigterm_kills_a_worker_stuck_stopping(tmp_path: Path) -> None:
    """A worker that does not finish stopping (here stopped outright, as one waiting on a database
    that does not answer) held ``make serve`` for ever: a second SIGTERM (Ctrl-C again) did nothing."""
    port = free_port()
    env = {**os.environ, "DJANGO_SECRET_KEY": "tests-only-secret-key", "CSMS_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True, timeout=120)
    serve = _serving(tmp_path, "serve", {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"})
    worker = 0
    try:
        (worker,) = _until(lambda: _answers(port) and _children(serve.pid))
        os.kill(worker, signal.SIGSTOP)  # it will not stop on a SIGTERM
        serve.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            serve.wait(timeout=3)  # waits for its worker, as it should
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert "stopping again: killing the workers still running" in (tmp_path / "serve.log").read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if worker and not _gone(worker):
            os.kill(worker, signal.SIGKILL)


def test_with_json_logs_every_line_make_serve_writes_is_json(django_db_setup: None, tmp_path: Path) -> None:
    """README "Logs": with CSMS_LOG_FORMAT=json one JSON object per line. ``make serve``'s own lines
    (serving on ..., a worker replaced) were plain text among them, breaking a log shipper's parse."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "CSMS_VAR_DIR": str(tmp_path),
        "CSMS_LOG_FORMAT": "json",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py")], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        workers = _until(lambda: len(_children(serve.pid)) == 1 and _answers(port) and _children(serve.pid))
        os.kill(min(workers), signal.SIGKILL)
        _until(lambda: len(now := _children(serve.pid)) == 1 and min(workers) not in now and _answers(port))
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0, log.read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    messages = [json.loads(line)["message"] for line in lines]  # each line JSON
    assert any(message.startswith(f"serving on 127.0.0.1:{port} with 1 daphne worker(s)") for message in messages)
    assert f"worker {min(workers)} exited; starting another" in messages


@pytest.mark.parametrize("public_url", ["", "https://csms.example.com"])
def test_in_production_an_unset_public_url_is_warned_of_at_start(
    django_db_setup: None, tmp_path: Path, public_url: str
) -> None:
    """``make serve`` (README "Serving") left CSMS_PUBLIC_URL at its default, http://localhost:8000,
    without a word: every firmware campaign and diagnostics request sent chargers a location on
    localhost (on port 8000 whatever PORT was), and every one of them failed its download or upload."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "CSMS_VAR_DIR": str(tmp_path),
        "CSMS_PUBLIC_URL": public_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py"), "--production"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        assert _until(lambda: _answers(port) or serve.poll() is not None) is True, log.read_text()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0, log.read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    warned = [line for line in log.read_text().splitlines() if "CSMS_PUBLIC_URL is not set" in line]
    if public_url:
        assert warned == []
    else:
        [line] = warned
        assert "WARNING" in line and "http://localhost:8000" in line, line
