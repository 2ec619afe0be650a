"""OCPP 2.0.1 Authorization and Transactions blocks: Authorize, TransactionEvent, MeterValues."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from ocpp.v201.enums import Action

from billing import selectors as billing_selectors
from charging.metering import measurand_of, unit_default
from charging.selectors import IdTagInfo
from charging.services.ledger_reads import StopLookup, stopping_unit_register
from charging.services.meter_ledger import SampledValue, meter_values_record, transaction_updated_record
from charging.services.start_reads import StartLookup, starting_unit_register
from charging.services.transaction_start import StartRequest, start_lookup_of_request, transaction_start
from charging.services.transaction_stop import StopRequest, StopResult, transaction_stop
from commands import selectors as commands_selectors
from kernel import payload_case
from kernel.ocpp_package import on_payload
from kernel.timestamps import charger_time_read, format_ocpp_time, utc_now
from ocpp_gateway import id_tags
from ocpp_gateway.group_commit import in_commit_group

# chargingState -> charging (for the session's idle time).
# Whether idle time runs, by 2.0.1 chargingState: connected and not charging is idle time (billed
# after its grace). ``Idle`` is no EV connected (a session authorized before the cable, E02, or the
# cable gone before the transaction ends): not idle time, as 1.6's ``Available`` is not; it ends
# idle time as charging does.
# ``SuspendedEVSE`` (the station withholding energy: a smart charging limit, a site's pause at 0 A) is
# not the driver's idle time: it opens none and ends none, as in 1.6.
_CHARGING = {"Charging": True, "EVConnected": False, "SuspendedEV": False, "Idle": True}
# The station withholding energy: no idle time, and none of the time an idle time taken from its
# timeSpentCharging (which counts only the time energy flowed) bills (``withheld_state_apply``).
_WITHHELD = "SuspendedEVSE"


# The idToken type of a PIN code typed at the station (2.0.1 IdTokenEnumType, C04).
_KEY_CODE = "KeyCode"


def id_token_info(info: IdTagInfo, token_type: str = "") -> dict[str, Any]:
    """The 2.0.1 ``IdTokenInfoType`` as sent: ``{status, cacheExpiryDateTime?, groupIdToken?}``; a
    token not registered is ``Unknown`` (AuthorizationStatusEnumType: "Identifier is unknown. Not
    allowed for charging"; 1.6, without it, answers Invalid), but a PIN code (``token_type`` KeyCode,
    as the station sent it) that is not valid is ``Invalid`` (C04.FR.01)."""
    unregistered = "Invalid" if token_type == _KEY_CODE else "Unknown"
    answer: dict[str, Any] = {"status": info.status if info.registered else unregistered}
    if info.expiry_date is not None:
        answer["cacheExpiryDateTime"] = format_ocpp_time(info.expiry_date)
    if info.parent_id_tag:
        answer["groupIdToken"] = {"idToken": info.parent_id_tag, "type": info.parent_token_type or "Central"}
    return answer


def sampled_values(meter_values: list[dict[str, Any]]) -> list[SampledValue]:
    """2.0.1 MeterValue entries (as sent: ``[{timestamp, sampledValue: [...]}]``) as
    version-neutral samples, with the 2.0.1 defaults filled in. A signedMeterValue is kept with
    its keys in snake_case, as the CSMS has always stored it, beside the value it signs."""
    now = utc_now()
    samples = []
    for meter_value in meter_values:
        at = charger_time_read(meter_value.get("timestamp")) or now
        for sampled in meter_value.get("sampledValue", []):
            unit = sampled.get("unitOfMeasure") or {}
            signed = payload_case.snake_case(sampled.get("signedMeterValue"))
            measurand = measurand_of(sampled.get("measurand"), unit.get("unit"))
            samples.append(
                SampledValue(
                    timestamp=at,
                    raw_value=str(sampled.get("value", "")),
                    measurand=measurand,
                    phase=sampled.get("phase", ""),
                    unit=unit.get("unit", unit_default(measurand)),
                    multiplier=unit.get("multiplier", 0),
                    context=sampled.get("context", "Sample.Periodic"),
                    location=sampled.get("location", "Outlet"),
                    signed_data=signed,  # beside its value, which is the reading (no 1.6 SignedData format)
                )
            )
    return samples


def _transaction_event(charge_point_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Apply one TransactionEvent (its payload as sent, camelCase); its answer (``_answer``)."""
    if payload["eventType"] == "Ended":
        return _ended(charge_point_id, payload)
    token_type = (payload.get("idToken") or {}).get("type", "")
    return _answer(_started_or_updated(charge_point_id, payload), token_type=token_type)


