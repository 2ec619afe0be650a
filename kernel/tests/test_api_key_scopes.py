"""API keys that fit an integration: read-only scope, expiry, last use, list and revoke from the CLI."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from kernel.api_keys import api_key_create
from kernel.models import ApiKey, ApiKeyScope

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def writes() -> list[tuple[str, str]]:
    """Every unsafe operation of the OpenAPI schema, as (method, concrete path)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for template, item in schema["paths"].items():
        for method in UNSAFE:
            if method not in item:
                continue
            parameters = {p["name"]: p["schema"] for p in item[method].get("parameters", []) if p["in"] == "path"}

            def value(match: re.Match[str], parameters: dict = parameters) -> str:
                schema = parameters.get(match.group(1), {})
                if schema.get("format") == "uuid":
                    return str(uuid.uuid4())
                return "1" if schema.get("type") == "integer" else "CP-1"

            operations.append((method, re.sub(r"\{(\w+)\}", value, template)))
    return operations


def _routes(patterns: list, prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            found.append((prefix + str(pattern.pattern), pattern))
    return found


def _sample(name: str) -> str:
    return "CP-1" if "charge_point" in name else "1"


def _concrete(route: str) -> str:
    """A path the route matches: each parameter filled in, the regex syntax dropped."""
    while (start := route.find("(?P<")) >= 0:  # re_path() groups, which nest
        name = route[start + 4 : route.index(">", start)]
        depth, end = 0, start
        while True:
            if route[end] == "\\":
                end += 1
            elif route[end] == "(":
                depth += 1
            elif route[end] == ")":
                depth -= 1
                if depth == 0:
                    break
            end += 1
        route = route[:start] + _sample(name) + route[end + 1 :]
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: _sample(match.group(1)), route)  # path() converters
    return "/" + route.replace("^", "").replace("/?$", "/").replace("$", "")


def url_conf_writes() -> list[tuple[str, str]]:
    """Every unsafe method of every route under /api/, from the URL configuration itself (the
    schema could leave a view out)."""
    operations = []
    for route, pattern in _routes(get_resolver().url_patterns):
        path = _concrete(route)
        if not path.startswith("/api/"):
            continue
        actions = getattr(pattern.callback, "actions", None)
        view = getattr(pattern.callback, "cls", None)
        methods = actions.keys() if actions is not None else [m for m in UNSAFE if hasattr(view, m)]
        operations += [(method, path) for method in UNSAFE if method in methods]
    return operations


def test_the_url_conf_writes_are_concrete_paths_of_their_routes():
    operations = url_conf_writes()
    assert ("post", "/api/v1/ocpp16/CP-1/reset/") in operations and ("post", "/api/v1/ocpp201/reset/") in operations
    assert ("delete", "/api/v1/sites/1/members/CP-1/") in operations
    for _, path in operations:
        resolve(path)  # raises Resolver404 for a path no route matches
    assert len(operations) >= len(writes())


@pytest.mark.parametrize(("method", "path"), url_conf_writes())
def test_a_read_only_key_gets_a_403_on_every_write_route_of_the_url_conf(register_charge_point, method, path):
    register_charge_point("CP-1")
    _, key = api_key_create(name="dashboard", scope=ApiKeyScope.READ_ONLY)
    response = getattr(client_for(key), method)(path, {}, format="json")
    assert response.status_code == 403, (method, path, response.content)
    assert response.json()["error"] == "ReadOnlyApiKey"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/ocpp16/CP-1/reset", {"type": "Soft"}),
        ("/api/v1/ocpp16/reset", {"charge_point_id": "CP-1", "type": "Soft"}),
        ("/api/v1/ocpp201/request_start_transaction", {"charge_point_id": "CP-1", "remote_start_id": 1}),
        ("/api/v1/chargepoints/CP-1/configuration", {"keys": []}),
    ],
)
def test_a_read_only_keys_403_on_a_command_names_the_charger(register_charge_point, path, body):
    """The documented error shape, ``{"error", "message", "charge_point_id"}``, whether the path or
    the body names the charger."""
    register_charge_point("CP-1")
    _, key = api_key_create(name="dashboard", scope=ApiKeyScope.READ_ONLY)
    method = "patch" if path.endswith("configuration") else "post"
    response = getattr(client_for(key), method)(path, body, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "error": "ReadOnlyApiKey",
        "message": "This API key is read-only: it cannot send commands or change anything.",
        "charge_point_id": "CP-1",
    }


