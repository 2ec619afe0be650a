import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from csms.env import env_bool, env_choice, env_int


def test_a_non_integer_setting_fails_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CSMS_OFFLINE_CHECK_INTERVAL", "abc")
    with pytest.raises(ImproperlyConfigured, match="CSMS_OFFLINE_CHECK_INTERVAL"):
        env_int("CSMS_OFFLINE_CHECK_INTERVAL", 30, minimum=1)


def test_a_setting_below_its_minimum_fails(monkeypatch):
    monkeypatch.setenv("CSMS_OCPP_CALL_TIMEOUT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("CSMS_OCPP_CALL_TIMEOUT", 30, minimum=1)


def test_booleans_accept_the_usual_spellings_only(monkeypatch):
    monkeypatch.setenv("DJANGO_DEBUG", "yes")
    assert env_bool("DJANGO_DEBUG") is True
    monkeypatch.setenv("DJANGO_DEBUG", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="DJANGO_DEBUG"):
        env_bool("DJANGO_DEBUG")


@pytest.mark.parametrize("empty", ["", "  "])
def test_a_boolean_set_empty_is_its_default_as_every_setting_is(monkeypatch, empty):
    """``CSMS_METRICS_ENABLED=`` and ``CSMS_CONFIGURATION_REFRESH_ON_BOOT=`` (defaults 1) turned metrics and
    the configuration read off, where an empty integer, list, URL or level is its default."""
    monkeypatch.setenv("CSMS_METRICS_ENABLED", empty)
    assert env_bool("CSMS_METRICS_ENABLED", True) is True
    assert env_bool("CSMS_METRICS_ENABLED", False) is False


def test_a_log_format_other_than_plain_or_json_fails_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CSMS_LOG_FORMAT", "xml")
    with pytest.raises(ImproperlyConfigured, match="CSMS_LOG_FORMAT='xml' is not one of plain, json"):
        env_choice("CSMS_LOG_FORMAT", "plain", ("plain", "json"))
    monkeypatch.setenv("CSMS_LOG_FORMAT", " JSON ")
    assert env_choice("CSMS_LOG_FORMAT", "plain", ("plain", "json")) == "json"


def test_an_integer_above_its_maximum_or_with_underscores_fails_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CSMS_MESSAGE_LOG_DAYS", "36501")
    with pytest.raises(ImproperlyConfigured, match="CSMS_MESSAGE_LOG_DAYS=36501 must be at most 36500"):
        env_int("CSMS_MESSAGE_LOG_DAYS", 30, minimum=1, maximum=36500)
    monkeypatch.setenv("CSMS_MESSAGE_LOG_DAYS", "1_000")
    with pytest.raises(ImproperlyConfigured, match="is not an integer"):
        env_int("CSMS_MESSAGE_LOG_DAYS", 30, minimum=1)
    monkeypatch.setenv("CSMS_MESSAGE_LOG_DAYS", str(2**31))
    with pytest.raises(ImproperlyConfigured, match="must be at most 2147483647"):
        env_int("CSMS_MESSAGE_LOG_DAYS", 30, minimum=1)


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "scripts/serve.py"],
        [sys.executable, "manage.py", "check"],
        [str(Path(sys.executable).parent / "celery"), "-A", "csms", "report"],
    ],
    ids=["serve", "manage", "celery"],
)
def test_a_bad_setting_stops_each_entry_point_with_one_line_naming_it(command: list[str], tmp_path: Path) -> None:
    """``make serve``, ``manage.py migrate`` (docker-compose's first step) and Celery printed some 30
    lines of traceback through Django's settings import, the line naming the variable last."""
    env = {**os.environ, "CSMS_VAR_DIR": str(tmp_path), "CSMS_OCPP_CALL_TIMEOUT": "abc", "WORKERS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "CSMS_OCPP_CALL_TIMEOUT='abc' is not an integer.", done.stderr
