"""A handshake's one database call: admission, presence and the state the connection keeps."""

from __future__ import annotations

from chargepoints.models import ChargePoint, ChargerModelProfile, LifecycleState, Strictness
from chargepoints.services.attachment import charge_point_attach


def attach(charge_point_id: str = "CP-1", password: str | None = None, channel_name: str = "ch-new"):
    return charge_point_attach(
        charge_point_id=charge_point_id, password=password, ocpp_version="1.6", channel_name=channel_name
    )


def test_a_known_charger_is_attached_with_its_state(register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=120)
    ChargePoint.objects.filter(charge_point_id="CP-1").update(
        vendor="Acme", model="A1", firmware_version="1.2.3", connection_channel="ch-old"
    )
    ChargerModelProfile.objects.create(vendor="acme", model="a1", strictness=Strictness.LENIENT, quirks=["x"])
    attachment = attach()
    assert not isinstance(attachment, str)
    assert attachment.replaced_channel == "ch-old"
    assert (attachment.heartbeat_interval, attachment.commissioned) == (120, True)
    assert attachment.profile.lenient and attachment.profile.quirks == ("x",)
    assert ChargePoint.objects.filter(charge_point_id="CP-1", connection_channel="ch-new", connected=True).exists()


def test_a_pending_charger_is_attached_not_commissioned(register_charge_point):
    register_charge_point("CP-1", lifecycle_state=LifecycleState.PENDING)
    attachment = attach()
    assert not isinstance(attachment, str) and not attachment.commissioned and not attachment.profile.lenient


def test_a_refused_handshake_leaves_presence_alone(register_charge_point):
    register_charge_point("CP-1", password="right")
    register_charge_point("CP-OLD", lifecycle_state=LifecycleState.DECOMMISSIONED)
    ChargePoint.objects.update(connection_channel="ch-old")
    assert attach("CP-1", password="wrong") == "wrong password"
    assert attach("CP-OLD") == "decommissioned"
    assert attach("CP-UNKNOWN") == "unknown"
    assert set(ChargePoint.objects.values_list("connection_channel", flat=True)) == {"ch-old"}
    assert not isinstance(attach("CP-1", password="right"), str)
