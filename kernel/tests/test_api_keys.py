import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from kernel.api_keys import api_key_revoke
from kernel.models import ApiKey

pytestmark = pytest.mark.django_db


def test_create_api_key_prints_the_key_as_the_last_line_and_stores_only_its_hash(capsys):
    call_command("create_api_key", "integration")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    record = ApiKey.objects.get()
    assert key.startswith("dyn_") and len(key) > 40
    assert key not in (record.key_hash, record.prefix)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/chargepoints/").status_code == 200


@pytest.mark.parametrize("days", ["0", "-1", "99999999"])
def test_create_api_key_refuses_an_expiry_already_past_or_beyond_the_calendar(days):
    with pytest.raises(CommandError, match="--expires-in-days"):
        call_command("create_api_key", "integration", "--expires-in-days", days)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "k" * 101])
def test_create_api_key_refuses_a_name_the_admin_would_refuse(name):
    """A 101-character name ended in a DataError traceback on PostgreSQL; a blank one made a key
    without a name in list_api_keys and the admin."""
    with pytest.raises(CommandError, match="The name must be 1 to 100 characters"):
        call_command("create_api_key", name)
    assert not ApiKey.objects.exists()


def test_create_api_key_takes_a_name_of_100_characters(capsys):
    call_command("create_api_key", "k" * 100)
    assert ApiKey.objects.get().name == "k" * 100


def test_create_api_key_with_an_expiry_makes_a_key_that_works_until_then(capsys):
    call_command("create_api_key", "integration", "--expires-in-days", "1")
    record = ApiKey.objects.get()
    assert record.expires_at is not None and record.expires_at > record.created_at
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {capsys.readouterr().out.strip().splitlines()[-1]}")
    assert client.get("/api/v1/chargepoints/").status_code == 200


def test_a_revoked_key_is_refused(api_client):
    api_key_revoke(api_key=ApiKey.objects.get())
    assert api_client.get("/api/v1/chargepoints/").status_code == 401
