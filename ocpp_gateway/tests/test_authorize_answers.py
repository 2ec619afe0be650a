"""A 1.6 answer's idTagInfo fits the 1.6 schema whatever the registry holds (round 40's probes: a parent
id tag over 20 characters, a 2.0.1 group token, made every Authorize, start and stop of its cards a
TypeConstraintViolation after the session was stored). Raw-frame charger, real daphne."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from chargepoints.models import ChargePoint
from charging.models import IdTag, Transaction
from conftest import raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "FLEET-ACCOUNT-0123456789-ABCDEFGHIJK"  # 36 characters: a 2.0.1 idToken, not a 1.6 IdToken


async def test_a_1_6_card_whose_group_id_is_over_20_characters_is_answered_without_it(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-LONG", heartbeat_interval=60)
    group = await IdTag.objects.acreate(id_tag=GROUP)
    await IdTag.objects.acreate(id_tag="CHILD1", parent=group)
    start = {"connectorId": 1, "idTag": "CHILD1", "meterStart": 0, "timestamp": "2026-05-01T10:00:00Z"}
    async with raw_socket(daphne, "1.6", "CP-LONG") as websocket:
        answers = []
        for frame in ([2, "a", "Authorize", {"idTag": "CHILD1"}], [2, "s", "StartTransaction", start]):
            await websocket.send(json.dumps(frame))
            answers.append(json.loads(await websocket.recv()))
    assert [answer[0] for answer in answers] == [3, 3]
    assert answers[0][2] == {"idTagInfo": {"status": "Accepted"}}
    assert answers[1][2]["idTagInfo"] == {"status": "Accepted"}
    assert await Transaction.objects.filter(charge_point__charge_point_id="CP-LONG").acount() == 1


# Python's str.lower folds "İ" to "i" + U+0307; the database's LOWER (the unique index) to "i" (and
# under a C locale, or SQLite, folds no letter beyond ASCII at all). Both sides are folded by the database.
UNICODE_TAG = "KARTE-İ1"


async def test_a_tag_beyond_ascii_is_found_by_authorize_start_stop_and_the_api(daphne, api_client):
    await ChargePoint.objects.acreate(charge_point_id="CP-UNI", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag=UNICODE_TAG, status="Blocked")
    start = {"connectorId": 1, "idTag": UNICODE_TAG, "meterStart": 0, "timestamp": "2026-05-01T10:00:00Z"}
    async with raw_socket(daphne, "1.6", "CP-UNI") as websocket:
        answers = []
        for frame in ([2, "a", "Authorize", {"idTag": UNICODE_TAG}], [2, "s", "StartTransaction", start]):
            await websocket.send(json.dumps(frame))
            answers.append(json.loads(await websocket.recv()))
        stop = {"transactionId": answers[1][2]["transactionId"], "idTag": UNICODE_TAG, "meterStop": 10}
        await websocket.send(json.dumps([2, "t", "StopTransaction", {**stop, "timestamp": "2026-05-01T10:05:00Z"}]))
        answers.append(json.loads(await websocket.recv()))
    assert [answer[2]["idTagInfo"]["status"] for answer in answers] == ["Blocked", "Blocked", "Blocked"]
    response = await sync_to_async(api_client.get)(f"/api/v1/id-tags/{UNICODE_TAG}")
    assert (response.status_code, response.json()["status"]) == (200, "Blocked")
    records = await sync_to_async(api_client.get)("/api/v1/billing-records/", {"id_tag": UNICODE_TAG})
    assert records.json()["count"] == 1
