"""What the CSMS learns from commands the charger answered: reservations and local lists."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from chargepoints.models import ChargePoint
from charging.models import IdTag, InstalledChargingProfile, LocalAuthList, Reservation, ReservationStatus, Transaction
from commands import catalog
from commands.tests.conftest import V201Charger, answering_charger
from configuration.models import ConfigurationKey
from configuration.services import ReportedAttribute, device_model_attributes_record
from conftest import ahttp, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)

LocalListCharger = answering_charger(
    V16Client,
    {
        "SendLocalList": result16.SendLocalList(status="Accepted"),
        "GetLocalListVersion": result16.GetLocalListVersion(list_version=9),
    },
)


async def test_reserve_now_and_cancel_reservation_are_recorded(daphne, api_daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-RES", heartbeat_interval=60)
    async with ocpp_charger(daphne, "2.0.1", "CP-RES", client_class=V201Charger):
        reserve = {
            "id": 3,
            "expiry_date_time": "2031-05-01T12:00:00Z",
            "evse_id": 1,
            "id_token": {"id_token": "RFID-1", "type": "ISO14443"},
        }
        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp201/CP-RES/reserve_now", method="POST", api_key=api_key, body=reserve
        )
        assert status == 200
        reservation = await Reservation.objects.aget(reservation_id=3)
        assert (reservation.status, reservation.evse_id, reservation.id_tag) == (ReservationStatus.ACTIVE, 1, "RFID-1")
        assert reservation.expiry_date.isoformat() == "2031-05-01T12:00:00+00:00"

        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp201/CP-RES/cancel_reservation",
            method="POST",
            api_key=api_key,
            body={"reservation_id": 3},
        )
        assert status == 200
    assert (await Reservation.objects.aget(reservation_id=3)).status == ReservationStatus.CANCELLED


ReservingCharger = answering_charger(V16Client, {"ReserveNow": result16.ReserveNow(status="Accepted")})


async def test_a_connector_gone_faulted_or_the_charger_unavailable_ends_its_reservations(daphne, api_daphne, api_key):
    """OCPP 1.6 §5.13: a reservation ends when its connector (one on connector 0: the charger) is set
    Faulted or Unavailable. Probe: they stayed active until their expiry."""
    await ChargePoint.objects.acreate(charge_point_id="CP-RF", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP-RF", client_class=ReservingCharger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        for reservation_id, connector_id in ((5, 1), (6, 2), (7, 0)):
            reserve = {
                "connector_id": connector_id,
                "expiry_date": "2099-05-01T12:00:00Z",
                "id_tag": "RFID-1",
                "reservation_id": reservation_id,
            }
            status, _ = await ahttp(
                f"{api_daphne.http_url}/api/v1/ocpp16/CP-RF/reserve_now", method="POST", api_key=api_key, body=reserve
            )
            assert status == 200

        async def statuses() -> dict[int, str]:
            return {r.reservation_id: r.status async for r in Reservation.objects.filter(reservation_id__in=(5, 6, 7))}

        assert await statuses() == {5: "active", 6: "active", 7: "active"}
        await charger.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))
        await charger.call(call16.StatusNotification(connector_id=2, error_code="NoError", status="Available"))
        assert await statuses() == {5: "cancelled", 6: "active", 7: "active"}
        await charger.call(call16.StatusNotification(connector_id=0, error_code="NoError", status="Unavailable"))
        assert await statuses() == {5: "cancelled", 6: "cancelled", 7: "cancelled"}


async def test_a_reserved_connector_reported_available_ends_its_reservation(daphne, api_daphne, api_key):
    """OCPP 1.6 §4.9 (transition E1): a Reserved connector becomes Available only when its reservation
    expires or is cancelled, so it holds none any more (expired by the charger's clock, lost at a
    reboot). Probe: the CSMS's stayed active until its expiry, and a later session of its id tag on
    the connector, naming no reservation, was recorded as using it. A connector never reported
    Reserved (a charger that does not show reservations) keeps its reservation when Available; one
    going Preparing keeps it for the start that uses it."""
    await ChargePoint.objects.acreate(charge_point_id="CP-RA", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="RFID-1")
    async with ocpp_charger(daphne, "1.6", "CP-RA", client_class=ReservingCharger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        for reservation_id, connector_id in ((5, 1), (6, 2), (7, 3), (8, 4)):
            reserve = {
                "connector_id": connector_id,
                "expiry_date": "2099-05-01T12:00:00Z",
                "id_tag": "RFID-1",
                "reservation_id": reservation_id,
            }
            status, _ = await ahttp(
                f"{api_daphne.http_url}/api/v1/ocpp16/CP-RA/reserve_now", method="POST", api_key=api_key, body=reserve
            )
            assert status == 200
        # The charger's clock expired 8 (the CSMS's sweep had not yet)
        await Reservation.objects.filter(reservation_id=8).aupdate(expiry_date=timezone.now())
        for connector_id in (1, 2, 4):
            await charger.call(
                call16.StatusNotification(connector_id=connector_id, error_code="NoError", status="Reserved")
            )
        await charger.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await charger.call(call16.StatusNotification(connector_id=2, error_code="NoError", status="Preparing"))
        await charger.call(call16.StatusNotification(connector_id=3, error_code="NoError", status="Available"))
        await charger.call(call16.StatusNotification(connector_id=4, error_code="NoError", status="Available"))
        statuses = {r.reservation_id: r.status async for r in Reservation.objects.all()}
        assert statuses == {5: "cancelled", 6: "active", 7: "active", 8: "expired"}
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="RFID-1", meter_start=0, timestamp="2026-05-01T10:00:00Z")
        )
    assert await Transaction.objects.filter(pk=started.transaction_id, reservation=None).aexists()


RefusingConnectorZero = answering_charger(V16Client, {"ReserveNow": result16.ReserveNow(status="Rejected")})


async def test_a_reservation_of_connector_0_a_charger_does_not_support_is_sent_with_a_warning(
    daphne, api_daphne, api_key
):
    """h8's probe: a charger that reported ReserveConnectorZeroSupported false answers Rejected to a
    ReserveNow of connector 0 (1.6 §5.13), which was sent without a word; the answer now says why."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-RZ", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="RFID-1")
    await ConfigurationKey.objects.acreate(
        charge_point=charge_point,
        key="ReserveConnectorZeroSupported",
        value="false",
        readonly=True,
        learned_from="GetConfiguration",
        learned_at=timezone.now(),
    )
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-RZ/reserve_now"
    answers = []
    async with ocpp_charger(daphne, "1.6", "CP-RZ", client_class=RefusingConnectorZero):
        for reservation_id, connector_id in ((1, 0), (2, 1)):
            reserve = {
                "connector_id": connector_id,
                "expiry_date": "2099-05-01T12:00:00Z",
                "id_tag": "RFID-1",
                "reservation_id": reservation_id,
            }
            status, reply = await ahttp(url, method="POST", api_key=api_key, body=reserve)
            answers.append((status, [warning.split(":")[0] for warning in reply.get("warnings", [])]))
    assert answers == [
        (409, ["The charge point reported ReserveConnectorZeroSupported false"]),
        (409, []),
    ]


