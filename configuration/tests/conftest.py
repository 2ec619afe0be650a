"""Chargers from the ``ocpp`` package that keep a configuration and answer for it as real ones do."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

# 30 OCPP 1.6 keys (Core, Smart Charging, Local Auth List profiles), as a charger would hold them.
V16_CONFIGURATION = {
    "AllowOfflineTxForUnknownId": "false",
    "AuthorizationCacheEnabled": "true",
    "AuthorizeRemoteTxRequests": "false",
    "BlinkRepeat": "3",
    "ClockAlignedDataInterval": "900",
    "ConnectionTimeOut": "60",
    "ConnectorPhaseRotation": "1.RST",
    "GetConfigurationMaxKeys": "50",
    "HeartbeatInterval": "300",
    "LightIntensity": "80",
    "LocalAuthorizeOffline": "true",
    "LocalPreAuthorize": "false",
    "MaxEnergyOnInvalidId": "0",
    "MeterValuesAlignedData": "Energy.Active.Import.Register",
    "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import",
    "MeterValueSampleInterval": "60",
    "MinimumStatusDuration": "0",
    "NumberOfConnectors": "2",
    "ResetRetries": "3",
    "StopTransactionOnEVSideDisconnect": "true",
    "StopTransactionOnInvalidId": "true",
    "StopTxnAlignedData": "",
    "StopTxnSampledData": "Energy.Active.Import.Register",
    "SupportedFeatureProfiles": "Core,SmartCharging,LocalAuthListManagement",
    "TransactionMessageAttempts": "3",
    "TransactionMessageRetryInterval": "30",
    "UnlockConnectorOnEVSideDisconnect": "true",
    "WebSocketPingInterval": "30",
    "LocalAuthListEnabled": "true",
    "ChargeProfileMaxStackLevel": "8",
}
V16_READONLY = {
    "GetConfigurationMaxKeys",
    "NumberOfConnectors",
    "SupportedFeatureProfiles",
    "ChargeProfileMaxStackLevel",
}
V16_REBOOT_REQUIRED = {"WebSocketPingInterval"}


class ConfiguredV16Charger(V16Client):
    """Answers GetConfiguration from its keys and applies ChangeConfiguration (OCPP 1.6 §5.3, §5.8)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration = dict(V16_CONFIGURATION)
        self.reboot_required = set(V16_REBOOT_REQUIRED)  # keys changed only after a reboot
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> result16.GetConfiguration:
        self.received.append(("GetConfiguration", {"key": key}))
        asked = key or list(self.configuration)
        return result16.GetConfiguration(
            configuration_key=[
                {"key": name, "readonly": name in V16_READONLY, "value": self.configuration[name]}
                for name in asked
                if name in self.configuration
            ],
            unknown_key=[name for name in asked if name not in self.configuration] or None,
        )

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **_: Any) -> result16.ChangeConfiguration:
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        if key not in self.configuration:
            return result16.ChangeConfiguration(status="NotSupported")
        if key in V16_READONLY:
            return result16.ChangeConfiguration(status="Rejected")
        if key in self.reboot_required:
            return result16.ChangeConfiguration(status="RebootRequired")
        self.configuration[key] = value
        return result16.ChangeConfiguration(status="Accepted")


def _report_item(
    component: dict[str, Any],
    variable: str,
    value: str,
    *,
    mutability: str = "ReadWrite",
    data_type: str = "integer",
    unit: str | None = None,
    extra: Sequence[dict[str, Any]] = (),
) -> dict:
    characteristics: dict[str, Any] = {"data_type": data_type, "supports_monitoring": False}
    if unit:
        characteristics["unit"] = unit
    return {
        "component": component,
        "variable": {"name": variable},
        "variable_attribute": [{"type": "Actual", "value": value, "mutability": mutability}, *extra],
        "variable_characteristics": characteristics,
    }


