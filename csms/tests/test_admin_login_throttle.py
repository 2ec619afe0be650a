"""Admin sign-in is throttled per username and address (django-axes), with a clear lockout page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "the-right-password-1"


@pytest.fixture
def olivia(db: None) -> User:
    return User.objects.create_user("olivia", password=PASSWORD, is_staff=True)


def sign_in(password: str, *, username: str = "olivia", address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": password})


def guess(times: int, **kwargs: str) -> None:
    for _ in range(times):
        assert sign_in("wrong", **kwargs).status_code == 200  # the form again, with its error


def lock_out(**kwargs: str) -> None:
    guess(4, **kwargs)
    assert sign_in("wrong", **kwargs).status_code == 429


def test_the_fifth_wrong_password_locks_the_username_from_that_address(olivia, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    guess(4)
    locked = sign_in("wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-in attempts for <strong>olivia</strong> from your address." in page
    assert "locked for 15 minutes" in page
    assert "Dynamo CSMS" in page  # the admin's own page, not a bare error
    right_password = sign_in(PASSWORD)
    assert right_password.status_code == 429


def test_a_locked_username_still_signs_in_from_another_address(olivia):
    lock_out()
    response = sign_in(PASSWORD, address="198.51.100.9")
    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_another_username_from_the_locked_address_is_not_locked(olivia):
    User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    lock_out()
    assert sign_in(PASSWORD, username="sam").status_code == 302


def test_a_successful_sign_in_resets_the_count(olivia):
    guess(4)
    assert sign_in(PASSWORD).status_code == 302
    guess(4)
    assert sign_in(PASSWORD).status_code == 302


def test_the_lock_ends_after_the_cool_off(olivia):
    lock_out()
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert sign_in(PASSWORD).status_code == 302


def test_an_administrator_lifts_a_lock_by_deleting_the_attempt(olivia):
    lock_out()
    assert AccessAttempt.objects.get().username == "olivia"
    AccessAttempt.objects.all().delete()
    assert sign_in(PASSWORD).status_code == 302


def test_the_api_is_not_throttled_by_admin_lockouts(olivia, api_client):
    lock_out(address="127.0.0.1")
    assert api_client.get("/api/v1/chargepoints/").status_code == 200