async def test_the_reserved_id_tag_starting_without_the_reservation_id_uses_it(daphne, api_daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-RU", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="RFID-1")
    async with ocpp_charger(daphne, "1.6", "CP-RU", client_class=ReservingCharger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        reserve = {"connector_id": 1, "expiry_date": "2099-05-01T12:00:00Z", "id_tag": "RFID-1", "reservation_id": 8}
        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CP-RU/reserve_now", method="POST", api_key=api_key, body=reserve
        )
        assert status == 200
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="RFID-1", meter_start=0, timestamp="2026-05-01T10:00:00Z")
        )
        assert started.id_tag_info["status"] == "Accepted"
    reservation = await Reservation.objects.aget(reservation_id=8)
    assert reservation.status == ReservationStatus.USED
    assert await Transaction.objects.filter(pk=started.transaction_id, reservation=reservation).aexists()


async def test_a_connector_s_new_reservation_accepted_ends_the_one_the_charger_no_longer_holds(
    daphne, api_daphne, api_key
):
    """OCPP 1.6 §5.13: a charger answers Occupied to a ReserveNow of another reservationId for a
    connector it holds reserved, so an Accepted one says it holds no other there (it lost the first at a
    reboot, or its clock expired it). Probe: the first stayed active until its expiry, and a later
    session of its id tag on that connector, naming no reservation, was recorded as using it."""
    await ChargePoint.objects.acreate(charge_point_id="CP-RR", heartbeat_interval=60)
    for tag in ("RFID-A", "RFID-B"):
        await IdTag.objects.acreate(id_tag=tag)
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-RR/reserve_now"
    async with ocpp_charger(daphne, "1.6", "CP-RR", client_class=ReservingCharger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        for reservation_id, connector_id, tag in ((5, 1, "RFID-A"), (6, 1, "RFID-B"), (7, 2, "RFID-A")):
            reserve = {
                "connector_id": connector_id,
                "expiry_date": "2099-05-01T12:00:00Z",
                "id_tag": tag,
                "reservation_id": reservation_id,
            }
            status, _ = await ahttp(url, method="POST", api_key=api_key, body=reserve)
            assert status == 200
        statuses = {r.reservation_id: r.status async for r in Reservation.objects.all()}
        assert statuses == {5: "cancelled", 6: "active", 7: "active"}
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="RFID-A", meter_start=0, timestamp="2026-05-01T10:00:00Z")
        )
    assert await Transaction.objects.filter(pk=started.transaction_id, reservation=None).aexists()
    assert {r.reservation_id: r.status async for r in Reservation.objects.all()} == {
        5: "cancelled",
        6: "active",
        7: "active",
    }


