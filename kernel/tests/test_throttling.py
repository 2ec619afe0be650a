import contextvars
import socket
from typing import Any

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


def test_a_refused_request_is_told_when_to_retry(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "2/minute"})
    cache.clear()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='busy')[1]}")
    assert [client.get("/api/v1/chargepoints").status_code for _ in range(2)] == [200, 200]
    refused = client.get("/api/v1/chargepoints")
    assert refused.status_code == 429
    assert 55 <= int(refused["Retry-After"]) <= 60


def test_a_request_refused_after_the_rate_was_lowered_is_told_when_to_retry(monkeypatch):
    """A log already over a lowered limit answered 429 without ``Retry-After`` (DRF's ``None``)."""
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "5/minute"})
    cache.clear()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='busy')[1]}")
    assert [client.get("/api/v1/chargepoints").status_code for _ in range(4)] == [200] * 4
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "2/minute"})
    refused = client.get("/api/v1/chargepoints")
    assert refused.status_code == 429
    assert 55 <= int(refused["Retry-After"]) <= 60


def test_requests_older_than_the_window_no_longer_count(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "2/minute"})
    cache.clear()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='busy')[1]}")
    clock = [1_000_000.0]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: clock[0])
    assert [client.get("/api/v1/chargepoints").status_code for _ in range(3)] == [200, 200, 429]
    clock[0] += 61
    assert client.get("/api/v1/chargepoints").status_code == 200


def test_requests_in_their_own_contexts_share_one_cache_backend(monkeypatch):
    """Failed before: ``caches["default"]`` built a backend for every request context (asgiref's
    ``Local``), one per API request under ASGI."""
    from django.core.cache import caches

    built = []
    create = caches.create_connection
    monkeypatch.setattr(caches, "create_connection", lambda alias: built.append(alias) or create(alias))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='busy')[1]}")
    statuses = [contextvars.Context().run(client.get, "/api/v1/chargepoints").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert len(built) <= 1


def test_a_request_is_counted_after_redis_forgot_the_throttles_script(monkeypatch):
    """The hit's EVALSHA is sent on a pooled connection directly (issue 15); after a Redis restart
    (its scripts flushed: NOSCRIPT) the script is loaded again through redis-py's path and the
    request counted, not let through; the next hit is sent directly again."""
    from redis import Redis
    from redis.connection import AbstractConnection

    from kernel import throttling

    events: list[tuple[str, str]] = []  # ("redis-py", a command of its path) or ("written", an EVALSHA's sha)
    send, execute = AbstractConnection.send_command, Redis.execute_command

    def noted_send(self, *args, **kwargs):
        if args[0] == "EVALSHA":
            events.append(("written", args[1]))
        return send(self, *args, **kwargs)

    def noted_execute(self, *args, **kwargs):
        events.append(("redis-py", args[0]))
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "2/minute"})
    cache.clear()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='busy')[1]}")
    assert client.get("/api/v1/chargepoints").status_code == 200
    monkeypatch.setattr(AbstractConnection, "send_command", noted_send)
    monkeypatch.setattr(Redis, "execute_command", noted_execute)
    monkeypatch.setattr(throttling._HIT_SCRIPT, "sha", "0" * 40)  # NOSCRIPT, as after a Redis restart
    assert client.get("/api/v1/chargepoints").status_code == 200
    loaded = throttling._HIT_SCRIPT.sha
    assert events[0] == ("written", "0" * 40)  # directly, before any command of redis-py's
    assert ("redis-py", "SCRIPT LOAD") in events and loaded != "0" * 40
    events.clear()
    assert client.get("/api/v1/chargepoints").status_code == 429  # counted: the third of 2 a minute
    assert [event for event in events if event[1] == "EVALSHA" or event[0] == "written"] == [("written", loaded)]


def _bearer(client: APIClient, key: str, address: str = "203.0.113.7") -> Any:
    return client.get("/api/v1/chargepoints", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=address)