# The station's device model, reported in three NotifyReport parts (2.0.1 part 2, B07).
V201_REPORT_PARTS = [
    [
        _report_item({"name": "OCPPCommCtrlr"}, "HeartbeatInterval", "300", unit="s"),
        _report_item({"name": "OCPPCommCtrlr"}, "NetworkProfileConnectionAttempts", "3"),
        _report_item({"name": "OCPPCommCtrlr"}, "OfflineThreshold", "600", unit="s"),
        _report_item({"name": "SecurityCtrlr"}, "SecurityProfile", "1", mutability="ReadOnly"),
    ],
    [
        _report_item({"name": "SampledDataCtrlr"}, "TxUpdatedInterval", "60", unit="s"),
        _report_item({"name": "AuthCtrlr"}, "AuthorizeRemoteStart", "true", data_type="boolean"),
        _report_item(
            {"name": "EVSE", "evse": {"id": 1}},
            "Power",
            "22000",
            mutability="ReadOnly",
            data_type="decimal",
            unit="W",
            extra=[{"type": "MaxSet", "value": "22000", "mutability": "ReadOnly"}],
        ),
        _report_item(
            {"name": "EVSE", "evse": {"id": 2}}, "Power", "11000", mutability="ReadOnly", data_type="decimal", unit="W"
        ),
    ],
    [
        _report_item(
            {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
            "ConnectorType",
            "cType2",
            mutability="ReadOnly",
            data_type="string",
        ),
        _report_item({"name": "TxCtrlr"}, "EVConnectionTimeOut", "60", unit="s"),
        _report_item({"name": "ChargingStation"}, "Model", "Terra AC", mutability="ReadOnly", data_type="string"),
        _report_item(
            {"name": "FiscalMetering", "instance": "Main"},
            "EnergyImport",
            "0",
            mutability="ReadOnly",
            data_type="decimal",
            unit="Wh",
        ),
    ],
]
V201_VARIABLE_COUNT = sum(len(part) for part in V201_REPORT_PARTS)
V201_REBOOT_REQUIRED = {"NetworkProfileConnectionAttempts"}


class ReportingV201Station(V201Client):
    """Answers GetBaseReport and then sends its device model in three NotifyReport parts; answers
    GetVariables and SetVariables from it (2.0.1 part 2, B06, B05, B07)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.values = {
            (item["component"]["name"], item["variable"]["name"]): item["variable_attribute"][0]["value"]
            for part in V201_REPORT_PARTS
            for item in part
        }
        self.reboot_required = set(V201_REBOOT_REQUIRED)  # variables changed only after a reboot
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.reports_sent = asyncio.Event()

    @on("GetBaseReport")
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> result201.GetBaseReport:
        self.received.append(("GetBaseReport", {"request_id": request_id, "report_base": report_base}))
        return result201.GetBaseReport(status="Accepted")

    @after("GetBaseReport")
    async def send_report(self, request_id: int, **_: Any) -> None:
        for seq_no, part in enumerate(V201_REPORT_PARTS):
            await self.call(
                call201.NotifyReport(
                    request_id=request_id,
                    generated_at="2026-05-01T12:00:00Z",
                    seq_no=seq_no,
                    tbc=seq_no < len(V201_REPORT_PARTS) - 1,
                    report_data=part,
                )
            )
        self.reports_sent.set()

    @on("GetReport")
    def on_get_report(
        self,
        request_id: int,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> result201.GetReport:
        self.received.append(("GetReport", {"request_id": request_id, "component_variable": component_variable}))
        return result201.GetReport(status="Accepted")

    @after("GetReport")
    async def send_asked_report(self, request_id: int, component_variable: list[dict[str, Any]], **_: Any) -> None:
        """One part: the variables of the components asked for, with their current values."""
        names = {item["component"]["name"] for item in component_variable}
        data = [
            {
                **item,
                "variable_attribute": [
                    {
                        **item["variable_attribute"][0],
                        "value": self.values[(item["component"]["name"], item["variable"]["name"])],
                    }
                ],
            }
            for part in V201_REPORT_PARTS
            for item in part
            if item["component"]["name"] in names
        ]
        await self.call(
            call201.NotifyReport(request_id=request_id, generated_at="2026-05-01T12:05:00Z", seq_no=0, report_data=data)
        )

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> result201.GetVariables:
        self.received.append(("GetVariables", {"get_variable_data": get_variable_data}))
        results = []
        for item in get_variable_data:
            value = self.values.get((item["component"]["name"], item["variable"]["name"]))
            answer = {"component": item["component"], "variable": item["variable"]}
            if value is None:
                results.append({**answer, "attribute_status": "UnknownVariable"})
            else:
                results.append({**answer, "attribute_status": "Accepted", "attribute_value": value})
        return result201.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> result201.SetVariables:
        self.received.append(("SetVariables", {"set_variable_data": set_variable_data}))
        results = []
        for item in set_variable_data:
            name = (item["component"]["name"], item["variable"]["name"])
            answer = {"component": item["component"], "variable": item["variable"]}
            if name not in self.values:
                status = "UnknownVariable"
            elif name[1] in self.reboot_required:
                status = "RebootRequired"
            else:
                status = "Accepted"
                self.values[name] = item["attribute_value"]
            results.append({**answer, "attribute_status": status})
        return result201.SetVariables(set_variable_result=results)


@pytest.fixture(scope="session")
def refreshing_daphne(daphne_factory):
    """A daphne that reads each charger's configuration after its boot."""
    return daphne_factory(CSMS_CONFIGURATION_REFRESH_ON_BOOT="true", CSMS_OCPP_CALL_TIMEOUT="5")


@pytest.fixture
def api_daphne(refreshing_daphne):
    """The process API calls go to while the chargers sit on ``daphne``."""
    return refreshing_daphne