async def test_local_list_versions_are_kept(daphne, api_daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-LL", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP-LL", client_class=LocalListCharger):
        body = {
            "list_version": 4,
            "update_type": "Full",
            "local_authorization_list": [
                {"id_tag": "RFID-1", "id_tag_info": {"status": "Accepted"}},
                {"id_tag": "RFID-2", "id_tag_info": {"status": "Blocked"}},
            ],
        }
        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CP-LL/send_local_list", method="POST", api_key=api_key, body=body
        )
        assert status == 200
        local_list = await LocalAuthList.objects.aget(charge_point__charge_point_id="CP-LL")
        assert (local_list.version, local_list.entries) == (4, {"RFID-1": "Accepted", "RFID-2": "Blocked"})

        status, reply = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CP-LL/get_local_list_version",
            method="POST",
            api_key=api_key,
            body={},
        )
        assert (status, reply) == (200, {"list_version": 9})
    assert (await LocalAuthList.objects.aget(charge_point__charge_point_id="CP-LL")).version == 9


class VersionedLocalListCharger(V16Client):
    """Holds a list version: a Differential update not after it is answered VersionMismatch (1.6 §7.44)."""

    version = 0

    @on("SendLocalList")
    def on_send_local_list(self, list_version: int, update_type: str, **_: Any) -> result16.SendLocalList:
        if update_type == "Differential" and list_version <= self.version:
            return result16.SendLocalList(status="VersionMismatch")
        self.version = list_version
        return result16.SendLocalList(status="Accepted")


async def test_a_differential_local_list_not_after_the_chargers_version_is_sent_with_a_warning(
    daphne, api_daphne, api_key
):
    """h8's probe: a Differential SendLocalList whose version is not after the list version the CSMS
    knows the charger holds is answered VersionMismatch (1.6 §7.44, 2.0.1 D01), and was sent without a
    word, as the list limits are not; the answer now carries a warning saying so."""
    await ChargePoint.objects.acreate(charge_point_id="CP-LLV", heartbeat_interval=60)
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-LLV/send_local_list"
    async with ocpp_charger(daphne, "1.6", "CP-LLV", client_class=VersionedLocalListCharger):
        answers = []
        for version, kind in ((5, "Full"), (5, "Differential"), (6, "Differential")):
            body = {"list_version": version, "update_type": kind, "local_authorization_list": [_entry("A")]}
            status, reply = await ahttp(url, method="POST", api_key=api_key, body=body)
            answers.append((status, [warning.split(":")[0] for warning in reply.get("warnings", [])]))
    assert answers == [
        (200, []),
        (409, ["A Differential update of version 5 is not after the charge point's list version 5"]),
        (200, []),
    ]


def _entry(id_tag: str, status: str | None = "Accepted") -> dict[str, Any]:
    return {"id_tag": id_tag, **({"id_tag_info": {"status": status}} if status else {})}


async def test_a_local_list_over_the_limits_the_charger_reported_is_sent_with_a_warning(daphne, api_daphne, api_key):
    """OCPP 1.6 9.4: SendLocalListMaxLength (entries in one SendLocalList) and LocalAuthListMaxLength
    (entries the list holds); over either the charger answers Failed. Probe: sent without a word."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-LLW", heartbeat_interval=60)
    for key, value in (("SendLocalListMaxLength", "2"), ("LocalAuthListMaxLength", "3")):
        await ConfigurationKey.objects.acreate(
            charge_point=charge_point,
            key=key,
            value=value,
            readonly=True,
            learned_from="GetConfiguration",
            learned_at=timezone.now(),
        )
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-LLW/send_local_list"
    per_message = (
        "3 entries exceed the 2 the charge point reported as SendLocalListMaxLength: it may refuse the update;"
        " send a Full update of at most that many, then Differential ones."
    )
    over = (
        "The list would hold 4 entries, more than the 3 the charge point reported as LocalAuthListMaxLength:"
        " it may answer Failed."
    )
    async with ocpp_charger(daphne, "1.6", "CP-LLW", client_class=LocalListCharger):
        answers = []
        for version, kind, entries in (
            (1, "Full", [_entry("A"), _entry("B"), _entry("C")]),
            (2, "Full", [_entry("A"), _entry("B")]),
            (3, "Differential", [_entry("C"), _entry("D")]),  # A, B, C, D
            (4, "Differential", [_entry("c"), _entry("b", None)]),  # A, C
        ):
            body = {"list_version": version, "update_type": kind, "local_authorization_list": entries}
            status, reply = await ahttp(url, method="POST", api_key=api_key, body=body)
            answers.append((status, reply.get("warnings", [])))
    assert answers == [(200, [per_message]), (200, []), (200, [over]), (200, [])]


ProfileCharger = answering_charger(V16Client, {"SetChargingProfile": result16.SetChargingProfile(status="Rejected")})


async def test_a_profile_the_charger_reported_it_cannot_take_is_sent_with_a_warning(daphne, api_daphne, api_key):
    """OCPP 1.6 9.4: ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods and
    ChargingScheduleAllowedChargingRateUnit; beyond them the charger rejects the profile (409). Round
    48's probe: sent without a word, the operator left with a bare Rejected."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-SCL", heartbeat_interval=60)
    reported = {
        "ChargeProfileMaxStackLevel": "2",
        "ChargingScheduleMaxPeriods": "1",
        "ChargingScheduleAllowedChargingRateUnit": "Current",
    }
    for key, value in reported.items():
        await ConfigurationKey.objects.acreate(
            charge_point=charge_point,
            key=key,
            value=value,
            readonly=True,
            learned_from="GetConfiguration",
            learned_at=timezone.now(),
        )
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-SCL/set_charging_profile"

    def body(stack_level: int, unit: str, limits: list[int]) -> dict[str, Any]:
        periods = [{"start_period": 600 * index, "limit": limit} for index, limit in enumerate(limits)]
        schedule = {"charging_rate_unit": unit, "charging_schedule_period": periods}
        profile = {
            "charging_profile_id": stack_level,
            "stack_level": stack_level,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": schedule,
        }
        return {"connector_id": 0, "cs_charging_profiles": profile}

    async with ocpp_charger(daphne, "1.6", "CP-SCL", client_class=ProfileCharger):
        answers = []
        for sent in (body(2, "A", [16]), body(3, "W", [11000, 7400])):
            status, reply = await ahttp(url, method="POST", api_key=api_key, body=sent)
            answers.append((status, reply.get("warnings", [])))
    assert answers == [
        (409, []),
        (
            409,
            [
                "Stack level 3 is above the 2 the charge point reported as ChargeProfileMaxStackLevel:"
                " it may reject the profile.",
                "2 schedule periods exceed the 1 the charge point reported as ChargingScheduleMaxPeriods:"
                " it may reject the profile.",
                "Charging rate unit W is not among those the charge point reported as"
                " ChargingScheduleAllowedChargingRateUnit (Current): it may reject the profile.",
            ],
        ),
    ]


