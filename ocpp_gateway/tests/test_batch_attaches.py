"""A group-commit batch's handshake attaches written together (``chargepoints.services.attach_writes``;
PostgreSQL): one statement for the whole batch's attaches admitted without hashing, and each ends
as it ends attached alone (the connection's state, the charger's row, its online event, its open
sessions loaded); a refused, unknown or superseded handshake, one after another unit of its charger,
one in a batch written again, or one whose charger is held elsewhere attaches its own way."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from chargepoints.models import ChargePoint, ChargerModelProfile, LifecycleState, Strictness
from chargepoints.services import charge_point_register
from chargepoints.services.attachment import SUPERSEDED, Attachment
from charging.models import Transaction
from charging.services.transaction_start import transaction_start
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.handshake_auth import _attached_with_sessions
from ocpp_gateway.tests.batches import (
    T0,
    Refused,
    charger_held,
    connection_context,
    one_batch,
    refused,
    start16,
)
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

_ONE_ATTACH = "WITH before AS (SELECT id, connected"  # an attach written its own way
_ATTACHES_WRITTEN = "WITH v AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[]"


def _attach(charge_point_id: str, *, password: str | None = None, minutes: float = 0) -> dict[str, Any]:
    """The handshake unit's arguments (``handshake_auth.handshake_attach``'s), begun ``minutes`` ago."""
    return {
        "charge_point_id": charge_point_id,
        "password": password,
        "ocpp_version": "1.6",
        "channel_name": f"ch.{charge_point_id}",
        "may_hash": False,
        "handshake_started_at": timezone.now() - timedelta(minutes=minutes),
    }


def _arranged(prefix: str) -> list[dict[str, Any]]:
    """Nine chargers in as many states; the handshakes under test (the last two refused: decommissioned, unknown)."""
    cp = [f"{prefix}-{n}" for n in range(9)]
    for name in cp[:7]:
        charge_point_register(charge_point_id=name, heartbeat_interval=60 + int(name[-1]))
    charge_point_register(charge_point_id=cp[7], heartbeat_interval=60, lifecycle_state=LifecycleState.DECOMMISSIONED)
    ChargePoint.objects.filter(charge_point_id=cp[1]).update(connected=True, connection_channel="ch.old")
    ChargePoint.objects.filter(charge_point_id=cp[2]).update(lifecycle_state=LifecycleState.PENDING)
    ChargePoint.objects.filter(charge_point_id=cp[3]).update(vendor="Acme", model="A1", firmware_version="1.2")
    transaction_start(start16(cp[4], 1000, T0))  # an open session: loaded onto the connection
    ChargePoint.objects.filter(charge_point_id=cp[5]).update(handshake_started_at=timezone.now() + timedelta(hours=1))
    ChargePoint.objects.filter(charge_point_id=cp[6]).update(connected=True, connection_channel=f"ch.{cp[6]}")
    return [
        _attach(cp[0]),  # offline: its online event
        _attach(cp[1]),  # replaces an older connection
        _attach(cp[2]),  # pending: not commissioned
        _attach(cp[3]),  # its model's profile
        _attach(cp[4]),  # a session open
        _attach(cp[5]),  # a newer handshake holds it: superseded
        _attach(cp[6]),  # the same channel again
        _attach(cp[7]),  # decommissioned, refused: its own way
        _attach(cp[8]),  # unknown: its own way
    ]


def _outcome(prefix: str, results: list[Any], sessions: list[set[int]]) -> list[tuple[Any, ...]]:
    """Each charger's attachment (or refusal), row, online events and kept sessions, names as placeholders."""
    ended = []
    for n, result in enumerate(results):
        name = f"{prefix}-{n}"

        def plain(value: Any, name: str = name) -> Any:
            return value.replace(name, "CP") if isinstance(value, str) else value

        row = list(
            ChargePoint.objects.filter(charge_point_id=name).values_list(
                "connection_channel", "connected", "ocpp_version", "offline_since", "lifecycle_state"
            )
        )
        events = [
            json.loads(body)["data"]["reason"]
            for body in WebhookDelivery.objects.filter(event_type=EventType.CHARGE_POINT_ONLINE).values_list(
                "body", flat=True
            )
            if json.loads(body)["data"]["charge_point_id"] == name
        ]
        attachment = (
            result
            if isinstance(result, str)
            else (
                plain(result.replaced_channel),
                result.heartbeat_interval - n,
                result.commissioned,
                result.profile,
                result.boot_identity,
                result.condition_held,
            )
        )
        ended.append((attachment, [tuple(plain(value) for value in r) for r in row], events, len(sessions[n])))
    return ended


