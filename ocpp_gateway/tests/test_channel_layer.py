"""The Redis channel layer's one-round-trip send and receive keep channels-redis's behaviour."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from kernel.charger_connections import MessageNotSent, connection_close
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


async def test_each_of_the_process_s_channels_receives_its_own_messages_in_order(layer):
    first, second = await layer.new_channel(), await layer.new_channel()
    waiting = [layer.receive(first), layer.receive(second)]
    await layer.send(second, {"type": "ping", "n": "second 0"})
    await layer.send(first, {"type": "ping", "n": "first 0"})
    await layer.send(second, {"type": "ping", "n": "second 1"})
    assert [(await asyncio.wait_for(receive, 5))["n"] for receive in waiting] == ["first 0", "second 0"]
    assert (await asyncio.wait_for(layer.receive(second), 5))["n"] == "second 1"


async def test_a_message_for_a_channel_nobody_waits_on_is_kept_for_its_next_receive(layer):
    waiting_one, idle_one = await layer.new_channel(), await layer.new_channel()
    receive = layer.receive(waiting_one)
    await layer.send(idle_one, {"type": "ping", "n": "kept"})
    await layer.send(waiting_one, {"type": "ping", "n": "delivered"})
    assert (await asyncio.wait_for(receive, 5))["n"] == "delivered"
    assert (await asyncio.wait_for(layer.receive(idle_one), 5))["n"] == "kept"


async def test_a_cancelled_receive_leaves_the_next_message_to_the_next_receive(layer):
    channel = await layer.new_channel()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.2)
    await layer.send(channel, {"type": "ping", "n": "after"})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == "after"


async def test_waiting_receives_of_many_channels_share_one_task(settings):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    layer = BlockingPoolRedisChannelLayer(hosts=[{"address": settings.REDIS_URL}], prefix=prefix)
    channels = [await layer.new_channel() for _ in range(50)]
    tasks_before = len(asyncio.all_tasks())
    waiting = [layer.receive(channel) for channel in channels]
    assert len(asyncio.all_tasks()) <= tasks_before + 1
    for n, channel in enumerate(channels):
        await layer.send(channel, {"type": "ping", "n": n})
    assert [(await asyncio.wait_for(receive, 5))["n"] for receive in waiting] == list(range(50))
    await layer.flush()


async def test_a_receive_waits_while_redis_is_unreachable_instead_of_failing():
    unreachable = BlockingPoolRedisChannelLayer(
        hosts=[{"address": "redis://127.0.0.1:9/0", "socket_connect_timeout": 0.2}], prefix="test-unreachable"
    )
    receive = unreachable.receive(await unreachable.new_channel())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(receive), 1.5)
    assert not receive.done()
    receive.cancel()
    await asyncio.wait_for(unreachable._receiver, 5)  # nobody waits any more: the receiver ends


async def test_a_thread_sends_to_a_consumer_and_receives_its_reply_without_the_event_loop(layer):
    consumer_channel = await layer.new_channel()
    reply_to = layer.blocking_reply_channel()
    assert layer.blocking_calls() and "!" not in reply_to
    await asyncio.to_thread(layer.send_blocking, consumer_channel, {"type": "ocpp.call", "reply_to": reply_to})
    request = await asyncio.wait_for(layer.receive(consumer_channel), 5)
    assert request == {"type": "ocpp.call", "reply_to": reply_to}
    await layer.send(reply_to, {"type": "ocpp.call.accepted"})
    await layer.send(reply_to, {"type": "ocpp.call.reply", "outcome": "result"})
    replies = [await asyncio.to_thread(layer.receive_blocking, reply_to, 5) for _ in range(2)]
    assert replies == [{"type": "ocpp.call.accepted"}, {"type": "ocpp.call.reply", "outcome": "result"}]


async def test_a_blocking_receive_gives_up_after_its_timeout(layer):
    assert await asyncio.to_thread(layer.receive_blocking, layer.blocking_reply_channel(), 0.3) is None


async def test_a_blocking_send_is_refused_at_capacity(layer):
    channel = await layer.new_channel()
    for n in range(3):
        await asyncio.to_thread(layer.send_blocking, channel, {"type": "ping", "n": n})
    with pytest.raises(ChannelFull):
        await asyncio.to_thread(layer.send_blocking, channel, {"type": "ping", "n": 3})


def test_a_blocking_receive_waits_while_redis_is_unreachable_until_its_timeout():
    unreachable = BlockingPoolRedisChannelLayer(
        hosts=[{"address": "redis://127.0.0.1:9/0", "socket_connect_timeout": 0.2}], prefix="test-unreachable"
    )
    assert unreachable.receive_blocking(unreachable.blocking_reply_channel(), 1.0) is None


def test_several_hosts_offer_no_blocking_calls(settings):
    layer = BlockingPoolRedisChannelLayer(hosts=[{"address": settings.REDIS_URL}, {"address": settings.REDIS_URL}])
    assert not layer.blocking_calls()


async def test_a_message_sent_past_capacity_arrives_after_the_ones_that_filled_the_channel(layer):
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "ping", "n": n})
    await layer.send_past_capacity(channel, {"type": "ping", "n": "past"})
    with pytest.raises(ChannelFull):  # the capacity still holds for an ordinary send
        await layer.send(channel, {"type": "ping", "n": 4})
    assert [(await layer.receive(channel))["n"] for _ in range(4)] == [0, 1, 2, "past"]


async def test_a_replaced_connection_is_asked_to_close_even_when_its_process_channel_is_full(settings):
    """In a reconnect storm the closes of replaced connections filled the older process's channel,
    shared by all its connections: the close still goes through."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "ocpp_gateway.channel_layer.BlockingPoolRedisChannelLayer",
            "CONFIG": {"hosts": [{"address": settings.REDIS_URL}], "prefix": prefix, "capacity": 3},
        }
    }
    layer = get_channel_layer()
    older, other = await layer.new_channel(), await layer.new_channel()
    for n in range(3):
        await layer.send(other, {"type": "ping", "n": n})
    await connection_close(channel_name=older, reason="replaced by a newer connection")
    message = await asyncio.wait_for(layer.receive(older), 5)
    assert message == {"type": "ocpp.close", "reason": "replaced by a newer connection"}
    await layer.flush()


