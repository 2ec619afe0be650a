"""The gateway end to end: a real daphne process, real WebSockets, chargers from the ``ocpp`` package."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargepoints.models import ChargePoint, Connector, Heartbeat, LifecycleState, OcppMessage
from conftest import ahttp, eventually, ocpp_charger, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def register(charge_point_id: str, heartbeat_interval: int = 45, **fields: object) -> ChargePoint:
    return await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=heartbeat_interval, **fields
    )


async def test_v16_charger_boots_heartbeats_and_reports_status(daphne, api_key):
    await register("CP16", heartbeat_interval=45)
    async with ocpp_charger(daphne, "1.6", "CP16") as charger:
        boot = await charger.call(
            call16.BootNotification(
                charge_point_vendor="Alfen",
                charge_point_model="Eve Single",
                charge_point_serial_number="SN-16",
                firmware_version="4.12",
            )
        )
        assert boot.status == "Accepted"
        assert boot.interval == 45
        assert boot.current_time.endswith("Z")
        heartbeat = await charger.call(call16.Heartbeat())
        assert heartbeat.current_time.endswith("Z")
        await charger.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))

        async def heartbeat_written() -> dict | None:  # heartbeats are written behind, within a second
            status, body = await ahttp(
                f"{daphne.http_url}/api/v1/installer/charge-points/CP16/connection-status", api_key=api_key
            )
            return body if status == 200 and body["last_heartbeat"] else None

        body = await eventually(heartbeat_written, timeout=5)
        assert set(body) == {"charge_point_id", "connected", "last_heartbeat", "ocpp_version"}
        assert body["charge_point_id"] == "CP16"
        assert body["connected"] is True
        assert body["ocpp_version"] == "1.6"
        assert body["last_heartbeat"].endswith("Z")

        status, connectors = await ahttp(f"{daphne.http_url}/api/v1/chargepoints/CP16/connectors", api_key=api_key)
        assert status == 200
        assert [(c["connector_id"], c["evse_id"], c["status"], c["error_code"]) for c in connectors] == [
            (1, None, "Available", "NoError")
        ]

    charge_point = await ChargePoint.objects.aget(charge_point_id="CP16")
    assert (charge_point.vendor, charge_point.model, charge_point.serial_number, charge_point.firmware_version) == (
        "Alfen",
        "Eve Single",
        "SN-16",
        "4.12",
    )
    assert await Heartbeat.objects.filter(charge_point=charge_point).acount() == 1


async def test_v16_boot_s_meter_type_and_serial_number_are_kept_and_read_back(daphne, api_key):
    """OCPP 1.6 §6.3 BootNotification.req meterType, meterSerialNumber: the meter a charger bills
    by was dropped (no column, no API field); kept now like the other boot fields, and a later boot
    without them blanks them as it does the others."""
    await register("CP16-METER")
    boot = call16.BootNotification(
        charge_point_vendor="Alfen", charge_point_model="Eve", meter_type="EM340", meter_serial_number="M-7"
    )
    async with ocpp_charger(daphne, "1.6", "CP16-METER") as charger:
        assert (await charger.call(boot)).status == "Accepted"
    status, body = await ahttp(f"{daphne.http_url}/api/v1/chargepoints/CP16-METER", api_key=api_key)
    assert status == 200
    assert (body["meter_type"], body["meter_serial_number"]) == ("EM340", "M-7")
    async with ocpp_charger(daphne, "1.6", "CP16-METER") as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Alfen", charge_point_model="Eve"))
    charge_point = await ChargePoint.objects.aget(charge_point_id="CP16-METER")
    assert (charge_point.meter_type, charge_point.meter_serial_number) == ("", "")


async def test_v201_charger_boots_heartbeats_and_reports_status(daphne, api_key):
    await register("CP201", heartbeat_interval=120)
    async with ocpp_charger(daphne, "2.0.1", "CP201") as charger:
        boot = await charger.call(
            call201.BootNotification(
                charging_station={
                    "vendor_name": "ABB",
                    "model": "Terra AC",
                    "serial_number": "SN-201",
                    "firmware_version": "1.8",
                },
                reason="PowerUp",
            )
        )
        assert (boot.status, boot.interval) == ("Accepted", 120)
        await charger.call(call201.Heartbeat())
        await charger.call(
            call201.StatusNotification(
                timestamp="2026-05-01T12:22:00+02:00", connector_status="Occupied", evse_id=1, connector_id=1
            )
        )
        status, body = await ahttp(
            f"{daphne.http_url}/api/v1/installer/charge-points/CP201/connection-status", api_key=api_key
        )
        assert (status, body["connected"], body["ocpp_version"]) == (200, True, "2.0.1")

    connector = await Connector.objects.aget(charge_point__charge_point_id="CP201")
    assert (connector.evse_id, connector.connector_id, connector.status) == (1, 1, "Occupied")
    assert connector.status_timestamp.isoformat() == "2026-05-01T10:22:00+00:00"
    charge_point = await ChargePoint.objects.aget(charge_point_id="CP201")
    assert (charge_point.vendor, charge_point.serial_number) == ("ABB", "SN-201")


async def test_closing_the_socket_shows_disconnected_within_a_second(daphne, api_key):
    await register("CP-CLOSE")
    async with ocpp_charger(daphne, "1.6", "CP-CLOSE") as charger:
        await charger.call(call16.Heartbeat())

    async def disconnected() -> bool:
        status, body = await ahttp(
            f"{daphne.http_url}/api/v1/installer/charge-points/CP-CLOSE/connection-status", api_key=api_key
        )
        return status == 200 and body["connected"] is False

    await eventually(disconnected, timeout=1.0)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_unknown_charge_point_is_refused_at_the_handshake(daphne, version):
    with pytest.raises(InvalidStatus) as refused:
        async with raw_socket(daphne, version, "NOBODY"):
            pass
    assert refused.value.response.status_code == 403


async def test_decommissioned_charge_point_is_refused_at_the_handshake(daphne):
    await register("CP-OLD", lifecycle_state=LifecycleState.DECOMMISSIONED)
    with pytest.raises(InvalidStatus):
        async with raw_socket(daphne, "1.6", "CP-OLD"):
            pass


@pytest.mark.parametrize("offered", [["ocpp2.0.1"], None, ["foo"], ["OCPP1.6"]])
async def test_wrong_subprotocol_is_not_agreed(daphne, offered):
    """OCPP-J 1.6 and 2.0.1 part 4 §3.1.2: the handshake completes with no subprotocol, then the
    CSMS closes the socket at once (it was an HTTP 403)."""
    await register("CP-PROTO")
    async with connect(daphne.ws_url("1.6", "CP-PROTO"), subprotocols=offered) as websocket:
        assert websocket.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), timeout=5)
    assert closed.value.rcvd is not None  # closed by the CSMS, with a close frame
    assert not (await ChargePoint.objects.aget(charge_point_id="CP-PROTO")).connected


async def test_a_refusal_for_the_subprotocol_logs_the_start_of_what_was_offered(daphne):
    """The whole offer was logged: a 12 KB line for each handshake offering 1,500 made-up protocols
    (before the identity is looked up: anyone may send one)."""
    offered = [f"p{n:05d}" for n in range(1500)]
    async with connect(daphne.ws_url("1.6", "CP-OFFERS"), subprotocols=offered) as websocket:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(websocket.recv(), timeout=5)
    lines = [line for line in daphne.log().splitlines() if "CP-OFFERS: refused, subprotocol" in line]
    assert lines and all(len(line) < 500 for line in lines)


async def test_the_negotiated_subprotocol_is_echoed(daphne):
    await register("CP-ECHO")
    async with connect(daphne.ws_url("2.0.1", "CP-ECHO"), subprotocols=["ocpp1.6", "ocpp2.0.1"]) as websocket:
        assert websocket.subprotocol == "ocpp2.0.1"


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=8",  # RFC 7692 allows 8 to 15
        "permessage-deflate; client_max_window_bits=8",
        "permessage-deflate; x-vendor-option",
    ],
)
async def test_a_compression_offer_is_declined_and_the_charger_served(daphne, offer):
    """The CSMS takes no compression. An offer autobahn would not take was answered 400 after the
    charger was accepted: a charger whose WebSocket library offers it could never connect. RFC 7692
    §5: such an offer is declined, the handshake goes on."""
    await register("CP-DEFLATE")
    headers = {"Sec-WebSocket-Extensions": offer}
    async with connect(
        daphne.ws_url("1.6", "CP-DEFLATE"), subprotocols=["ocpp1.6"], compression=None, additional_headers=headers
    ) as websocket:
        assert websocket.response.headers.get("Sec-WebSocket-Extensions") is None
        assert (await exchange(websocket, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]


async def test_unknown_path_is_refused(daphne):
    with pytest.raises(InvalidStatus):
        async with connect(f"ws://127.0.0.1:{daphne.port}/ocpp/1.5/CP", subprotocols=["ocpp1.5"]):
            pass


async def exchange(websocket, frame: object) -> list:
    await websocket.send(frame if isinstance(frame, str) else json.dumps(frame))
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout=5))


async def test_schema_violation_is_answered_with_a_callerror_of_the_same_id(daphne):
    await register("CP-BAD")
    async with raw_socket(daphne, "1.6", "CP-BAD") as websocket:
        extra_field = await exchange(
            websocket, [2, "id-1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M", "x": 1}]
        )
        assert extra_field[:3] == [4, "id-1", "FormationViolation"]
        wrong_type = await exchange(
            websocket,
            [2, "id-2", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}],
        )
        assert wrong_type[:3] == [4, "id-2", "TypeConstraintViolation"]
        missing = await exchange(websocket, [2, "id-3", "BootNotification", {"chargePointVendor": "V"}])
        assert missing[:3] == [4, "id-3", "ProtocolError"]
        assert (await exchange(websocket, [2, "id-4", "Heartbeat", {}]))[:2] == [3, "id-4"]


async def test_v201_schema_violation_uses_the_201_error_code(daphne):
    await register("CP-BAD201")
    async with raw_socket(daphne, "2.0.1", "CP-BAD201") as websocket:
        answer = await exchange(
            websocket,
            [
                2,
                "a1",
                "BootNotification",
                {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}, "x": 1},
            ],
        )
        assert answer[:3] == [4, "a1", "FormatViolation"]


async def test_non_json_and_malformed_frames_do_not_close_the_socket(daphne):
    await register("CP-JUNK")
    async with raw_socket(daphne, "1.6", "CP-JUNK") as websocket:
        await websocket.send("this is not json")
        await websocket.send(b"\x00\x01binary")
        assert (await exchange(websocket, [2, "short"]))[:3] == [4, "short", "ProtocolError"]
        answer = await exchange(websocket, [2, "hb", "Heartbeat", {}])
        assert answer[0:2] == [3, "hb"]
        assert answer[2]["currentTime"].endswith("Z")


async def test_unknown_actions_get_not_implemented_and_unanswered_ones_not_supported(daphne):
    await register("CP-ACT")
    async with raw_socket(daphne, "1.6", "CP-ACT") as websocket:
        assert (await exchange(websocket, [2, "u1", "MakeCoffee", {}]))[:3] == [4, "u1", "NotImplemented"]
        assert (await exchange(websocket, [2, "u2", "GetConfiguration", {}]))[:3] == [4, "u2", "NotSupported"]


async def test_a_connector_id_no_column_can_hold_is_refused_and_the_socket_lives(daphne):
    await register("CP-HUGE")
    async with raw_socket(daphne, "1.6", "CP-HUGE") as websocket:
        for unique_id, connector_id in (("big", 2**40), ("negative", -1)):
            status = {"connectorId": connector_id, "errorCode": "NoError", "status": "Available"}
            answer = await exchange(websocket, [2, unique_id, "StatusNotification", status])
            assert answer[:3] == [4, unique_id, "PropertyConstraintViolation"]  # the type is right, the value not
        assert (await exchange(websocket, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]


async def test_a_second_connection_replaces_the_first(daphne):
    await register("CP-TWICE")
    async with raw_socket(daphne, "1.6", "CP-TWICE") as first, raw_socket(daphne, "1.6", "CP-TWICE") as second:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(first.recv(), timeout=5)
        assert (await exchange(second, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]
        await asyncio.sleep(0.2)  # the first consumer's disconnect has run by now
        assert (await ChargePoint.objects.aget(charge_point_id="CP-TWICE")).connected


async def test_every_frame_in_and_out_is_logged(daphne):
    await register("CP-LOG")
    async with raw_socket(daphne, "1.6", "CP-LOG") as websocket:
        await exchange(websocket, [2, "hb-1", "Heartbeat", {}])

    async def logged() -> list[tuple[str, int | None, str, str]]:
        rows = OcppMessage.objects.filter(charge_point__charge_point_id="CP-LOG").order_by("created_at", "id")
        return [(m.direction, m.message_type, m.unique_id, m.action) async for m in rows]

    assert await eventually(logged) == [("in", 2, "hb-1", "Heartbeat"), ("out", 3, "hb-1", "Heartbeat")]


async def test_an_ocpp_version_set_from_a_read_older_than_the_chargers_handshake_is_refused(daphne, api_key):
    """The API reads the charger (offline, registered for 1.6), the charger connects over 2.0.1 on
    any process, then the change is saved: it is refused as for a charger read connected, and the
    version stays the one its connection speaks (commands are checked against it)."""
    from chargepoints.services import ChargePointConnectedOverVersion, charge_point_update

    read_before = await register("CP-UPGRADED", ocpp_version="1.6")
    async with ocpp_charger(daphne, "2.0.1", "CP-UPGRADED"):
        with pytest.raises(ChargePointConnectedOverVersion):
            await asyncio.to_thread(charge_point_update, charge_point=read_before, ocpp_version="1.6")
        stored = await ChargePoint.objects.aget(charge_point_id="CP-UPGRADED")
        assert stored.ocpp_version == "2.0.1" and stored.connected
        status, body = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/CP-UPGRADED",
            method="PATCH",
            api_key=api_key,
            body={"ocpp_version": "1.6"},
        )
        assert status == 400 and "ocpp_version" in body["details"]