ProfileStation = answering_charger(V201Client, {"SetChargingProfile": result201.SetChargingProfile(status="Rejected")})


async def test_a_profile_the_station_reported_it_cannot_take_is_sent_with_a_warning(daphne, api_daphne, api_key):
    """OCPP 2.0.1 SmartChargingCtrlr ProfileStackLevel, PeriodsPerSchedule and RateUnit: beyond them
    the station rejects the profile (409), which was sent without a word (round 48's probe)."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CS-SCL", heartbeat_interval=60)
    controller = {"name": "SmartChargingCtrlr"}
    await sync_to_async(device_model_attributes_record)(
        charge_point=charge_point,
        learned_from="NotifyReport",
        attributes=[
            ReportedAttribute(controller, {"name": name}, value=value, mutability="ReadOnly")
            for name, value in (("ProfileStackLevel", "2"), ("PeriodsPerSchedule", "1"), ("RateUnit", "A"))
        ],
    )
    periods = [{"start_period": 0, "limit": 11000}, {"start_period": 600, "limit": 7400}]
    profile = {
        "id": 3,
        "stack_level": 3,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": [{"id": 1, "charging_rate_unit": "W", "charging_schedule_period": periods}],
    }
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CS-SCL/set_charging_profile"
    async with ocpp_charger(daphne, "2.0.1", "CS-SCL", client_class=ProfileStation):
        status, reply = await ahttp(
            url, method="POST", api_key=api_key, body={"evse_id": 0, "charging_profile": profile}
        )
    assert (status, reply["warnings"]) == (
        409,
        [
            "Stack level 3 is above the 2 the charge point reported as SmartChargingCtrlr.ProfileStackLevel:"
            " it may reject the profile.",
            "2 schedule periods exceed the 1 the charge point reported as SmartChargingCtrlr.PeriodsPerSchedule:"
            " it may reject the profile.",
            "Charging rate unit W is not among those the charge point reported as SmartChargingCtrlr.RateUnit (A):"
            " it may reject the profile.",
        ],
    )


ReportStation = answering_charger(V201Client, {"GetReport": result201.GetReport(status="Accepted")})


async def test_a_get_report_over_the_station_s_device_data_controller_limits_is_sent_with_a_warning(
    daphne, api_daphne, api_key
):
    """OCPP 2.0.1 B08: DeviceDataCtrlr ItemsPerMessage and BytesPerMessage of instance GetReport
    bound a GetReportRequest's componentVariable entries; the station may refuse one over them."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CS-GRW", heartbeat_interval=60)
    controller = {"name": "DeviceDataCtrlr"}
    await sync_to_async(device_model_attributes_record)(
        charge_point=charge_point,
        learned_from="NotifyReport",
        attributes=[
            ReportedAttribute(controller, {"name": name, "instance": "GetReport"}, value=value, mutability="ReadOnly")
            for name, value in (("ItemsPerMessage", "1"), ("BytesPerMessage", "200"))
        ],
    )
    asked = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name}} for name in ("HeartbeatInterval", "X")
    ]
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CS-GRW/get_report"
    async with ocpp_charger(daphne, "2.0.1", "CS-GRW", client_class=ReportStation):
        body = {"request_id": 5, "component_variable": asked}
        status, reply = await ahttp(url, method="POST", api_key=api_key, body=body)
        one = {**body, "request_id": 6, "component_variable": asked[:1]}
        status_one, reply_one = await ahttp(url, method="POST", api_key=api_key, body=one)
    assert status == 200
    assert [warning.split(":")[0] for warning in reply["warnings"]] == [
        "2 items exceed the 1 the charge point reported as ItemsPerMessageGetReport",
        f"The {catalog.call_frame_bytes('GetReport', body)}-byte message exceeds the 200 the charge point"
        " reported as BytesPerMessageGetReport",
    ]
    assert (status_one, "warnings" in reply_one) == (200, False)


