"""kernel.redis_version: a Redis connection built without reading redis-py's metadata again."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest
import redis.utils
from redis.asyncio.connection import Connection as AsyncConnection
from redis.connection import Connection

from kernel import redis_version


def test_connections_after_the_first_read_redis_py_s_version_from_no_metadata(monkeypatch: pytest.MonkeyPatch):
    Connection()  # the first may read it
    reads: list[str] = []
    read = metadata.version

    def counted(name: str) -> Any:
        reads.append(name)
        return read(name)

    monkeypatch.setattr(redis.utils.metadata, "version", counted)
    built: list[Any] = [Connection(), Connection(), AsyncConnection()]
    assert reads == []
    # The same lib-ver for CLIENT SETINFO as before.
    assert {connection.driver_info.lib_version for connection in built} == {read("redis")}


def test_installed_once():
    redis_version.install()
    installed = redis.utils.get_lib_version
    redis_version.install()
    assert redis.utils.get_lib_version is installed
