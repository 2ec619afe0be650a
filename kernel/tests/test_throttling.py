import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from kernel.api_keys import api_key_create
from kernel.throttling import ApiKeyRateThrottle

pytestmark = pytest.mark.django_db


def test_each_api_key_has_its_own_request_budget(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/minute"})
    cache.clear()
    busy, quiet = APIClient(), APIClient()
    busy.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='busy')[1]}")
    quiet.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='quiet')[1]}")
    assert [busy.get("/api/v1/chargepoints").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert quiet.get("/api/v1/chargepoints").status_code == 200
