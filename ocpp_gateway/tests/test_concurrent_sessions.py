"""An id tag's limit of sessions at once (``IdTag.max_concurrent_sessions``): beyond it an Authorize or a
start elsewhere is answered ConcurrentTx (OCPP 1.6 §7.2 AuthorizationStatus, 2.0.1
AuthorizationStatusEnumType); the charger holding the session still gets Accepted, so the card can stop
it there; a tag without a limit charges anywhere at once, as before. Raw-frame chargers, real daphne."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging import selectors
from charging.models import IdTag, Transaction
from conftest import raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

AT = "2026-05-01T10:00:00Z"


async def _call(websocket: Any, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    await websocket.send(json.dumps([2, action, action, payload]))
    answer = json.loads(await websocket.recv())
    assert answer[0] == 3, answer
    return dict(answer[2])


def _start(tag: str, connector: int = 1) -> dict[str, Any]:
    return {"connectorId": connector, "idTag": tag, "meterStart": 0, "timestamp": AT}


async def _chargers(*ids: str) -> None:
    for charge_point_id in ids:
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)


async def test_a_1_6_tag_at_its_limit_is_concurrent_elsewhere_and_accepted_where_it_charges(daphne):
    await _chargers("CP-CA", "CP-CB")
    await IdTag.objects.acreate(id_tag="FLEET-1", max_concurrent_sessions=1)
    async with raw_socket(daphne, "1.6", "CP-CA") as charger_a, raw_socket(daphne, "1.6", "CP-CB") as charger_b:
        started = await _call(charger_a, "StartTransaction", _start("FLEET-1"))
        assert started["idTagInfo"]["status"] == "Accepted"
        assert (await _call(charger_b, "Authorize", {"idTag": "fleet-1"}))["idTagInfo"]["status"] == "ConcurrentTx"
        assert (await _call(charger_a, "Authorize", {"idTag": "FLEET-1"}))["idTagInfo"]["status"] == "Accepted"
        # A start is the charger's notification: recorded, answered ConcurrentTx (the charger ends it)
        refused = await _call(charger_b, "StartTransaction", _start("FLEET-1"))
        assert refused["idTagInfo"]["status"] == "ConcurrentTx" and refused["transactionId"] > 0
        # A replay of the first start, on its own connector, is not counted against itself
        assert (await _call(charger_a, "StartTransaction", _start("FLEET-1")))["idTagInfo"]["status"] == "Accepted"
        stop = {"transactionId": started["transactionId"], "meterStop": 100, "timestamp": "2026-05-01T10:05:00Z"}
        await _call(charger_a, "StopTransaction", stop)
        stop = {"transactionId": refused["transactionId"], "meterStop": 0, "timestamp": "2026-05-01T10:05:00Z"}
        await _call(charger_b, "StopTransaction", {**stop, "reason": "DeAuthorized"})
        assert (await _call(charger_b, "Authorize", {"idTag": "FLEET-1"}))["idTagInfo"]["status"] == "Accepted"
    statuses = Transaction.objects.order_by("pk").values_list("charge_point__charge_point_id", "id_tag_status")
    assert [row async for row in statuses] == [("CP-CA", "Accepted"), ("CP-CB", "ConcurrentTx")]


async def test_a_tag_under_its_limit_or_without_one_charges_on_two_chargers_at_once(daphne):
    await _chargers("CP-CC", "CP-CD")
    await IdTag.objects.acreate(id_tag="TWICE", max_concurrent_sessions=2)
    await IdTag.objects.acreate(id_tag="ANYWHERE")
    async with raw_socket(daphne, "1.6", "CP-CC") as charger_c, raw_socket(daphne, "1.6", "CP-CD") as charger_d:
        for connector, tag in ((1, "TWICE"), (2, "ANYWHERE")):
            answer = await _call(charger_c, "StartTransaction", _start(tag, connector))
            assert answer["idTagInfo"]["status"] == "Accepted"
            assert (await _call(charger_d, "Authorize", {"idTag": tag}))["idTagInfo"]["status"] == "Accepted"
            answer = await _call(charger_d, "StartTransaction", _start(tag, connector))
            assert answer["idTagInfo"]["status"] == "Accepted"
        # TWICE now has two open: a third elsewhere is refused, on another connector of a charger too
        assert (await _call(charger_d, "StartTransaction", _start("TWICE", 3)))["idTagInfo"]["status"] == "ConcurrentTx"
        assert (await _call(charger_c, "StartTransaction", _start("ANYWHERE", 3)))["idTagInfo"]["status"] == "Accepted"


async def test_a_2_0_1_token_at_its_limit_is_concurrent_on_authorize_and_in_a_started_event(daphne):
    await _chargers("CP-CE", "CP-CF")
    await IdTag.objects.acreate(id_tag="TOKEN-1", token_type="ISO14443", max_concurrent_sessions=1)
    token = {"idToken": "TOKEN-1", "type": "ISO14443"}

    def started(transaction_id: str, evse_id: int = 1) -> dict[str, Any]:
        return {
            "eventType": "Started",
            "timestamp": AT,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": transaction_id},
            "evse": {"id": evse_id, "connectorId": 1},
            "idToken": token,
        }

    async with raw_socket(daphne, "2.0.1", "CP-CE") as station_e, raw_socket(daphne, "2.0.1", "CP-CF") as station_f:
        assert (await _call(station_e, "TransactionEvent", started("TX-E")))["idTokenInfo"]["status"] == "Accepted"
        assert (await _call(station_f, "Authorize", {"idToken": token}))["idTokenInfo"]["status"] == "ConcurrentTx"
        assert (await _call(station_e, "Authorize", {"idToken": token}))["idTokenInfo"]["status"] == "Accepted"
        answer = await _call(station_f, "TransactionEvent", started("TX-F"))
        assert answer["idTokenInfo"]["status"] == "ConcurrentTx"
        # A later event of the first session is its own, not another
        updated = {**started("TX-E"), "eventType": "Updated", "seqNo": 1, "triggerReason": "Authorized"}
        assert (await _call(station_e, "TransactionEvent", updated))["idTokenInfo"]["status"] == "Accepted"
        # Another EVSE of the same station (its connector 1 too: 2.0.1 numbers them per EVSE) is elsewhere
        answer = await _call(station_e, "TransactionEvent", started("TX-E2", evse_id=2))
        assert answer["idTokenInfo"]["status"] == "ConcurrentTx"


def test_the_api_sets_and_clears_a_tag_limit_and_refuses_one_below_1(api_client):
    created = api_client.post("/api/v1/id-tags/", {"id_tag": "LIMITED", "max_concurrent_sessions": 2}, format="json")
    assert (created.status_code, created.json()["max_concurrent_sessions"]) == (201, 2)
    refused = api_client.patch("/api/v1/id-tags/LIMITED", {"max_concurrent_sessions": 0}, format="json")
    assert refused.status_code == 400 and "max_concurrent_sessions" in json.dumps(refused.json())
    cleared = api_client.patch("/api/v1/id-tags/LIMITED", {"max_concurrent_sessions": None}, format="json")
    assert (cleared.status_code, cleared.json()["max_concurrent_sessions"]) == (200, None)
    assert IdTag.objects.get(id_tag="LIMITED").max_concurrent_sessions is None


async def test_a_limit_set_through_the_api_reaches_a_gateway_that_cached_the_tag(daphne, api_client):
    await _chargers("CP-CG", "CP-CH")
    await IdTag.objects.acreate(id_tag="LATER")
    async with raw_socket(daphne, "1.6", "CP-CG") as charger_g, raw_socket(daphne, "1.6", "CP-CH") as charger_h:
        assert (await _call(charger_h, "Authorize", {"idTag": "LATER"}))["idTagInfo"]["status"] == "Accepted"  # cached
        await _call(charger_g, "StartTransaction", _start("LATER"))
        response = await sync_to_async(api_client.patch)(
            "/api/v1/id-tags/LATER", {"max_concurrent_sessions": 1}, format="json"
        )
        assert response.status_code == 200
        for _ in range(50):  # the change reaches the gateway when it commits (kernel.cache_changes)
            status = (await _call(charger_h, "Authorize", {"idTag": "LATER"}))["idTagInfo"]["status"]
            if status == "ConcurrentTx":
                break
        assert status == "ConcurrentTx"


async def test_a_start_an_offline_charger_queued_before_the_tags_open_session_began_is_not_concurrent(daphne):
    """Probe: a fleet card (one session at a time) charged at CP-CQ while it was offline, then at CP-CR.
    Back online, CP-CQ sent its queued start, stamped hours before CP-CR's: it was answered ConcurrentTx
    and flagged unauthorized_token (needs review), though no session of the card was open when it began.
    A start counts the sessions open elsewhere that began by its time."""
    await _chargers("CP-CQ", "CP-CR")
    await IdTag.objects.acreate(id_tag="FLEET-Q", max_concurrent_sessions=1)
    async with raw_socket(daphne, "1.6", "CP-CR") as later, raw_socket(daphne, "1.6", "CP-CQ") as queued:
        assert (await _call(later, "StartTransaction", _start("FLEET-Q")))["idTagInfo"]["status"] == "Accepted"
        earlier = {**_start("FLEET-Q"), "timestamp": "2026-05-01T06:00:00Z"}
        started = await _call(queued, "StartTransaction", earlier)
        assert started["idTagInfo"]["status"] == "Accepted"
        stop = {"transactionId": started["transactionId"], "meterStop": 100, "timestamp": "2026-05-01T07:00:00Z"}
        await _call(queued, "StopTransaction", stop)
        # A start stamped after the open session began is still a second session at once
        late = {**_start("FLEET-Q"), "timestamp": "2026-05-01T10:30:00Z"}
        assert (await _call(queued, "StartTransaction", late))["idTagInfo"]["status"] == "ConcurrentTx"
    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert (session.id_tag_status, session.anomalies, session.needs_review) == ("Accepted", [], False)


async def test_a_1_6_start_on_connector_0_counts_the_cards_session_on_another_connector_of_its_charger(daphne):
    """Probe: a fleet card (one session at a time) charged on connector 1 of CP-CS; a start of it on
    connector 0 (the charger as a whole, stored without a connector) of the same charger was answered
    Accepted: with no connector or EVSE every session of that charger was taken for its own. Now only
    its own start (a replay of it) is; the session on connector 1 counts."""
    await _chargers("CP-CS", "CP-CT")
    await IdTag.objects.acreate(id_tag="FLEET-S", max_concurrent_sessions=1)
    await IdTag.objects.acreate(id_tag="FLEET-T", max_concurrent_sessions=1)
    async with raw_socket(daphne, "1.6", "CP-CS") as charger_s, raw_socket(daphne, "1.6", "CP-CT") as charger_t:
        assert (await _call(charger_s, "StartTransaction", _start("FLEET-S", 1)))["idTagInfo"]["status"] == "Accepted"
        refused = await _call(charger_s, "StartTransaction", _start("FLEET-S", 0))
        assert refused["idTagInfo"]["status"] == "ConcurrentTx"
        # A start on connector 0, then its replay (a lost answer): the same session, not a second one
        first = await _call(charger_t, "StartTransaction", _start("FLEET-T", 0))
        again = await _call(charger_t, "StartTransaction", _start("FLEET-T", 0))
        assert first["idTagInfo"]["status"] == again["idTagInfo"]["status"] == "Accepted"
        assert first["transactionId"] == again["transactionId"]
        # ... which a start on another connector of its charger counts
        other = await _call(charger_t, "StartTransaction", _start("FLEET-T", 2))
        assert other["idTagInfo"]["status"] == "ConcurrentTx"
        assert (await _call(charger_t, "Authorize", {"idTag": "FLEET-T"}))["idTagInfo"]["status"] == "Accepted"
    session = await Transaction.objects.aget(pk=refused["transactionId"])
    assert (session.connector_id, session.id_tag_status) == (None, "ConcurrentTx")


async def test_a_session_whose_stop_was_lost_weeks_ago_no_longer_holds_its_cards_place(daphne):
    """Probe: a fleet card (one session at a time) started a session at CP-CU 30 days ago whose stop
    was lost (the charger never sent it: open for ever). Every Authorize and start of the card
    anywhere was answered ConcurrentTx, for good. A session open longer than LONG_SESSION (7 days, no
    charging session lasts so long: flagged long_duration when it ends) takes no place; a shorter one
    still does."""
    await _chargers("CP-CU", "CP-CV", "CP-CW")
    await IdTag.objects.acreate(id_tag="FLEET-U", max_concurrent_sessions=1)
    charge_point = await ChargePoint.objects.aget(charge_point_id="CP-CU")
    lost = await Transaction.objects.acreate(
        charge_point=charge_point,
        ocpp_version="1.6",
        start_key="lost",
        connector_id=1,
        id_tag="FLEET-U",
        id_tag_status="Accepted",
        started_at=timezone.now() - timedelta(days=30),
    )
    await Transaction.objects.filter(pk=lost.pk).aupdate(created_at=timezone.now() - timedelta(days=30))
    async with raw_socket(daphne, "1.6", "CP-CV") as charger_v, raw_socket(daphne, "1.6", "CP-CW") as charger_w:
        assert (await _call(charger_v, "Authorize", {"idTag": "FLEET-U"}))["idTagInfo"]["status"] == "Accepted"
        now = timezone.now().isoformat()
        started = await _call(charger_v, "StartTransaction", {**_start("FLEET-U"), "timestamp": now})
        assert started["idTagInfo"]["status"] == "Accepted"
        # The session begun now holds the card's place
        assert (await _call(charger_w, "Authorize", {"idTag": "FLEET-U"}))["idTagInfo"]["status"] == "ConcurrentTx"
    assert (await Transaction.objects.aget(pk=lost.pk)).status == "active"  # kept open: not the check's to close


async def test_a_group_at_its_limit_makes_every_card_of_it_concurrent_elsewhere(daphne):
    """A fleet account's limit (``max_concurrent_sessions`` on the group, a parent id tag no charger
    presents) bounds its cards' sessions together; before, it bounded nothing and both cards charged."""
    await _chargers("CP-GA", "CP-GB")
    group = await IdTag.objects.acreate(id_tag="FLEET-ACCOUNT", max_concurrent_sessions=1)
    for card in ("CARD-1", "CARD-2"):
        await IdTag.objects.acreate(id_tag=card, parent=group)
    async with raw_socket(daphne, "1.6", "CP-GA") as charger_a, raw_socket(daphne, "1.6", "CP-GB") as charger_b:
        started = await _call(charger_a, "StartTransaction", _start("CARD-1"))
        assert started["idTagInfo"] == {"status": "Accepted", "parentIdTag": "FLEET-ACCOUNT"}
        for tag in ("card-2", "FLEET-ACCOUNT"):  # another card of the group, and the group itself
            assert (await _call(charger_b, "Authorize", {"idTag": tag}))["idTagInfo"]["status"] == "ConcurrentTx"
        # Where the group's session is, another card of it may stop it (OCPP's parentIdTag)
        assert (await _call(charger_a, "Authorize", {"idTag": "CARD-2"}))["idTagInfo"]["status"] == "Accepted"
        refused = await _call(charger_b, "StartTransaction", _start("CARD-2"))
        assert refused["idTagInfo"]["status"] == "ConcurrentTx"
        warnings = await sync_to_async(selectors.remote_start_token_warnings)(
            id_tag="CARD-2", token_type="", charge_point_id="CP-GB", connector_id=2
        )
        assert "its group 'FLEET-ACCOUNT''s 1 session(s) at once are open elsewhere" in warnings[0]
        stop = {"transactionId": started["transactionId"], "meterStop": 100, "timestamp": "2026-05-01T10:05:00Z"}
        await _call(charger_a, "StopTransaction", stop)
        assert (await _call(charger_b, "Authorize", {"idTag": "CARD-2"}))["idTagInfo"]["status"] == "Accepted"
    statuses = Transaction.objects.order_by("pk").values_list("id_tag", "id_tag_status")
    assert [row async for row in statuses] == [("CARD-1", "Accepted"), ("CARD-2", "ConcurrentTx")]