LocalListStation = answering_charger(V201Client, {"SendLocalList": result201.SendLocalList(status="Accepted")})


async def test_a_2_0_1_local_list_over_the_station_s_local_list_controller_is_sent_with_a_warning(
    daphne, api_daphne, api_key
):
    """OCPP 2.0.1 D01: LocalAuthListCtrlr.ItemsPerMessage, BytesPerMessage and the maxLimit of Entries."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CS-LLW", heartbeat_interval=60)
    controller = {"name": "LocalAuthListCtrlr"}
    await sync_to_async(device_model_attributes_record)(
        charge_point=charge_point,
        learned_from="NotifyReport",
        attributes=[
            ReportedAttribute(controller, {"name": "ItemsPerMessage"}, value="1", mutability="ReadOnly"),
            ReportedAttribute(controller, {"name": "BytesPerMessage"}, value="250", mutability="ReadOnly"),
            ReportedAttribute(controller, {"name": "Entries"}, value="0", characteristics={"max_limit": 1}),
        ],
    )
    tokens = [
        {"id_token": {"id_token": f"TOKEN-{n}", "type": "ISO14443"}, "id_token_info": {"status": "Accepted"}}
        for n in (1, 2)
    ]
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CS-LLW/send_local_list"
    async with ocpp_charger(daphne, "2.0.1", "CS-LLW", client_class=LocalListStation):
        body = {"version_number": 1, "update_type": "Full", "local_authorization_list": tokens}
        status, reply = await ahttp(url, method="POST", api_key=api_key, body=body)
        one = {**body, "local_authorization_list": tokens[:1]}
        status_one, reply_one = await ahttp(url, method="POST", api_key=api_key, body=one)
    assert status == 200
    assert [warning.split(":")[0] for warning in reply["warnings"]] == [
        "2 entries exceed the 1 the charge point reported as LocalAuthListCtrlr.ItemsPerMessage",
        f"The {catalog.call_frame_bytes('SendLocalList', body)}-byte message exceeds the 250 the charge point"
        " reported as LocalAuthListCtrlr.BytesPerMessage",
        "The list would hold 2 entries, more than the 1 the charge point reported as"
        " LocalAuthListCtrlr.Entries maxLimit",
    ]
    assert (status_one, "warnings" in reply_one) == (200, False)


def _weekday_profile(profile_id: int, valid_from: str, valid_to: str) -> dict[str, Any]:
    """A 2.0.1 SetChargingProfile body: a TxDefaultProfile on EVSE 1 at stack level 1, valid from/to."""
    return {
        "evse_id": 1,
        "charging_profile": {
            "id": profile_id,
            "stack_level": 1,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "valid_from": valid_from,
            "valid_to": valid_to,
            "charging_schedule": [
                {
                    "id": 1,
                    "charging_rate_unit": "A",
                    "start_schedule": valid_from,
                    "charging_schedule_period": [{"start_period": 0, "limit": 16}],
                }
            ],
        },
    }


async def test_a_2_0_1_station_keeps_profiles_of_one_stack_level_whose_validities_do_not_overlap(
    daphne, api_daphne, api_key
):
    """OCPP 2.0.1 K01.FR.06: a station holds profiles of the same purpose and stack level on one EVSE
    side by side when their validities do not overlap, and rejects one whose validity overlaps (1.6
    §5.16.2 replaced it). Probe: the CSMS forgot May's profile once June's was accepted (gone from its
    record of installed profiles, no longer warned about), and warned that the station "replaces" an
    overlapping one."""
    await ChargePoint.objects.acreate(charge_point_id="CS-K06", heartbeat_interval=60)
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CS-K06/set_charging_profile"
    may = _weekday_profile(11, "2031-05-01T00:00:00Z", "2031-06-01T00:00:00Z")
    june = _weekday_profile(12, "2031-06-01T00:00:00Z", "2031-07-01T00:00:00Z")
    mid_may = _weekday_profile(13, "2031-05-15T00:00:00Z", "2031-05-20T00:00:00Z")
    async with ocpp_charger(daphne, "2.0.1", "CS-K06", client_class=V201Charger):
        replies = [await ahttp(url, method="POST", api_key=api_key, body=body) for body in (may, june)]
        assert [(status, reply.get("warnings")) for status, reply in replies] == [(200, None), (200, None)]
        installed = InstalledChargingProfile.objects.filter(charge_point__charge_point_id="CS-K06")
        assert [p async for p in installed.order_by("profile_id").values_list("profile_id", flat=True)] == [11, 12]
        status, reply = await ahttp(url, method="POST", api_key=api_key, body=mid_may)
    assert status == 200
    assert reply["warnings"] == [
        "Profile 11 on connector 1 has the same purpose (TxDefaultProfile) and stack level (1) with an overlapping"
        " validity; the station rejects profile 13 (OCPP 2.0.1 K01.FR.06)."
    ]


ProfileReportingStation = answering_charger(
    V201Client,
    {
        "SetChargingProfile": result201.SetChargingProfile(status="Accepted"),
        "GetChargingProfiles": result201.GetChargingProfiles(status="NoProfiles"),
    },
)


def _reported_profile(profile_id: int, stack_level: int, purpose: str = "TxDefaultProfile") -> dict[str, Any]:
    """A ChargingProfileType as a station reports it (camelCase)."""
    return {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}
        ],
    }


async def test_the_profiles_a_2_0_1_station_reports_holding_are_what_the_csms_records_installed(
    daphne, api_daphne, api_key
):
    """OCPP 2.0.1 K09: GetChargingProfiles is answered NoProfiles (the station holds none of those asked
    about) or by ReportChargingProfiles listing them. Probe: both were acknowledged and nothing
    followed; the CSMS kept a profile the station no longer held recorded installed (and warned of
    conflicts with it), and did not record one it held that it had not set through its own command.
    Profiles set by another source (an energy manager) are not the CSMS's: not recorded."""
    await ChargePoint.objects.acreate(charge_point_id="CS-K09", heartbeat_interval=60)
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CS-K09"

    async def installed() -> list[tuple[int, int, str, int, str]]:
        rows = InstalledChargingProfile.objects.filter(charge_point__charge_point_id="CS-K09").order_by("profile_id")
        return [
            (p.connector_id, p.profile_id, p.purpose, p.stack_level, p.profile["charging_profile_kind"])
            async for p in rows
        ]

    async with ocpp_charger(daphne, "2.0.1", "CS-K09", client_class=ProfileReportingStation) as station:
        status, _ = await ahttp(
            f"{url}/set_charging_profile", method="POST", api_key=api_key, body=_SET_PROFILE_201_STACK_LEVEL_2
        )
        assert (status, await installed()) == (200, [(1, 31, "TxDefaultProfile", 2, "Relative")])
        asked = {"request_id": 4, "evse_id": 1, "charging_profile": {"charging_profile_purpose": "TxDefaultProfile"}}
        status, reply = await ahttp(f"{url}/get_charging_profiles", method="POST", api_key=api_key, body=asked)
        assert (status, reply["status"], await installed()) == (200, "NoProfiles", [])

        for source, reported in (
            ("CSO", [_reported_profile(32, 2), _reported_profile(33, 3)]),
            ("EMS", [_reported_profile(34, 4, "TxProfile")]),
        ):
            await station.call(
                call201.ReportChargingProfiles(
                    request_id=5, charging_limit_source=source, evse_id=1, charging_profile=reported, tbc=True
                )
            )
    assert await installed() == [(1, 32, "TxDefaultProfile", 2, "Relative"), (1, 33, "TxDefaultProfile", 3, "Relative")]


