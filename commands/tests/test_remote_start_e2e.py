"""Remote starts end to end: the token of a 2.0.1 remote start comes from the CSMS's own command,
and a remote start for a token the CSMS would not accept is sent with a warning naming it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ocpp.v201 import call as call201

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint
from charging.models import AuthorizationStatus, IdTag, Transaction
from commands.models import Command
from commands.tests.conftest import V16Charger, V201Charger
from conftest import ahttp, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)

T0, T1 = "2026-05-01T10:00:00Z", "2026-05-01T10:20:00Z"


async def register(charge_point_id: str) -> None:
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)


def event(event_type: str, seq_no: int, timestamp: str, wh: int, context: str, **extra: object):
    return call201.TransactionEvent(
        event_type=event_type,
        timestamp=timestamp,
        trigger_reason="RemoteStart" if event_type == "Started" else "StopAuthorized",
        seq_no=seq_no,
        meter_value=[{"timestamp": timestamp, "sampled_value": [{"value": wh, "context": context}]}],
        **extra,
    )


@pytest.mark.parametrize(("id_token", "token_type"), [("RFID-REMOTE", "ISO14443"), ("", "NoAuthorization")])
async def test_a_v201_remote_start_without_id_token_is_billed_to_the_commanded_token(
    daphne, api_key, id_token, token_type
):
    """Its events carry no idToken, so their answers carry no idTokenInfo (OCPP 2.0.1: required when
    the request carried an idToken), a NoAuthorization one's neither (it was answered Accepted)."""
    await register("CP201-REMOTE")
    await IdTag.objects.acreate(id_tag="RFID-REMOTE")
    await Tariff.objects.acreate(
        name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), session_fee=Decimal("1.00"), is_default=True
    )
    body = {"id_token": {"id_token": id_token, "type": token_type}, "remote_start_id": 77, "evse_id": 1}
    async with ocpp_charger(daphne, "2.0.1", "CP201-REMOTE", client_class=V201Charger) as charger:
        status, reply = await ahttp(
            f"{daphne.http_url}/api/v1/ocpp201/CP201-REMOTE/request_start_transaction",
            method="POST",
            api_key=api_key,
            body=body,
        )
        assert (status, reply) == (200, {"status": "Accepted", "transaction_id": None})
        started = await charger.call(
            event(
                "Started",
                0,
                T0,
                2000,
                "Transaction.Begin",
                transaction_info={"transaction_id": "RS-1", "remote_start_id": 77},
                evse={"id": 1, "connector_id": 1},
            )
        )
        assert started.id_token_info is None  # the event named no token: nothing to answer for
        updated = await charger.call(
            call201.TransactionEvent(
                event_type="Updated",
                timestamp=T0,
                trigger_reason="ChargingStateChanged",
                seq_no=1,
                transaction_info={"transaction_id": "RS-1", "charging_state": "Charging", "remote_start_id": 77},
            )
        )
        assert updated.id_token_info is None
        await charger.call(event("Ended", 2, T1, 12000, "Transaction.End", transaction_info={"transaction_id": "RS-1"}))

    session = await Transaction.objects.aget(ocpp_transaction_id="RS-1")
    assert (session.id_tag, session.id_token_type) == (id_token, token_type)
    assert (session.anomalies, session.needs_review) == ([], False)
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.id_tag, record.total, record.needs_review) == (id_token, Decimal("4.00"), False)


@pytest.mark.parametrize(
    ("version", "command", "body", "stored", "warned"),
    [
        ("1.6", "remote_start_transaction", {"connector_id": 1, "id_tag": "RFID-STRANGER"}, None, "not known"),
        ("1.6", "remote_start_transaction", {"id_tag": "RFID-BLOCKED"}, AuthorizationStatus.BLOCKED, "is Blocked"),
        (
            "2.0.1",
            "request_start_transaction",
            {"id_token": {"id_token": "RFID-STRANGER", "type": "ISO14443"}, "remote_start_id": 5},
            None,
            "not known",
        ),
        (
            "2.0.1",
            "request_start_transaction",
            {"id_token": {"id_token": "RFID-BLOCKED", "type": "ISO14443"}, "remote_start_id": 6},
            AuthorizationStatus.BLOCKED,
            "is Blocked",
        ),
    ],
)
async def test_a_remote_start_for_a_token_the_csms_would_refuse_is_sent_with_a_warning(
    daphne, api_key, version, command, body, stored, warned
):
    await register("CP-WARN")
    if stored:
        await IdTag.objects.acreate(id_tag="RFID-BLOCKED", status=stored)
    client = V16Charger if version == "1.6" else V201Charger
    path = "ocpp16" if version == "1.6" else "ocpp201"
    async with ocpp_charger(daphne, version, "CP-WARN", client_class=client) as charger:
        status, reply = await ahttp(
            f"{daphne.http_url}/api/v1/{path}/CP-WARN/{command}", method="POST", api_key=api_key, body=body
        )
        sent = "RemoteStartTransaction" if version == "1.6" else "RequestStartTransaction"
        assert [action for action, _ in charger.received] == [sent]  # sent all the same
    assert (status, reply["status"]) == (200, "Accepted")
    [warning] = reply["warnings"]
    tag = "RFID-BLOCKED" if stored else "RFID-STRANGER"
    assert f"'{tag}'" in warning and warned in warning and "unauthorized_token" in warning
    assert "the charger is answered so when the session starts, and may stop it" in warning  # not only flagged
    assert (await Command.objects.aget(charge_point_identity="CP-WARN")).warnings == [warning]


async def test_a_remote_start_for_an_accepted_token_has_no_warning(daphne, api_key):
    await register("CP-NOWARN")
    await IdTag.objects.acreate(id_tag="RFID-OK")
    async with ocpp_charger(daphne, "1.6", "CP-NOWARN", client_class=V16Charger):
        status, reply = await ahttp(
            f"{daphne.http_url}/api/v1/ocpp16/CP-NOWARN/remote_start_transaction",
            method="POST",
            api_key=api_key,
            body={"id_tag": "rfid-ok"},
        )
    assert (status, reply) == (200, {"status": "Accepted", "transaction_id": None})
