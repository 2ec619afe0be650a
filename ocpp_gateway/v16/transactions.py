"""OCPP 1.6 Core profile: Authorize, StartTransaction, MeterValues, StopTransaction."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from django.utils import timezone
from ocpp.v16.enums import Action

from charging.metering import SIGNED_DATA, measurand_of, unit_default
from charging.selectors import IdTagInfo
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from kernel.ocpp_package import on_payload
from kernel.timestamps import UNREADABLE_TIME, charger_time_read, format_ocpp_time, utc_now
from ocpp_gateway import id_tags
from ocpp_gateway.group_commit import in_commit_group

# 1.6 IdToken is CiString20Type: a longer parent (a 2.0.1 group token, up to 36) cannot be sent.
PARENT_ID_TAG_MAX_LENGTH = 20


def id_tag_info(info: IdTagInfo) -> dict[str, Any]:
    """The 1.6 ``IdTagInfo`` as sent: ``{status, expiryDate?, parentIdTag?}``. A parent longer than
    a 1.6 IdToken (20 characters) is left out: the answer stays valid, its status and expiry stand."""
    answer: dict[str, Any] = {"status": info.status}
    if info.expiry_date is not None:
        answer["expiryDate"] = format_ocpp_time(info.expiry_date)
    if info.parent_id_tag and len(info.parent_id_tag) <= PARENT_ID_TAG_MAX_LENGTH:
        answer["parentIdTag"] = info.parent_id_tag
    return answer


def sampled_values(meter_values: list[dict[str, Any]]) -> list[SampledValue]:
    """1.6 MeterValue entries (as sent: ``[{timestamp, sampledValue: [...]}]``) as version-neutral
    samples, with the 1.6 defaults filled in."""
    now = utc_now()
    samples = []
    for meter_value in meter_values:
        at = charger_time_read(meter_value.get("timestamp")) or now
        for sampled in meter_value.get("sampledValue", []):
            signed = sampled.get("format") == SIGNED_DATA
            measurand = measurand_of(sampled.get("measurand"), sampled.get("unit"))
            samples.append(
                SampledValue(
                    timestamp=at,
                    raw_value=str(sampled.get("value", "")),
                    measurand=measurand,
                    phase=sampled.get("phase", ""),
                    unit=sampled.get("unit", unit_default(measurand)),
                    context=sampled.get("context", "Sample.Periodic"),
                    location=sampled.get("location", "Outlet"),
                    format=sampled.get("format", "Raw"),
                    signed_data={"format": SIGNED_DATA, "value": sampled.get("value")} if signed else None,
                )
            )
    return samples


def _wh(value: int | float) -> Decimal:
    return Decimal(str(value))


class TransactionHandlers:
    """Their payloads and answers as sent (``@on_payload``): the charger's camelCase fields."""

    id: str
    readings_paced: Callable[[Any], Coroutine[Any, Any, None]]

    @on_payload(Action.authorize)
    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{idTag}`` -> ``{idTagInfo}``."""
        info = await id_tags.id_tag_authorize(id_tag=payload["idTag"], charge_point_id=self.id)
        return {"idTagInfo": id_tag_info(info)}

    @on_payload(Action.start_transaction)
    async def on_start_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{connectorId, idTag, meterStart, timestamp, reservationId?}`` -> ``{transactionId, idTagInfo}``."""
        connector_id, id_tag, meter_start = payload["connectorId"], payload["idTag"], _wh(payload["meterStart"])
        sent = payload.get("timestamp")  # left out by a lenient charger: its receipt stands in
        started_at = charger_time_read(sent) or timezone.now()
        # Its time as read (as sent when unreadable: every such start would read the same; none
        # when none was sent: its receipt differs from copy to copy)
        sent_at = "" if sent is None else sent if started_at == UNREADABLE_TIME else started_at.isoformat()
        result = await in_commit_group(transaction_start)(
            request=StartRequest(
                charge_point_id=self.id,
                ocpp_version="1.6",
                # A replay of the same start (a charger resending after a lost answer) is the same session.
                start_key=f"{connector_id}|{id_tag.lower()}|{meter_start}|{sent_at}",
                started_at=started_at,
                # OCPP 1.6 §6.45: connectorId > 0; 0 is the charger as a whole, no connector the
                # session is on (one there would supersede another start there, as on one connector)
                connector_id=connector_id or None,
                id_tag=id_tag,
                meter_start_wh=meter_start,
                reservation_id=payload.get("reservationId"),
            )
        )
        assert result.id_tag_info is not None
        return {"transactionId": result.transaction.pk, "idTagInfo": id_tag_info(result.id_tag_info)}

    @on_payload(Action.meter_values)
    async def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{connectorId, transactionId?, meterValue}`` -> ``{}``."""
        await self.readings_paced(payload["meterValue"])
        transaction_id = payload.get("transactionId")
        await in_commit_group(meter_values_record)(
            charge_point_id=self.id,
            connector_id=payload["connectorId"],
            ocpp_transaction_id=str(transaction_id) if transaction_id is not None else "",
            samples=sampled_values(payload["meterValue"]),
        )
        return {}

    @on_payload(Action.stop_transaction)
    async def on_stop_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{transactionId, meterStop, timestamp, idTag?, reason?, transactionData?}`` -> ``{idTagInfo?}``."""
        id_tag = payload.get("idTag")  # absent, a string, or (some firmware) null
        await self.readings_paced(payload.get("transactionData"))
        result = await in_commit_group(transaction_stop)(
            request=StopRequest(
                charge_point_id=self.id,
                ocpp_transaction_id=str(payload["transactionId"]),
                stopped_at=charger_time_read(payload.get("timestamp")),  # None: none sent, its receipt stands in
                action="StopTransaction",
                payload=payload,
                # None: none sent (absorbed, ``leniency``): the session's last register reading stands in
                meter_stop_wh=_wh(payload["meterStop"]) if "meterStop" in payload else None,
                reason=payload.get("reason", "Local"),
                id_tag=id_tag or "",
                id_tag_null="idTag" in payload and id_tag is None,
                samples=sampled_values(payload.get("transactionData") or []),
            )
        )
        info = result.id_tag_info
        return {"idTagInfo": id_tag_info(info)} if info else {}