ProfileHoldingStation = answering_charger(
    V201Client,
    {
        "SetChargingProfile": result201.SetChargingProfile(status="Accepted"),
        "GetChargingProfiles": result201.GetChargingProfiles(status="Accepted"),
    },
)


async def test_a_complete_2_0_1_profile_report_forgets_the_profiles_asked_about_that_it_left_out(
    daphne, api_daphne, api_key
):
    """OCPP 2.0.1 K09: the ReportChargingProfiles answering a GetChargingProfiles list every profile the
    station holds among those asked about; the last has ``tbc`` false. Probe: the CSMS kept recording
    installed (and warning of conflicts with) a profile asked about that no report of the completed
    sequence listed; one on another EVSE, not asked about, stays, and so does every one while
    reports are still to come."""
    await ChargePoint.objects.acreate(charge_point_id="CS-K09-GONE", heartbeat_interval=60)
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CS-K09-GONE"

    async def installed() -> list[tuple[int, int]]:
        rows = InstalledChargingProfile.objects.filter(charge_point__charge_point_id="CS-K09-GONE")
        return [(p.connector_id, p.profile_id) async for p in rows.order_by("connector_id", "profile_id")]

    async with ocpp_charger(daphne, "2.0.1", "CS-K09-GONE", client_class=ProfileHoldingStation) as station:
        for evse_id, profile_id, stack_level in ((1, 31, 2), (1, 35, 5), (2, 36, 2)):
            profile = {**_SET_PROFILE_201_STACK_LEVEL_2["charging_profile"], "id": profile_id}
            profile["stack_level"] = stack_level
            body = {"evse_id": evse_id, "charging_profile": profile}
            status, _ = await ahttp(f"{url}/set_charging_profile", method="POST", api_key=api_key, body=body)
            assert status == 200
        asked = {"request_id": 7, "evse_id": 1, "charging_profile": {"charging_profile_purpose": "TxDefaultProfile"}}
        status, reply = await ahttp(f"{url}/get_charging_profiles", method="POST", api_key=api_key, body=asked)
        assert (status, reply["status"]) == (200, "Accepted")

        await station.call(
            call201.ReportChargingProfiles(
                request_id=7,
                charging_limit_source="CSO",
                evse_id=1,
                charging_profile=[_reported_profile(31, 2)],
                tbc=True,
            )
        )
        assert await installed() == [(1, 31), (1, 35), (2, 36)]  # more to come
        await station.call(
            call201.ReportChargingProfiles(
                request_id=7, charging_limit_source="EMS", evse_id=1, charging_profile=[_reported_profile(34, 4)]
            )
        )
    assert await installed() == [(1, 31), (2, 36)]