def _answered_by_the_consumer(layer, consumer_channel: str, replies: list[dict]) -> asyncio.Task:
    """A consumer on this loop that takes one request and sends ``replies`` to its ``reply_to``."""

    async def consume() -> dict:
        request = await asyncio.wait_for(layer.receive(consumer_channel), 5)
        for reply in replies:
            await layer.send(request["reply_to"], reply)
        return request

    return asyncio.ensure_future(consume())


async def test_a_thread_sends_and_receives_the_first_reply_in_one_round_trip(layer, monkeypatch):
    from redis.connection import AbstractConnection

    consumer_channel, reply_to = await layer.new_channel(), layer.blocking_reply_channel()
    writes: list[int] = []
    write = AbstractConnection.send_packed_command

    def counted(connection, command, check_health=True):
        writes.append(1)
        return write(connection, command, check_health)

    replies = [{"type": "ocpp.call.accepted"}, {"type": "ocpp.call.reply", "outcome": "result"}]
    consumer = _answered_by_the_consumer(layer, consumer_channel, replies)
    await asyncio.to_thread(layer.send_blocking, "warm-up", {"type": "ping"})  # the script loaded
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    first = await asyncio.to_thread(
        layer.send_receive_blocking, consumer_channel, {"type": "ocpp.call", "reply_to": reply_to}, reply_to, 5
    )
    assert writes == [1]  # the send and the pop written together
    assert first == replies[0]
    assert await consumer == {"type": "ocpp.call", "reply_to": reply_to}
    assert await asyncio.to_thread(layer.receive_blocking, reply_to, 5) == replies[1]
    await layer.receive("warm-up")


