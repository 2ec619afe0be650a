"""The configuration store end to end: real daphne, real ``ocpp``-package chargers, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db.models.functions import Now
from ocpp.exceptions import FormatViolationError, OccurenceConstraintViolationError
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from chargepoints.models import ChargePoint
from chargepoints.services import mark_offline_stale_charge_points
from commands.models import Command
from configuration.models import ConfigurationKey, DeviceModelAttribute, DeviceModelReport, DeviceModelVariable
from configuration.tests.conftest import (
    V16_CONFIGURATION,
    V16_READONLY,
    V201_REPORT_PARTS,
    V201_VARIABLE_COUNT,
    ConfiguredV16Charger,
    ReportingV201Station,
    _report_item,
)
from conftest import ahttp, eventually, ocpp_charger, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

BOOT_16 = call16.BootNotification(charge_point_vendor="Alfen", charge_point_model="Eve Single")
BOOT_201 = call201.BootNotification(charging_station={"vendor_name": "ABB", "model": "Terra AC"}, reason="PowerUp")


async def register(charge_point_id: str) -> None:
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)


def stored_keys(charge_point_id: str):
    return ConfigurationKey.objects.filter(charge_point__charge_point_id=charge_point_id)


async def test_v16_configuration_is_read_after_boot_and_all_30_keys_are_listed(daphne, refreshing_daphne, api_key):
    await register("CFG16")
    async with ocpp_charger(refreshing_daphne, "1.6", "CFG16", client_class=ConfiguredV16Charger) as charger:
        assert (await charger.call(BOOT_16)).status == "Accepted"
        await eventually(lambda: stored_keys("CFG16").acount(), timeout=10)
        assert charger.received[0] == ("GetConfiguration", {"key": None})

        status, body = await ahttp(
            f"{refreshing_daphne.http_url}/api/v1/chargepoints/CFG16/configuration", api_key=api_key
        )
    assert status == 200
    assert body["ocpp_version"] == "1.6"
    assert len(body["keys"]) == 30
    assert {row["key"]: row["value"] for row in body["keys"]} == V16_CONFIGURATION
    assert {row["key"] for row in body["keys"] if row["readonly"]} == V16_READONLY
    command = await Command.objects.aget(charge_point_identity="CFG16", action="GetConfiguration")
    assert {(row["learned_from"], row["command_id"]) for row in body["keys"]} == {("GetConfiguration", str(command.id))}
    assert all(row["learned_at"].endswith("Z") and row["unknown"] is False for row in body["keys"])


async def _boot_read_count(
    server, charge_point_id: str, boot: call16.BootNotification, *, read_expected: bool = False
) -> int:
    """Connect and boot: how many GetConfiguration this connection received within 1.5 s (on an idle
    server the read after a boot is asked about ``QUIET_SECONDS``, 0.1 s, after its answer), or
    within 10 s where one is expected (a loaded machine may take longer; the wait ends when it arrives)."""
    async with ocpp_charger(server, "1.6", charge_point_id, client_class=ConfiguredV16Charger) as charger:
        assert (await charger.call(boot)).status == "Accepted"
        with contextlib.suppress(AssertionError):
            await eventually(lambda: charger.received, timeout=10.0 if read_expected else 1.5)
        await charger.call(call16.Heartbeat())
        return sum(action == "GetConfiguration" for action, _ in charger.received)


async def _reads_answered(charge_point_id: str, count: int) -> bool:
    """Whether ``count`` GetConfiguration reads of the charger were answered (keys stored)."""
    answered = Command.objects.filter(
        charge_point_identity=charge_point_id, action="GetConfiguration", completed_at__isnull=False
    )
    return await answered.acount() == count


async def test_v16_a_reboot_reporting_the_same_firmware_after_a_recent_read_is_not_read_again(
    daphne, refreshing_daphne
):
    await register("CFG16R")
    assert await _boot_read_count(refreshing_daphne, "CFG16R", BOOT_16, read_expected=True) == 1
    await eventually(lambda: stored_keys("CFG16R").acount(), timeout=10)
    assert await _boot_read_count(refreshing_daphne, "CFG16R", BOOT_16) == 0  # a restart's storm
    assert await _boot_read_count(refreshing_daphne, "CFG16R", BOOT_16) == 0  # and the next: still 6.0's read
    updated = call16.BootNotification(
        charge_point_vendor="Alfen", charge_point_model="Eve Single", firmware_version="6.1"
    )
    assert await _boot_read_count(refreshing_daphne, "CFG16R", updated, read_expected=True) == 1  # new firmware
    await eventually(lambda: _reads_answered("CFG16R", 2), timeout=10)  # its keys stored before a value waits
    await stored_keys("CFG16R").filter(key="HeartbeatInterval").aupdate(pending_value="120")
    waiting_value_read = await _boot_read_count(refreshing_daphne, "CFG16R", updated, read_expected=True)
    assert waiting_value_read == 1  # a value waits for the reboot
    assert await Command.objects.filter(charge_point_identity="CFG16R", action="GetConfiguration").acount() == 3


async def _owed_marked(charge_point_id: str) -> None:
    """As another process marks a read its charger's socket closed before: after the charger's boot."""
    await ChargePoint.objects.filter(charge_point_id=charge_point_id).aupdate(configuration_read_owed=True)


async def _owed(charge_point_id: str) -> bool:
    return (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).configuration_read_owed


async def _cleared(charge_point_id: str) -> bool:
    return not await _owed(charge_point_id)


async def test_v16_a_read_owed_is_asked_after_the_next_connection_s_first_message_without_a_boot(
    daphne, refreshing_daphne
):
    """A 1.6 charger back from a network drop sends no BootNotification: its owed read follows its
    first message's answer, clears the mark, and the connection after it is not read again."""
    await register("CFG16OWED")
    await _owed_marked("CFG16OWED")
    async with ocpp_charger(refreshing_daphne, "1.6", "CFG16OWED", client_class=ConfiguredV16Charger) as charger:
        await charger.call(call16.Heartbeat())
        await eventually(lambda: stored_keys("CFG16OWED").acount(), timeout=10)
        assert charger.received[0] == ("GetConfiguration", {"key": None})
    await eventually(lambda: _cleared("CFG16OWED"), timeout=10)
    async with ocpp_charger(refreshing_daphne, "1.6", "CFG16OWED", client_class=ConfiguredV16Charger) as charger:
        await charger.call(call16.Heartbeat())
        await asyncio.sleep(1.0)
        await charger.call(call16.Heartbeat())
        assert charger.received == []


async def test_v16_a_charger_that_leaves_right_after_its_boot_is_read_on_its_next_connection_without_a_boot(
    daphne, refreshing_daphne
):
    """The read waits its turn after the Boot's answer (or its CALL meets a closed socket): the
    charger's close marks it owed, and its next connection, without a boot, is read after its first
    message."""
    await register("CFG16LEFT")
    async with ocpp_charger(refreshing_daphne, "1.6", "CFG16LEFT", client_class=ConfiguredV16Charger) as charger:
        assert (await charger.call(BOOT_16)).status == "Accepted"
    await eventually(lambda: _owed("CFG16LEFT"), timeout=10)
    async with ocpp_charger(refreshing_daphne, "1.6", "CFG16LEFT", client_class=ConfiguredV16Charger) as charger:
        await charger.call(call16.Heartbeat())
        await eventually(lambda: stored_keys("CFG16LEFT").acount(), timeout=10)
        assert charger.received[0] == ("GetConfiguration", {"key": None})
    await eventually(lambda: _cleared("CFG16LEFT"), timeout=10)


async def test_v16_a_read_owed_asked_after_a_boot_clears_the_mark(daphne, refreshing_daphne):
    await register("CFG16OWEDB")
    await _owed_marked("CFG16OWEDB")
    assert await _boot_read_count(refreshing_daphne, "CFG16OWEDB", BOOT_16, read_expected=True) == 1
    await eventually(lambda: _reads_answered("CFG16OWEDB", 1), timeout=10)
    await eventually(lambda: _cleared("CFG16OWEDB"), timeout=10)


async def test_v201_a_read_owed_is_asked_after_the_next_connection_s_first_message_without_a_boot(
    daphne, refreshing_daphne
):
    await register("CFG201OWED")
    await _owed_marked("CFG201OWED")
    async with ocpp_charger(refreshing_daphne, "2.0.1", "CFG201OWED", client_class=ReportingV201Station) as station:
        await station.call(call201.Heartbeat())
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201OWED", complete=True
            ).aexists(),
            timeout=10,
        )
        assert station.received[0][0] == "GetBaseReport"
    await eventually(lambda: _cleared("CFG201OWED"), timeout=10)


class CutShortV201Station(ReportingV201Station):
    """Accepts GetBaseReport and sends the first of its report's parts: its socket closes before the rest."""

    @after("GetBaseReport")
    async def send_report(self, request_id: int, **_: Any) -> None:
        part = call201.NotifyReport(
            request_id=request_id,
            generated_at="2026-05-01T12:00:00Z",
            seq_no=0,
            tbc=True,
            report_data=V201_REPORT_PARTS[0],
        )
        await self.call(part)
        self.reports_sent.set()