async def test_a_2_0_1_session_refused_concurrent_stays_so_when_its_ended_repeats_the_token(daphne):
    """Probe: a fleet token (one session at a time) charged on EVSE 1, then started on EVSE 2 (answered
    ConcurrentTx, flagged unauthorized_token); EVSE 1's session ended first, then EVSE 2's Ended carried
    the same token, Accepted by then: the session was recorded Accepted, its flag gone, its bill no longer
    to review. The token the session started with is judged at its start; its repeat changes nothing
    (another card, accepted, still replaces a refused one)."""
    await _chargers("CP-CX")
    await IdTag.objects.acreate(id_tag="FLEET-X", token_type="ISO14443", max_concurrent_sessions=1)
    token = {"idToken": "FLEET-X", "type": "ISO14443"}

    def event(event_type: str, transaction_id: str, evse_id: int, seq_no: int, at: str) -> dict[str, Any]:
        return {
            "eventType": event_type,
            "timestamp": at,
            "triggerReason": "Authorized" if event_type == "Started" else "StopAuthorized",
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": transaction_id},
            "evse": {"id": evse_id, "connectorId": 1},
            "idToken": token,
            "meterValue": [{"timestamp": at, "sampledValue": [{"value": 1000 * seq_no}]}],
        }

    async with raw_socket(daphne, "2.0.1", "CP-CX") as station:
        first = await _call(station, "TransactionEvent", event("Started", "TX-X1", 1, 0, AT))
        assert first["idTokenInfo"]["status"] == "Accepted"
        second = await _call(station, "TransactionEvent", event("Started", "TX-X2", 2, 0, "2026-05-01T10:05:00Z"))
        assert second["idTokenInfo"]["status"] == "ConcurrentTx"
        await _call(station, "TransactionEvent", event("Ended", "TX-X1", 1, 1, "2026-05-01T10:10:00Z"))
        await _call(station, "TransactionEvent", event("Ended", "TX-X2", 2, 1, "2026-05-01T10:11:00Z"))
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-X2")
    assert (session.id_tag, session.id_tag_status) == ("FLEET-X", "ConcurrentTx")
    assert (session.anomalies, session.needs_review) == (["unauthorized_token"], True)


