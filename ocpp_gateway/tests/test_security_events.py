"""SecurityEventNotification (1.6 security whitepaper §4.3, 2.0.1 A04): each event a charger reports is
recorded and announced once (``charge_point.security_event``), beyond the message log's retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint, SecurityEvent
from conftest import ocpp_charger
from csms.staff_groups import SUPPORT, staff_user_create
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("version, call", [("1.6", call16), ("2.0.1", call201)])
async def test_a_reported_security_event_is_recorded_and_announced_once(daphne, version, call):
    await WebhookSubscription.objects.acreate(
        url="http://127.0.0.1:9/hooks", events=[EventType.SECURITY_EVENT_REPORTED], secret="s"
    )
    await ChargePoint.objects.acreate(charge_point_id="CP-SEC", heartbeat_interval=60)
    tamper = call.SecurityEventNotification(
        type="TamperDetectionActivated", timestamp="2026-11-25T10:00:00Z", tech_info="lid opened"
    )
    async with ocpp_charger(daphne, version, "CP-SEC") as charger:
        await charger.call(tamper)
        await charger.call(tamper)  # sent again: its answer was lost
        await charger.call(
            call.SecurityEventNotification(type="FirmwareUpdated", timestamp="2026-11-25T10:05:00Z", tech_info=None)
        )

    recorded = [
        (e.event_type, e.timestamp, e.tech_info)
        async for e in SecurityEvent.objects.filter(charge_point__charge_point_id="CP-SEC").order_by("timestamp")
    ]
    assert recorded == [
        ("TamperDetectionActivated", datetime(2026, 11, 25, 10, 0, tzinfo=UTC), "lid opened"),
        ("FirmwareUpdated", datetime(2026, 11, 25, 10, 5, tzinfo=UTC), ""),
    ]
    bodies = WebhookDelivery.objects.filter(event_type=EventType.SECURITY_EVENT_REPORTED).values_list("body", flat=True)
    announced = sorted([json.loads(body)["data"] async for body in bodies], key=lambda data: data["timestamp"])
    assert announced == [
        {
            "charge_point_id": "CP-SEC",
            "type": "TamperDetectionActivated",
            "timestamp": "2026-11-25T10:00:00Z",
            "tech_info": "lid opened",
        },
        {
            "charge_point_id": "CP-SEC",
            "type": "FirmwareUpdated",
            "timestamp": "2026-11-25T10:05:00Z",
            "tech_info": None,
        },
    ]


def test_support_staff_read_the_security_events_and_change_none(client, register_charge_point):
    charge_point = register_charge_point("CP-SEC-ADMIN")
    SecurityEvent.objects.create(
        charge_point=charge_point,
        event_type="InvalidFirmwareSignature",
        timestamp=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        tech_info="key 3",
    )
    client.force_login(staff_user_create(username="bob", password="a-long-password-1", group=SUPPORT))
    listing = client.get("/admin/chargepoints/securityevent/?event_type=InvalidFirmwareSignature")
    assert listing.status_code == 200
    assert "CP-SEC-ADMIN" in listing.content.decode() and "key 3" in listing.content.decode()
    assert client.get("/admin/chargepoints/securityevent/add/").status_code == 403

    page = client.get(f"/admin/chargepoints/chargepoint/{charge_point.pk}/change/").content.decode()
    assert "InvalidFirmwareSignature" in page  # the charger's page shows its latest, and links to all
    all_of_it = f"/admin/chargepoints/securityevent/?charge_point__id__exact={charge_point.pk}"
    assert all_of_it in page and "key 3" in client.get(all_of_it).content.decode()


def test_the_api_lists_a_chargers_security_events_newest_first(api_client, register_charge_point):
    charge_point = register_charge_point("CP-SEC-API")
    for minute, event_type, tech_info in ((0, "StartupOfTheDevice", ""), (5, "TamperDetectionActivated", "lid")):
        SecurityEvent.objects.create(
            charge_point=charge_point,
            event_type=event_type,
            timestamp=datetime(2026, 11, 25, 10, minute, tzinfo=UTC),
            tech_info=tech_info,
        )
    reply = api_client.get("/api/v1/chargepoints/CP-SEC-API/security-events")
    assert reply.status_code == 200
    assert [{k: v for k, v in event.items() if k != "received_at"} for event in reply.json()["results"]] == [
        {"type": "TamperDetectionActivated", "timestamp": "2026-11-25T10:05:00Z", "tech_info": "lid"},
        {"type": "StartupOfTheDevice", "timestamp": "2026-11-25T10:00:00Z", "tech_info": None},
    ]
    assert api_client.get("/api/v1/chargepoints/CP-NONE/security-events").status_code == 404


@pytest.mark.parametrize("version, call", [("2.0.1", call201), ("1.6", call16)])
async def test_an_event_with_an_unreadable_time_resent_after_a_reconnect_is_recorded_once(daphne, version, call):
    """A charger whose clock writes ``25/11/2026 10:00`` (unreadable) resent
    its tamper alarm after a reconnect (the answer lost with the connection): its time was its
    arrival, which the copy does not repeat, so it was recorded and announced twice. A resend is
    the same type, time as sent and details: kept once. Another time as sent is another event."""
    await WebhookSubscription.objects.acreate(
        url="http://127.0.0.1:9/hooks", events=[EventType.SECURITY_EVENT_REPORTED], secret="s"
    )
    await ChargePoint.objects.acreate(charge_point_id="CP-SEC-U", heartbeat_interval=60)

    def tamper(sent: str) -> Any:
        return call.SecurityEventNotification(type="TamperDetectionActivated", timestamp=sent, tech_info="lid")

    async with ocpp_charger(daphne, version, "CP-SEC-U") as charger:
        await charger.call(tamper("25/11/2026 10:00"))
    async with ocpp_charger(daphne, version, "CP-SEC-U") as charger:
        await charger.call(tamper("25/11/2026 10:00"))  # the copy
        await charger.call(tamper("25/11/2026 10:07"))  # the lid opened again
    events = SecurityEvent.objects.filter(charge_point__charge_point_id="CP-SEC-U")
    assert await events.acount() == 2
    assert await WebhookDelivery.objects.filter(event_type=EventType.SECURITY_EVENT_REPORTED).acount() == 2