async def test_v201_a_read_after_a_boot_whose_report_a_closed_socket_cut_short_is_asked_on_the_next_connection(
    daphne, refreshing_daphne
):
    """The station accepted the read after its boot, sent a part of its report and lost its
    socket: a 2.0.1 station back from a network drop sends no BootNotification, so its device model
    stayed half read (variables its new firmware dropped kept, the rest as before) until its next
    boot. The read is owed, as a read left unanswered is: asked after the next connection's first
    message."""
    await register("CFG201CUT")
    async with ocpp_charger(refreshing_daphne, "2.0.1", "CFG201CUT", client_class=CutShortV201Station) as station:
        assert (await station.call(BOOT_201)).status == "Accepted"
        await asyncio.wait_for(station.reports_sent.wait(), timeout=10)
    await eventually(lambda: _owed("CFG201CUT"), timeout=10)
    async with ocpp_charger(refreshing_daphne, "2.0.1", "CFG201CUT", client_class=ReportingV201Station) as station:
        await station.call(call201.Heartbeat())
        await asyncio.wait_for(station.reports_sent.wait(), timeout=10)
        assert [action for action, _ in station.received] == ["GetBaseReport"]
    await eventually(lambda: _cleared("CFG201CUT"), timeout=10)
    reports = DeviceModelReport.objects.filter(charge_point__charge_point_id="CFG201CUT").order_by("request_id")
    assert [(report.parts_received, report.complete) async for report in reports] == [(1, False), (3, True)]
    # The connection whose report arrived whole leaves nothing owed.
    async with ocpp_charger(refreshing_daphne, "2.0.1", "CFG201CUT", client_class=ReportingV201Station) as station:
        await station.call(call201.Heartbeat())
        await asyncio.sleep(1.0)
        await station.call(call201.Heartbeat())
        assert station.received == []
    assert not await _owed("CFG201CUT")


async def test_v16_patch_sends_change_configuration_and_answers_per_key(daphne, api_daphne, api_key):
    await register("CFG16B")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG16B/configuration"
    async with ocpp_charger(daphne, "1.6", "CFG16B", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        status, body = await ahttp(f"{url}/refresh", method="POST", api_key=api_key)
        assert (status, len(body["keys"])) == (200, 30)

        status, body = await ahttp(
            url,
            method="PATCH",
            api_key=api_key,
            body={
                "keys": [
                    {"key": "HeartbeatInterval", "value": "120"},
                    {"key": "WebSocketPingInterval", "value": "45"},
                    {"key": "NumberOfConnectors", "value": "4"},
                    {"key": "NoSuchKey", "value": "1"},
                ]
            },
        )
        assert status == 200
        assert [(r["key"], r["status"]) for r in body["results"]] == [
            ("HeartbeatInterval", "Accepted"),
            ("WebSocketPingInterval", "RebootRequired"),
            ("NumberOfConnectors", "Rejected"),
            ("NoSuchKey", "NotSupported"),
        ]
        assert body["reboot_required"] is True
        assert [name for name, _ in charger.received].count("ChangeConfiguration") == 4
        assert charger.received[1] == ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"})

        status, body = await ahttp(f"{url}?key=heartbeatinterval&key=WebSocketPingInterval", api_key=api_key)
    assert status == 200
    rows = {row["key"]: row for row in body["keys"]}
    assert set(rows) == {"HeartbeatInterval", "WebSocketPingInterval"}
    assert (rows["HeartbeatInterval"]["value"], rows["HeartbeatInterval"]["learned_from"]) == (
        "120",
        "ChangeConfiguration",
    )
    assert (rows["WebSocketPingInterval"]["value"], rows["WebSocketPingInterval"]["pending_value"]) == ("30", "45")
    assert (await stored_keys("CFG16B").aget(key="NumberOfConnectors")).value == "2"
    assert not await stored_keys("CFG16B").filter(key="NoSuchKey").aexists()
    assert await Command.objects.filter(charge_point_identity="CFG16B", action="ChangeConfiguration").acount() == 4


async def test_v16_a_value_waiting_for_a_reboot_is_read_after_it_though_a_read_came_between(
    daphne, refreshing_daphne, api_key
):
    """A change answered RebootRequired, then a refresh before the reboot (it gives the value the
    charger still runs with): the refresh cleared the pending value, so the reboot (same firmware,
    a recent read) was not followed by a read and the store kept 30 where the charger runs with 45."""
    await register("CFG16W")
    url = f"{refreshing_daphne.http_url}/api/v1/chargepoints/CFG16W/configuration"
    assert await _boot_read_count(refreshing_daphne, "CFG16W", BOOT_16, read_expected=True) == 1
    await eventually(lambda: _reads_answered("CFG16W", 1), timeout=10)
    async with ocpp_charger(refreshing_daphne, "1.6", "CFG16W", client_class=ConfiguredV16Charger) as charger:
        await charger.call(call16.Heartbeat())
        status, body = await ahttp(
            url, method="PATCH", api_key=api_key, body={"keys": [{"key": "WebSocketPingInterval", "value": "45"}]}
        )
        assert (status, body["results"][0]["status"]) == (200, "RebootRequired")
        status, body = await ahttp(f"{url}/refresh", method="POST", api_key=api_key)
        assert status == 200
        key = next(row for row in body["keys"] if row["key"] == "WebSocketPingInterval")
        assert (key["value"], key["pending_value"]) == ("30", "45")
    # The charger reboots and runs with 45: the boot is read again.
    async with ocpp_charger(refreshing_daphne, "1.6", "CFG16W", client_class=ConfiguredV16Charger) as charger:
        charger.configuration["WebSocketPingInterval"] = "45"
        assert (await charger.call(BOOT_16)).status == "Accepted"
        await eventually(lambda: _reads_answered("CFG16W", 3), timeout=10)
    key = await stored_keys("CFG16W").aget(key="WebSocketPingInterval")
    assert (key.value, key.pending_value) == ("45", None)


class CaseInsensitiveV16Charger(ConfiguredV16Charger):
    """Takes a key in any case, as OCPP 1.6 says of a key (CiString50Type, §6.3), and keeps its own."""

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **_: Any) -> result16.ChangeConfiguration:
        own = next((name for name in self.configuration if name.lower() == key.lower()), key)
        return super().on_change_configuration(key=own, value=value)


async def test_v16_a_key_changed_in_another_case_updates_the_stored_key(daphne, api_daphne, api_key):
    """A key named in another case than the charger reported it is the same key (1.6 keys are
    case-insensitive): its stored value, or pending value, follows the change; it was a second key
    of that name beside the one kept at its old value."""
    await register("CFG16CASE")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG16CASE/configuration"
    async with ocpp_charger(daphne, "1.6", "CFG16CASE", client_class=CaseInsensitiveV16Charger) as charger:
        await charger.call(BOOT_16)
        assert (await ahttp(f"{url}/refresh", method="POST", api_key=api_key))[0] == 200
        status, body = await ahttp(
            url,
            method="PATCH",
            api_key=api_key,
            body={
                "keys": [
                    {"key": "metervaluesampleinterval", "value": "30"},
                    {"key": "WEBSOCKETPINGINTERVAL", "value": "45"},
                ]
            },
        )
        assert [r["status"] for r in body["results"]] == ["Accepted", "RebootRequired"]
        status, body = await ahttp(f"{url}?key=MeterValueSampleInterval&key=WebSocketPingInterval", api_key=api_key)
    assert status == 200
    assert [(row["key"], row["value"], row["pending_value"]) for row in body["keys"]] == [
        ("MeterValueSampleInterval", "30", None),
        ("WebSocketPingInterval", "30", "45"),
    ]
    assert await stored_keys("CFG16CASE").acount() == 30


class EchoingV16Charger(ConfiguredV16Charger):
    """Reads a key in any case (1.6 keys are CiString50Type) and answers it as it was asked, a known
    key's value and an unknown key's name alike (``unknownKey`` echoes the request)."""

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> result16.GetConfiguration:
        if not key:
            return super().on_get_configuration(key=key)
        own = {name.lower(): name for name in self.configuration}
        known = [name for name in key if name.lower() in own]
        return result16.GetConfiguration(
            configuration_key=[
                {"key": name, "readonly": False, "value": self.configuration[own[name.lower()]]} for name in known
            ],
            unknown_key=[name for name in key if name.lower() not in own] or None,
        )


async def test_v16_a_key_read_in_another_case_updates_the_stored_key(daphne, api_daphne, api_key):
    """h8's probe: a GetConfiguration naming keys in another case than the charger reported them
    stored each answered key as a second one beside the reported key, which kept its old value (a
    key its new firmware dropped stayed known, its unknown twin beside it). The stored key follows,
    matched ignoring case, as a ChangeConfiguration's does."""
    await register("CFG16READ")
    base = f"{api_daphne.http_url}/api/v1"
    async with ocpp_charger(daphne, "1.6", "CFG16READ", client_class=EchoingV16Charger) as charger:
        await charger.call(BOOT_16)
        assert (await ahttp(f"{base}/chargepoints/CFG16READ/configuration/refresh", method="POST", api_key=api_key))[
            0
        ] == 200
        charger.configuration["MeterValueSampleInterval"] = "15"  # changed at the charger
        del charger.configuration["LightIntensity"]  # gone with a firmware update
        status, _ = await ahttp(
            f"{base}/ocpp16/CFG16READ/get_configuration",
            method="POST",
            api_key=api_key,
            body={"key": ["metervaluesampleinterval", "LIGHTINTENSITY"]},
        )
        assert status == 200
        status, body = await ahttp(
            f"{base}/chargepoints/CFG16READ/configuration?key=MeterValueSampleInterval&key=LightIntensity",
            api_key=api_key,
        )
    assert status == 200
    assert [(row["key"], row["value"], row["unknown"]) for row in body["keys"]] == [
        ("LightIntensity", None, True),
        ("MeterValueSampleInterval", "15", False),
    ]
    assert await stored_keys("CFG16READ").acount() == 30


