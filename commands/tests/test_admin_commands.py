"""The admin's commands panel and actions: the same path as the API, to a real charger on daphne.

The Django test client runs in the test process; the command travels over Redis to the daphne
process holding the charger's socket, exactly as from an API process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call_result as result16

from chargepoints.models import ChargePoint, Connector
from charging.services.transaction_start import StartRequest, transaction_start
from commands import catalog
from commands.forms import COMMAND_FORMS
from commands.models import Command, CommandState
from commands.tests.conftest import V16Charger, V201Charger, answering_charger
from conftest import eventually, ocpp_charger, raw_socket
from kernel.api_keys import api_key_create

CHANGELIST = "/admin/chargepoints/chargepoint/"


def staff_client(username: str, *permissions: str) -> tuple[Client, User]:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def operator(db: None) -> tuple[Client, User]:
    return staff_client("operator", "chargepoints.view_chargepoint", "commands.send_command")


@pytest.fixture
def support(db: None) -> tuple[Client, User]:
    return staff_client("support", "chargepoints.view_chargepoint", "commands.view_command")


def command_url(charge_point: ChargePoint, command: str) -> str:
    return f"{CHANGELIST}{charge_point.pk}/command/{command}/"


def messages_in(page: str) -> list[tuple[str, str]]:
    """(level, text) of each entry in the admin's message bar."""
    bar = re.search(r'<ul class="messagelist">(.*?)</ul>', page, re.S)
    return re.findall(r'<li class="(\w+)">(.*?)</li>', bar.group(1), re.S) if bar else []


