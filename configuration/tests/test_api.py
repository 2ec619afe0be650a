"""The configuration API's query parameters (its reads and changes over real chargers: test_configuration_e2e)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_a_query_parameter_the_configuration_does_not_read_is_a_400_naming_it(api_client, register_charge_point):
    """Probe: ``configuration?keys=HeartbeatInterval`` (for ``key=``) answered every key, taken for that one."""
    register_charge_point("CP-1")
    response = api_client.get("/api/v1/chargepoints/CP-1/configuration?keys=HeartbeatInterval")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["details"] == {"keys": ["Unknown query parameter."]}
    url = "/api/v1/chargepoints/CP-1/configuration?key=HeartbeatInterval&component=OCPPCommCtrlr&format=json"
    assert api_client.get(url).status_code == 200