async def test_v16_a_key_the_charger_answers_not_supported_is_stored_unknown(daphne, api_daphne, api_key):
    """h8's probe: a ChangeConfiguration answered NotSupported (1.6 §7.8: the key is not supported; its
    new firmware dropped it) left the stored key known at its old value, where a GetConfiguration
    naming it records it ``unknown``; so does the answer now (named in any case)."""
    await register("CFG16NS")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG16NS/configuration"
    async with ocpp_charger(daphne, "1.6", "CFG16NS", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        assert (await ahttp(f"{url}/refresh", method="POST", api_key=api_key))[0] == 200
        del charger.configuration["LightIntensity"]  # gone with a firmware update
        status, body = await ahttp(
            url, method="PATCH", api_key=api_key, body={"keys": [{"key": "lightintensity", "value": "50"}]}
        )
        assert [r["status"] for r in body["results"]] == ["NotSupported"]
        status, body = await ahttp(f"{url}?key=LightIntensity", api_key=api_key)
    assert status == 200
    assert [(row["key"], row["value"], row["readonly"], row["unknown"]) for row in body["keys"]] == [
        ("LightIntensity", None, None, True)
    ]
    assert await stored_keys("CFG16NS").acount() == 30


async def test_v16_a_heartbeat_interval_the_charger_took_is_its_record_and_its_next_boot_keeps_it(
    daphne, api_daphne, api_key
):
    """Its BootNotification answer carries the CSMS's interval, which the charger adopts (1.6 §4.2):
    were the record left at 60, the charger's reboot would undo the change, and the offline sweep
    would wait for heartbeats every 60 s."""
    await register("CFG16HB")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG16HB/configuration"
    async with ocpp_charger(daphne, "1.6", "CFG16HB", client_class=ConfiguredV16Charger) as charger:
        assert (await charger.call(BOOT_16)).interval == 60
        for value, status in [("90", "Accepted"), ("0", "Accepted"), ("2x", "Accepted"), ("100000", "Accepted")]:
            answer, body = await ahttp(
                url, method="PATCH", api_key=api_key, body={"keys": [{"key": "HeartbeatInterval", "value": value}]}
            )
            assert (answer, body["results"][0]["status"]) == (200, status)
            # the charger took each; only 90 is an interval the CSMS keeps (1 to 86,400 s)
            assert (await ChargePoint.objects.aget(charge_point_id="CFG16HB")).heartbeat_interval == 90
        assert (await charger.call(BOOT_16)).interval == 90
    status, body = await ahttp(f"{api_daphne.http_url}/api/v1/chargepoints/CFG16HB", api_key=api_key)
    assert (status, body["heartbeat_interval"]) == (200, 90)


async def test_v16_a_heartbeat_interval_sent_as_a_command_is_what_the_offline_sweep_waits_for(
    daphne, api_daphne, api_key
):
    """The contract: a charger is offline after no heartbeat within 2x its interval, tuned by the
    HeartbeatInterval configuration key (here the ChangeConfiguration command of the API)."""
    await register("CFG16HC")
    async with ocpp_charger(daphne, "1.6", "CFG16HC", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        status, body = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CFG16HC/change_configuration",
            method="POST",
            api_key=api_key,
            body={"key": "HeartbeatInterval", "value": "300"},
        )
        assert (status, body["status"]) == (200, "Accepted")
        charge_point = await ChargePoint.objects.aget(charge_point_id="CFG16HC")
        assert charge_point.heartbeat_interval == 300
        # silent for 4 minutes: past 2x the old 60 s, within 2x the 300 s the charger took; then 11
        sweep = sync_to_async(mark_offline_stale_charge_points)
        assert "CFG16HC" not in await sweep(now=charge_point.last_seen + timedelta(minutes=4))
        assert "CFG16HC" in await sweep(now=charge_point.last_seen + timedelta(minutes=11))


async def _heartbeat_interval_set_201(api_daphne, api_key: str, charge_point_id: str, value: str):
    """PATCH a 2.0.1 station's OCPPCommCtrlr.HeartbeatInterval (SetVariables): the HTTP status and body."""
    variable = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "value": value}
    return await ahttp(
        f"{api_daphne.http_url}/api/v1/chargepoints/{charge_point_id}/configuration",
        method="PATCH",
        api_key=api_key,
        body={"variables": [variable]},
    )


async def _sweep_waits_for_60_s_until_the_reboot_then_30(charger, boot, charge_point_id: str) -> None:
    """The charger answered 30 s RebootRequired: its record is 30, 60 kept; the sweep waits 2x 60 s
    until the charger boots (then the answer's 30 s, which it adopts)."""
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert (charge_point.heartbeat_interval, charge_point.previous_heartbeat_interval) == (30, 60)
    assert charge_point.last_seen is not None
    sweep = sync_to_async(mark_offline_stale_charge_points)
    assert charge_point_id not in await sweep(now=charge_point.last_seen + timedelta(seconds=100))
    assert (await charger.call(boot)).interval == 30  # the reboot: now it heartbeats every 30 s
    rebooted = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert rebooted.last_seen is not None
    assert charge_point_id in await sweep(now=rebooted.last_seen + timedelta(seconds=70))


async def test_v16_a_heartbeat_interval_taken_after_a_reboot_is_waited_for_only_after_the_reboot(
    daphne, api_daphne, api_key
):
    """RebootRequired (1.6 §5.3): the charger heartbeats every 60 s until it boots again. The record
    is 30 at once (the Boot answer gives it), but the sweep may not mark the charger offline after
    60 s of silence before that boot; after it, 2x 30 s is the rule."""
    await register("CFG16HRR")
    async with ocpp_charger(daphne, "1.6", "CFG16HRR", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        charger.reboot_required.add("HeartbeatInterval")
        status, body = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CFG16HRR/change_configuration",
            method="POST",
            api_key=api_key,
            body={"key": "HeartbeatInterval", "value": "30"},
        )
        assert (status, body["status"]) == (200, "RebootRequired")
        await _sweep_waits_for_60_s_until_the_reboot_then_30(charger, BOOT_16, "CFG16HRR")


async def test_v201_a_heartbeat_interval_taken_after_a_reboot_is_waited_for_only_after_the_reboot(
    daphne, api_daphne, api_key
):
    """As in 1.6, for SetVariables answered RebootRequired (B05)."""
    await register("CFG201HRR")
    async with ocpp_charger(daphne, "2.0.1", "CFG201HRR", client_class=ReportingV201Station) as station:
        await station.call(BOOT_201)
        station.reboot_required.add("HeartbeatInterval")
        status, body = await _heartbeat_interval_set_201(api_daphne, api_key, "CFG201HRR", "30")
        assert (status, body["results"][0]["status"]) == (200, "RebootRequired")
        await _sweep_waits_for_60_s_until_the_reboot_then_30(station, BOOT_201, "CFG201HRR")


