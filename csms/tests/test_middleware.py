import pytest

pytestmark = pytest.mark.django_db


def test_a_nul_byte_in_the_url_is_a_400_not_a_database_error(api_client, client):
    response = api_client.get("/api/v1/commands/?charge_point_id=%00")
    assert response.status_code == 400
    assert response.json() == {"error": "ValidationError", "message": "The URL contains a NUL byte."}
    assert client.get("/admin/?q=%00").status_code == 400