def _answer(info: IdTagInfo | None, total_cost: Decimal | None = None, *, token_type: str = "") -> dict[str, Any]:
    """The TransactionEventResponse as sent: ``{idTokenInfo?, totalCost?}``, ``info`` the idToken's
    authorization when one came (``token_type``: its type, ``id_token_info``'s); ``total_cost`` in the
    currency's units (a JSON number: the ``ocpp`` package would write a Decimal with one decimal)."""
    answer: dict[str, Any] = {"idTokenInfo": id_token_info(info, token_type)} if info else {}
    if total_cost is not None:
        answer["totalCost"] = float(total_cost)
    return answer


def _ended(charge_point_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An Ended event: the session stopped (``transaction_stop``), answered with what it was billed
    (I03: ``totalCost``; 0.00 says free, so it is left out when no tariff priced the session)."""
    info, evse = payload["transactionInfo"], payload.get("evse") or {}
    at = charger_time_read(payload["timestamp"]) or timezone.now()
    sent_token = payload.get("idToken") or {}
    id_tag, token_type = sent_token.get("idToken", ""), sent_token.get("type", "")
    stopped = transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=info["transactionId"],
            stopped_at=at,
            action="TransactionEvent",
            payload=payload,
            reason=info.get("stoppedReason", "Local"),  # the 2.0.1 default
            id_tag=id_tag,
            id_token_type=token_type,
            authorize=token_type != _NO_AUTHORIZATION,  # answered Accepted below, as its Started is
            samples=sampled_values(payload.get("meterValue") or []),
            seq_no=payload["seqNo"],
            time_spent_charging=info.get("timeSpentCharging"),
            evse_id=evse.get("id"),
            connector_id=evse.get("connectorId"),
            reservation_id=payload.get("reservationId"),
            remote_start_id=info.get("remoteStartId"),
        )
    )
    authorization = stopped.id_tag_info
    if sent_token and authorization is None:  # an empty or NoAuthorization idToken: still answered (E05/E06)
        authorization = _empty_token_info(token_type)
    return _answer(authorization, _total_cost(stopped), token_type=token_type)


def _total_cost(stopped: StopResult) -> Decimal | None:
    """What the session an Ended names was billed: as this stop billed it, or, when the session
    had ended before (a resend of its Ended, a second stop), as its billing record says (one
    statement, for those only); None for a stop parked unknown or a session no tariff priced."""
    if stopped.ended:
        return stopped.total_cost
    if stopped.transaction is None:
        return None
    return billing_selectors.billed_total(transaction_id=stopped.transaction.pk)


def _started_or_updated(charge_point_id: str, payload: dict[str, Any]) -> IdTagInfo | None:
    """A Started or Updated event applied; the idToken's authorization when one came (OCPP 2.0.1
    TransactionEventResponse: idTokenInfo is required when the request carried an idToken; none
    for an event that carried none, a remote start's whose token the CSMS took from its command)."""
    info = payload["transactionInfo"]
    at = charger_time_read(payload["timestamp"]) or timezone.now()
    samples = sampled_values(payload.get("meterValue") or [])
    sent_token = payload.get("idToken") or {}
    if not sent_token and _reading_recorded(payload, at, samples):
        return None
    # Started or Updated: opens the session if this is the first event seen of it (out of order).
    # A remote start's events may leave the token out: it is the one the CSMS asked to start for.
    token = sent_token or _remote_start_token(charge_point_id, info.get("remoteStartId"))
    started = transaction_start(_start_request(charge_point_id, payload, token, started_at=at, samples=samples))
    if not sent_token:  # idTokenInfo answers an idToken the event carried (a remote start's is not)
        return None
    if sent_token.get("type") == _NO_AUTHORIZATION:  # the station charges without authorization: nothing to refuse
        return IdTagInfo(status="Accepted")
    return started.id_tag_info


# The idToken type of a station that charges without authorization (2.0.1 IdTokenEnumType).
_NO_AUTHORIZATION = "NoAuthorization"


def _empty_token_info(token_type: str) -> IdTagInfo:
    """The authorization of an Ended's idToken the CSMS did not look up (OCPP 2.0.1: a TransactionEvent
    that carries an idToken is answered with its idTokenInfo): accepted for ``NoAuthorization``
    (whatever its string), else an empty one, not registered (no token is registered without its string)."""
    if token_type == _NO_AUTHORIZATION:
        return IdTagInfo(status="Accepted")
    return IdTagInfo(status="Invalid", registered=False)


def _reading_recorded(payload: dict[str, Any], at: datetime, samples: list[SampledValue]) -> bool:
    """An Updated event without idToken, remoteStartId or reservationId, of a session its
    connection keeps: recorded by ``transaction_updated_record`` (True), as ``transaction_start``
    would; False: not such an event, nothing done."""
    info = payload["transactionInfo"]
    if (
        payload["eventType"] != "Updated"
        or info.get("remoteStartId") is not None
        or payload.get("reservationId") is not None
    ):
        return False
    evse = payload.get("evse") or {}
    return transaction_updated_record(  # the connection keeps its own charger's sessions only
        ocpp_transaction_id=info["transactionId"],
        seq_no=payload["seqNo"],
        at=at,
        samples=samples,
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        charging=_CHARGING.get(info.get("chargingState", "")),
        withheld=info.get("chargingState") == _WITHHELD,
        time_spent_charging=info.get("timeSpentCharging"),
    )


def _start_lookup(charge_point_id: str, payload: dict[str, Any]) -> StartLookup | None:
    """What a Started event's ``transaction_start`` reads under its charger's lock
    (``charging.services.start_reads``: its batch reads it with its other starts); its id tag
    when it sent one to authorize (a remote start's token is read in the unit)."""
    if payload["eventType"] != "Started":
        return None
    return start_lookup_of_request(
        _start_request(charge_point_id, payload, payload.get("idToken") or {}, started_at=_NO_TIME)
    )


def _start_request(
    charge_point_id: str,
    payload: dict[str, Any],
    token: dict[str, Any],
    *,
    started_at: datetime,
    samples: Sequence[SampledValue] = (),
) -> StartRequest:
    """The ``StartRequest`` of a Started or Updated event (OCPP 2.0.1 E01/E02), with ``token``
    the idToken it starts for (as sent, ``{idToken, type}``; ``{}``: none)."""
    info, evse = payload["transactionInfo"], payload.get("evse") or {}
    token_type = token.get("type", "")
    return StartRequest(
        charge_point_id=charge_point_id,
        ocpp_version="2.0.1",
        start_key=info["transactionId"],
        ocpp_transaction_id=info["transactionId"],
        started_at=started_at,
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        id_tag=token.get("idToken", ""),
        id_token_type=token_type,
        authorize=bool(token) and token_type != "NoAuthorization",
        charging=_CHARGING.get(info.get("chargingState", "")),
        withheld=info.get("chargingState") == _WITHHELD,
        reservation_id=payload.get("reservationId"),
        remote_start_id=info.get("remoteStartId"),
        samples=samples,
        seq_no=payload["seqNo"],
        time_spent_charging=info.get("timeSpentCharging"),
        # Without a start reading, only an offline start or a session first seen late is suspect.
        baseline_expected=bool(payload.get("offline")) or payload["eventType"] != "Started",
        started_event=payload["eventType"] == "Started",
        stop_authorized=payload["eventType"] == "Updated" and payload.get("triggerReason") == "StopAuthorized",
    )


_NO_TIME = datetime.min.replace(tzinfo=UTC)  # a lookup's request: its time is not part of what it reads
starting_unit_register(_transaction_event, _start_lookup)


def _stop_lookup(charge_point_id: str, payload: dict[str, Any]) -> StopLookup | None:
    """The session an Ended event stops (``charging.services.ledger_reads``: its batch reads its
    ledger with its other stops')."""
    if payload["eventType"] != "Ended":
        return None
    return StopLookup(charge_point_id, payload["transactionInfo"]["transactionId"])


stopping_unit_register(_transaction_event, _stop_lookup)


def _remote_start_token(charge_point_id: str, remote_start_id: Any) -> dict[str, str]:
    """The idToken (``{idToken, type}``) the CSMS asked the remote start ``remote_start_id`` for; ``{}``: none."""
    if not isinstance(remote_start_id, int) or isinstance(remote_start_id, bool):
        return {}
    token = commands_selectors.remote_start_id_token(charge_point_id=charge_point_id, remote_start_id=remote_start_id)
    return {"idToken": token["id_token"], "type": token["type"]} if token else {}


class TransactionHandlers:
    """Their payloads and answers as sent (``@on_payload``): the charger's camelCase fields."""

    id: str
    readings_paced: Callable[[Any], Coroutine[Any, Any, None]]

    @on_payload(Action.authorize)
    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{idToken: {idToken, type}, ...}`` -> ``{idTokenInfo}``."""
        token = payload["idToken"]
        if token["type"] == _NO_AUTHORIZATION:  # as its TransactionEvents are answered
            return {"idTokenInfo": id_token_info(IdTagInfo(status="Accepted"))}
        info = await id_tags.id_tag_authorize(
            id_tag=token["idToken"], token_type=token["type"], charge_point_id=self.id
        )
        return {"idTokenInfo": id_token_info(info, token["type"])}

    @on_payload(Action.transaction_event)
    async def on_transaction_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A TransactionEvent -> ``{idTokenInfo?, totalCost?}`` (OCPP 2.0.1 E01-E07, I03)."""
        await self.readings_paced(payload.get("meterValue"))
        answer: dict[str, Any] = await in_commit_group(_transaction_event)(charge_point_id=self.id, payload=payload)
        return answer

    @on_payload(Action.meter_values)
    async def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{evseId, meterValue}`` -> ``{}``."""
        await self.readings_paced(payload["meterValue"])
        await in_commit_group(meter_values_record)(
            charge_point_id=self.id, evse_id=payload["evseId"], samples=sampled_values(payload["meterValue"])
        )
        return {}