async def test_v16_a_refused_heartbeat_interval_leaves_the_record(daphne, api_daphne, api_key):
    await register("CFG16HBR")
    async with ocpp_charger(daphne, "1.6", "CFG16HBR", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        del charger.configuration["HeartbeatInterval"]  # the charger no longer knows the key: NotSupported
        status, body = await ahttp(
            f"{api_daphne.http_url}/api/v1/chargepoints/CFG16HBR/configuration",
            method="PATCH",
            api_key=api_key,
            body={"keys": [{"key": "HeartbeatInterval", "value": "90"}]},
        )
        assert (status, body["results"][0]["status"]) == (200, "NotSupported")
        assert (await charger.call(BOOT_16)).interval == 60
    assert (await ChargePoint.objects.aget(charge_point_id="CFG16HBR")).heartbeat_interval == 60


async def test_v16_refresh_asking_unknown_keys_records_them_and_a_full_read_drops_removed_keys(
    daphne, api_daphne, api_key
):
    await register("CFG16C")
    async with ocpp_charger(daphne, "1.6", "CFG16C", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CFG16C/get_configuration",
            method="POST",
            api_key=api_key,
            body={"key": ["HeartbeatInterval", "Vendor.Secret"]},
        )
        assert status == 200
        unknown = await stored_keys("CFG16C").aget(key="Vendor.Secret")
        assert (unknown.unknown, unknown.value, unknown.readonly) == (True, None, None)
        del charger.configuration["LightIntensity"]
        status, body = await ahttp(
            f"{api_daphne.http_url}/api/v1/chargepoints/CFG16C/configuration/refresh", method="POST", api_key=api_key
        )
    assert status == 200
    assert {row["key"] for row in body["keys"]} == set(V16_CONFIGURATION) - {"LightIntensity"}


async def test_v16_a_get_configuration_of_more_keys_than_the_charger_takes_is_sent_with_a_warning(
    daphne, api_daphne, api_key
):
    await register("CFG16M")
    base = f"{api_daphne.http_url}/api/v1"
    async with ocpp_charger(daphne, "1.6", "CFG16M", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        status, _ = await ahttp(f"{base}/chargepoints/CFG16M/configuration/refresh", method="POST", api_key=api_key)
        assert status == 200  # GetConfigurationMaxKeys 50 is known now
        many = [*V16_CONFIGURATION, *(f"Vendor{number}" for number in range(21))]
        status, body = await ahttp(
            f"{base}/ocpp16/CFG16M/get_configuration", method="POST", api_key=api_key, body={"key": many}
        )
        assert status == 200 and len(body["unknown_key"]) == 21  # sent as asked; this charger answers
        assert body["warnings"] == [
            "51 keys exceed the 50 the charge point reported as GetConfigurationMaxKeys:"
            " it may refuse the request; ask for fewer at a time."
        ]
        status, body = await ahttp(
            f"{base}/ocpp16/CFG16M/get_configuration", method="POST", api_key=api_key, body={"key": many[:50]}
        )
    assert status == 200 and "warnings" not in body


async def test_v16_patch_refuses_a_bad_body_naming_the_field(daphne, api_daphne, api_key):
    await register("CFG16D")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG16D/configuration"
    async with ocpp_charger(daphne, "1.6", "CFG16D", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        for body, field in [
            ({"keys": [{"key": "HeartbeatInterval"}]}, "keys"),
            ({"keys": []}, "keys"),
            ({"keys": [{"key": "HeartbeatInterval", "value": "60", "vaule": "x"}]}, "keys"),  # not dropped
            ({"variables": [{"component": {"name": "X"}, "variable": {"name": "Y"}, "value": "1"}]}, "variables"),
            ({}, "keys"),
        ]:
            status, answer = await ahttp(url, method="PATCH", api_key=api_key, body=body)
            assert (status, answer["error"]) == (400, "ValidationError")
            assert field in answer["details"]
        assert charger.received == []
    status, answer = await ahttp(f"{api_daphne.http_url}/api/v1/chargepoints/NOPE/configuration", api_key=api_key)
    assert (status, answer["error"]) == (404, "NotFound")


async def test_v201_a_misspelt_field_of_a_variable_is_a_400_naming_it_and_nothing_is_sent(daphne, api_daphne, api_key):
    """An unknown field inside ``variables`` was dropped: ``atribute_type: Target`` set the Actual
    value, a misspelt component ``instanse`` the variable of another instance."""
    await register("CFG201S")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG201S/configuration"
    change = {"variable": {"name": "HeartbeatInterval"}, "value": "60"}
    async with ocpp_charger(daphne, "2.0.1", "CFG201S", client_class=ReportingV201Station) as station:
        await station.call(BOOT_201)
        for body, path in [
            ({**change, "component": {"name": "OCPPCommCtrlr"}, "atribute_type": "Target"}, ("0", "atribute_type")),
            ({**change, "component": {"name": "OCPPCommCtrlr", "instanse": "2"}}, ("0", "component", "instanse")),
            ({**change, "component": {"name": "EVSE", "evse": {"id": 1, "conector_id": 1}}}, ("0", "component")),
        ]:
            status, answer = await ahttp(url, method="PATCH", api_key=api_key, body={"variables": [body]})
            assert (status, answer["error"]) == (400, "ValidationError")
            named = answer["details"]["variables"]
            for step in path:
                named = named[step]
            assert "Unknown field." in json.dumps(named)
        assert not [action for action, _ in station.received if action == "SetVariables"]


async def test_v16_a_password_the_charger_could_not_use_after_other_keys_is_a_400_naming_it_and_nothing_is_sent(
    daphne, api_daphne, api_key
):
    """The HeartbeatInterval before it was sent and taken, then the plain-text AuthorizationKey
    refused with a 400 naming ``value``: the caller read that nothing had changed."""
    await register("CFG16P")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG16P/configuration"
    keys = [{"key": "HeartbeatInterval", "value": "120"}, {"key": "AuthorizationKey", "value": "plain-password-16"}]
    async with ocpp_charger(daphne, "1.6", "CFG16P", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        status, answer = await ahttp(url, method="PATCH", api_key=api_key, body={"keys": keys})
        assert (status, answer["error"]) == (400, "ValidationError")
        assert charger.received == []
        assert charger.configuration["HeartbeatInterval"] == "300"
        assert list(answer["details"]) == ["keys"]
        assert "32 to 40 hexadecimal digits" in answer["details"]["keys"]["1"]["value"][0]
    assert not await Command.objects.filter(charge_point_identity="CFG16P").aexists()


async def test_v201_a_variable_the_station_could_not_take_is_a_400_naming_the_change_s_field(
    daphne, api_daphne, api_key
):
    """Named ``set_variable_data.1.attribute_value``: a field of the command, not of the body sent."""
    await register("CFG201P")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG201P/configuration"
    heartbeat = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "value": "120"}
    password = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}, "value": "short"}
    password_rule = "A BasicAuthPassword is 16 to 40 of a-z A-Z 0-9 * - _ = : + | @ ."
    async with ocpp_charger(daphne, "2.0.1", "CFG201P", client_class=ReportingV201Station) as station:
        await station.call(BOOT_201)
        for variables, refused in [
            ([heartbeat, password], {"1": {"value": [password_rule]}}),
            ([heartbeat, {**heartbeat, "value": "130"}], {"1": ["This attribute is already set in this request."]}),
        ]:
            status, answer = await ahttp(url, method="PATCH", api_key=api_key, body={"variables": variables})
            assert (status, answer["error"]) == (400, "ValidationError")
            assert answer["details"] == {"variables": refused}
        assert not [action for action, _ in station.received if action == "SetVariables"]


async def test_v201_a_variable_the_station_could_not_take_in_a_later_set_variables_leaves_the_earlier_unsent(
    daphne, api_daphne, api_key
):
    """A PATCH cut into several SetVariables (the station's ItemsPerMessage 2): the first was sent
    and taken before the third item was refused."""
    await register("CFG201Q")
    base = f"{api_daphne.http_url}/api/v1"
    changes = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "value": "120"},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}, "value": "900"},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}, "value": "no spaces, no"},
    ]
    async with ocpp_charger(daphne, "2.0.1", "CFG201Q", client_class=LimitedV201Station) as station:
        await station.call(BOOT_201)
        status, body = await ahttp(f"{base}/chargepoints/CFG201Q/configuration/refresh", method="POST", api_key=api_key)
        assert status == 202
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201Q", request_id=body["request_id"], complete=True
            ).aexists()
        )
        status, answer = await ahttp(
            f"{base}/chargepoints/CFG201Q/configuration", method="PATCH", api_key=api_key, body={"variables": changes}
        )
        assert (status, answer["error"]) == (400, "ValidationError")
        assert not [action for action, _ in station.received if action == "SetVariables"]
        assert list(answer["details"]["variables"]) == ["2"]


