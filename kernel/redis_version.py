"""redis-py's version, read from the package's metadata once per process instead of once per connection.

Every Redis connection redis-py builds (a pool's growth, a reconnect) reads its own version for
``CLIENT SETINFO`` through ``importlib.metadata``, which finds the installed distribution and parses
its ``METADATA`` file each time: about 0.6-1 ms, most of a connection's constructor. An API process
growing its pools to 20 commands in flight spent about 3 % of its CPU there (issue 15). The version
cannot change under a running process, so the first answer is kept; the same ``lib-ver`` is sent.
"""

from __future__ import annotations

import functools

import redis.utils


def install() -> None:
    """``redis.utils.get_lib_version`` answered once (redis-py imports it by name at each use)."""
    if not hasattr(redis.utils.get_lib_version, "cache_info"):
        redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)
