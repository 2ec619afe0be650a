"""The Redis channel layer's one-round-trip send and receive keep channels-redis's behaviour."""

from __future__ import annotations

import uuid

import pytest
from channels.exceptions import ChannelFull

from ocpp_gateway.channel_layer import BlockingPoolRedisChannelLayer


@pytest.fixture
async def layer(settings):
    layer = BlockingPoolRedisChannelLayer(
        hosts=[{"address": settings.REDIS_URL, "socket_timeout": 30}], prefix=f"test-{uuid.uuid4().hex[:8]}", capacity=3
    )
    yield layer
    await layer.flush()


async def test_a_channel_at_capacity_refuses_the_next_message(layer):
    process_channel, named_channel = await layer.new_channel(), "ocpp-test-general"
    for channel in (process_channel, named_channel):
        for n in range(3):
            await layer.send(channel, {"type": "ping", "n": n})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "ping", "n": 3})
        assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]