async def test_v16_patch_to_a_disconnected_charger_answers_not_connected(daphne, api_daphne, api_key):
    await register("CFG16E")
    async with ocpp_charger(daphne, "1.6", "CFG16E", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
    await eventually(lambda: ChargePoint.objects.filter(charge_point_id="CFG16E", connection_channel="").aexists())
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG16E/configuration"
    body = {"keys": [{"key": "HeartbeatInterval", "value": "10"}]}
    status, answer = await ahttp(url, method="PATCH", api_key=api_key, body=body)
    assert (status, answer["error"]) == (503, "NotConnected")


def device_model(charge_point_id: str):
    return DeviceModelVariable.objects.filter(charge_point__charge_point_id=charge_point_id)


async def test_v201_notify_report_in_three_parts_fills_the_device_model(daphne, refreshing_daphne, api_key):
    await register("CFG201")
    async with ocpp_charger(refreshing_daphne, "2.0.1", "CFG201", client_class=ReportingV201Station) as station:
        assert (await station.call(BOOT_201)).status == "Accepted"
        await eventually(
            lambda: DeviceModelReport.objects.filter(charge_point__charge_point_id="CFG201", complete=True).aexists(),
            timeout=10,
        )
        assert station.received[0][0] == "GetBaseReport"
        status, body = await ahttp(
            f"{refreshing_daphne.http_url}/api/v1/chargepoints/CFG201/configuration", api_key=api_key
        )
    assert status == 200
    assert len(body["variables"]) == V201_VARIABLE_COUNT == 12
    reported = {
        (item["component"]["name"], str(item["component"].get("evse")), item["variable"]["name"]): item[
            "variable_attribute"
        ][0]["value"]
        for part in V201_REPORT_PARTS
        for item in part
    }
    stored = {
        (row["component"]["name"], str(row["component"].get("evse")), row["variable"]["name"]): next(
            a["value"] for a in row["attributes"] if a["type"] == "Actual"
        )
        for row in body["variables"]
    }
    assert stored == reported
    report = body["report"]
    assert (report["parts_received"], report["variables_reported"], report["complete"]) == (3, 12, True)
    assert report["request_id"] == station.received[0][1]["request_id"]
    power = next(row for row in body["variables"] if row["component"] == {"name": "EVSE", "evse": {"id": 1}})
    assert [(a["type"], a["value"], a["mutability"]) for a in power["attributes"]] == [
        ("Actual", "22000", "ReadOnly"),
        ("MaxSet", "22000", "ReadOnly"),
    ]
    assert power["characteristics"] == {"data_type": "decimal", "unit": "W", "supports_monitoring": False}
    connector = next(row for row in body["variables"] if row["component"]["name"] == "Connector")
    assert connector["component"]["evse"] == {"id": 1, "connector_id": 1}
    metering = next(row for row in body["variables"] if row["component"]["name"] == "FiscalMetering")
    assert metering["component"] == {"name": "FiscalMetering", "instance": "Main"}
    assert {a["learned_from"] for row in body["variables"] for a in row["attributes"]} == {"NotifyReport"}


async def test_v201_get_and_set_variables_results_are_stored(daphne, api_daphne, api_key):
    await register("CFG201B")
    base = f"{api_daphne.http_url}/api/v1"
    async with ocpp_charger(daphne, "2.0.1", "CFG201B", client_class=ReportingV201Station) as station:
        await station.call(BOOT_201)
        status, body = await ahttp(f"{base}/chargepoints/CFG201B/configuration/refresh", method="POST", api_key=api_key)
        assert status == 202
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201B", request_id=body["request_id"], complete=True
            ).aexists()
        )
        assert await device_model("CFG201B").acount() == 12

        station.values[("OCPPCommCtrlr", "OfflineThreshold")] = "900"
        status, _ = await ahttp(
            f"{base}/ocpp201/CFG201B/get_variables",
            method="POST",
            api_key=api_key,
            body={
                "get_variable_data": [
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}},
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Missing"}},
                ]
            },
        )
        assert status == 200

        status, body = await ahttp(
            f"{base}/chargepoints/CFG201B/configuration",
            method="PATCH",
            api_key=api_key,
            body={
                "variables": [
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "value": "120"},
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "NetworkProfileConnectionAttempts"},
                        "value": "5",
                    },
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nothing"}, "value": "1"},
                ]
            },
        )
        assert status == 200
        assert [(r["variable"]["name"], r["status"]) for r in body["results"]] == [
            ("HeartbeatInterval", "Accepted"),
            ("NetworkProfileConnectionAttempts", "RebootRequired"),
            ("Nothing", "UnknownVariable"),
        ]
        assert body["reboot_required"] is True
        assert station.received[-1][0] == "SetVariables"

        status, body = await ahttp(
            f"{base}/chargepoints/CFG201B/configuration?component=ocppcommctrlr", api_key=api_key
        )
    assert status == 200
    rows = {row["variable"]["name"]: row["attributes"][0] for row in body["variables"]}
    assert set(rows) == {"HeartbeatInterval", "NetworkProfileConnectionAttempts", "OfflineThreshold"}
    assert (rows["OfflineThreshold"]["value"], rows["OfflineThreshold"]["learned_from"]) == ("900", "GetVariables")
    assert (rows["HeartbeatInterval"]["value"], rows["HeartbeatInterval"]["learned_from"]) == ("120", "SetVariables")
    assert rows["HeartbeatInterval"]["mutability"] == "ReadWrite"  # as reported; SetVariables does not say
    attempts = rows["NetworkProfileConnectionAttempts"]
    assert (attempts["value"], attempts["pending_value"]) == ("3", "5")
    assert not await device_model("CFG201B").filter(variable_name__in=["Missing", "Nothing"]).aexists()
    assert await DeviceModelAttribute.objects.filter(variable__charge_point__charge_point_id="CFG201B").acount() == 13


async def test_v201_a_variable_the_station_answers_unknown_is_no_longer_stored(daphne, api_daphne, api_key):
    """h8's probe: a variable its new firmware dropped was answered UnknownVariable to GetVariables and
    SetVariables, yet stayed stored at its old value (1.6 records such a key ``unknown``); it is no
    longer stored, as a complete FullInventory would have left it out. Named in another case, it is
    the stored one."""
    await register("CFG201GONE")
    base = f"{api_daphne.http_url}/api/v1"
    async with ocpp_charger(daphne, "2.0.1", "CFG201GONE", client_class=ReportingV201Station) as station:
        await station.call(BOOT_201)
        status, body = await ahttp(
            f"{base}/chargepoints/CFG201GONE/configuration/refresh", method="POST", api_key=api_key
        )
        assert status == 202
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201GONE", request_id=body["request_id"], complete=True
            ).aexists()
        )
        del station.values[("OCPPCommCtrlr", "OfflineThreshold")]  # gone with a firmware update
        del station.values[("OCPPCommCtrlr", "HeartbeatInterval")]
        status, _ = await ahttp(
            f"{base}/ocpp201/CFG201GONE/get_variables",
            method="POST",
            api_key=api_key,
            body={
                "get_variable_data": [
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}
                ]
            },
        )
        assert status == 200
        status, body = await ahttp(
            f"{base}/chargepoints/CFG201GONE/configuration",
            method="PATCH",
            api_key=api_key,
            body={
                "variables": [
                    {"component": {"name": "ocppcommctrlr"}, "variable": {"name": "heartbeatinterval"}, "value": "120"}
                ]
            },
        )
        assert [r["status"] for r in body["results"]] == ["UnknownVariable"]
    gone = device_model("CFG201GONE").filter(variable_name__in=["OfflineThreshold", "HeartbeatInterval"])
    assert not await gone.aexists()
    assert await device_model("CFG201GONE").acount() == V201_VARIABLE_COUNT - 2


class CaseInsensitiveV201Station(ReportingV201Station):
    """Takes component and variable names in any case (2.0.1 ComponentType, VariableType: "Case
    Insensitive") and answers with the names as asked, as it echoes them."""

    def _own(self, item: dict[str, Any]) -> dict[str, Any]:
        asked = (item["component"]["name"].lower(), item["variable"]["name"].lower())
        own = next((name for name in self.values if (name[0].lower(), name[1].lower()) == asked), None)
        if own is None:
            return item
        return {**item, "component": {**item["component"], "name": own[0]}, "variable": {"name": own[1]}}

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> result201.GetVariables:
        answer = super().on_get_variables([self._own(item) for item in get_variable_data])
        for result, item in zip(answer.get_variable_result, get_variable_data, strict=True):
            result.update(component=item["component"], variable=item["variable"])
        return answer

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> result201.SetVariables:
        answer = super().on_set_variables([self._own(item) for item in set_variable_data])
        for result, item in zip(answer.set_variable_result, set_variable_data, strict=True):
            result.update(component=item["component"], variable=item["variable"])
        return answer


async def test_v201_a_variable_named_in_another_case_updates_the_stored_variable(daphne, api_daphne, api_key):
    """A variable set or read under names in another case than the station reported them is the same
    variable: its stored value (pending value) follows; it was a second variable of that name beside
    the reported one, kept at its old value."""
    await register("CFG201CASE")
    base = f"{api_daphne.http_url}/api/v1"
    async with ocpp_charger(daphne, "2.0.1", "CFG201CASE", client_class=CaseInsensitiveV201Station) as station:
        await station.call(BOOT_201)
        status, body = await ahttp(
            f"{base}/chargepoints/CFG201CASE/configuration/refresh", method="POST", api_key=api_key
        )
        assert status == 202
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201CASE", request_id=body["request_id"], complete=True
            ).aexists()
        )
        station.values[("OCPPCommCtrlr", "OfflineThreshold")] = "900"
        status, _ = await ahttp(
            f"{base}/ocpp201/CFG201CASE/get_variables",
            method="POST",
            api_key=api_key,
            body={
                "get_variable_data": [
                    {"component": {"name": "ocppcommctrlr"}, "variable": {"name": "OFFLINETHRESHOLD"}}
                ]
            },
        )
        assert status == 200
        status, body = await ahttp(
            f"{base}/chargepoints/CFG201CASE/configuration",
            method="PATCH",
            api_key=api_key,
            body={
                "variables": [
                    {"component": {"name": "OcppCommCtrlr"}, "variable": {"name": "heartbeatinterval"}, "value": "120"},
                    {
                        "component": {"name": "ocppcommctrlr"},
                        "variable": {"name": "networkprofileconnectionattempts"},
                        "value": "5",
                    },
                ]
            },
        )
        assert [r["status"] for r in body["results"]] == ["Accepted", "RebootRequired"]
        status, body = await ahttp(
            f"{base}/chargepoints/CFG201CASE/configuration?component=OCPPCommCtrlr", api_key=api_key
        )
    assert status == 200
    rows = {row["variable"]["name"]: row["attributes"][0] for row in body["variables"]}
    assert set(rows) == {"HeartbeatInterval", "NetworkProfileConnectionAttempts", "OfflineThreshold"}
    assert {row["component"]["name"] for row in body["variables"]} == {"OCPPCommCtrlr"}
    assert (rows["OfflineThreshold"]["value"], rows["OfflineThreshold"]["learned_from"]) == ("900", "GetVariables")
    assert (rows["HeartbeatInterval"]["value"], rows["HeartbeatInterval"]["learned_from"]) == ("120", "SetVariables")
    attempts = rows["NetworkProfileConnectionAttempts"]
    assert (attempts["value"], attempts["pending_value"]) == ("3", "5")
    assert await device_model("CFG201CASE").acount() == V201_VARIABLE_COUNT