@pytest.mark.parametrize("registered_type", ["", "ISO14443"])
async def test_a_2_0_1_session_refused_takes_an_accepted_token_of_another_type_with_the_same_string(
    daphne, registered_type
):
    """Round 52: a token is its idToken and its type (IdTokenType); one of another type with the same
    string (the EV's eMAID, then the driver's ISO14443 card) was taken for the refused token told again,
    and the session stayed refused and flagged though the CSMS accepted the card. A tag of any type at
    its limit (ConcurrentTx at the start, Accepted once the other session ended), or of the card's type
    (the eMAID Unknown), now takes the card as the session's token."""
    await _chargers("CP-CY")
    await IdTag.objects.acreate(id_tag="FLEET-Y", token_type=registered_type, max_concurrent_sessions=1)
    card, emaid = {"idToken": "FLEET-Y", "type": "ISO14443"}, {"idToken": "FLEET-Y", "type": "eMAID"}

    def event(event_type: str, transaction_id: str, evse_id: int, seq_no: int, token: dict[str, str]) -> dict:
        return {
            "eventType": event_type,
            "timestamp": f"2026-05-01T10:0{seq_no}:00Z",
            "triggerReason": "Authorized",
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": transaction_id},
            "evse": {"id": evse_id, "connectorId": 1},
            "idToken": token,
        }

    async with raw_socket(daphne, "2.0.1", "CP-CY") as station:
        first = await _call(station, "TransactionEvent", event("Started", "TX-Y1", 1, 0, card))
        assert first["idTokenInfo"]["status"] == "Accepted"
        second = await _call(station, "TransactionEvent", event("Started", "TX-Y2", 2, 1, emaid))
        assert second["idTokenInfo"]["status"] == ("ConcurrentTx" if not registered_type else "Unknown")
        await _call(station, "TransactionEvent", event("Ended", "TX-Y1", 1, 2, card))
        later = await _call(station, "TransactionEvent", event("Updated", "TX-Y2", 2, 3, card))
        assert later["idTokenInfo"]["status"] == "Accepted"
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-Y2")
    assert (session.id_tag, session.id_token_type, session.id_tag_status) == ("FLEET-Y", "ISO14443", "Accepted")
    assert (session.anomalies, session.needs_review) == ([], False)