async def test_a_combined_send_at_capacity_is_refused_and_its_pop_dropped(layer):
    channel, reply_to = await layer.new_channel(), layer.blocking_reply_channel()
    for n in range(3):
        await asyncio.to_thread(layer.send_blocking, channel, {"type": "ping", "n": n})
    with pytest.raises(MessageNotSent) as not_sent:
        await asyncio.to_thread(layer.send_receive_blocking, channel, {"type": "ping", "n": 3}, reply_to, 5)
    assert isinstance(not_sent.value.error, ChannelFull)
    # The pop went with its connection: a reply sent now waits for the next receive.
    await layer.send(reply_to, {"type": "late"})
    assert await asyncio.to_thread(layer.receive_blocking, reply_to, 5) == {"type": "late"}


async def test_a_combined_send_of_an_unknown_script_loads_it_and_sends_once(layer, monkeypatch):
    from ocpp_gateway import channel_layer

    consumer_channel, reply_to = await layer.new_channel(), layer.blocking_reply_channel()
    monkeypatch.setattr(channel_layer._SEND_SCRIPT_SYNC, "sha", "0" * 40)  # NOSCRIPT, as after a Redis restart
    consumer = _answered_by_the_consumer(layer, consumer_channel, [{"type": "ocpp.call.reply", "outcome": "result"}])
    reply = await asyncio.to_thread(
        layer.send_receive_blocking, consumer_channel, {"type": "ocpp.call", "reply_to": reply_to}, reply_to, 5
    )
    assert reply == {"type": "ocpp.call.reply", "outcome": "result"}
    await consumer
    assert channel_layer._SEND_SCRIPT_SYNC.sha != "0" * 40
    with pytest.raises(TimeoutError):  # sent once: no second request for the consumer
        await asyncio.wait_for(layer.receive(consumer_channel), 0.5)


async def test_a_combined_send_waits_for_a_reply_slower_than_its_first_pop(layer):
    consumer_channel, reply_to = await layer.new_channel(), layer.blocking_reply_channel()

    async def slow() -> None:
        request = await asyncio.wait_for(layer.receive(consumer_channel), 5)
        await asyncio.sleep(0.3)
        await layer.send(request["reply_to"], {"type": "slow"})

    consumer = asyncio.ensure_future(slow())
    reply = await asyncio.to_thread(
        layer.send_receive_blocking, consumer_channel, {"type": "ocpp.call", "reply_to": reply_to}, reply_to, 0.1
    )
    assert reply is None  # nothing within its timeout
    await consumer
    assert await asyncio.to_thread(layer.receive_blocking, reply_to, 5) == {"type": "slow"}