class LimitedV201Station(ReportingV201Station):
    """Reports ItemsPerMessage 2 and BytesPerMessage 600 for SetVariables (DeviceDataCtrlr) and
    refuses a SetVariables over either whole, as B05 lets it (OccurrenceConstraintViolation,
    FormatViolation)."""

    limits = [
        _report_item({"name": "DeviceDataCtrlr"}, "ItemsPerMessage", "2", mutability="ReadOnly"),
        _report_item({"name": "DeviceDataCtrlr"}, "BytesPerMessage", "600", mutability="ReadOnly"),
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for item in self.limits:
            item["variable"]["instance"] = "SetVariables"

    @after("GetBaseReport")
    async def send_report(self, request_id: int, **_) -> None:
        await self.call(
            call201.NotifyReport(
                request_id=request_id, generated_at="2026-05-01T12:00:00Z", seq_no=0, tbc=True, report_data=self.limits
            )
        )
        for seq_no, part in enumerate(V201_REPORT_PARTS, start=1):
            await self.call(
                call201.NotifyReport(
                    request_id=request_id,
                    generated_at="2026-05-01T12:00:00Z",
                    seq_no=seq_no,
                    tbc=seq_no < len(V201_REPORT_PARTS),
                    report_data=part,
                )
            )
        self.reports_sent.set()

    @on("SetVariables")
    def on_set_variables(self, set_variable_data, **kwargs):
        frame = json.dumps([2, "0" * 36, "SetVariables", {"setVariableData": set_variable_data}], separators=(",", ":"))
        if len(set_variable_data) > 2:
            raise OccurenceConstraintViolationError(description="More than ItemsPerMessageSetVariables")
        if len(frame.encode()) > 600:
            raise FormatViolationError(description="Over BytesPerMessageSetVariables")
        return super().on_set_variables(set_variable_data, **kwargs)


async def test_v201_a_patch_is_cut_into_set_variables_within_the_limits_the_station_reported(
    daphne, api_daphne, api_key
):
    await register("CFG201L")
    base = f"{api_daphne.http_url}/api/v1"
    changes = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "value": "120"},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}, "value": "900"},
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}, "value": "30"},
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "EVConnectionTimeOut"}, "value": "x" * 300},
        {"component": {"name": "AuthCtrlr"}, "variable": {"name": "AuthorizeRemoteStart"}, "value": "false"},
    ]
    async with ocpp_charger(daphne, "2.0.1", "CFG201L", client_class=LimitedV201Station) as station:
        await station.call(BOOT_201)
        status, body = await ahttp(f"{base}/chargepoints/CFG201L/configuration/refresh", method="POST", api_key=api_key)
        assert status == 202
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201L", request_id=body["request_id"], complete=True
            ).aexists()
        )
        status, body = await ahttp(
            f"{base}/chargepoints/CFG201L/configuration", method="PATCH", api_key=api_key, body={"variables": changes}
        )
        sent = [
            [item["variable"]["name"] for item in data["set_variable_data"]]
            for name, data in station.received
            if name == "SetVariables"
        ]
    assert status == 200, body
    assert [(r["variable"]["name"], r["status"]) for r in body["results"]] == [
        (change["variable"]["name"], "Accepted") for change in changes
    ]
    assert sent == [
        ["HeartbeatInterval", "OfflineThreshold"],
        ["TxUpdatedInterval"],
        ["EVConnectionTimeOut"],
        ["AuthorizeRemoteStart"],
    ]
    assert len({r["command_id"] for r in body["results"]}) == 4
    assert station.values[("TxCtrlr", "EVConnectionTimeOut")] == "x" * 300


async def test_v201_a_set_variables_command_over_the_station_s_limits_is_sent_with_a_warning(
    daphne, api_daphne, api_key
):
    await register("CFG201W")
    base = f"{api_daphne.http_url}/api/v1"
    data = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name}, "attribute_value": "90"}
        for name in ("HeartbeatInterval", "OfflineThreshold", "NetworkProfileConnectionAttempts")
    ]
    async with ocpp_charger(daphne, "2.0.1", "CFG201W", client_class=LimitedV201Station) as station:
        await station.call(BOOT_201)
        status, body = await ahttp(f"{base}/chargepoints/CFG201W/configuration/refresh", method="POST", api_key=api_key)
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201W", request_id=body["request_id"], complete=True
            ).aexists()
        )
        status, body = await ahttp(
            f"{base}/ocpp201/CFG201W/set_variables", method="POST", api_key=api_key, body={"set_variable_data": data}
        )
        assert status == 502, body  # sent as asked, refused whole with a CALLERROR
        status, body = await ahttp(
            f"{base}/ocpp201/CFG201W/set_variables",
            method="POST",
            api_key=api_key,
            body={"set_variable_data": data[:2]},
        )
        assert status == 200 and "warnings" not in body
    over, within = [command async for command in Command.objects.filter(action="SetVariables").order_by("created_at")]
    assert len(over.warnings) == 1 and "ItemsPerMessageSetVariables" in over.warnings[0]
    assert within.warnings == []


class UpdatedV201Station(ReportingV201Station):
    """Its FullInventory reports whatever ``parts`` holds (a new firmware drops a variable)."""

    parts = V201_REPORT_PARTS

    @after("GetBaseReport")
    async def send_report(self, request_id: int, **_) -> None:
        for seq_no, part in enumerate(self.parts):
            await self.call(
                call201.NotifyReport(
                    request_id=request_id,
                    generated_at="2026-05-01T12:00:00Z",
                    seq_no=seq_no,
                    tbc=seq_no < len(self.parts) - 1,
                    report_data=part,
                )
            )
        self.reports_sent.set()


async def test_v201_a_complete_full_inventory_drops_the_variables_the_station_no_longer_reports(
    daphne, api_daphne, api_key
):
    await register("CFG201F")
    base = f"{api_daphne.http_url}/api/v1"

    async def full_inventory() -> None:
        status, body = await ahttp(f"{base}/chargepoints/CFG201F/configuration/refresh", method="POST", api_key=api_key)
        assert status == 202
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201F", request_id=body["request_id"], complete=True
            ).aexists()
        )

    async with ocpp_charger(daphne, "2.0.1", "CFG201F", client_class=UpdatedV201Station) as station:
        await station.call(BOOT_201)
        await full_inventory()
        assert await device_model("CFG201F").acount() == V201_VARIABLE_COUNT
        body = {"request_id": 78, "component_variable": [{"component": {"name": "OCPPCommCtrlr"}}]}
        status, _ = await ahttp(f"{base}/ocpp201/CFG201F/get_report", method="POST", api_key=api_key, body=body)
        assert status == 200
        await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201F", request_id=78, complete=True
            ).aexists()
        )
        assert await device_model("CFG201F").acount() == V201_VARIABLE_COUNT  # a report of some: nothing dropped
        station.parts = [
            V201_REPORT_PARTS[0],
            [item for item in V201_REPORT_PARTS[1] if item["variable"]["name"] != "Power"],
        ]
        await full_inventory()
    names = {name async for name in device_model("CFG201F").values_list("variable_name", flat=True)}
    dropped = {"Power", "ConnectorType", "EVConnectionTimeOut", "Model", "EnergyImport"}
    assert names == {item["variable"]["name"] for part in V201_REPORT_PARTS for item in part} - dropped
    assert not await DeviceModelAttribute.objects.filter(
        variable__charge_point__charge_point_id="CFG201F", variable__variable_name__in=dropped
    ).aexists()


async def test_v201_a_report_asked_again_under_its_request_id_is_counted_afresh(daphne, api_daphne, api_key):
    """An integrator's GetBaseReport reusing a requestId an earlier report used: its parts were
    counted into the old report (complete before its parts arrived, the whole device model never
    read again: what the new firmware dropped stayed). The report starts afresh when it is asked."""
    await register("CFG201R")
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CFG201R/get_base_report"
    body = {"request_id": 5, "report_base": "FullInventory"}

    async def report() -> DeviceModelReport:
        return await DeviceModelReport.objects.aget(charge_point__charge_point_id="CFG201R", request_id=5)

    async with ocpp_charger(daphne, "2.0.1", "CFG201R", client_class=UpdatedV201Station) as station:
        await station.call(BOOT_201)
        assert (await ahttp(url, method="POST", api_key=api_key, body=body))[0] == 200
        await asyncio.wait_for(station.reports_sent.wait(), 10)
        first = await report()
        assert (first.parts_received, first.complete) == (len(V201_REPORT_PARTS), True)
        station.reports_sent.clear()
        station.parts = [
            V201_REPORT_PARTS[0],
            [item for item in V201_REPORT_PARTS[1] if item["variable"]["name"] != "Power"],
        ]
        assert (await ahttp(url, method="POST", api_key=api_key, body=body))[0] == 200
        await asyncio.wait_for(station.reports_sent.wait(), 10)
    second = await report()
    assert (second.parts_received, second.seq_nos, second.complete) == (2, [0, 1], True)
    assert second.started_at > first.completed_at
    names = {name async for name in device_model("CFG201R").values_list("variable_name", flat=True)}
    assert "Power" not in names and "HeartbeatInterval" in names