async def _subscribed() -> None:
    await WebhookSubscription.objects.acreate(
        url="http://hooks.invalid/", events=[EventType.CHARGE_POINT_ONLINE], secret="s"
    )
    await ChargerModelProfile.objects.acreate(vendor="acme", model="a1", strictness=Strictness.LENIENT, quirks=["x"])


def _kept(context: Any) -> set[int]:
    """The session ids a connection keeps."""
    from charging.services.open_sessions import _connection_sessions

    sessions = context.run(_connection_sessions.get)
    return set(sessions) if sessions is not None else set()


async def test_a_batch_s_attaches_are_written_by_one_statement_and_end_as_each_attached_alone(
    statements: list[str],
) -> None:
    await _subscribed()
    alone = await sync_to_async(_arranged)("ALONE")
    together = await sync_to_async(_arranged)("BATCH")
    group = CommitGroup(max_units=64)
    alone_contexts = [connection_context() for _ in alone]
    alone_results = [
        (await one_batch(group, (context, _attached_with_sessions, a)))[0]
        for context, a in zip(alone_contexts, alone, strict=True)
    ]
    contexts = [connection_context() for _ in together]
    del statements[:]
    results = await one_batch(
        group, *((context, _attached_with_sessions, a) for context, a in zip(contexts, together, strict=True))
    )
    assert len([sql for sql in statements if sql.startswith(_ATTACHES_WRITTEN)]) == 1
    # the decommissioned and the unknown handshakes ask their own way; no other does
    assert len([sql for sql in statements if sql.startswith(_ONE_ATTACH)]) == 2
    expected = await sync_to_async(_outcome)("ALONE", alone_results, [_kept(c) for c in alone_contexts])
    assert await sync_to_async(_outcome)("BATCH", results, [_kept(c) for c in contexts]) == expected
    assert [type(result) for result in results[:5]] == [Attachment] * 5
    assert results[5] == SUPERSEDED and isinstance(results[6], Attachment)
    assert results[7:] == ["decommissioned", "unknown"]
    assert [len(events) for _, _, events, _ in expected] == [1, 0, 1, 1, 1, 0, 0, 0, 0]
    assert [kept for *_, kept in expected][4] == 1


async def test_an_attach_after_another_unit_of_its_charger_in_the_batch_writes_its_own_way(
    statements: list[str],
) -> None:
    for name in ("TWICE-1", "TWICE-2", "TWICE-3"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    first, second = _attach("TWICE-1", minutes=1), _attach("TWICE-1")
    second["channel_name"] = "ch.TWICE-1.again"
    del statements[:]
    results = await one_batch(
        group,
        (connection_context(), _attached_with_sessions, first),
        (connection_context(), _attached_with_sessions, _attach("TWICE-2")),
        (connection_context(), _attached_with_sessions, _attach("TWICE-3")),
        (connection_context(), _attached_with_sessions, second),  # the same charger's newer handshake
    )
    assert [type(result) for result in results] == [Attachment] * 4
    assert results[3].replaced_channel == "ch.TWICE-1"
    assert len([sql for sql in statements if sql.startswith(_ATTACHES_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_ATTACH)]) == 1
    channel = await ChargePoint.objects.values_list("connection_channel", flat=True).aget(charge_point_id="TWICE-1")
    assert channel == "ch.TWICE-1.again"


async def test_a_batch_written_again_attaches_each_once_its_own_way(statements: list[str]) -> None:
    for name in ("AGAIN-1", "AGAIN-2"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    del statements[:]
    results = await one_batch(
        group,
        (connection_context(), _attached_with_sessions, _attach("AGAIN-1")),
        (connection_context(), refused, {}),
        (connection_context(), _attached_with_sessions, _attach("AGAIN-2")),
    )
    assert [type(result) for result in results] == [Attachment, Refused, Attachment]
    # the first pass wrote both ahead, then was rolled back; the second attached each its own way
    assert len([sql for sql in statements if sql.startswith(_ATTACHES_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_ATTACH)]) == 2
    rows = ChargePoint.objects.order_by("charge_point_id").values_list(
        "charge_point_id", "connection_channel", "connected"
    )
    assert [row async for row in rows] == [("AGAIN-1", "ch.AGAIN-1", True), ("AGAIN-2", "ch.AGAIN-2", True)]


async def test_an_attach_alone_in_its_batch_is_one_statement_its_own_way(statements: list[str]) -> None:
    await sync_to_async(charge_point_register)(charge_point_id="ALONE-1", heartbeat_interval=60)
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64), (connection_context(), _attached_with_sessions, _attach("ALONE-1"))
    )
    assert [type(result) for result in results] == [Attachment]
    assert not [sql for sql in statements if sql.startswith(_ATTACHES_WRITTEN)]
    assert len([sql for sql in statements if sql.startswith(_ONE_ATTACH)]) == 1


