"""Database pool, gateway thread and Redis pool settings come from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import json, django; django.setup(); from django.conf import settings as s;"
    "print(json.dumps({'db': s.DATABASES['default'], 'threads': s.CSMS_DB_THREADS,"
    " 'heartbeat': s.CSMS_HEARTBEAT_FLUSH_SECONDS, 'layer': s.CHANNEL_LAYERS['default'],"
    " 'lanes': s.CSMS_GROUP_COMMIT_LANES}, default=str))"
)


def settings_with(tmp_path: Path, **env: str) -> dict:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path), **env}
    for name in ("DATABASE_URL", "REDIS_URL", "CSMS_DB_POOL_MAX", "CSMS_DB_POOL_TIMEOUT"):  # make test sets them
        environment.pop(name, None)
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", PRINT], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_postgresql_uses_a_sized_pool_without_persistent_connections(tmp_path):
    configured = settings_with(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/anything",
        CSMS_DB_POOL_MIN="4",
        CSMS_DB_POOL_MAX="40",
        CSMS_DB_THREADS="12",
        CSMS_HEARTBEAT_FLUSH_MS="250",
    )
    # The pool checks a connection as it hands it out (kernel/db_pool.py), not Django on every checkout.
    assert configured["db"]["ENGINE"] == "csms.postgresql"
    assert (configured["db"]["CONN_MAX_AGE"], configured["db"]["CONN_HEALTH_CHECKS"]) == (0, False)
    assert configured["db"]["OPTIONS"]["pool"] == {
        "min_size": 4,
        "max_size": 40,
        "timeout": 10,
        "max_idle": 600,
        "reconnect_timeout": 10,
    }
    assert (configured["threads"], configured["heartbeat"]) == (12, 0.25)


def test_sqlite_for_make_run_has_no_pool(tmp_path):
    configured = settings_with(tmp_path)
    assert configured["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert "pool" not in configured["db"]["OPTIONS"]


def test_an_empty_database_url_is_the_embedded_sqlite_as_when_unset(tmp_path):
    configured = settings_with(tmp_path, DATABASE_URL="")  # `DATABASE_URL= make run`: a crash before
    assert configured["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert configured["db"]["NAME"] == str(tmp_path / "db.sqlite3")


def test_the_redis_channel_layer_waits_for_a_sized_connection_pool(tmp_path):
    configured = settings_with(
        tmp_path, REDIS_URL="redis://127.0.0.1:6379/15", CSMS_REDIS_MAX_CONNECTIONS="500", CSMS_REDIS_POOL_TIMEOUT="7"
    )
    assert configured["layer"]["BACKEND"] == "ocpp_gateway.channel_layer.BlockingPoolRedisChannelLayer"
    host = configured["layer"]["CONFIG"]["hosts"][0]
    assert (host["max_connections"], host["timeout"]) == (500, 7)


def test_postgresql_prepares_a_statement_run_five_times_unless_told_not_to(tmp_path):
    url = "postgres://postgres@127.0.0.1:5432/anything"
    assert settings_with(tmp_path, DATABASE_URL=url)["db"]["OPTIONS"]["prepare_threshold"] == 5
    assert (
        settings_with(tmp_path, DATABASE_URL=url, CSMS_DB_PREPARE_THRESHOLD="2")["db"]["OPTIONS"]["prepare_threshold"]
        == 2
    )
    assert (
        "prepare_threshold"
        not in settings_with(tmp_path, DATABASE_URL=url, CSMS_DB_PREPARE_THRESHOLD="0")["db"]["OPTIONS"]
    )
    assert "prepare_threshold" not in settings_with(tmp_path)["db"]["OPTIONS"]  # SQLite


def test_a_negative_prepare_threshold_stops_the_start(tmp_path):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    environment.update(DATABASE_URL="postgres://postgres@127.0.0.1:5432/anything", CSMS_DB_PREPARE_THRESHOLD="-1")
    done = subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert done.returncode != 0 and "CSMS_DB_PREPARE_THRESHOLD" in done.stderr


def test_the_group_commit_writes_two_lanes_on_postgresql_and_one_on_sqlite(tmp_path):
    url = "postgres://postgres@127.0.0.1:5432/anything"
    assert settings_with(tmp_path, DATABASE_URL=url)["lanes"] == 2
    assert settings_with(tmp_path, DATABASE_URL=url, CSMS_GROUP_COMMIT_LANES="3")["lanes"] == 3
    assert settings_with(tmp_path)["lanes"] == 1


def test_more_than_one_lane_on_sqlite_stops_the_start(tmp_path):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    environment.pop("DATABASE_URL", None)
    environment.update(CSMS_GROUP_COMMIT_LANES="2")
    done = subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert done.returncode != 0 and "CSMS_GROUP_COMMIT_LANES=2: SQLite" in done.stderr