async def test_v201_a_report_asked_again_of_a_station_away_keeps_the_earlier_one(daphne, api_daphne, api_key):
    """A report is started afresh only when its request is sent: asked again of a station no process
    holds (not_connected, nothing sent), the earlier report under that requestId stays as it was."""
    await register("CFG201A")
    url = f"{api_daphne.http_url}/api/v1/ocpp201/CFG201A/get_base_report"
    body = {"request_id": 6, "report_base": "FullInventory"}
    async with ocpp_charger(daphne, "2.0.1", "CFG201A", client_class=UpdatedV201Station) as station:
        await station.call(BOOT_201)
        assert (await ahttp(url, method="POST", api_key=api_key, body=body))[0] == 200
        await asyncio.wait_for(station.reports_sent.wait(), 10)
    for _ in range(100):  # the station's presence goes when its disconnect is written
        if not await ChargePoint.objects.filter(charge_point_id="CFG201A", connected=True).aexists():
            break
        await asyncio.sleep(0.1)
    status = (await ahttp(url, method="POST", api_key=api_key, body=body))[0]
    assert status != 200
    kept = await DeviceModelReport.objects.aget(charge_point__charge_point_id="CFG201A", request_id=6)
    assert (kept.parts_received, kept.complete) == (len(V201_REPORT_PARTS), True)


async def test_v201_a_heartbeat_interval_the_station_took_is_its_record_and_its_next_boot_keeps_it(
    daphne, api_daphne, api_key
):
    """As in 1.6: the BootNotification answer's interval is the one the station adopts (B01)."""
    await register("CFG201HB")
    async with ocpp_charger(daphne, "2.0.1", "CFG201HB", client_class=ReportingV201Station) as station:
        assert (await station.call(BOOT_201)).interval == 60
        status, body = await _heartbeat_interval_set_201(api_daphne, api_key, "CFG201HB", "75")
        assert (status, body["results"][0]["status"]) == (200, "Accepted")
        assert (await ChargePoint.objects.aget(charge_point_id="CFG201HB")).heartbeat_interval == 75
        assert (await station.call(BOOT_201)).interval == 75


async def test_v201_get_report_updates_the_components_it_names(daphne, api_daphne, api_key):
    await register("CFG201C")
    async with ocpp_charger(daphne, "2.0.1", "CFG201C", client_class=ReportingV201Station) as station:
        await station.call(BOOT_201)
        station.values[("EVSE", "Power")] = "7400"
        body = {"request_id": 77, "component_variable": [{"component": {"name": "EVSE"}}]}
        status, _ = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp201/CFG201C/get_report", method="POST", api_key=api_key, body=body
        )
        assert status == 200
        report = await eventually(
            lambda: DeviceModelReport.objects.filter(
                charge_point__charge_point_id="CFG201C", request_id=77, complete=True
            ).afirst()
        )
    command = await Command.objects.aget(charge_point_identity="CFG201C", action="GetReport")
    assert (report.parts_received, report.variables_reported, report.command_id) == (1, 2, command.id)
    values = {
        (attribute.variable.evse_id, attribute.report_request_id): attribute.value
        async for attribute in DeviceModelAttribute.objects.filter(
            variable__charge_point__charge_point_id="CFG201C", variable__component_name="EVSE", type="Actual"
        ).select_related("variable")
    }
    assert values == {(1, 77): "7400", (2, 77): "7400"}


async def test_v201_a_refused_report_request_leaves_no_report_and_a_bad_part_is_refused(daphne, api_daphne, api_key):
    await register("CFG201D")
    async with raw_socket(daphne, "2.0.1", "CFG201D") as websocket:
        refresh = asyncio.create_task(
            ahttp(
                f"{api_daphne.http_url}/api/v1/chargepoints/CFG201D/configuration/refresh",
                method="POST",
                api_key=api_key,
            )
        )
        call = json.loads(await websocket.recv())
        assert call[2:] == ["GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}]
        await websocket.send(json.dumps([3, call[1], {"status": "NotSupported"}]))
        status, body = await refresh
        assert (status, body["error"]) == (409, "NotSupported")
        assert not await DeviceModelReport.objects.filter(charge_point__charge_point_id="CFG201D").aexists()

        part = {
            "requestId": 1,
            "generatedAt": "2026-05-01T12:00:00Z",
            "seqNo": 0,
            "reportData": [{"component": {"name": "OCPPCommCtrlr"}, "variableAttribute": [{"value": "1"}]}],
        }
        await websocket.send(json.dumps([2, "bad-1", "NotifyReport", part]))
        answer = json.loads(await websocket.recv())
        assert answer[:3] == [4, "bad-1", "ProtocolError"]  # the payload is incomplete (OCPP-J §4.2.3)
        part["reportData"][0]["variable"] = {"name": "HeartbeatInterval"}
        await websocket.send(json.dumps([2, "good-1", "NotifyReport", part]))
        assert json.loads(await websocket.recv()) == [3, "good-1", {}]
    assert await device_model("CFG201D").acount() == 1


async def test_v201_a_full_inventory_reported_before_its_request_is_answered_drops_what_the_station_left_out(
    daphne, api_daphne, api_key
):
    """h14's probe: a station that sends its FullInventory's NotifyReport before it answers the
    GetBaseReport (as chargers send StartTransaction before answering RemoteStart): the report was
    tied to its command only by the answer, so the part that completed it found no FullInventory
    asked for, and the variable its new firmware dropped stayed stored for good (its next boot
    skipped the read: a complete FullInventory was recent). The answer's tie now drops them."""
    await register("CFG201E")
    url = f"{api_daphne.http_url}/api/v1/chargepoints/CFG201E/configuration/refresh"

    def part(request_id: int, names: list[str]) -> dict[str, Any]:
        return {
            "requestId": request_id,
            "generatedAt": "2026-05-01T12:00:00Z",
            "seqNo": 0,
            "reportData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": n}, "variableAttribute": [{"value": "9"}]}
                for n in names
            ],
        }

    async with raw_socket(daphne, "2.0.1", "CFG201E") as websocket:
        for names, reported_first in ((["OfflineThreshold", "MessageTimeout"], False), (["OfflineThreshold"], True)):
            refresh = asyncio.create_task(ahttp(url, method="POST", api_key=api_key))
            call = json.loads(await websocket.recv())
            assert call[2] == "GetBaseReport"
            request_id = call[3]["requestId"]
            if not reported_first:
                await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            await websocket.send(json.dumps([2, f"nr-{request_id}", "NotifyReport", part(request_id, names)]))
            assert json.loads(await websocket.recv()) == [3, f"nr-{request_id}", {}]
            if reported_first:
                # The report began by the clock of the process that asked for it, ahead of the
                # gateway's (review): what the report itself named is kept however the clocks stand.
                await DeviceModelReport.objects.filter(
                    charge_point__charge_point_id="CFG201E", request_id=request_id
                ).aupdate(started_at=Now() + timedelta(hours=1))
                await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            status, body = await refresh
            assert status == 202, body
            await eventually(
                lambda request_id=request_id: DeviceModelReport.objects.filter(
                    charge_point__charge_point_id="CFG201E", request_id=request_id, complete=True
                ).aexists()
            )
    names = {name async for name in device_model("CFG201E").values_list("variable_name", flat=True)}
    assert names == {"OfflineThreshold"}