async def test_a_combined_send_without_a_connection_is_not_sent_at_once(layer, monkeypatch):
    """No connection from the pool (Redis away, the pool exhausted): not sent, said at once, not after
    a second wait through ``send_blocking``'s client."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    consumer_channel, reply_to = await layer.new_channel(), layer.blocking_reply_channel()
    pool = layer._blocking_client().connection_pool
    asked, connection_of = [], pool.get_connection

    def unreachable_once(*args, **kwargs):
        asked.append(1)
        if len(asked) == 1:
            raise RedisConnectionError("connection refused")
        return connection_of(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", unreachable_once)
    with pytest.raises(MessageNotSent) as not_sent:
        await asyncio.to_thread(
            layer.send_receive_blocking, consumer_channel, {"type": "ocpp.call", "reply_to": reply_to}, reply_to, 5
        )
    assert isinstance(not_sent.value.error, RedisConnectionError) and asked == [1]
    with pytest.raises(TimeoutError):  # nothing sent
        await asyncio.wait_for(layer.receive(consumer_channel), 0.5)


async def test_a_reply_that_cannot_be_read_after_a_combined_send_is_not_a_message_not_sent(layer):
    """The send went out (the consumer has it): a reply that fails to deserialise raises as it is."""
    consumer_channel, reply_to = await layer.new_channel(), layer.blocking_reply_channel()
    await layer.connection(0).zadd(layer.prefix + reply_to, {b"x" * 12 + b"\xc1": 1})  # not msgpack
    with pytest.raises(Exception) as failed:
        await asyncio.to_thread(
            layer.send_receive_blocking, consumer_channel, {"type": "ocpp.call", "reply_to": reply_to}, reply_to, 5
        )
    assert not isinstance(failed.value, MessageNotSent)
    assert await asyncio.wait_for(layer.receive(consumer_channel), 5) == {"type": "ocpp.call", "reply_to": reply_to}


async def test_sends_from_the_event_loop_take_no_connection_from_the_pool_after_the_first(layer, monkeypatch):
    pool = layer.connection(0).connection_pool
    checkouts: list[int] = []
    checkout = type(pool).get_connection

    async def counted(self, *args, **kwargs):
        checkouts.append(1)
        return await checkout(self, *args, **kwargs)

    monkeypatch.setattr(type(pool), "get_connection", counted)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "ping", "n": 0})
    await layer.send(channel, {"type": "ping", "n": 1})
    await layer.send(channel, {"type": "ping", "n": 2})
    assert checkouts == [1]  # the held connection's, taken once
    with pytest.raises(ChannelFull):  # capacity 3, as through redis-py's path
        await layer.send(channel, {"type": "ping", "n": 3})
    assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(3)] == [0, 1, 2]


async def test_a_send_of_an_unknown_script_on_the_held_connection_loads_it_and_sends_once(layer, monkeypatch):
    """The send script unknown to Redis (NOSCRIPT, as after a restart or a SCRIPT FLUSH) when a
    send's EVALSHA goes out on the held connection: redis-py's path loads the script and sends the
    message once; the next send is on the held connection again, with no redis-py command."""
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection

    from ocpp_gateway import channel_layer

    channel = await layer.new_channel()
    events: list[tuple[str, str]] = []  # ("redis-py", a command of its path) or ("written", an EVALSHA's sha)
    send, execute = AbstractConnection.send_command, Redis.execute_command

    async def noted_send(self, *args, **kwargs):
        if args[0] == "EVALSHA":
            events.append(("written", args[1]))
        return await send(self, *args, **kwargs)

    async def noted_execute(self, *args, **kwargs):
        events.append(("redis-py", args[0]))
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_command", noted_send)
    monkeypatch.setattr(Redis, "execute_command", noted_execute)
    monkeypatch.setattr(channel_layer._SEND_SCRIPT, "sha", "0" * 40)  # NOSCRIPT, as after a Redis restart
    await layer.send(channel, {"type": "ping", "n": "once"})
    loaded = channel_layer._SEND_SCRIPT.sha
    assert events[0] == ("written", "0" * 40)  # on the held connection, before any command of redis-py's
    assert ("redis-py", "SCRIPT LOAD") in events and loaded != "0" * 40
    events.clear()
    await layer.send(channel, {"type": "ping", "n": "next"})
    assert events == [("written", loaded)]
    assert layer._held_sends[0].held == 1
    assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(2)] == ["once", "next"]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.5)


async def test_a_send_cancelled_before_its_answer_drops_the_held_connection_and_the_next_send_goes_through(
    layer, monkeypatch
):
    from redis.asyncio.connection import AbstractConnection

    channel = await layer.new_channel()
    await layer.send(channel, {"type": "ping", "n": 0})  # the held connection taken
    [held] = layer._held_sends[0].free
    read = AbstractConnection.read_response

    async def never(self, *args, **kwargs):
        await asyncio.Event().wait()

    monkeypatch.setattr(AbstractConnection, "read_response", never)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.send(channel, {"type": "ping", "n": 1}), 0.2)
    monkeypatch.setattr(AbstractConnection, "read_response", read)
    assert not held.is_connected  # its unread answer went with it
    await layer.send(channel, {"type": "ping", "n": 2})  # reconnected
    assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(3)] == [0, 1, 2]


async def test_the_process_s_receiver_pops_on_its_connection_without_redis_py_s_command_path(layer, monkeypatch):
    from redis.asyncio import Redis

    keeper = layer.receive(await layer.new_channel())  # a consumer waiting all along: the receiver runs on
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "ping", "n": 0})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 0  # the receiver's connection taken
    commands: list[str] = []
    execute = Redis.execute_command

    async def counted(self, *args, **kwargs):
        commands.append(args[0])
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "execute_command", counted)
    for n in (1, 2):
        receive = layer.receive(channel)
        await layer.send(channel, {"type": "ping", "n": n})
        assert (await asyncio.wait_for(receive, 5))["n"] == n
    assert "BZPOPMIN" not in commands
    keeper.cancel()


async def test_a_pop_that_fails_on_the_receiver_s_connection_is_made_again_through_redis_py(layer, monkeypatch):
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection
    from redis.exceptions import ConnectionError as RedisConnectionError

    keeper = layer.receive(await layer.new_channel())  # a consumer waiting all along: the receiver runs on
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "ping", "n": 0})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 0
    send, failed, through_redis_py = AbstractConnection.send_command, [], []

    async def failing_once(self, *args, **kwargs):
        if args[0] == "BZPOPMIN" and not failed:
            failed.append(1)
            raise RedisConnectionError("lost")
        return await send(self, *args, **kwargs)

    execute = Redis.execute_command

    async def counted(self, *args, **kwargs):
        through_redis_py.append(args[0])
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_command", failing_once)
    monkeypatch.setattr(Redis, "execute_command", counted)
    for n in (1, 2):  # 1 answers the pop waiting since before; the next pop fails, then 2 comes
        receive = layer.receive(channel)
        await layer.send(channel, {"type": "ping", "n": n})
        assert (await asyncio.wait_for(receive, 5))["n"] == n
    assert failed == [1]
    assert "BZPOPMIN" in through_redis_py  # made again through redis-py's path
    keeper.cancel()


async def test_a_send_from_another_running_loop_leaves_the_held_connection_to_the_first(layer):
    await layer.send("ocpp-test-held", {"type": "ping", "n": 0})
    held = layer._held_sends[0]
    await asyncio.to_thread(asyncio.run, layer.send("ocpp-test-held", {"type": "ping", "n": 1}))
    assert layer._held_sends[0] is held  # the other loop sent through redis-py's path, holding nothing
    assert [(await asyncio.wait_for(layer.receive("ocpp-test-held"), 5))["n"] for _ in range(2)] == [0, 1]


async def test_overlapping_sends_each_take_a_held_connection_up_to_the_most_then_redis_py_s_path(layer, monkeypatch):
    monkeypatch.setattr(layer, "_held_sends_most", 2)
    channels = ["ocpp-test-overlap-" + str(n) for n in range(4)]
    await asyncio.gather(*(layer.send(channel, {"type": "ping", "n": n}) for n, channel in enumerate(channels)))
    held = layer._held_sends[0]
    assert held.held == 2 and len(held.free) == 2  # two held; the other two sends went through redis-py's path
    await asyncio.gather(*(layer.send(channel, {"type": "ping", "n": 4}) for channel in channels[:2]))
    assert held.held == 2
    for n, channel in enumerate(channels):
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == n
    assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for channel in channels[:2]] == [4, 4]


async def test_a_send_cancelled_while_its_dropped_connection_reconnects_leaves_no_half_made_connection(
    layer, monkeypatch
):
    """A held connection dropped after an error is connected again by the next send; a cancel during
    redis-py's handshake (its SELECT) leaves the socket open with the handshake's answer unread unless
    the connection is closed: the send after it would read that answer as its own."""
    from redis.asyncio.connection import AbstractConnection

    channel = await layer.new_channel()
    await layer.send(channel, {"type": "ping", "n": 0})  # the held connection taken
    [held] = layer._held_sends[0].free
    await held.disconnect()
    on_connect = AbstractConnection.on_connect_check_health

    async def cancelled_mid_handshake(self, *args, **kwargs):
        await self.send_command("SELECT", self.db or 0)  # its answer never read
        raise asyncio.CancelledError

    monkeypatch.setattr(AbstractConnection, "on_connect_check_health", cancelled_mid_handshake)
    with pytest.raises(asyncio.CancelledError):
        await layer.send(channel, {"type": "ping", "n": 1})
    monkeypatch.setattr(AbstractConnection, "on_connect_check_health", on_connect)
    assert not held.is_connected
    await layer.send(channel, {"type": "ping", "n": 2})  # connected again, whole
    assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(2)] == [0, 2]


def test_an_event_loop_holds_at_most_a_quarter_of_its_pool_for_sends(settings):
    def most(max_connections: int) -> int:
        host = {"address": settings.REDIS_URL, "max_connections": max_connections}
        return BlockingPoolRedisChannelLayer(hosts=[host])._held_sends_most

    assert (most(2), most(5), most(6), most(16), most(200)) == (0, 0, 1, 3, 8)


async def test_a_send_that_finds_no_connection_free_waits_the_pool_s_timeout_once(settings):
    """Every connection of the pool in use (none held for sends yet): the send waits the pool's
    timeout (1 s) once and raises, not first for a held connection and then through redis-py's path."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    host = {"address": settings.REDIS_URL, "max_connections": 6, "timeout": 1}
    layer = BlockingPoolRedisChannelLayer(hosts=[host], prefix=f"test-{uuid.uuid4().hex[:8]}")
    pool = layer.connection(0).connection_pool
    taken = [await pool.get_connection() for _ in range(6)]
    started = time.monotonic()
    with pytest.raises(RedisConnectionError, match="No connection available"):
        await layer.send("ocpp-test-exhausted", {"type": "ping"})
    waited = time.monotonic() - started
    for connection in taken:
        await pool.release(connection)
    assert 0.9 < waited < 1.9  # twice: 2 s
    assert layer._held_sends[0].held == 0
    await layer.send("ocpp-test-exhausted", {"type": "pong"})  # a connection free again: held, sent
    assert layer._held_sends[0].held == 1
    assert (await layer.receive("ocpp-test-exhausted"))["type"] == "pong"
    await layer.flush()


