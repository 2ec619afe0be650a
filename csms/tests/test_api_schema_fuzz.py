"""schemathesis against our OpenAPI schema: whatever a client sends, the API never answers 500.

Every operation in ``/api/v1/schema/`` is called with generated bodies, parameters and path
values (valid and invalid), authenticated with a real API key, in process through Django's WSGI
handler on the test PostgreSQL. The only 5xx answers allowed are the documented command outcomes
(501 NotSupported, 502 CALLERROR, 503 NotConnected, 504 Timeout), in the documented error shape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from csms.api_keys import api_key_create

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
DOCUMENTED_5XX = {501, 502, 503, 504}
EXAMPLES = int(os.environ.get("CSMS_API_FUZZ_EXAMPLES", "10"))


@pytest.fixture
def bearer(db: None) -> Iterator[dict[str, str]]:
    # As Django's test client does: keep the test's connection (and its rollback) across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Bearer {api_key_create(name='schemathesis')[1]}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_request_gets_a_500(case, bearer):
    response = case.call(
        headers=bearer, params={**(case.query or {}), "wait": "false"} if case.method == "POST" else None
    )
    request = f"{case.method} {case.formatted_path} {case.body!r}"[:300]
    assert response.status_code < 500 or response.status_code in DOCUMENTED_5XX, f"{request} -> {response.status_code}"
    if response.status_code >= 500:
        assert {"error", "message"} <= set(response.json()), f"{request} -> {response.text[:300]}"
