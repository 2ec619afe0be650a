"""A command's API key remembered by the process and checked in the statement that records it
(issue 15): fewer statements per command, and a key revoked, expired or narrowed anywhere (even
by a queryset update, which sends no signal) is still refused by the next command."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from commands.models import Command, CommandState
from kernel.models import ApiKey, ApiKeyScope
from kernel.throttling import ApiKeyRateThrottle

pytestmark = pytest.mark.django_db

RESET = {"type": "Soft"}


def reset(client: APIClient) -> int:
    return int(client.post("/api/v1/ocpp16/CP-1/reset", RESET, format="json").status_code)


def test_a_command_after_the_first_is_recorded_and_completed_in_two_statements(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")  # not connected: answered 503, recorded
    assert reset(api_client) == 503
    with CaptureQueriesContext(connection) as statements:
        assert reset(api_client) == 503
    # The key's check, the charger's read and the INSERT in one statement; the outcome's UPDATE.
    assert len(statements.captured_queries) == 2, [query["sql"][:80] for query in statements.captured_queries]
    assert [command.state for command in Command.objects.all()] == [CommandState.NOT_CONNECTED] * 2


def test_the_statement_that_records_a_command_is_bound_by_the_server(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    cursors = []

    def noted(execute, sql, params, many, context):
        if "INSERT INTO" in sql:
            cursors.append(type(context["cursor"].cursor))
        return execute(sql, params, many, context)

    assert reset(api_client) == 503
    with connection.execute_wrapper(noted):
        assert reset(api_client) == 503
    assert cursors == [psycopg.Cursor]  # not Django's ClientCursor (issue 15)
    first, second = Command.objects.order_by("created_at")
    assert (second.request, second.warnings, second.ocpp_version, second.action, second.charge_point_id) == (
        RESET,
        [],
        "1.6",
        "Reset",
        first.charge_point_id,
    )
    assert second.api_key_id == first.api_key_id is not None and second.created_at > first.created_at


@pytest.mark.parametrize(
    "change",
    [
        {"expires_at": timezone.now() - timedelta(seconds=1)},
        {"revoked_at": timezone.now()},
    ],
    ids=["expired", "revoked"],
)
@pytest.mark.parametrize(
    ("body", "headers"),
    [(RESET, {}), (RESET, {"HTTP_IDEMPOTENCY_KEY": "k-1"}), ({"type": "Sideways"}, {}), ([1, 2], {})],
    ids=["valid", "idempotency-key", "invalid-body", "body-not-an-object"],
)
def test_a_key_made_inactive_by_a_queryset_update_is_refused_by_the_next_command(
    api_client, register_charge_point, change, body, headers
):
    register_charge_point("CP-1", ocpp_version="1.6")
    assert reset(api_client) == 503
    ApiKey.objects.update(**change)  # no signal, no other process told
    response = api_client.post("/api/v1/ocpp16/CP-1/reset", body, format="json", **headers)
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer dyn_unknown")
    refused = stranger.post("/api/v1/ocpp16/CP-1/reset", body, format="json")
    assert (response.status_code, response.json(), response["WWW-Authenticate"]) == (
        401,
        refused.json(),
        refused["WWW-Authenticate"],
    )
    assert response.json()["error"] == "AuthenticationFailed"
    assert Command.objects.count() == 1
    assert reset(api_client) == 401  # and the next, read again


def test_a_key_narrowed_to_read_only_is_refused_by_the_next_command(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    assert reset(api_client) == 503
    ApiKey.objects.update(scope=ApiKeyScope.READ_ONLY)
    response = api_client.post("/api/v1/ocpp16/CP-1/reset", RESET, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "ReadOnlyApiKey"
    assert Command.objects.count() == 1


def test_a_key_widened_from_read_only_is_let_through_at_once(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    ApiKey.objects.update(scope=ApiKeyScope.READ_ONLY)
    assert reset(api_client) == 403  # remembered as read-only
    ApiKey.objects.update(scope=ApiKeyScope.FULL)
    assert reset(api_client) == 503
    assert Command.objects.count() == 1


def test_a_revoked_key_over_its_rate_is_told_401_not_429(api_client, register_charge_point, monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "1/minute"})
    cache.clear()
    register_charge_point("CP-1", ocpp_version="1.6")
    assert reset(api_client) == 503
    assert reset(api_client) == 429
    ApiKey.objects.update(revoked_at=timezone.now())
    assert reset(api_client) == 401


def test_a_revoked_key_with_a_method_not_allowed_is_told_401(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    assert reset(api_client) == 503
    ApiKey.objects.update(revoked_at=timezone.now())
    assert api_client.get("/api/v1/ocpp16/CP-1/reset").status_code == 401
    assert Command.objects.count() == 1