async def test_v201_the_read_after_a_boot_reported_before_it_is_answered_drops_what_the_station_left_out(
    refreshing_daphne,
):
    """The same for the read after a boot (sent on the charger's connection, not through the API):
    the report its part completed before the answer is the whole device model once the answer ties it."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CFG201B", heartbeat_interval=60)
    await sync_to_async(services_record)(charge_point, ["OfflineThreshold", "MessageTimeout"])
    part = {
        "generatedAt": "2026-05-01T12:00:00Z",
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "OfflineThreshold"},
                "variableAttribute": [{"value": "9"}],
            }
        ],
    }
    async with raw_socket(refreshing_daphne, "2.0.1", "CFG201B") as websocket:
        boot = {"chargingStation": {"vendorName": "ABB", "model": "Terra AC"}, "reason": "PowerUp"}
        await websocket.send(json.dumps([2, "boot", "BootNotification", boot]))
        assert json.loads(await websocket.recv())[:2] == [3, "boot"]
        call = json.loads(await websocket.recv())
        assert call[2:] == ["GetBaseReport", {"requestId": call[3]["requestId"], "reportBase": "FullInventory"}]
        await websocket.send(json.dumps([2, "nr", "NotifyReport", {"requestId": call[3]["requestId"], **part}]))
        assert json.loads(await websocket.recv()) == [3, "nr", {}]
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        await eventually(
            lambda: Command.objects.filter(
                charge_point_identity="CFG201B", action="GetBaseReport", state="accepted"
            ).aexists()
        )
    names = {name async for name in device_model("CFG201B").values_list("variable_name", flat=True)}
    assert names == {"OfflineThreshold"}


def services_record(charge_point: ChargePoint, names: list[str]) -> None:
    """Variables the station reported before (a GetVariables answer)."""
    from configuration import services

    services.device_model_attributes_record(
        charge_point=charge_point,
        attributes=[
            services.ReportedAttribute(component={"name": "OCPPCommCtrlr"}, variable={"name": n}, value="1")
            for n in names
        ],
        learned_from="GetVariables",
    )


# --- A change whose answer did not come back -----------------------------------------------------


class LateV16Charger(ConfiguredV16Charger):
    """Answers a ChangeConfiguration only after the CSMS stopped waiting (``refreshing_daphne``'s
    5 s): having taken it (``takes``), or not, then answering Rejected."""

    takes = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answered_late = asyncio.Event()

    @on("ChangeConfiguration")
    async def on_change_configuration(self, key: str, value: str, **_: Any) -> result16.ChangeConfiguration:
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        if self.takes:
            self.configuration[key] = value
        await asyncio.sleep(6)
        return result16.ChangeConfiguration(status="Accepted" if self.takes else "Rejected")

    @after("ChangeConfiguration")
    def after_change_configuration(self, **_: Any) -> None:
        self.answered_late.set()


class LateV201Station(ReportingV201Station):
    """Reports its current values, and answers a SetVariables only after the CSMS stopped waiting,
    having taken it (``takes``), or not."""

    takes = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answered_late = asyncio.Event()

    @after("GetBaseReport")
    async def send_report(self, request_id: int, **_: Any) -> None:
        for seq_no, part in enumerate(V201_REPORT_PARTS):
            data = [
                {
                    **item,
                    "variable_attribute": [
                        {
                            **item["variable_attribute"][0],
                            "value": self.values[(item["component"]["name"], item["variable"]["name"])],
                        },
                        *item["variable_attribute"][1:],
                    ],
                }
                for item in part
            ]
            await self.call(
                call201.NotifyReport(
                    request_id=request_id,
                    generated_at="2026-05-01T12:00:00Z",
                    seq_no=seq_no,
                    tbc=seq_no < len(V201_REPORT_PARTS) - 1,
                    report_data=data,
                )
            )
        self.reports_sent.set()

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> result201.SetVariables:
        self.received.append(("SetVariables", {"set_variable_data": set_variable_data}))
        if self.takes:
            for item in set_variable_data:
                self.values[(item["component"]["name"], item["variable"]["name"])] = item["attribute_value"]
        await asyncio.sleep(6)
        status = "Accepted" if self.takes else "Rejected"
        return result201.SetVariables(
            set_variable_result=[
                {"component": item["component"], "variable": item["variable"], "attribute_status": status}
                for item in set_variable_data
            ]
        )

    @after("SetVariables")
    def after_set_variables(self, **_: Any) -> None:
        self.answered_late.set()


_READ = {"1.6": "GetConfiguration", "2.0.1": "GetBaseReport"}
_BOOT = {"1.6": BOOT_16, "2.0.1": BOOT_201}


async def _reads_received(charger, version: str, count: int) -> None:
    """Heartbeats until the charger received its ``count``-th configuration read (the read owed is
    asked once a message of its is answered; the connection is told of it over the channel layer)."""
    for _ in range(40):
        if sum(action == _READ[version] for action, _ in charger.received) >= count:
            return
        await charger.call(call16.Heartbeat() if version == "1.6" else call201.Heartbeat())
        await asyncio.sleep(0.25)
    raise AssertionError(f"no read {count} of the configuration")


async def _heartbeat_row(api_daphne, api_key: str, version: str, charge_point_id: str) -> dict[str, Any]:
    """The API's row of the charger's heartbeat interval key (1.6) or Actual attribute (2.0.1)."""
    status, body = await ahttp(
        f"{api_daphne.http_url}/api/v1/chargepoints/{charge_point_id}/configuration", api_key=api_key
    )
    assert status == 200
    if version == "1.6":
        return next(row for row in body["keys"] if row["key"] == "HeartbeatInterval")
    variable = next(
        row
        for row in body["variables"]
        if row["component"]["name"] == "OCPPCommCtrlr" and row["variable"]["name"] == "HeartbeatInterval"
    )
    return next(row for row in variable["attributes"] if row["type"] == "Actual")


async def _heartbeat_interval_sent_late(refreshing_daphne, api_key: str, version: str, charge_point_id: str, takes):
    """A charger with a 60 s interval, read after its boot, sent 600 s: its answer comes after the
    CSMS stopped waiting (a 504). The charger, connected still, is returned when it has answered."""
    await register(charge_point_id)
    client = LateV16Charger if version == "1.6" else LateV201Station
    charger_context = ocpp_charger(refreshing_daphne, version, charge_point_id, client_class=client)
    charger = await charger_context.__aenter__()
    charger.takes = takes
    if version == "1.6":
        charger.configuration["HeartbeatInterval"] = "60"
    else:
        charger.values[("OCPPCommCtrlr", "HeartbeatInterval")] = "60"
    assert (await charger.call(_BOOT[version])).status == "Accepted"
    await _reads_received(charger, version, 1)
    await eventually(lambda: _read_whole(charge_point_id), timeout=15)
    assert (await _heartbeat_row(refreshing_daphne, api_key, version, charge_point_id))["value"] == "60"
    if version == "1.6":
        status, _ = await ahttp(
            f"{refreshing_daphne.http_url}/api/v1/ocpp16/{charge_point_id}/change_configuration",
            method="POST",
            api_key=api_key,
            body={"key": "HeartbeatInterval", "value": "600"},
        )
    else:
        status, _ = await _heartbeat_interval_set_201(refreshing_daphne, api_key, charge_point_id, "600")
    assert status == 504
    await asyncio.wait_for(charger.answered_late.wait(), 10)
    return charger, charger_context


async def _read_whole(charge_point_id: str) -> bool:
    """Whether the charger's configuration read was answered and stored whole."""
    done = Command.objects.filter(charge_point_identity=charge_point_id, action__in=_READ.values(), state="accepted")
    if not await done.aexists():
        return False
    reports = DeviceModelReport.objects.filter(charge_point__charge_point_id=charge_point_id)
    return not await reports.aexists() or await reports.filter(complete=True).aexists()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_heartbeat_interval_change_answered_too_late_is_unconfirmed_until_a_read_says_it_was_taken(
    daphne, refreshing_daphne, api_key, version
):
    """The charger took 600 s and answered after the CSMS's timeout: the store showed 60 with nothing
    saying it was uncertain, the record stayed 60 (its next boot's answer undid the change) and the
    sweep marked it offline after 2 min of a charger heartbeating every 10. Now the value sent is
    shown unconfirmed, the sweep waits for the longer meanwhile, and the read owed, asked once the
    charger is next heard, settles both: the charger took it, so it is the record."""
    charge_point_id = f"CFG-LATE-{version}"
    charger, context = await _heartbeat_interval_sent_late(refreshing_daphne, api_key, version, charge_point_id, True)
    try:
        row = await _heartbeat_row(refreshing_daphne, api_key, version, charge_point_id)
        assert (row["value"], row["unconfirmed_value"]) == ("60", "600")
        charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
        assert (charge_point.heartbeat_interval, charge_point.unconfirmed_heartbeat_interval) == (60, 600)
        assert charge_point.configuration_read_owed
        sweep = sync_to_async(mark_offline_stale_charge_points)
        assert charge_point_id not in await sweep(now=charge_point.last_seen + timedelta(minutes=4))
        await _reads_received(charger, version, 2)
        await eventually(lambda: _cleared(charge_point_id), timeout=15)
        row = await eventually(
            lambda: _heartbeat_row_settled(refreshing_daphne, api_key, version, charge_point_id), timeout=15
        )
        assert (row["value"], row["unconfirmed_value"]) == ("600", None)
        charge_point = await eventually(lambda: _interval_settled(charge_point_id), timeout=10)
        assert (charge_point.heartbeat_interval, charge_point.previous_heartbeat_interval) == (600, None)
        assert charge_point.reported_heartbeat_interval is None
        assert (await charger.call(_BOOT[version])).interval == 600  # its next boot keeps it
    finally:
        await context.__aexit__(None, None, None)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_heartbeat_interval_change_the_charger_did_not_take_and_answered_too_late_leaves_the_record(
    daphne, refreshing_daphne, api_key, version
):
    """The charger did not take 600 s (its late answer a refusal): the read owed finds 60, the value
    sent is no longer shown, and the sweep waits for 60 s again."""
    charge_point_id = f"CFG-LATE-NO-{version}"
    charger, context = await _heartbeat_interval_sent_late(refreshing_daphne, api_key, version, charge_point_id, False)
    try:
        row = await _heartbeat_row(refreshing_daphne, api_key, version, charge_point_id)
        assert (row["value"], row["unconfirmed_value"]) == ("60", "600")
        await _reads_received(charger, version, 2)
        row = await eventually(
            lambda: _heartbeat_row_settled(refreshing_daphne, api_key, version, charge_point_id), timeout=15
        )
        assert (row["value"], row["unconfirmed_value"]) == ("60", None)
        charge_point = await eventually(lambda: _interval_settled(charge_point_id), timeout=10)
        assert (charge_point.heartbeat_interval, charge_point.reported_heartbeat_interval) == (60, None)
        sweep = sync_to_async(mark_offline_stale_charge_points)
        assert charge_point_id in await sweep(now=charge_point.last_seen + timedelta(minutes=4))
    finally:
        await context.__aexit__(None, None, None)


async def _heartbeat_row_settled(api_daphne, api_key: str, version: str, charge_point_id: str) -> dict | None:
    row = await _heartbeat_row(api_daphne, api_key, version, charge_point_id)
    return row if row["unconfirmed_value"] is None else None


async def _interval_settled(charge_point_id: str) -> ChargePoint | None:
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    return charge_point if charge_point.unconfirmed_heartbeat_interval is None else None