async def post(client: Client, url: str, data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """POST from a worker thread (the test's event loop serves the charger meanwhile); the page it lands on."""
    response = await asyncio.to_thread(client.post, url, data, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    return response.redirect_chain[-1][0], messages_in(page)


async def register(charge_point_id: str, ocpp_version: str = "1.6") -> ChargePoint:
    return await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, ocpp_version=ocpp_version
    )


async def connected(charge_point_id: str) -> None:
    await eventually(
        lambda: ChargePoint.objects.filter(charge_point_id=charge_point_id).exclude(connection_channel="").aexists()
    )


# --- The panel, end to end --------------------------------------------------------------------


async def test_reset_from_the_panel_reaches_the_charger_and_shows_its_answer(daphne, operator):
    client, user = operator
    charge_point = await register("CP-1")
    async with ocpp_charger(daphne, "1.6", "CP-1", client_class=V16Charger) as charger:
        await connected("CP-1")
        landed, bar = await post(client, command_url(charge_point, "reset"), {"type": "Soft"})
        assert charger.received == [("Reset", {"type": "Soft"})]
    command = await Command.objects.aget(charge_point_identity="CP-1")
    assert landed == f"{CHANGELIST}{charge_point.pk}/change/"
    assert [level for level, _ in bar] == ["success"]
    assert "Reset sent to CP-1: the charge point answered Accepted." in bar[0][1]
    assert f'href="/admin/commands/command/{command.pk}/change/"' in bar[0][1]
    assert (command.action, command.request, command.state, command.user_id) == (
        "Reset",
        {"type": "Soft"},
        CommandState.ACCEPTED,
        user.pk,
    )


async def test_a_201_charger_gets_its_versions_reset_and_start(daphne, operator):
    client, _ = operator
    charge_point = await register("CP-201", ocpp_version="2.0.1")
    async with ocpp_charger(daphne, "2.0.1", "CP-201", client_class=V201Charger) as charger:
        await connected("CP-201")
        _, reset_bar = await post(client, command_url(charge_point, "reset"), {"type": "Immediate"})
        _, start_bar = await post(
            client, command_url(charge_point, "remote_start"), {"id_tag": "RFID-1", "token_type": "ISO14443"}
        )
    assert charger.received[0] == ("Reset", {"type": "Immediate"})
    start_action, start_payload = charger.received[1]
    assert start_action == "RequestStartTransaction"
    assert start_payload["id_token"] == {"id_token": "RFID-1", "type": "ISO14443"}
    assert start_payload["remote_start_id"] > 0
    assert reset_bar[0][0] == "success" and "answered Scheduled" in reset_bar[0][1]
    assert start_bar[0][0] == "success" and "Remote start sent to CP-201" in start_bar[0][1]
    assert start_bar[1][0] == "warning" and "RFID-1&#x27; is not known to the CSMS" in start_bar[1][1]  # sent anyway


async def test_a_refusing_answer_is_a_warning(daphne, operator):
    client, _ = operator
    charge_point = await register("CP-NO")
    refusing = answering_charger(V16Client, {"Reset": result16.Reset(status="Rejected")})
    async with ocpp_charger(daphne, "1.6", "CP-NO", client_class=refusing):
        await connected("CP-NO")
        _, bar = await post(client, command_url(charge_point, "reset"), {"type": "Hard"})
    assert bar[0][0] == "warning"
    assert "answered Rejected" in bar[0][1]
    assert (await Command.objects.aget(charge_point_identity="CP-NO")).state == CommandState.REJECTED


async def test_a_callerror_is_an_error_with_its_code(daphne, operator):
    client, _ = operator
    charge_point = await register("CP-OLD-FW")
    async with ocpp_charger(daphne, "1.6", "CP-OLD-FW", client_class=V16Charger):  # no UnlockConnector handler
        await connected("CP-OLD-FW")
        _, bar = await post(client, command_url(charge_point, "unlock_connector"), {"connector": 1})
    assert bar[0][0] == "error"
    assert "Unlock connector to CP-OLD-FW failed: the charge point answered CALLERROR NotImplemented" in bar[0][1]


async def test_silence_is_an_error_after_the_timeout(daphne, operator, settings):
    settings.CSMS_OCPP_CALL_TIMEOUT = 1
    client, _ = operator
    charge_point = await register("CP-MUTE")
    async with raw_socket(daphne, "1.6", "CP-MUTE") as websocket:
        await connected("CP-MUTE")
        sending = asyncio.create_task(post(client, command_url(charge_point, "reset"), {"type": "Soft"}))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert call[2:] == ["Reset", {"type": "Soft"}]
        _, bar = await sending
    assert bar[0][0] == "error"
    assert "no answer within 1 s" in bar[0][1]
    assert (await Command.objects.aget(charge_point_identity="CP-MUTE")).state == CommandState.TIMEOUT


def test_a_charger_that_is_not_connected_is_an_error_and_recorded(operator, register_charge_point):
    client, user = operator
    charge_point = register_charge_point("CP-GONE", ocpp_version="1.6")
    response = client.post(command_url(charge_point, "reset"), {"type": "Soft"}, follow=True)
    bar = messages_in(response.content.decode())
    assert bar[0][0] == "error"
    assert "Reset not sent: CP-GONE is not connected." in bar[0][1]
    command = Command.objects.get(charge_point_identity="CP-GONE")
    assert (command.state, command.user_id) == (CommandState.NOT_CONNECTED, user.pk)


def test_a_user_without_send_command_gets_403_and_no_panel(support, register_charge_point):
    client, _ = support
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    assert client.post(command_url(charge_point, "reset"), {"type": "Soft"}).status_code == 403
    assert not Command.objects.exists()
    page = client.get(f"{CHANGELIST}{charge_point.pk}/change/").content.decode()
    assert 'id="command-panel"' not in page
    actions = client.get(CHANGELIST).content.decode()
    assert "reset_soft" not in actions


def test_an_invalid_form_sends_nothing_and_names_the_field(operator, register_charge_point):
    client, _ = operator
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    response = client.post(command_url(charge_point, "reset"), {"type": "Immediate"}, follow=True)
    bar = messages_in(response.content.decode())
    assert bar[0][0] == "error"
    assert "Reset not sent to CP-1: Reset type:" in bar[0][1]
    assert not Command.objects.exists()


def test_the_panel_offers_every_command_with_the_chargers_reset_types(operator, register_charge_point):
    client, _ = operator
    v16 = register_charge_point("CP-16", ocpp_version="1.6")
    v201 = register_charge_point("CP-201", ocpp_version="2.0.1")
    page16 = client.get(f"{CHANGELIST}{v16.pk}/change/").content.decode()
    page201 = client.get(f"{CHANGELIST}{v201.pk}/change/").content.decode()
    assert '<div id="command-panel"' in page16
    for name in COMMAND_FORMS:
        assert f'<form class="command-form" data-command="{name}" method="post" action="{command_url(v16, name)}">' in (
            page16
        )
    assert re.search(r'<select name="type"[^>]*>\s*<option value="Soft"', page16)
    assert re.search(r'<select name="type"[^>]*>\s*<option value="Immediate"', page201)


# --- Admin actions ----------------------------------------------------------------------------


async def test_reset_action_reports_each_charger(daphne, operator):
    client, user = operator
    online = await register("CP-A")
    offline = await register("CP-B")
    async with ocpp_charger(daphne, "1.6", "CP-A", client_class=V16Charger) as charger:
        await connected("CP-A")
        data = {"action": "reset_soft", ACTION_CHECKBOX_NAME: [online.pk, offline.pk]}
        _, bar = await post(client, CHANGELIST, data)
        assert charger.received == [("Reset", {"type": "Soft"})]
    assert len(bar) == 2
    assert any(
        level == "success" and "Reset sent to CP-A: the charge point answered Accepted." in text for level, text in bar
    )
    assert any(level == "error" and "Reset not sent: CP-B is not connected." in text for level, text in bar)
    assert await Command.objects.filter(user_id=user.pk).acount() == 2


async def test_availability_and_trigger_actions_address_the_whole_charger(daphne, operator):
    client, _ = operator
    charge_point = await register("CP-A")
    async with ocpp_charger(daphne, "1.6", "CP-A", client_class=V16Charger) as charger:
        await connected("CP-A")
        for action in ("make_unavailable", "make_available", "trigger_status_notification"):
            await post(client, CHANGELIST, {"action": action, ACTION_CHECKBOX_NAME: [charge_point.pk]})
    assert charger.received == [
        ("ChangeAvailability", {"connector_id": 0, "type": "Inoperative"}),
        ("ChangeAvailability", {"connector_id": 0, "type": "Operative"}),
        ("TriggerMessage", {"requested_message": "StatusNotification"}),
    ]


async def test_a_2_0_1_station_s_statuses_are_triggered_per_evse(daphne, operator):
    """OCPP 2.0.1 F06.FR.13: a TriggerMessage for a StatusNotification names its EVSE (a station reports
    statuses per connector). Probe: the admin action (and the API) sent one without ``evse``."""
    client, _ = operator
    charge_point = await register("CS-TRIG", ocpp_version="2.0.1")
    for evse_id, connector_id in ((1, 1), (1, 2), (2, 1)):
        await Connector.objects.acreate(charge_point=charge_point, evse_id=evse_id, connector_id=connector_id)
    async with ocpp_charger(daphne, "2.0.1", "CS-TRIG", client_class=V201Charger) as charger:
        await connected("CS-TRIG")
        await post(
            client, CHANGELIST, {"action": "trigger_status_notification", ACTION_CHECKBOX_NAME: [charge_point.pk]}
        )
    assert charger.received == [
        ("TriggerMessage", {"requested_message": "StatusNotification", "evse": {"id": 1}}),
        ("TriggerMessage", {"requested_message": "StatusNotification", "evse": {"id": 2}}),
    ]


async def test_a_2_0_1_station_with_no_evse_known_is_told_nothing_was_triggered(daphne, operator):
    """Review: the action sent nothing to a station that reported no EVSE yet, and said nothing."""
    client, _ = operator
    charge_point = await register("CS-NOEVSE", ocpp_version="2.0.1")
    _, said = await post(
        client, CHANGELIST, {"action": "trigger_status_notification", ACTION_CHECKBOX_NAME: [charge_point.pk]}
    )
    assert ("warning", "CS-NOEVSE: nothing to send it yet (no EVSE known).") in said


async def test_heartbeat_interval_change_is_stored_and_pushed(daphne, operator):
    """It changes the stored configuration too, so it also needs the change permission."""
    sender, _ = operator
    client, _ = await sync_to_async(staff_client)(
        "configurer", "chargepoints.view_chargepoint", "chargepoints.change_chargepoint", "commands.send_command"
    )
    charge_point = await register("CP-HB")
    async with ocpp_charger(daphne, "1.6", "CP-HB", client_class=V16Charger) as charger:
        await connected("CP-HB")
        url = command_url(charge_point, "change_heartbeat_interval")
        assert (await sync_to_async(sender.post)(url, {"interval": 45})).status_code == 403
        _, bar = await post(client, url, {"interval": 45})
        assert charger.received == [("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "45"})]
    assert bar[0][0] == "success"
    await charge_point.arefresh_from_db()
    assert charge_point.heartbeat_interval == 45


async def test_an_interval_saved_in_the_charger_s_form_is_pushed_as_the_api_s_patch_pushes_it(daphne, operator):
    """The change form stored it without telling the connected charger, as the API's PATCH and the
    panel do (``heartbeat_interval_push``): it kept heartbeating at its old interval until it
    booted, possibly days later, the offline sweep waiting for the longer of the two meanwhile."""
    client, user = await sync_to_async(staff_client)(
        "editor", "chargepoints.view_chargepoint", "chargepoints.change_chargepoint"
    )
    charge_point = await register("CP-HB-FORM")
    form = {
        "heartbeat_interval": 45,
        "tariff": "",
        "connectors-TOTAL_FORMS": "0",
        "connectors-INITIAL_FORMS": "0",
        "connectors-MIN_NUM_FORMS": "0",
        "connectors-MAX_NUM_FORMS": "1000",
    }
    async with ocpp_charger(daphne, "1.6", "CP-HB-FORM", client_class=V16Charger) as charger:
        await connected("CP-HB-FORM")
        _, bar = await post(client, f"{CHANGELIST}{charge_point.pk}/change/", form)
        assert charger.received == [("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "45"})]
    command = await Command.objects.aget(charge_point_identity="CP-HB-FORM")
    assert (command.state, command.user_id) == (CommandState.ACCEPTED, user.pk)
    assert any(level == "success" and "Heartbeat interval change sent to CP-HB-FORM" in text for level, text in bar)
    await charge_point.arefresh_from_db()
    assert (charge_point.heartbeat_interval, charge_point.previous_heartbeat_interval) == (45, None)


# --- Forms: operator input to each version's body ---------------------------------------------

FORM_CASES = [
    ("1.6", "reset", {"type": "Hard"}, "reset", {"type": "Hard"}),
    ("2.0.1", "reset", {"type": "OnIdle"}, "reset", {"type": "OnIdle"}),
    (
        "1.6",
        "change_availability",
        {"connector": "2", "status": "Inoperative"},
        "change_availability",
        {"connector_id": 2, "type": "Inoperative"},
    ),
    (
        "2.0.1",
        "change_availability",
        {"connector": "", "status": "Operative"},
        "change_availability",
        {"operational_status": "Operative"},
    ),
    (
        "2.0.1",
        "change_availability",
        {"connector": "1", "status": "Inoperative"},
        "change_availability",
        {"operational_status": "Inoperative", "evse": {"id": 1}},
    ),
    (
        "1.6",
        "trigger_message",
        {"requested_message": "MeterValues", "connector": "1"},
        "trigger_message",
        {"requested_message": "MeterValues", "connector_id": 1},
    ),
    (
        "2.0.1",
        "trigger_message",
        {"requested_message": "TransactionEvent", "connector": "1"},
        "trigger_message",
        {"requested_message": "TransactionEvent", "evse": {"id": 1}},
    ),
    (
        "1.6",
        "remote_start",
        {"id_tag": "RFID-1", "connector": "1"},
        "remote_start_transaction",
        {"id_tag": "RFID-1", "connector_id": 1},
    ),
    ("1.6", "remote_stop", {"transaction_id": "42"}, "remote_stop_transaction", {"transaction_id": 42}),
    ("2.0.1", "remote_stop", {"transaction_id": "tx-9"}, "request_stop_transaction", {"transaction_id": "tx-9"}),
    ("1.6", "unlock_connector", {"connector": "2"}, "unlock_connector", {"connector_id": 2}),
    (
        "2.0.1",
        "unlock_connector",
        {"evse": "1", "connector": "1"},
        "unlock_connector",
        {"evse_id": 1, "connector_id": 1},
    ),
]


@pytest.mark.parametrize(("version", "form_name", "data", "command", "body"), FORM_CASES)
def test_each_form_builds_a_schema_valid_body_for_the_version(version, form_name, data, command, body):
    form = COMMAND_FORMS[form_name](data, charge_point=ChargePoint(charge_point_id="CP-1", ocpp_version=version))
    assert form.is_valid(), form.errors
    assert form.command_body() == (command, body)
    assert command in catalog.COMMANDS[version]
    assert catalog.validate_payload(version, catalog.ocpp_action(command), catalog.to_ocpp_payload(body)) == {}


def test_remote_stop_defaults_to_the_open_session(register_charge_point):
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    form = COMMAND_FORMS["remote_stop"]({"transaction_id": ""}, charge_point=charge_point)
    assert not form.is_valid()
    assert "CP-1 has no open session" in form.errors["transaction_id"][0]
    session = transaction_start(
        StartRequest(
            charge_point_id="CP-1",
            ocpp_version="1.6",
            start_key="k1",
            started_at=timezone.now(),
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(0),
        )
    ).transaction
    form = COMMAND_FORMS["remote_stop"]({"transaction_id": ""}, charge_point=charge_point)
    assert form.is_valid()
    assert form.command_body() == ("remote_stop_transaction", {"transaction_id": session.pk})


def test_the_send_command_permission_exists(db):
    permission = Permission.objects.get(content_type__app_label="commands", codename="send_command")
    assert permission.name == "Can send OCPP commands to charge points"


def test_the_command_log_asks_as_many_queries_for_many_commands_as_for_one(support, register_charge_point):
    client, user = support
    charge_point = register_charge_point("LOG-1")
    api_key, _ = api_key_create(name="integrator")

    def sent(count: int) -> None:
        for number in range(count):
            Command.objects.create(
                charge_point=charge_point,
                charge_point_identity="LOG-1",
                ocpp_version="1.6",
                command="reset",
                action="Reset",
                **({"api_key": api_key} if number % 2 else {"user": user}),
            )

    def queries() -> int:
        with CaptureQueriesContext(connection) as statements:
            page = client.get("/admin/commands/command/")
        assert page.status_code == 200
        return len(statements)

    sent(2)
    few = queries()
    sent(20)
    assert queries() == few
    assert "api-key:integrator" in client.get("/admin/commands/command/").content.decode()


async def test_an_action_waits_for_silent_chargers_at_once_not_one_after_the_other(daphne, operator, settings):
    settings.CSMS_OCPP_CALL_TIMEOUT = 2
    client, _ = operator
    mute = [await register(f"CP-MUTE-{number}") for number in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for charge_point in mute:
            await stack.enter_async_context(raw_socket(daphne, "1.6", charge_point.charge_point_id))
            await connected(charge_point.charge_point_id)
        data = {"action": "trigger_status_notification", ACTION_CHECKBOX_NAME: [cp.pk for cp in reversed(mute)]}
        _, bar = await post(client, CHANGELIST, data)
    sent = [command.created_at async for command in Command.objects.filter(action="TriggerMessage")]
    # Every CALL went out before the first one's wait ended (one after the other: 2 s apart at least).
    assert len(sent) == 3 and max(sent) - min(sent) < timedelta(seconds=settings.CSMS_OCPP_CALL_TIMEOUT)
    assert [text.split(":")[0] for _, text in bar] == [
        f"Trigger message sent to {cp.charge_point_id}"
        for cp in mute  # the list's order (by id)
    ]
    assert all(level == "error" and "no answer within 2 s" in text for level, text in bar)


@pytest.mark.django_db
def test_the_command_search_finds_chargers_actions_ids_and_keys_by_indexes_not_by_scanning_every_command(
    admin_client,
):
    """A search was an ILIKE of the charger id, action, id (as text) and idempotency key of every
    command (1.6 s a page at 1,000,000 commands). The chargers matching are looked up first, then
    their commands by ``charge_point_identity``'s index; an action among OCPP's names containing the
    term; an id or idempotency key as given."""
    ChargePoint.objects.create(charge_point_id="SEARCH-CP-1", heartbeat_interval=60)
    ChargePoint.objects.create(charge_point_id="OTHER-CP-2", heartbeat_interval=60)
    made = {}
    for charger, action, key in (("SEARCH-CP-1", "Reset", "key-1"), ("OTHER-CP-2", "GetConfiguration", "")):
        made[charger] = Command.objects.create(
            charge_point_identity=charger,
            ocpp_version="1.6",
            command=action.lower(),
            action=action,
            idempotency_key=key,
        )
    Command.objects.create(charge_point_identity="GONE-CP-3", ocpp_version="1.6", command="reset", action="Reset")
    for term, found in (
        ("search-cp", 1),
        ("-CP-", 2),
        ("GONE-CP-3", 1),
        ("reset", 2),
        ("configuration", 1),
        (str(made["OTHER-CP-2"].pk), 1),
        ("key-1", 1),
        ("nowhere", 0),
    ):
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(f"/admin/commands/command/?q={term}")
        assert page.status_code == 200 and len(page.context["cl"].result_list) == found, term
        listed = [q["sql"] for q in queries.captured_queries if 'FROM "commands_command"' in q["sql"]]
        assert listed and not [sql for sql in listed if "LIKE" in sql], listed
