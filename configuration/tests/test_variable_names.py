"""A 2.0.1 variable is one however it is spelt: component and variable names and instances are OCPP's
case-insensitive CiString (a station echoing an integrator's ``ocppcommctrlr`` in its GetVariables
answer made a second variable beside the reported ``OCPPCommCtrlr``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from configuration import services
from configuration.models import DeviceModelAttribute, DeviceModelVariable, LearnedFrom

pytestmark = pytest.mark.django_db

REPORTED = {
    "component": {"name": "OCPPCommCtrlr", "instance": "Main"},
    "variable": {"name": "HeartbeatInterval"},
    "variable_attribute": [{"value": "300", "mutability": "ReadWrite"}],
}


def _stored(charge_point_id: str) -> list[tuple[str, str, str, str, str | None]]:
    return list(
        DeviceModelAttribute.objects.filter(variable__charge_point__charge_point_id=charge_point_id)
        .order_by("type")
        .values_list(
            "variable__component_name", "variable__component_instance", "variable__variable_name", "type", "value"
        )
    )


@pytest.mark.parametrize("path", ["plain", "orm"])
def test_a_variable_named_in_another_case_is_the_one_reported(register_charge_point, monkeypatch, path):
    charge_point = register_charge_point(f"CP-CASE-{path}", ocpp_version="2.0.1")
    with monkeypatch.context() as patched:
        if path == "orm":
            patched.setattr(connection, "vendor", "other")
        services.device_model_report_record(
            charge_point_id=charge_point.charge_point_id,
            request_id=1,
            seq_no=0,
            tbc=False,
            generated_at=None,
            report_data=[REPORTED, {**REPORTED, "component": {"name": "ocppcommctrlr", "instance": "MAIN"}}],
        )
        services.device_model_attributes_record(
            charge_point=charge_point,
            attributes=[
                services.ReportedAttribute(
                    {"name": "OCPPCOMMCTRLR", "instance": "main"}, {"name": "heartbeatinterval"}, value="60"
                ),
                services.ReportedAttribute(
                    {"name": "ocppCommCtrlr", "instance": "main"},
                    {"name": "HEARTBEATINTERVAL"},
                    type="Target",
                    value="90",
                ),
            ],
            learned_from=LearnedFrom.GET_VARIABLES,
        )
    assert _stored(charge_point.charge_point_id) == [
        ("OCPPCommCtrlr", "Main", "HeartbeatInterval", "Actual", "60"),
        ("OCPPCommCtrlr", "Main", "HeartbeatInterval", "Target", "90"),
    ]


BEFORE = [("configuration", "0003_report_complete_with_every_part")]


def _migrate(targets: list[tuple[str, str]] | None = None) -> Apps:
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before_names_ignoring_case() -> Iterator[Apps]:
    """The store before a variable's identity ignored case; the latest schema is back afterwards."""
    try:
        yield _migrate(BEFORE)
    finally:
        _migrate()


@pytest.mark.django_db(transaction=True)
def test_the_migration_makes_one_variable_of_its_spellings_keeping_the_newest_values(
    register_charge_point, before_names_ignoring_case
):
    import hashlib
    import json

    charger = register_charge_point("CP-CASE-MIG", ocpp_version="2.0.1")
    old_variable = before_names_ignoring_case.get_model("configuration", "DeviceModelVariable")
    old_attribute = before_names_ignoring_case.get_model("configuration", "DeviceModelAttribute")
    now = timezone.now()
    rows = {}
    for name, variable, age, attributes in (
        ("OCPPCommCtrlr", "HeartbeatInterval", 2, {"Actual": "300", "MaxSet": "3600"}),
        ("ocppcommctrlr", "heartbeatinterval", 1, {"Actual": "60"}),
        ("OCPPCOMMCTRLR", "HEARTBEATINTERVAL", 3, {"Actual": "10", "Target": "20"}),
        ("OCPPCommCtrlr", "OfflineThreshold", 5, {"Actual": "900"}),
    ):
        key = [name, "", None, None, variable, ""]
        rows[name + variable] = row = old_variable.objects.create(
            charge_point_id=charger.pk,
            component_name=name,
            variable_name=variable,
            identity=hashlib.sha256(json.dumps(key).encode()).hexdigest(),
            learned_at=now - timedelta(hours=age),
        )
        for kind, value in attributes.items():
            old_attribute.objects.create(
                variable_id=row.pk, type=kind, value=value, learned_from="GetVariables", learned_at=row.learned_at
            )
    _migrate()
    variables = DeviceModelVariable.objects.filter(charge_point=charger)
    assert sorted((v.component_name, v.variable_name) for v in variables) == [
        ("OCPPCommCtrlr", "OfflineThreshold"),
        ("ocppcommctrlr", "heartbeatinterval"),  # the newest spelling
    ]
    assert sorted(_stored("CP-CASE-MIG")) == [
        ("OCPPCommCtrlr", "", "OfflineThreshold", "Actual", "900"),
        ("ocppcommctrlr", "", "heartbeatinterval", "Actual", "60"),
        ("ocppcommctrlr", "", "heartbeatinterval", "MaxSet", "3600"),
        ("ocppcommctrlr", "", "heartbeatinterval", "Target", "20"),
    ]
    services.device_model_attributes_record(  # the identity as the services compute it
        charge_point=charger,
        attributes=[services.ReportedAttribute({"name": "OCPPCommCtrlr"}, {"name": "OfflineThreshold"}, value="600")],
        learned_from=LearnedFrom.GET_VARIABLES,
    )
    assert DeviceModelVariable.objects.filter(charge_point=charger).count() == 2
