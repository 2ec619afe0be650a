"""``make run``'s banner and the public URL it gives the processes (scripts/run.sh), with stand-ins
for the processes it starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def run_script(tmp_path: Path, **env: str) -> str:
    """scripts/run.sh's output; its gateway (a stand-in) prints the CSMS_PUBLIC_URL it was given."""
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    python = stand_ins / "python"
    python.write_text(
        '#!/bin/sh\n[ "$1" = scripts/serve.py ] && {\n  echo "gateway metrics in $CSMS_METRICS_DIR"\n'
        '  echo "gateway given $CSMS_PUBLIC_URL"; exit 0; }\n'
        f'exec {sys.executable} "$@"\n'
    )
    (stand_ins / "celery").write_text("#!/bin/sh\nsleep 30\n")
    for program in stand_ins.iterdir():
        program.chmod(0o755)
    environment = {**os.environ, "BIN": str(stand_ins), **env}
    for name in ("DATABASE_URL", "REDIS_URL", "CSMS_PUBLIC_URL", "CSMS_VAR_DIR"):
        environment.pop(name, None)
    environment.update(env)
    done = subprocess.run(
        ["scripts/run.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_the_banner_names_the_sqlite_file_in_the_var_dir_in_use(tmp_path):
    output = run_script(tmp_path, CSMS_VAR_DIR=str(tmp_path / "elsewhere"))
    assert f"Database     SQLite in {tmp_path / 'elsewhere'}/db.sqlite3" in output


def test_the_metrics_directory_is_in_the_var_dir_in_use(tmp_path):
    """With CSMS_VAR_DIR set, make run still wrote its metrics in the repository's var/metrics-PORT."""
    output = run_script(tmp_path, CSMS_VAR_DIR=str(tmp_path / "elsewhere"), PORT="9000")
    assert f"gateway metrics in {tmp_path / 'elsewhere'}/metrics-9000" in output


def test_listening_on_every_interface_gives_chargers_an_address_they_can_reach(tmp_path):
    """README's LAN example sent chargers http://0.0.0.0:9000 in UpdateFirmware and GetDiagnostics."""
    output = run_script(tmp_path, HOST="0.0.0.0", PORT="9000")
    given = output.split("gateway given ")[1].strip()
    assert given.startswith("http://") and given.endswith(":9000")
    assert "0.0.0.0" not in given
    assert f"Files        {given}" in output
    assert "set CSMS_PUBLIC_URL if they reach it at another" in output


def test_on_every_interface_the_banner_links_an_address_a_browser_can_open(tmp_path):
    """With README's LAN example the banner linked http://0.0.0.0:9000/admin/: no address to open, and a
    host name no DJANGO_ALLOWED_HOSTS holds (400 Bad Request). Chargers are shown the address they are sent."""
    output = run_script(tmp_path, HOST="0.0.0.0", PORT="9000")
    assert "0.0.0.0" not in output.replace("HOST=0.0.0.0", "")
    assert "Admin        http://127.0.0.1:9000/admin/" in output
    assert "API docs     http://127.0.0.1:9000/api/v1/docs/" in output
    files = output.split("gateway given http://")[1].strip()
    assert f"ws://{files}/ocpp/1.6/{{charge_point_id}}" in output


def test_a_public_url_set_is_given_as_it_is(tmp_path):
    output = run_script(tmp_path, HOST="0.0.0.0", CSMS_PUBLIC_URL="https://csms.example.com")
    assert "gateway given https://csms.example.com" in output
    assert "set CSMS_PUBLIC_URL" not in output


def test_the_banner_shows_where_the_database_and_redis_are_not_their_passwords(tmp_path):
    """It printed DATABASE_URL and REDIS_URL whole, passwords and all, to the terminal or a CI log."""
    output = run_script(
        tmp_path,
        DATABASE_URL="postgres://csms:s3cr%40t@db.example:5432/csms",
        REDIS_URL="rediss://:r3dis-pw@cache.example:6380/0",
    )
    assert "s3cr" not in output and "r3dis-pw" not in output
    assert "Database     postgres://csms:***@db.example:5432/csms" in output
    assert "Redis        rediss://:***@cache.example:6380/0" in output
