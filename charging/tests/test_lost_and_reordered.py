"""Sessions under lost, repeated and reordered messages (round 49): each test names what a charger
sent and what went wrong, through the handlers of both versions, on PostgreSQL."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from ocpp_gateway.v201.transactions import _transaction_event

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
_charger_ids = itertools.count()


def new_charger(register_charge_point, version: str = "2.0.1") -> str:
    charge_point_id = f"CP-R49-{next(_charger_ids)}"
    register_charge_point(charge_point_id, ocpp_version=version)
    return charge_point_id


def event(kind: str, seq_no: int, minute: float, *, transaction_id: str = "TX-1", **extra: Any) -> dict[str, Any]:
    """A 2.0.1 TransactionEventRequest as a charger sends it (camelCase)."""
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": (T0 + timedelta(minutes=minute)).isoformat(),
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id, **extra.pop("info", {})},
        **extra,
    }
    if kind == "Started":
        payload.setdefault("evse", {"id": 1, "connectorId": 1})
    return payload


def subscribed(*events: str) -> None:
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=list(events))


def announced(event_type: str) -> list[dict[str, Any]]:
    from webhooks.models import WebhookDelivery

    bodies = WebhookDelivery.objects.filter(event_type=event_type).order_by("created_at", "pk")
    return [json.loads(body)["data"] for body in bodies.values_list("body", flat=True)]


def test_a_late_started_announces_the_token_the_session_opened_without(register_charge_point):
    """An Updated that overtook its Started (the Started lost, then resent) opened the session
    without a token: transaction.started went out with ``id_tag`` null, and when the Started came
    with the idToken nothing told a subscriber until the session ended. The late Started
    announces the session again, with its token and start."""
    subscribed("transaction.started")
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Updated", 1, 5, evse={"id": 1, "connectorId": 1}))
    token = {"idToken": "RFID-49", "type": "ISO14443"}
    _transaction_event(cp, event("Started", 0, 0, idToken=token))
    first, second = announced("transaction.started")
    assert first["id_tag"] is None
    assert (second["transaction_id"], second["id_tag"]) == (first["transaction_id"], "RFID-49")
    assert second["started_at"] == "2026-05-01T10:00:00Z"
    _transaction_event(cp, event("Started", 0, 0, idToken=token))  # a resend of it: nothing new
    _transaction_event(cp, event("Updated", 2, 10))
    assert len(announced("transaction.started")) == 2