def test_refused_api_keys_from_one_address_are_throttled_and_valid_keys_are_not_counted(settings):
    """An invalid key was a 401 however often it was tried: anyone could try keys without limit.
    Past CSMS_API_AUTH_FAILURES_PER_IP refused keys an address's refused keys get 429 with
    Retry-After; a valid key is served from it (an integrator behind the same address is not locked
    out), and other addresses are counted apart."""
    settings.CSMS_API_AUTH_FAILURES_PER_IP = 3
    settings.CSMS_API_AUTH_FAILURE_WINDOW_SECONDS = 300
    cache.clear()
    client = APIClient()
    valid = api_key_create(name="integrator")[1]
    assert [_bearer(client, valid).status_code for _ in range(10)] == [200] * 10  # valid keys do not count
    assert [_bearer(client, f"guess-{n}").status_code for n in range(3)] == [401] * 3
    refused = _bearer(client, "guess-3")
    assert refused.status_code == 429
    assert refused.json()["error"] == "Throttled"
    assert 1 <= int(refused["Retry-After"]) <= 300
    assert _bearer(client, valid).status_code == 200
    assert _bearer(client, "").status_code == 429
    assert _bearer(client, valid, address="198.51.100.9").status_code == 200
    assert _bearer(client, "guess-4", address="198.51.100.9").status_code == 401


def test_refused_api_keys_no_longer_count_once_their_window_ended(settings, monkeypatch):
    settings.CSMS_API_AUTH_FAILURES_PER_IP = 2
    settings.CSMS_API_AUTH_FAILURE_WINDOW_SECONDS = 60
    cache.clear()
    clock = [1_000_000_020.0]
    monkeypatch.setattr("kernel.throttling.time.time", lambda: clock[0])
    client = APIClient()
    valid = api_key_create(name="integrator")[1]
    assert [_bearer(client, "guess").status_code for _ in range(3)] == [401, 401, 429]
    clock[0] += 60
    assert _bearer(client, valid).status_code == 200
    assert _bearer(client, "guess").status_code == 401


def test_a_client_naming_its_own_forwarded_address_is_counted_by_its_connection(settings):
    """DRF took the client's own X-Forwarded-For as its address (NUM_PROXIES unset): a new one with
    each guess escaped the count. The address is the connection's (daphne sets it from the proxy's
    header behind one)."""
    settings.CSMS_API_AUTH_FAILURES_PER_IP = 2
    cache.clear()
    client = APIClient()
    statuses = [
        client.get(
            "/api/v1/chargepoints",
            HTTP_AUTHORIZATION="Bearer guess",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
            REMOTE_ADDR="203.0.113.8",
        ).status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


@pytest.fixture(scope="module")
def one_request_daphne(daphne_factory):
    return daphne_factory(CSMS_API_RATE="1/minute")


@pytest.mark.django_db(transaction=True)
def test_a_throttled_answer_names_its_status(one_request_daphne):
    """daphne answered ``HTTP/1.1 429 Unknown Status`` (Twisted names no 429)."""
    cache.clear()
    key = api_key_create(name="one-a-minute")[1]
    status_lines = []
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", one_request_daphne.port), timeout=10) as client:
            client.sendall(
                b"GET /api/v1/chargepoints HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: Bearer {key}\r\n".encode()
                + b"Connection: close\r\n\r\n"
            )
            status_lines.append(client.makefile("rb").readline())
    assert status_lines == [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 429 Too Many Requests\r\n"]


def test_refused_api_keys_from_loopback_are_not_counted(settings):
    """The machine's own clients (health checks, tests, a proxy on it passing no client address,
    which would make every client share one count) are not throttled for refused keys."""
    settings.CSMS_API_AUTH_FAILURES_PER_IP = 2
    cache.clear()
    client = APIClient()
    statuses = [_bearer(client, "guess", address=address).status_code for address in ["127.0.0.1", "::1"] * 3]
    assert statuses == [401] * 6
