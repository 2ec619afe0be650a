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
