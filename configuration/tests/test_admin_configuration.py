"""The admin's configuration pages: searchable, and an edit that travels to a real charger as a command."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargepoints.models import ChargePoint
from commands.models import Command
from commands.tests.test_admin_commands import messages_in, staff_client
from configuration.models import ConfigurationKey, DeviceModelAttribute, DeviceModelVariable
from configuration.services import configuration_keys_record
from configuration.tests.conftest import ConfiguredV16Charger
from configuration.tests.test_configuration_e2e import BOOT_16
from conftest import ahttp, ocpp_charger
from kernel.tests.page_forms import form_as_posted

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/configuration/configurationkey/"


async def test_an_admin_edit_sends_change_configuration_and_the_answer_updates_the_value(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CFG-ADM", heartbeat_interval=60)
    operator, _ = await sync_to_async(staff_client)(
        "operator",
        "configuration.view_configurationkey",
        "configuration.change_configurationkey",
        "commands.send_command",
    )
    support, _ = await sync_to_async(staff_client)(
        "support", "configuration.view_configurationkey", "configuration.change_configurationkey"
    )
    async with ocpp_charger(daphne, "1.6", "CFG-ADM", client_class=ConfiguredV16Charger) as charger:
        await charger.call(BOOT_16)
        status, _ = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/CFG-ADM/configuration/refresh", method="POST", api_key=api_key
        )
        assert status == 200

        listing = await asyncio.to_thread(operator.get, CHANGELIST, {"q": "meterValueSample"})
        page = listing.content.decode()
        assert "MeterValueSampleInterval" in page and "HeartbeatInterval" not in page

        row = await ConfigurationKey.objects.aget(charge_point__charge_point_id="CFG-ADM", key="HeartbeatInterval")
        refused = await asyncio.to_thread(support.post, f"{CHANGELIST}{row.pk}/change/", {"value": "15"})
        assert refused.status_code == 403

        response = await asyncio.to_thread(
            operator.post, f"{CHANGELIST}{row.pk}/change/", {"value": "90", "_save": "Save"}, follow=True
        )
        assert response.status_code == 200
        assert any("answered Accepted" in text for _, text in messages_in(response.content.decode()))
        assert charger.received[-1] == ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "90"})
    row = await ConfigurationKey.objects.aget(pk=row.pk)
    command = await Command.objects.aget(charge_point_identity="CFG-ADM", action="ChangeConfiguration")
    assert (row.value, row.learned_from, row.command_id) == ("90", "ChangeConfiguration", command.id)
    assert command.user_id is not None


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def _learned(charge_point: ChargePoint, rows: range) -> None:
    """Keys and variables, each learned from a command of its own (as a GetConfiguration per key)."""
    now = timezone.now()
    for number in rows:
        command = Command.objects.create(
            charge_point=charge_point,
            charge_point_identity=charge_point.charge_point_id,
            ocpp_version="1.6",
            command="get_configuration",
            action="GetConfiguration",
        )
        ConfigurationKey.objects.create(
            charge_point=charge_point,
            key=f"Key{number}",
            value="1",
            learned_from="GetConfiguration",
            learned_at=now,
            command=command,
        )
        variable = DeviceModelVariable.objects.create(
            charge_point=charge_point,
            component_name="Ctrlr",
            variable_name=f"Variable{number}",
            identity=f"Ctrlr.Variable{number}",
            learned_at=now,
        )
        DeviceModelAttribute.objects.create(
            variable=variable, value="1", learned_from="GetVariables", learned_at=now, command=command
        )


def test_the_configuration_lists_ask_as_many_queries_for_many_rows_as_for_one(admin_client):
    charge_point = ChargePoint.objects.create(charge_point_id="CFG-LIST", heartbeat_interval=60)
    pages = ("/admin/configuration/configurationkey/", "/admin/configuration/devicemodelattribute/")
    _learned(charge_point, range(1))
    few = [_queries(admin_client, page) for page in pages]
    _learned(charge_point, range(1, 15))
    assert [_queries(admin_client, page) for page in pages] == few


@pytest.mark.parametrize(
    ("url", "table", "first_order"),
    [
        (
            "/admin/configuration/configurationkey/",
            "configuration_configurationkey",
            '"configuration_configurationkey"."charge_point_id" ASC, "configuration_configurationkey"."key" ASC',
        ),
        (
            "/admin/configuration/devicemodelvariable/",
            "configuration_devicemodelvariable",
            '"configuration_devicemodelvariable"."charge_point_id" ASC,'
            ' "configuration_devicemodelvariable"."identity" ASC',
        ),
        (
            "/admin/configuration/devicemodelattribute/",
            "configuration_devicemodelattribute",
            '"configuration_devicemodelattribute"."variable_id" ASC, "configuration_devicemodelattribute"."type" ASC',
        ),
    ],
)
def test_the_configuration_lists_never_count_or_sort_the_whole_table(admin_client, url, table, first_order):
    """A 2.0.1 station reports hundreds of variables, 2000 stations a million: the list sorted every
    row by component and variable names (or attribute type; 1.6 keys by key) and counted them all, a
    second a page and more with the fleet. Now in the order of a unique index, the count capped, no
    other sort."""
    _learned(ChargePoint.objects.create(charge_point_id="DM-LIST", heartbeat_interval=60), range(2))
    for ordered in ("", "?o=1", "?o=-2.3"):
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(url + ordered)
        assert page.status_code == 200 and len(page.context["cl"].result_list) == 2
        assert str(page.context["cl"].queryset.query).partition("ORDER BY ")[2] == first_order, ordered
        statements = [each["sql"] for each in queries.captured_queries if f'FROM "{table}"' in each["sql"]]
        counts = [sql for sql in statements if "COUNT(" in sql]
        assert len(counts) == 1 and "LIMIT 10000" in counts[0], counts


@pytest.mark.parametrize(
    ("url", "table", "name", "ones"),
    [
        ("/admin/configuration/configurationkey/", "configuration_configurationkey", "Key1", 4),
        ("/admin/configuration/devicemodelvariable/", "configuration_devicemodelvariable", "Variable1", 3),
        ("/admin/configuration/devicemodelattribute/", "configuration_devicemodelattribute", "Variable1", 3),
    ],
)
def test_a_search_by_charger_id_finds_its_rows_by_index_not_through_the_join(admin_client, url, table, name, ones):
    """A search by charger id was an ILIKE through the join to the chargers, ORed with the names':
    every row was scanned with its charger (0.8-1.2 s a page at 1,000,000 variables). The chargers
    are looked up first, then their rows by the unique index's leading column; a term no charger
    id contains searches the names."""
    _learned(ChargePoint.objects.create(charge_point_id="DM-SEARCH-1", heartbeat_interval=60), range(2))
    _learned(ChargePoint.objects.create(charge_point_id="DM-OTHER-2", heartbeat_interval=60), range(2))
    # "1" is in a charger id and in names or values: all found (the second review: a charger match hid the rest)
    for term, found in (("search-1", 2), ("DM-", 4), (name, 2), ("nowhere", 0), ("1", ones)):
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(f"{url}?q={term}")
        assert page.status_code == 200 and len(page.context["cl"].result_list) == found, term
        statements = [each["sql"] for each in queries.captured_queries if f'FROM "{table}"' in each["sql"]]
        conditions = [sql.partition(" WHERE ")[2] for sql in statements if " WHERE " in sql]
        assert (conditions or not found) and not [sql for sql in conditions if "chargepoints_chargepoint" in sql]
    rows = admin_client.get(f"{url}?q=search-1").context["cl"].result_list
    chargers = {row.variable.charge_point_id if table.endswith("attribute") else row.charge_point_id for row in rows}
    assert chargers == {ChargePoint.objects.get(charge_point_id="DM-SEARCH-1").pk}


def test_a_value_the_charger_reported_while_the_key_s_page_was_open_is_not_sent_back_by_a_save_of_the_page(
    admin_client,
):
    """ "value" was in the form's ``changed_data`` when the page's value differed from the store at the
    save: a key the charger reported anew (a refresh, a change from another page or the API) while
    the page was open was sent back to the charger as the page showed it (ChangeConfiguration of the
    old value) by a save of the page with nothing typed in. Only a value the operator changed is sent."""
    charge_point = ChargePoint.objects.create(charge_point_id="CFG-STALE", ocpp_version="1.6", heartbeat_interval=60)
    configuration_keys_record(
        charge_point=charge_point, keys=[{"key": "MeterValueSampleInterval", "value": "60"}], complete=True
    )
    row = ConfigurationKey.objects.get(charge_point=charge_point, key="MeterValueSampleInterval")
    url = f"{CHANGELIST}{row.pk}/change/"
    page = admin_client.get(url).content.decode()

    configuration_keys_record(  # a refresh, meanwhile
        charge_point=charge_point, keys=[{"key": "MeterValueSampleInterval", "value": "300"}], complete=True
    )
    response = admin_client.post(url, form_as_posted(page, "configurationkey_form"), follow=True)

    assert response.status_code == 200
    assert not [text for _, text in messages_in(response.content.decode()) if "ChangeConfiguration" in text]
    assert not Command.objects.filter(action="ChangeConfiguration").exists()
    assert ConfigurationKey.objects.get(pk=row.pk).value == "300"
