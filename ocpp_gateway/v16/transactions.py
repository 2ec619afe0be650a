"""OCPP 1.6 Core profile: Authorize, StartTransaction, MeterValues, StopTransaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from charging.metering import ENERGY_REGISTER
from charging.selectors import IdTagInfo
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from kernel import payload_case
from kernel.timestamps import format_ocpp_time, parse_ocpp_time
from ocpp_gateway import id_tags
from ocpp_gateway.group_commit import in_commit_group


def id_tag_info(info: IdTagInfo) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": info.status}
    if info.expiry_date is not None:
        answer["expiry_date"] = format_ocpp_time(info.expiry_date)
    if info.parent_id_tag:
        answer["parent_id_tag"] = info.parent_id_tag
    return answer


def sampled_values(meter_values: list[dict[str, Any]]) -> list[SampledValue]:
    """1.6 MeterValue entries as version-neutral samples, with the 1.6 defaults filled in."""
    now = timezone.now()
    samples = []
    for meter_value in meter_values:
        at = parse_ocpp_time(meter_value.get("timestamp")) or now
        for sampled in meter_value.get("sampled_value", []):
            signed = sampled.get("format") == "SignedData"
            samples.append(
                SampledValue(
                    timestamp=at,
                    raw_value=str(sampled.get("value", "")),
                    measurand=sampled.get("measurand", ENERGY_REGISTER),
                    phase=sampled.get("phase", ""),
                    unit=sampled.get("unit", "Wh"),
                    context=sampled.get("context", "Sample.Periodic"),
                    location=sampled.get("location", "Outlet"),
                    format=sampled.get("format", "Raw"),
                    signed_data={"format": "SignedData", "value": sampled.get("value")} if signed else None,
                )
            )
    return samples


def _wh(value: int | float) -> Decimal:
    return Decimal(str(value))


class TransactionHandlers:
    id: str

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **_: Any) -> call_result.Authorize:
        info = await id_tags.id_tag_authorize(id_tag=id_tag)
        return call_result.Authorize(id_tag_info=id_tag_info(info))

    @on(Action.start_transaction)
    async def on_start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int | float,
        timestamp: str,
        reservation_id: int | None = None,
        **_: Any,
    ) -> call_result.StartTransaction:
        started_at = parse_ocpp_time(timestamp) or timezone.now()
        result = await in_commit_group(transaction_start)(
            request=StartRequest(
                charge_point_id=self.id,
                ocpp_version="1.6",
                # A replay of the same start (a charger resending after a lost answer) is the same session.
                start_key=f"{connector_id}|{id_tag.lower()}|{_wh(meter_start)}|{started_at.isoformat()}",
                started_at=started_at,
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start_wh=_wh(meter_start),
                reservation_id=reservation_id,
            )
        )
        assert result.id_tag_info is not None
        return call_result.StartTransaction(
            transaction_id=result.transaction.pk, id_tag_info=id_tag_info(result.id_tag_info)
        )

    @on(Action.meter_values)
    async def on_meter_values(
        self, connector_id: int, meter_value: list[dict[str, Any]], transaction_id: int | None = None, **_: Any
    ) -> call_result.MeterValues:
        await in_commit_group(meter_values_record)(
            charge_point_id=self.id,
            connector_id=connector_id,
            ocpp_transaction_id=str(transaction_id) if transaction_id is not None else "",
            samples=sampled_values(meter_value),
        )
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, **payload: Any) -> call_result.StopTransaction:
        id_tag = payload.get("id_tag")  # absent, a string, or (some firmware) null
        result = await in_commit_group(transaction_stop)(
            request=StopRequest(
                charge_point_id=self.id,
                ocpp_transaction_id=str(payload["transaction_id"]),
                stopped_at=parse_ocpp_time(payload["timestamp"]) or timezone.now(),
                action="StopTransaction",
                payload=payload_case.camel_case(payload),
                meter_stop_wh=_wh(payload["meter_stop"]),
                reason=payload.get("reason", "Local"),
                id_tag=id_tag or "",
                id_tag_null="id_tag" in payload and id_tag is None,
                samples=sampled_values(payload.get("transaction_data") or []),
            )
        )
        info = result.id_tag_info
        return call_result.StopTransaction(id_tag_info=id_tag_info(info) if info else None)
