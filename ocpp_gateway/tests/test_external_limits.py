"""OCPP 2.0.1 K12/K13: a limit an energy manager or the grid operator sets on a station
(NotifyChargingLimit) is recorded until the station reports it released (ClearedChargingLimit)."""

from __future__ import annotations

import json

import pytest
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint
from charging.models import ExternalChargingLimit
from charging.services import external_limits
from conftest import ocpp_charger
from csms.staff_groups import SUPPORT, staff_user_create
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

_SCHEDULE = {"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}]}


async def _recorded(charge_point_id: str) -> list[tuple[int, str, bool | None, list]]:
    limits = ExternalChargingLimit.objects.filter(charge_point__charge_point_id=charge_point_id)
    return [(x.evse_id, x.source, x.grid_critical, x.schedules) async for x in limits.order_by("evse_id", "source")]


async def test_an_external_limit_is_recorded_replaced_released_and_announced(daphne):
    await WebhookSubscription.objects.acreate(
        url="http://127.0.0.1:9/hooks", events=[EventType.CHARGING_LIMIT_CHANGED], secret="s"
    )
    await ChargePoint.objects.acreate(charge_point_id="CS-K12", heartbeat_interval=60)
    async with ocpp_charger(daphne, "2.0.1", "CS-K12") as station:
        await station.call(
            call201.NotifyChargingLimit(
                charging_limit={"chargingLimitSource": "SO", "isGridCritical": True},
                charging_schedule=[_SCHEDULE],
                evse_id=1,
            )
        )
        await station.call(call201.NotifyChargingLimit(charging_limit={"chargingLimitSource": "EMS"}, evse_id=1))
        await station.call(call201.NotifyChargingLimit(charging_limit={"chargingLimitSource": "EMS"}))
        assert await _recorded("CS-K12") == [(0, "EMS", None, []), (1, "EMS", None, []), (1, "SO", True, [_SCHEDULE])]

        # the grid operator eases its limit: the new one replaces it
        eased = {**_SCHEDULE, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}
        await station.call(
            call201.NotifyChargingLimit(
                charging_limit={"chargingLimitSource": "SO", "isGridCritical": False},
                charging_schedule=[eased],
                evse_id=1,
            )
        )
        await station.call(call201.ClearedChargingLimit(charging_limit_source="EMS", evse_id=1))
        assert await _recorded("CS-K12") == [(0, "EMS", None, []), (1, "SO", False, [eased])]
        await station.call(call201.ClearedChargingLimit(charging_limit_source="SO"))  # every EVSE's
        assert await _recorded("CS-K12") == [(0, "EMS", None, [])]

    bodies = WebhookDelivery.objects.filter(event_type=EventType.CHARGING_LIMIT_CHANGED).values_list("body", flat=True)
    announced = [json.loads(body)["data"] async for body in bodies]
    assert {data["charge_point_id"] for data in announced} == {"CS-K12"}
    assert sorted(
        (data["evse_id"], data["source"], data["grid_critical"], data["released"], len(data["schedules"]))
        for data in announced
    ) == [
        (0, "EMS", None, False, 0),
        (1, "EMS", None, False, 0),
        (1, "EMS", None, True, 0),
        (1, "SO", False, False, 1),
        (1, "SO", False, True, 1),
        (1, "SO", True, False, 1),
    ]


def test_support_staff_see_the_external_limits(client, register_charge_point):
    ExternalChargingLimit.objects.create(
        charge_point=register_charge_point("CS-K12-ADMIN"),
        evse_id=1,
        source="SO",
        grid_critical=True,
        schedules=[_SCHEDULE],
        reported_at="2026-11-25T10:00:00Z",
    )
    client.force_login(staff_user_create(username="bob", password="a-long-password-1", group=SUPPORT))
    listing = client.get("/admin/charging/externalcharginglimit/?source=SO")
    assert listing.status_code == 200 and "CS-K12-ADMIN" in listing.content.decode()


def test_a_lenient_chargers_unknown_long_source_is_kept_cut_to_its_column(register_charge_point):
    register_charge_point("CS-K12-LONG")
    source = "RegionalGridOperatorNorth"  # no ChargingLimitSourceEnumType value: a lenient model's
    external_limits.external_limit_notified(
        charge_point_id="CS-K12-LONG", evse_id=None, source=source, grid_critical=None, schedules=[]
    )
    assert list(ExternalChargingLimit.objects.values_list("evse_id", "source")) == [(0, source[:20])]
    assert external_limits.external_limits_cleared(charge_point_id="CS-K12-LONG", evse_id=None, source=source) == 1