async def test_a_send_while_redis_is_away_tries_to_connect_as_often_as_redis_py_s_path(monkeypatch):
    """Redis away: a send's connection attempts are its connection's retries once (redis-py's
    path, as a PING makes them), not once for a held connection and again through that path."""
    from redis.asyncio.connection import Connection
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    attempts: list[int] = []
    connect = Connection._connect

    async def counted(self):
        attempts.append(1)
        return await connect(self)

    monkeypatch.setattr(Connection, "_connect", counted)
    host = {"address": "redis://127.0.0.1:1/0", "retry": Retry(NoBackoff(), 2)}  # nothing listens on port 1
    layer = BlockingPoolRedisChannelLayer(hosts=[host], prefix=f"test-{uuid.uuid4().hex[:8]}")
    with pytest.raises(RedisConnectionError):
        await layer.send("ocpp-test-away", {"type": "ping"})
    sent_attempts = len(attempts)
    with pytest.raises(RedisConnectionError):
        await layer.connection(0).ping()
    assert sent_attempts == len(attempts) - sent_attempts == 3
    assert layer._held_sends[0].held == 0


async def test_a_pool_too_small_to_spare_a_connection_sends_through_redis_py(settings):
    layer = BlockingPoolRedisChannelLayer(
        hosts=[{"address": settings.REDIS_URL, "max_connections": 4}], prefix=f"test-{uuid.uuid4().hex[:8]}"
    )
    await layer.send("ocpp-test-small-pool", {"type": "ping"})
    await layer.send("ocpp-test-small-pool", {"type": "pong"})
    assert layer._held_sends == {}  # no connection held: the receiver and the other sends share all 4
    assert [(await layer.receive("ocpp-test-small-pool"))["type"] for _ in range(2)] == ["ping", "pong"]
    await layer.flush()
