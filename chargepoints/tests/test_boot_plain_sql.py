"""The boot's and the handshake's plain statements (PostgreSQL) write and answer what the ORM paths do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from chargepoints import selectors, services
from chargepoints.models import ChargePoint, ChargerModelProfile, LifecycleState, Strictness
from webhooks.models import EventType

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only"),
]

OFFLINE_SINCE = datetime(2026, 5, 1, 9, tzinfo=UTC)
STARTED = datetime(2026, 5, 1, 10, tzinfo=UTC)  # when the handshake began
ONLINE = EventType.CHARGE_POINT_ONLINE
IGNORED = {"id", "charge_point_id", "last_boot_at", "identity_booted_at", "last_seen", "created_at", "updated_at"}


def _fields(charge_point: ChargePoint) -> dict:
    return {
        field.attname: getattr(charge_point, field.attname)
        for field in ChargePoint._meta.concrete_fields
        if field.attname not in IGNORED
    }


def _boot_both_ways(register_charge_point, monkeypatch, *, lifecycle_state, connected):
    """Boot one charger by the plain statement and one by the ORM path, from the same state."""
    results, emitted = {}, []
    monkeypatch.setattr(services.fleet, "webhook_event_emit", lambda **event: emitted.append(event))
    for charge_point_id, vendor in (("CP-PLAIN", "postgresql"), ("CP-ORM", "other")):
        register_charge_point(charge_point_id, heartbeat_interval=77, lifecycle_state=lifecycle_state)
        ChargePoint.objects.filter(charge_point_id=charge_point_id).update(
            connected=connected, offline_since=OFFLINE_SINCE, previous_heartbeat_interval=300
        )
        with monkeypatch.context() as patched:
            if vendor != "postgresql":
                patched.setattr(connection, "vendor", vendor)
            results[charge_point_id] = services.charge_point_boot(
                charge_point_id=charge_point_id,
                vendor="Alfen",
                model="Eve",
                serial_number="S1",
                firmware_version="4.1",
                iccid="89",
                imsi="24",
            )
    return results, emitted


@pytest.mark.parametrize("connected", [False, True])
@pytest.mark.parametrize("lifecycle_state", [LifecycleState.COMMISSIONED, LifecycleState.PENDING])
def test_the_plain_boot_writes_and_answers_as_the_orm_does(
    register_charge_point, monkeypatch, connected, lifecycle_state
):
    results, emitted = _boot_both_ways(
        register_charge_point, monkeypatch, lifecycle_state=lifecycle_state, connected=connected
    )
    plain, orm = (ChargePoint.objects.get(charge_point_id=cp) for cp in ("CP-PLAIN", "CP-ORM"))
    assert _fields(plain) == _fields(orm)
    assert plain.connected and plain.offline_since == (OFFLINE_SINCE if connected else None)
    assert plain.previous_heartbeat_interval is None  # its answer carries heartbeat_interval
    assert plain.boot_pending == (lifecycle_state != LifecycleState.COMMISSIONED)  # answered Pending
    for charge_point, result in ((plain, results["CP-PLAIN"]), (orm, results["CP-ORM"])):
        assert charge_point.last_boot_at == charge_point.last_seen == result.current_time
        assert charge_point.identity_booted_at == result.current_time  # a new firmware: this boot
    assert (results["CP-PLAIN"].status, results["CP-PLAIN"].interval) == (
        results["CP-ORM"].status,
        results["CP-ORM"].interval,
    )
    online = [event["data"]["charge_point_id"] for event in emitted if event["event_type"] == ONLINE]
    assert online == ([] if connected else ["CP-PLAIN", "CP-ORM"])


def _boot(monkeypatch, charge_point_id: str, *, plain: bool, firmware_version: str) -> datetime:
    with monkeypatch.context() as patched:
        if not plain:
            patched.setattr(connection, "vendor", "other")
        return services.charge_point_boot(
            charge_point_id=charge_point_id, vendor="Alfen", model="Eve", firmware_version=firmware_version
        ).current_time


@pytest.mark.parametrize("plain", [True, False])
def test_the_first_boot_of_a_firmware_is_kept_across_its_later_boots_and_a_row_without_it_takes_the_last_boot(
    register_charge_point, monkeypatch, plain
):
    """``identity_booted_at`` on both paths: this boot for a new firmware, kept while it stays; a row
    written before the column (NULL) takes its previous boot, as the read was judged before."""
    register_charge_point("CP-ID", heartbeat_interval=60)
    first = _boot(monkeypatch, "CP-ID", plain=plain, firmware_version="4.1")
    _boot(monkeypatch, "CP-ID", plain=plain, firmware_version="4.1")
    assert ChargePoint.objects.get(charge_point_id="CP-ID").identity_booted_at == first

    ChargePoint.objects.filter(charge_point_id="CP-ID").update(identity_booted_at=None)
    previous = ChargePoint.objects.get(charge_point_id="CP-ID").last_boot_at
    _boot(monkeypatch, "CP-ID", plain=plain, firmware_version="4.1")
    assert ChargePoint.objects.get(charge_point_id="CP-ID").identity_booted_at == previous

    upgraded = _boot(monkeypatch, "CP-ID", plain=plain, firmware_version="4.2")
    assert ChargePoint.objects.get(charge_point_id="CP-ID").identity_booted_at == upgraded


def test_the_plain_boot_of_an_unregistered_charger_raises():
    with pytest.raises(ChargePoint.DoesNotExist):
        services.charge_point_boot(charge_point_id="CP-NONE", vendor="V", model="M")


@pytest.mark.parametrize("connected", [False, True])
def test_the_plain_connect_writes_and_answers_as_the_orm_does(register_charge_point, monkeypatch, connected):
    emitted, answers = [], {}
    monkeypatch.setattr(services.fleet, "webhook_event_emit", lambda **event: emitted.append(event))
    ChargerModelProfile.objects.create(vendor="alfen", model="EVE", strictness=Strictness.LENIENT, quirks=["q"])
    for charge_point_id, vendor in (("CP-PLAIN", "postgresql"), ("CP-ORM", "other")):
        register_charge_point(charge_point_id, heartbeat_interval=77, lifecycle_state=LifecycleState.PENDING)
        ChargePoint.objects.filter(charge_point_id=charge_point_id).update(
            connected=connected, offline_since=OFFLINE_SINCE, connection_channel="old", vendor="Alfen", model="Eve"
        )
        with monkeypatch.context() as patched:
            if vendor != "postgresql":
                patched.setattr(connection, "vendor", vendor)
            answers[charge_point_id] = services.charge_point_connect(
                charge_point_id=charge_point_id, ocpp_version="2.0.1", channel_name="new", handshake_started_at=STARTED
            )
            superseded = services.charge_point_connect(
                charge_point_id=charge_point_id,
                ocpp_version="1.6",
                channel_name="older",
                handshake_started_at=STARTED - timedelta(seconds=1),
            )
            assert superseded is None  # an older handshake's late attach writes nothing
    plain, orm = (ChargePoint.objects.get(charge_point_id=cp) for cp in ("CP-PLAIN", "CP-ORM"))
    assert _fields(plain) == _fields(orm)
    assert (plain.connection_channel, plain.connected, plain.offline_since) == ("new", True, None)
    assert answers["CP-PLAIN"] == answers["CP-ORM"]
    assert answers["CP-PLAIN"].replaced_channel == "old" and answers["CP-PLAIN"].boot_identity[:2] == ("Alfen", "Eve")
    assert answers["CP-PLAIN"].profile.lenient and answers["CP-PLAIN"].profile.quirks == ("q",)
    online = [event["data"]["charge_point_id"] for event in emitted if event["event_type"] == ONLINE]
    assert online == ([] if connected else ["CP-PLAIN", "CP-ORM"])


def test_the_plain_connect_of_an_unregistered_charger_raises():
    with pytest.raises(ChargePoint.DoesNotExist):
        services.charge_point_connect(charge_point_id="CP-NONE", ocpp_version="1.6", channel_name="new")


def test_the_plain_admission_read_refuses_as_the_orm_does(register_charge_point, monkeypatch):
    register_charge_point("CP-OPEN")
    register_charge_point("CP-GONE", lifecycle_state=LifecycleState.DECOMMISSIONED)
    register_charge_point("CP-LOCKED", password="s3cret-s3cret")
    asked = [("CP-NONE", None), ("CP-GONE", None), ("CP-OPEN", None), ("CP-LOCKED", None), ("CP-LOCKED", "wrong")]
    asked.append(("CP-LOCKED", "s3cret-s3cret"))
    plain = [selectors.charge_point_refusal(charge_point_id=cp, password=password) for cp, password in asked]
    monkeypatch.setattr(connection, "vendor", "other")
    assert plain == [selectors.charge_point_refusal(charge_point_id=cp, password=password) for cp, password in asked]
    assert plain == ["unknown", "decommissioned", "", "no password presented", "wrong password", ""]