_SET_PROFILE_201_STACK_LEVEL_2 = {
    "evse_id": 1,
    "charging_profile": {
        "id": 31,
        "stack_level": 2,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": [
            {"id": 1, "charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 16}]}
        ],
    },
}


AcceptingProfileCharger = answering_charger(
    V16Client, {"SetChargingProfile": result16.SetChargingProfile(status="Accepted")}
)


async def test_a_1_6_profile_of_one_stack_level_replaces_the_other_whatever_their_validities(
    daphne, api_daphne, api_key
):
    """OCPP 1.6 §5.16.2: a profile with the purpose and stack level of an installed one on its connector
    replaces it; validity periods play no part (K01.FR.06's side by side is 2.0.1's). Probe: June's
    TxDefaultProfile after May's, their validities disjoint, was sent without a warning and the CSMS
    recorded only June's: the operator lost May's limit without a word."""
    await ChargePoint.objects.acreate(charge_point_id="CP-K06", heartbeat_interval=60)
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-K06/set_charging_profile"

    def month(profile_id: int, valid_from: str, valid_to: str) -> dict[str, Any]:
        schedule = {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 16}]}
        profile = {
            "charging_profile_id": profile_id,
            "stack_level": 1,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "valid_from": valid_from,
            "valid_to": valid_to,
            "charging_schedule": schedule,
        }
        return {"connector_id": 1, "cs_charging_profiles": profile}

    may = month(11, "2031-05-01T00:00:00Z", "2031-06-01T00:00:00Z")
    june = month(12, "2031-06-01T00:00:00Z", "2031-07-01T00:00:00Z")
    async with ocpp_charger(daphne, "1.6", "CP-K06", client_class=AcceptingProfileCharger):
        replies = [await ahttp(url, method="POST", api_key=api_key, body=body) for body in (may, june)]
    assert [(status, reply.get("warnings")) for status, reply in replies] == [
        (200, None),
        (
            200,
            [
                "Profile 11 on connector 1 has the same purpose (TxDefaultProfile) and stack level (1); the charger"
                " replaces it with profile 12, though their validity periods do not overlap (OCPP 1.6 §5.16.2):"
                " give it another stack level to keep both."
            ],
        ),
    ]
    installed = InstalledChargingProfile.objects.filter(charge_point__charge_point_id="CP-K06")
    assert [p async for p in installed.values_list("profile_id", flat=True)] == [12]


