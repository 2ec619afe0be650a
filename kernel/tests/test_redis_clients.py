from __future__ import annotations

import pytest
from django.conf import settings
from redis import ConnectionPool, Redis

from kernel.redis_clients import HeldClients

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)")


@pytest.fixture
def pool():
    pool = ConnectionPool.from_url(settings.REDIS_URL)
    yield pool
    pool.disconnect()


def test_a_client_keeps_its_connection_for_the_next_use(pool):
    held = HeldClients(pool)
    with held.client() as client:
        first = client.client_id()
    with held.client() as client:
        assert client.client_id() == first
    assert len(pool._in_use_connections) == 1  # held, not given back and taken again


def test_uses_at_once_get_clients_of_their_own_and_no_more_than_idle_most_stay_held(pool):
    held = HeldClients(pool, idle_most=1)
    with held.client() as one, held.client() as other:
        assert one.client_id() != other.client_id()
    assert len(held._idle) == 1
    assert len(pool._in_use_connections) == 1  # the other's connection is back in the pool


def test_a_connection_closed_by_redis_is_reconnected_on_the_next_command(pool):
    held = HeldClients(pool)
    with held.client() as client:
        first = client.client_id()
    Redis.from_url(settings.REDIS_URL).client_kill_filter(_id=first)
    with held.client() as client:
        assert client.ping()
        assert client.client_id() != first


def test_a_use_that_fails_drops_its_client_and_its_connection(pool):
    held = HeldClients(pool)
    with pytest.raises(ZeroDivisionError), held.client() as client:
        client.ping()
        1 / 0  # noqa: B018  (the caller's own error, between commands or within one)
    assert held._idle == []
    assert client.connection is None
    with held.client() as client:
        assert client.ping()