def test_the_schema_lists_the_commands_and_writes():
    paths = {path for _, path in writes()}
    assert "/api/v1/ocpp16/CP-1/reset/" in paths and "/api/v1/ocpp201/CP-1/reset/" in paths
    assert len(writes()) > 40


def test_a_read_only_key_reads(register_charge_point):
    register_charge_point("CP-1")
    _, key = api_key_create(name="dashboard", scope=ApiKeyScope.READ_ONLY)
    client = client_for(key)
    assert client.get("/api/v1/chargepoints/").status_code == 200
    assert client.get("/api/v1/chargepoints/CP-1").status_code == 200
    assert client.get("/api/v1/commands/").status_code == 200


def test_a_full_key_still_writes(api_client):
    response = api_client.post(
        "/api/v1/chargepoints/", {"charge_point_id": "CP-9", "heartbeat_interval": 60}, format="json"
    )
    assert response.status_code == 201


def test_an_expired_key_is_refused():
    _, key = api_key_create(name="temp", expires_at=timezone.now() + timedelta(days=1))
    assert client_for(key).get("/api/v1/chargepoints/").status_code == 200
    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_for(key).get("/api/v1/chargepoints/").status_code == 401


def test_the_last_use_is_recorded_at_most_once_a_minute():
    record, key = api_key_create(name="integration")
    assert record.last_used_at is None
    client_for(key).get("/api/v1/chargepoints/")
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    client_for(key).get("/api/v1/chargepoints/")
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=first - timedelta(minutes=2))
    client_for(key).get("/api/v1/chargepoints/")
    assert ApiKey.objects.get().last_used_at > first


def test_keys_are_created_listed_and_revoked_from_the_cli(capsys):
    call_command("create_api_key", "dashboard", "--read-only", "--expires-in-days", "30")
    out = capsys.readouterr().out.splitlines()
    key = out[-1]
    assert "(read only (no commands, no changes), expires " in out[0]
    record = ApiKey.objects.get()
    assert record.scope == "read_only" and record.expires_at > timezone.now() + timedelta(days=29)
    client_for(key).get("/api/v1/chargepoints/")

    call_command("list_api_keys")
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == "id\tprefix\tname\tscope\tstate\tcreated\texpires\tlast_used"
    row = listing[1].split("\t")
    assert row[:5] == [str(record.pk), record.prefix, "dashboard", "read_only", "active"]
    assert row[7] != "-"  # used once

    call_command("revoke_api_key", record.prefix[:8])
    assert "Revoked API key" in capsys.readouterr().out
    assert client_for(key).get("/api/v1/chargepoints/").status_code == 401
    call_command("list_api_keys")
    assert capsys.readouterr().out.splitlines()[1].split("\t")[4] == "revoked"
    with pytest.raises(CommandError, match="no API keys match"):
        call_command("revoke_api_key", "nothing")
    with pytest.raises(CommandError, match="No API key has the id 99999"):
        call_command("revoke_api_key", "99999")


def test_a_prefix_several_keys_start_with_is_refused_without_miscounting_them():
    """Four keys starting "dyn_" were refused as "2 API keys match 'dyn_'" (two were read, not counted)."""
    for name in ("a", "b", "c", "d"):
        call_command("create_api_key", name)
    with pytest.raises(CommandError) as refused:
        call_command("revoke_api_key", "dyn_")
    assert str(refused.value) == (
        "more than one API key matches 'dyn_': give more of its prefix, or its id (list_api_keys)."
    )
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()