async def test_a_2_0_1_local_list_holds_a_token_of_two_types_as_two_entries(daphne, api_daphne, api_key):
    """OCPP 2.0.1 identifies a token by its idToken and type (IdTokenType, D01): a card's UID and a
    PIN code (KeyCode) of the same characters are two entries of a list. Probe: recorded by the token
    alone, the two were one entry, a Differential removal of one removed both from the record, and
    the list's size was counted short (no warning of a list over its Entries maxLimit)."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CS-LLT", heartbeat_interval=60)
    await sync_to_async(device_model_attributes_record)(
        charge_point=charge_point,
        learned_from="NotifyReport",
        attributes=[
            ReportedAttribute(
                {"name": "LocalAuthListCtrlr"}, {"name": "Entries"}, value="0", characteristics={"max_limit": 2}
            )
        ],
    )

    def entry(id_token: str, token_type: str, status: str | None = "Accepted") -> dict[str, Any]:
        info = {"id_token_info": {"status": status}} if status else {}
        return {"id_token": {"id_token": id_token, "type": token_type}, **info}

    url = f"{api_daphne.http_url}/api/v1/ocpp201/CS-LLT/send_local_list"
    answers, recorded = [], []
    async with ocpp_charger(daphne, "2.0.1", "CS-LLT", client_class=LocalListStation):
        for version, kind, entries in (
            (1, "Full", [entry("1234", "ISO14443"), entry("1234", "KeyCode", "Blocked")]),
            (2, "Differential", [entry("ABC", "ISO14443")]),  # three: over the maxLimit of 2
            (3, "Differential", [entry("1234", "KeyCode", None)]),
            (4, "Differential", [entry("abc", "ISO14443", "Blocked")]),
        ):
            body = {"version_number": version, "update_type": kind, "local_authorization_list": entries}
            status, reply = await ahttp(url, method="POST", api_key=api_key, body=body)
            answers.append((status, [warning.split(":")[0] for warning in reply.get("warnings", [])]))
            recorded.append((await LocalAuthList.objects.aget(charge_point=charge_point)).entries)
    over = "The list would hold 3 entries, more than the 2 the charge point reported as"
    over += " LocalAuthListCtrlr.Entries maxLimit"
    assert answers == [
        (200, []),
        (200, [over]),
        (200, []),
        (200, []),
    ]
    assert recorded == [
        {"1234 (ISO14443)": "Accepted", "1234 (KeyCode)": "Blocked"},
        {"1234 (ISO14443)": "Accepted", "1234 (KeyCode)": "Blocked", "ABC (ISO14443)": "Accepted"},
        {"1234 (ISO14443)": "Accepted", "ABC (ISO14443)": "Accepted"},
        {"1234 (ISO14443)": "Accepted", "abc (ISO14443)": "Blocked"},
    ]


async def test_a_charger_moved_to_2_0_1_holds_none_of_its_1_6_local_list(daphne, api_daphne, api_key):
    """A charger upgraded from 1.6 to 2.0.1 under the same id (its new firmware starts without a list,
    as it does without the old charging profiles). Probe: its 1.6 list (version 5, three cards) stood
    for the station's, a Differential update of version 1 was warned it would be answered
    VersionMismatch, and once accepted the station's list was recorded with the 1.6 cards beside its
    own card."""
    await ChargePoint.objects.acreate(charge_point_id="CP-LLM", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP-LLM", client_class=LocalListCharger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        body = {
            "list_version": 5,
            "update_type": "Full",
            "local_authorization_list": [_entry("OLD-1"), _entry("OLD-2"), _entry("OLD-3")],
        }
        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CP-LLM/send_local_list", method="POST", api_key=api_key, body=body
        )
        assert status == 200
    async with ocpp_charger(daphne, "2.0.1", "CP-LLM", client_class=LocalListStation) as station:
        await station.call(
            call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="FirmwareUpdate")
        )
        body = {
            "version_number": 1,
            "update_type": "Differential",
            "local_authorization_list": [
                {"id_token": {"id_token": "NEW-1", "type": "ISO14443"}, "id_token_info": {"status": "Accepted"}}
            ],
        }
        status, reply = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp201/CP-LLM/send_local_list", method="POST", api_key=api_key, body=body
        )
    assert (status, reply) == (200, {"status": "Accepted"})
    local_list = await LocalAuthList.objects.aget(charge_point__charge_point_id="CP-LLM")
    assert (local_list.version, local_list.ocpp_version, local_list.entries) == (
        1,
        "2.0.1",
        {"NEW-1 (ISO14443)": "Accepted"},
    )


ReservingStation = answering_charger(V201Client, {"ReserveNow": result201.ReserveNow(status="Accepted")})


async def test_a_2_0_1_reservation_is_used_by_its_token_of_its_type_only(daphne, api_daphne, api_key):
    """OCPP 2.0.1 identifies a token by its idToken and type (H01: the reserved IdToken): a
    reservation for the PIN code ``1234`` (KeyCode) is not the card ``1234``'s. Probe: the record
    kept no type, and a start by the card ``1234`` (ISO14443) naming no reservation used it."""
    await ChargePoint.objects.acreate(charge_point_id="CS-RT", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="1234")  # blank type: the card and the PIN code both Accepted
    reserve = {
        "id": 4,
        "expiry_date_time": "2099-05-01T12:00:00Z",
        "evse_id": 1,
        "id_token": {"id_token": "1234", "type": "KeyCode"},
    }

    def started(transaction_id: str, token_type: str) -> call201.TransactionEvent:
        return call201.TransactionEvent(
            event_type="Started",
            timestamp="2026-05-01T10:00:00Z",
            trigger_reason="Authorized",
            seq_no=0,
            transaction_info={"transaction_id": transaction_id},
            evse={"id": 1, "connector_id": 1},
            id_token={"id_token": "1234", "type": token_type},
        )

    async with ocpp_charger(daphne, "2.0.1", "CS-RT", client_class=ReservingStation) as charger:
        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp201/CS-RT/reserve_now", method="POST", api_key=api_key, body=reserve
        )
        assert status == 200
        card = await charger.call(started("TX-CARD", "ISO14443"))
        assert card.id_token_info["status"] == "Accepted"
        card_reservation = (await Reservation.objects.aget(reservation_id=4)).status
        pin = await charger.call(started("TX-PIN", "KeyCode"))
        assert pin.id_token_info["status"] == "Accepted"
    reservation = await Reservation.objects.aget(reservation_id=4)
    assert (card_reservation, reservation.token_type, reservation.status) == ("active", "KeyCode", "used")
    sessions = {t.ocpp_transaction_id: t.reservation_id async for t in Transaction.objects.all()}
    assert sessions == {"TX-CARD": None, "TX-PIN": reservation.pk}