async def test_a_charger_held_elsewhere_is_not_waited_for_by_the_batch_s_write(statements: list[str]) -> None:
    """The batch's write skips it and its attach waits for it at its turn, its own way (here past
    the first pass's lock wait, so the batch is written again, each its own way)."""
    async with charger_held("HELD-1", "HELD-2", "HELD-3", held="HELD-2") as holder:

        def release_in_the_second_pass() -> None:
            """Once the second pass has begun (HELD-1's own attach: the second one asked alone)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum(sql.startswith(_ONE_ATTACH) for sql in statements) < 2:
                time.sleep(0.01)
            holder.commit()

        release = threading.Thread(target=release_in_the_second_pass)
        release.start()
        del statements[:]
        results = await one_batch(
            CommitGroup(max_units=64),
            *((connection_context(), _attached_with_sessions, _attach(f"HELD-{n}")) for n in (1, 2, 3)),
        )
        release.join()
    assert [type(result) for result in results] == [Attachment] * 3
    assert len([sql for sql in statements if sql.startswith(_ATTACHES_WRITTEN)]) == 1
    # HELD-2's own attach in the first pass (its wait past that pass's 100 ms), then all three in the
    # second; a batch write that waited for HELD-2 would have failed the first pass before any: 3
    assert len([sql for sql in statements if sql.startswith(_ONE_ATTACH)]) == 4
    connected = ChargePoint.objects.order_by("charge_point_id").values_list("connected", flat=True)
    assert [value async for value in connected] == [True] * 3


async def test_an_attach_its_unit_refuses_at_its_turn_is_not_left_written(statements: list[str], monkeypatch) -> None:
    """The batch admitted it, its unit judged otherwise (the password memory changed between): the
    row written ahead for it is not committed; the batch is written again, each its own way."""
    from chargepoints.services import attachment

    for name in ("TURN-1", "TURN-2", "TURN-3"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    admitting = attachment.password_hash_admitting

    def admitting_but_turn_2(*, charge_point_id: str, **kwargs: Any) -> str | None:
        return None if charge_point_id == "TURN-2" else admitting(charge_point_id=charge_point_id, **kwargs)

    def admit(*, charge_point_id: str, **_: Any) -> str:
        assert charge_point_id == "TURN-2"
        return "password changed"

    monkeypatch.setattr(attachment, "password_hash_admitting", admitting_but_turn_2)
    monkeypatch.setattr(attachment, "charge_point_admit", admit)
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64),
        *((connection_context(), _attached_with_sessions, _attach(name)) for name in ("TURN-1", "TURN-2", "TURN-3")),
    )
    assert [type(result) for result in results] == [Attachment, str, Attachment]
    assert results[1] == "password changed"
    assert len([sql for sql in statements if sql.startswith(_ATTACHES_WRITTEN)]) == 1  # then rolled back
    rows = ChargePoint.objects.order_by("charge_point_id").values_list(
        "charge_point_id", "connection_channel", "connected"
    )
    assert [row async for row in rows] == [
        ("TURN-1", "ch.TURN-1", True),
        ("TURN-2", "", False),
        ("TURN-3", "ch.TURN-3", True),
    ]


def _sessions_read(statements: list[str], charge_points: str) -> int:
    """How many of ``statements`` read the sessions open on ``charge_points`` (``"= %s"``: one
    charger's, ``"unnest("``: many chargers')."""
    marks = {
        "= %s": "WHERE c.charge_point_id = %s AND t.status",
        "unnest(": "FROM unnest(%s::text[]) AS v(charge_point_id)",
    }
    return len([sql for sql in statements if marks[charge_points] in sql])


async def test_the_open_sessions_of_a_batch_s_attaches_are_read_by_one_statement(statements: list[str]) -> None:
    names = ["READ-1", "READ-2", "READ-3"]
    for name in names:
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    await sync_to_async(transaction_start)(start16("READ-1", 1000, T0))
    await sync_to_async(transaction_start)(start16("READ-2", 2000, T0))
    opened = {cp: pk async for pk, cp in Transaction.objects.values_list("pk", "charge_point__charge_point_id")}
    contexts = [connection_context() for _ in names]
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64),
        *((context, _attached_with_sessions, _attach(name)) for context, name in zip(contexts, names, strict=True)),
    )
    assert [type(result) for result in results] == [Attachment] * 3
    assert [result.condition_held for result in results] == [True, True, False]
    assert _sessions_read(statements, "unnest(") == 1
    assert _sessions_read(statements, "= %s") == 0
    assert [_kept(context) for context in contexts] == [{opened["READ-1"]}, {opened["READ-2"]}, set()]
