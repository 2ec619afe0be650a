"""The store's rules, without a charger: report parts, full and partial reads, reboot-pending values."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargepoints import services as boot_services
from chargepoints.models import ChargePoint, LifecycleState
from commands.models import Command, CommandState
from configuration import services
from configuration.changes import configuration_read_recent, configuration_refresh_on_boot
from configuration.models import (
    ConfigurationKey,
    DeviceModelAttribute,
    DeviceModelReport,
    DeviceModelVariable,
    LearnedFrom,
)
from configuration.report_writes import identity_digest, variable_identity

pytestmark = pytest.mark.django_db

ITEM = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "HeartbeatInterval"},
    "variable_attribute": [{"value": "300", "mutability": "ReadWrite"}, {"type": "Target", "value": "60"}],
}


def test_a_report_part_received_twice_is_counted_once(register_charge_point):
    register_charge_point("CP-REP")
    for _ in range(2):
        services.device_model_report_record(
            charge_point_id="CP-REP", request_id=5, seq_no=0, tbc=True, generated_at=None, report_data=[ITEM]
        )
    report = DeviceModelReport.objects.get(request_id=5)
    assert (report.parts_received, report.variables_reported, report.seq_nos, report.complete) == (1, 1, [0], False)
    assert DeviceModelVariable.objects.count() == 1
    assert sorted(DeviceModelAttribute.objects.values_list("type", "value")) == [("Actual", "300"), ("Target", "60")]
    # what the part leaves out is 2.0.1's default (round 41's probe: "" and null stored)
    target = DeviceModelAttribute.objects.get(type="Target")
    assert (target.mutability, target.persistent, target.constant) == ("ReadWrite", False, False)


def test_a_report_part_of_an_unknown_charger_is_refused(db):
    with pytest.raises(services.ChargePoint.DoesNotExist):
        services.device_model_report_record(
            charge_point_id="NOPE", request_id=1, seq_no=0, tbc=False, generated_at=None, report_data=[ITEM]
        )


_MALFORMED = {"component": {"name": "OCPPCommCtrlr"}, "variable_attribute": [{"value": "1"}]}  # no variable


@pytest.mark.parametrize("path", ["plain statement", "orm"])
def test_a_malformed_report_part_is_refused_alike_by_both_paths(register_charge_point, monkeypatch, path):
    """Items without what the schema requires: an unknown charger's part is refused as unknown
    (``ChargePoint.DoesNotExist``: the NotifyReport handler's "not registered"), a known one's
    raises ``KeyError``, on PostgreSQL's plain statement as through the ORM."""
    if path == "plain statement" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    register_charge_point("CP-MALFORMED", ocpp_version="2.0.1")
    part: dict[str, Any] = {"request_id": 1, "seq_no": 0, "tbc": False, "generated_at": None}
    part["report_data"] = [_MALFORMED]
    if path == "orm":
        monkeypatch.setattr(connection, "vendor", "other")
    with pytest.raises(services.ChargePoint.DoesNotExist), transaction.atomic():
        services.device_model_report_record(charge_point_id="NOPE", **part)
    with pytest.raises(KeyError), transaction.atomic():
        services.device_model_report_record(charge_point_id="CP-MALFORMED", **part)


@pytest.mark.parametrize("path", ["plain statement", "orm"])
def test_a_report_item_without_characteristics_keeps_those_a_report_gave_before(
    register_charge_point, monkeypatch, path
):
    """OCPP 2.0.1 ReportDataType: ``variableCharacteristics`` is optional, and a GetReport's items
    (a charger's NotifyReport of its own) often leave them out. Such an item cleared the variable's
    unit, data type and limits a FullInventory had given; a report that gives them still changes them."""
    if path == "plain statement" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    register_charge_point("CP-CHARACTERISTICS", ocpp_version="2.0.1")
    if path == "orm":
        monkeypatch.setattr(connection, "vendor", "other")
    given = {"data_type": "integer", "unit": "s", "max_limit": 86400, "supports_monitoring": False}

    def reported(request_id: int, item: dict[str, Any]) -> dict[str, Any] | None:
        services.device_model_report_record(
            charge_point_id="CP-CHARACTERISTICS",
            request_id=request_id,
            seq_no=0,
            tbc=False,
            generated_at=None,
            report_data=[item],
        )
        return DeviceModelVariable.objects.get(charge_point__charge_point_id="CP-CHARACTERISTICS").characteristics

    assert reported(1, {**ITEM, "variable_characteristics": given}) == given
    assert reported(2, ITEM) == given
    assert reported(3, {**ITEM, "variable_characteristics": None}) == given
    changed = {**given, "max_limit": 3600}
    assert reported(4, {**ITEM, "variable_characteristics": changed}) == changed


def test_a_partial_read_keeps_other_keys_and_clears_a_pending_value(register_charge_point):
    charge_point = register_charge_point("CP-KEYS")
    services.configuration_keys_record(
        charge_point=charge_point,
        keys=[{"key": "A", "readonly": False, "value": "1"}, {"key": "B", "readonly": True, "value": "2"}],
        complete=True,
    )
    ConfigurationKey.objects.filter(key="A").update(pending_value="9")
    services.configuration_keys_record(
        charge_point=charge_point, keys=[{"key": "A", "readonly": False, "value": "9"}], complete=False
    )
    assert sorted(ConfigurationKey.objects.values_list("key", "value", "pending_value")) == [
        ("A", "9", None),
        ("B", "2", None),
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only")
def test_report_request_ids_are_reserved_alike_by_the_plain_statements_and_the_orm(register_charge_point, monkeypatch):
    charge_point = register_charge_point("CP-REQ", ocpp_version="2.0.1")
    with transaction.atomic():
        first = services.device_model_report_request_id(charge_point=charge_point)
    with transaction.atomic(), monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        second = services.device_model_report_request_id(charge_point=charge_point)
    with transaction.atomic():
        third = services.device_model_report_request_id(charge_point=charge_point)
    assert (first, second, third) == (1, 2, 3)
    plain, orm = (DeviceModelReport.objects.get(charge_point=charge_point, request_id=n) for n in (1, 2))
    ignored = {"id", "request_id", "started_at"}
    fields = [field.attname for field in DeviceModelReport._meta.concrete_fields if field.attname not in ignored]
    assert [getattr(plain, name) for name in fields] == [getattr(orm, name) for name in fields]
    assert plain.started_at is not None


@pytest.mark.parametrize("path", ["plain", "orm"])
def test_a_report_id_is_reserved_past_the_highest_32_bit_integer_a_charger_or_an_integrator_used(
    register_charge_point, monkeypatch, path
):
    """A report of requestId 2147483647 (an integrator's GetBaseReport, a charger's own NotifyReport)
    left the next id out of the column's (and OCPP's integer's) range: every read failed. The next
    is then the lowest free one above 0; one below 0 (a charger's made-up id) is never taken."""
    charge_point = register_charge_point("CP-HIGH", ocpp_version="2.0.1")
    for request_id in (-7, 1, 2, 4, 2**31 - 1):
        services.device_model_report_record(
            charge_point_id="CP-HIGH", request_id=request_id, seq_no=0, tbc=False, generated_at=None, report_data=[]
        )
    reserved = []
    with monkeypatch.context() as patched:
        if path == "orm":
            patched.setattr(connection, "vendor", "other")
        for _ in range(3):
            with transaction.atomic():
                reserved.append(services.device_model_report_request_id(charge_point=charge_point))
    assert reserved == [3, 5, 6]
    DeviceModelReport.objects.filter(charge_point=charge_point, request_id__gt=0).delete()
    with monkeypatch.context() as patched:
        if path == "orm":
            patched.setattr(connection, "vendor", "other")
        with transaction.atomic():
            assert services.device_model_report_request_id(charge_point=charge_point) == 1


_PARTS = [  # request 1 in two parts (the second received twice), request 2 never reserved
    {"request_id": 1, "seq_no": 0, "tbc": True, "generated_at": None, "report_data": [ITEM]},
    {
        "request_id": 1,
        "seq_no": 1,
        "tbc": False,
        "generated_at": timezone.now(),
        "report_data": [
            {**ITEM, "variable_attribute": [{"value": "600", "persistent": True}]},
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power", "instance": "max"},
                "variable_characteristics": {"data_type": "decimal", "unit": "W", "supports_monitoring": True},
                "variable_attribute": [
                    {"type": "MaxSet", "value": "22000", "mutability": "ReadOnly", "constant": True}
                ],
            },
        ],
    },
    {"request_id": 2, "seq_no": 0, "tbc": False, "generated_at": None, "report_data": []},
]


def _stored(charge_point: ChargePoint) -> tuple[list[Any], list[Any], list[Any]]:
    """The charger's reports, variables and attributes, without ids, chargers and times."""

    def values(model: Any, rows: Any, *ignored: str) -> list[Any]:
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in {"id", *ignored}]
        return [[getattr(row, name) for name in names] for row in rows]

    reports = DeviceModelReport.objects.filter(charge_point=charge_point).order_by("request_id")
    variables = DeviceModelVariable.objects.filter(charge_point=charge_point).order_by("identity")
    attributes = DeviceModelAttribute.objects.filter(variable__charge_point=charge_point)
    return (
        [[*row, report.completed_at is not None] for row, report in zip(
            values(DeviceModelReport, reports, "charge_point_id", "started_at", "completed_at"), reports, strict=True
        )],
        values(DeviceModelVariable, variables, "charge_point_id", "learned_at"),
        values(DeviceModelAttribute, attributes.order_by("variable__identity", "type"), "variable_id", "learned_at"),
    )  # fmt: skip


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only")
def test_a_report_part_is_stored_by_one_statement_alike_the_orm(register_charge_point, monkeypatch):
    plain, orm = (register_charge_point(name, ocpp_version="2.0.1") for name in ("CP-PART-SQL", "CP-PART-ORM"))
    for charge_point in (plain, orm):
        with transaction.atomic():
            services.device_model_report_request_id(charge_point=charge_point)
    answered = []
    with CaptureQueriesContext(connection) as queries:
        for part in [*_PARTS[:2], *_PARTS[1:]]:
            answered.append(services.device_model_report_record(charge_point_id="CP-PART-SQL", **part))
    assert len(queries.captured_queries) == 4  # one statement each
    with monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        for part in [*_PARTS[:2], *_PARTS[1:]]:
            services.device_model_report_record(charge_point_id="CP-PART-ORM", **part)
    assert _stored(plain) == _stored(orm)
    reports, variables, attributes = _stored(plain)
    assert [row[:7] for row in reports] == [[1, None, 2, [0, 1], 3, 1, True], [2, None, 1, [0], 0, 0, True]]
    assert len(variables) == 2 and len(attributes) == 3
    assert [(report.request_id, report.parts_received, report.complete) for report in answered] == [
        (1, 1, False),
        (1, 2, True),
        (1, 2, True),
        (2, 1, True),
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only")
def test_a_report_is_tied_to_its_command_by_one_statement_alike_the_orm(register_charge_point, monkeypatch):
    charge_points = [register_charge_point(name, ocpp_version="2.0.1") for name in ("CP-TIE-SQL", "CP-TIE-ORM")]
    for charge_point in charge_points:
        with transaction.atomic():
            services.device_model_report_request_id(charge_point=charge_point)
    commands = [
        Command.objects.create(
            charge_point=charge_point,
            charge_point_identity=charge_point.charge_point_id,
            ocpp_version="2.0.1",
            command="get_base_report",
            action="GetBaseReport",
            request={"request_id": 1, "report_base": "FullInventory"},
        )
        for charge_point in charge_points
    ]
    with CaptureQueriesContext(connection) as queries:
        for request_id in (1, 5):  # reserved; not (made)
            services.device_model_report_expect(
                charge_point=charge_points[0], request_id=request_id, command=commands[0]
            )
    assert len(queries.captured_queries) == 2
    with monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        for request_id in (1, 5):
            services.device_model_report_expect(
                charge_point=charge_points[1], request_id=request_id, command=commands[1]
            )
    plain, orm = (_stored(charge_point)[0] for charge_point in charge_points)
    assert [[row[0], *row[2:]] for row in plain] == [[row[0], *row[2:]] for row in orm]
    assert [(row[0], row[1]) for row in plain] == [(1, commands[0].pk), (5, commands[0].pk)]


def _connected(register_charge_point, charge_point_id: str, ocpp_version: str, **kwargs):
    charge_point = register_charge_point(charge_point_id, ocpp_version=ocpp_version, **kwargs)
    ChargePoint.objects.filter(pk=charge_point.pk).update(connection_channel=f"chan.{charge_point_id}")
    return charge_point


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1"])
def test_the_read_after_a_boot_is_recorded_alike_by_the_plain_statements_and_the_orm(
    register_charge_point, monkeypatch, ocpp_version
):
    charge_point = _connected(register_charge_point, "CP-READ", ocpp_version)
    with CaptureQueriesContext(connection) as queries:
        plain = configuration_refresh_on_boot(charge_point_id="CP-READ")
    with monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        orm = configuration_refresh_on_boot(charge_point_id="CP-READ")
    assert plain is not None and orm is not None
    statements = [query["sql"] for query in queries.captured_queries if "SAVEPOINT" not in query["sql"]]
    assert len(statements) == (1 if ocpp_version == "1.6" else 3)  # 2.0.1: then its report id, its command
    assert plain.charge_point.pk == charge_point.pk and plain.charge_point.connection_channel == "chan.CP-READ"
    ignored = {"id", "created_at", "request"}
    fields = [field.attname for field in Command._meta.concrete_fields if field.attname not in ignored]
    stored = Command.objects.get(pk=plain.pk)
    assert [getattr(stored, name) for name in fields] == [getattr(orm, name) for name in fields]
    assert [getattr(stored, name) for name in fields] == [getattr(plain, name) for name in fields]
    if ocpp_version == "1.6":
        assert (stored.action, stored.request, orm.request) == ("GetConfiguration", {}, {})
    else:
        assert (stored.action, stored.request["request_id"], orm.request["request_id"]) == ("GetBaseReport", 1, 2)


@pytest.mark.django_db(transaction=True)
def test_a_201_chargers_read_after_a_boot_holds_its_row_lock_and_a_16_chargers_does_not(
    register_charge_point, charger_locked_elsewhere
):
    _connected(register_charge_point, "CP-LOCK-201", "2.0.1")
    _connected(register_charge_point, "CP-LOCK-16", "1.6")
    with transaction.atomic():
        configuration_refresh_on_boot(charge_point_id="CP-LOCK-201")
        configuration_refresh_on_boot(charge_point_id="CP-LOCK-16")
        assert charger_locked_elsewhere("CP-LOCK-201") and not charger_locked_elsewhere("CP-LOCK-16")


def test_no_read_after_the_boot_of_a_charger_pending_disconnected_or_unknown(register_charge_point):
    _connected(register_charge_point, "CP-PENDING", "1.6", lifecycle_state=LifecycleState.PENDING)
    register_charge_point("CP-GONE", ocpp_version="2.0.1")
    for charge_point_id in ("CP-PENDING", "CP-GONE", "CP-NONE"):
        assert configuration_refresh_on_boot(charge_point_id=charge_point_id) is None
    assert not Command.objects.exists() and not DeviceModelReport.objects.exists()


def _configuration_read(charge_point: ChargePoint, state: str, *, hours_ago: float = 0, **request) -> Command:
    command = Command.objects.create(
        charge_point=charge_point,
        charge_point_identity=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command="get_configuration" if charge_point.ocpp_version == "1.6" else "get_base_report",
        action="GetConfiguration" if charge_point.ocpp_version == "1.6" else "GetBaseReport",
        request=request,
        state=state,
    )
    Command.objects.filter(pk=command.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    return command


def _read_recent_at_boot(charge_point_id: str, firmware_version: str = "1.0") -> tuple[bool, bool | None]:
    boot = boot_services.charge_point_boot(
        charge_point_id=charge_point_id,
        vendor="V",
        model="M",
        firmware_version=firmware_version,
        condition=configuration_read_recent(),
    )
    return boot.identity_kept, boot.condition_held


@pytest.mark.parametrize(
    ("state", "hours_ago", "request_body", "held"),
    [
        (CommandState.ACCEPTED, 0, {}, True),
        (CommandState.ACCEPTED, 0, {"key": None}, True),
        (CommandState.CALL_ERROR, 0, {}, False),  # nothing stored: a charger that refuses is asked each boot
        (CommandState.REJECTED, 0, {}, False),
        (CommandState.TIMEOUT, 0, {}, False),
        (CommandState.PENDING, 0, {}, False),
        (CommandState.ACCEPTED, 0, {"key": ["HeartbeatInterval"]}, False),  # not the whole configuration
        (CommandState.ACCEPTED, 2, {}, False),  # older than CSMS_CONFIGURATION_REFRESH_MAX_AGE (1 h)
    ],
)
def test_the_boot_tells_whether_the_configuration_was_read_recently(
    register_charge_point, settings, state, hours_ago, request_body, held
):
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE = 3600
    charge_point = register_charge_point("CP-FRESH", ocpp_version="1.6")
    _read_recent_at_boot("CP-FRESH")
    _configuration_read(charge_point, state, hours_ago=hours_ago, **request_body)
    assert _read_recent_at_boot("CP-FRESH") == (True, held)


def test_a_2_0_1_full_inventory_is_a_recent_read_once_its_report_is_complete(register_charge_point, settings):
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    charge_point = register_charge_point("CP-FRESH2", ocpp_version="2.0.1")
    _read_recent_at_boot("CP-FRESH2")
    _configuration_read(charge_point, CommandState.ACCEPTED, report_base="SummaryInventory")
    assert _read_recent_at_boot("CP-FRESH2") == (True, False)
    command = _configuration_read(charge_point, CommandState.ACCEPTED, report_base="FullInventory")
    report = DeviceModelReport.objects.create(
        charge_point=charge_point, request_id=7, command=command, started_at=timezone.now()
    )
    assert _read_recent_at_boot("CP-FRESH2") == (True, False)  # its parts never all arrived
    command = _configuration_read(charge_point, CommandState.ACCEPTED, report_base="FullInventory")
    report.pk, report.request_id, report.command, report.complete = None, 8, command, True
    report.save()
    assert _read_recent_at_boot("CP-FRESH2") == (True, True)


def test_a_read_asked_before_the_previous_boot_does_not_count(register_charge_point, settings):
    # Firmware 2.0 installed: its first boot asks for a read, which the charger leaves unanswered
    # (it reboots to finish the install); the read under firmware 1.0 does not stand for 2.0.
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    charge_point = register_charge_point("CP-FW", ocpp_version="1.6")
    _read_recent_at_boot("CP-FW", firmware_version="1.0")
    _configuration_read(charge_point, CommandState.ACCEPTED)
    assert _read_recent_at_boot("CP-FW", firmware_version="2.0") == (False, True)
    _configuration_read(charge_point, CommandState.TIMEOUT)
    assert _read_recent_at_boot("CP-FW", firmware_version="2.0") == (True, False)


def test_a_boot_that_skipped_the_read_does_not_make_the_next_one_read(register_charge_point, settings):
    # Before, only a read since the previous boot counted: a boot that skipped the read made the
    # next one read again, so half the boots of a fleet rebooting with the same firmware read.
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE = 3600
    charge_point = register_charge_point("CP-AGAIN", ocpp_version="1.6")
    _read_recent_at_boot("CP-AGAIN", firmware_version="1.0")
    _configuration_read(charge_point, CommandState.ACCEPTED)
    assert [_read_recent_at_boot("CP-AGAIN", firmware_version="1.0") for _ in range(3)] == [(True, True)] * 3
    assert _read_recent_at_boot("CP-AGAIN", firmware_version="1.1") == (False, True)  # read: new firmware
    assert _read_recent_at_boot("CP-AGAIN", firmware_version="1.1") == (True, False)  # 1.0's read is not 1.1's
    _configuration_read(charge_point, CommandState.ACCEPTED)
    assert _read_recent_at_boot("CP-AGAIN", firmware_version="1.1") == (True, True)
    # A row from before identity_booted_at: its previous boot stands in, as before.
    ChargePoint.objects.filter(pk=charge_point.pk).update(identity_booted_at=None)
    assert _read_recent_at_boot("CP-AGAIN", firmware_version="1.1") == (True, False)


def test_a_value_waiting_for_a_reboot_or_new_firmware_asks_for_the_read(register_charge_point, settings):
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    charge_point = register_charge_point("CP-PEND", ocpp_version="1.6")
    _read_recent_at_boot("CP-PEND")
    _configuration_read(charge_point, CommandState.ACCEPTED)
    assert _read_recent_at_boot("CP-PEND") == (True, True)
    _configuration_read(charge_point, CommandState.ACCEPTED)
    assert _read_recent_at_boot("CP-PEND", firmware_version="1.1") == (False, True)
    _configuration_read(charge_point, CommandState.ACCEPTED)
    ConfigurationKey.objects.create(
        charge_point=charge_point,
        key="MeterValueSampleInterval",
        value="60",
        pending_value="30",
        learned_from="ChangeConfiguration",
        learned_at=timezone.now(),
    )
    assert _read_recent_at_boot("CP-PEND", firmware_version="1.1") == (True, False)


def test_a_max_age_of_0_asks_nothing_at_boot(settings):
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE = 0
    assert configuration_read_recent() is None


@pytest.mark.parametrize("path", ["plain statement", "orm"])
def test_a_report_is_complete_only_once_every_part_up_to_its_last_arrived(register_charge_point, monkeypatch, path):
    """OCPP 2.0.1 B07: a report's parts are numbered from seqNo 0. Its last part (tbc false) after
    a part the charger lost leaves it incomplete (so a boot reads the configuration again); the lost
    part arriving after it completes it, at that moment."""
    if path == "plain statement" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    register_charge_point("CP-GAP", ocpp_version="2.0.1")
    if path == "orm":
        monkeypatch.setattr(connection, "vendor", "other")

    def part(request_id: int, seq_no: int, tbc: bool) -> DeviceModelReport:
        return services.device_model_report_record(
            charge_point_id="CP-GAP",
            request_id=request_id,
            seq_no=seq_no,
            tbc=tbc,
            generated_at=None,
            report_data=[ITEM],
        )

    lone_last = part(1, 1, tbc=False)  # seqNo 0 never came
    assert (lone_last.parts_received, lone_last.complete, lone_last.completed_at) == (1, False, None)
    assert [(p.complete, p.completed_at is None) for p in (part(2, 0, True), part(2, 2, False))] == [(False, True)] * 2
    late = part(2, 1, tbc=True)  # the missing middle part, after the last
    assert (late.parts_received, late.complete, late.completed_at is not None) == (3, True, True)
    again = part(2, 2, tbc=False)  # the last part resent: still complete, at the first time
    assert (again.complete, again.completed_at) == (True, late.completed_at)
    whole = part(3, 0, tbc=False)
    assert (whole.complete, whole.completed_at is not None) == (True, True)
    assert not part(4, 2_147_483_647, tbc=False).complete  # the largest seqNo: stored, and a gap below it
    assert not part(5, -1, tbc=False).complete  # no part numbered below 0 completes a report
    assert not part(5, 0, tbc=True).complete
    reports = DeviceModelReport.objects.order_by("request_id").values_list("request_id", "last_seq_no", "complete")
    assert list(reports) == [(1, 1, False), (2, 2, True), (3, 0, True), (4, 2_147_483_647, False), (5, -1, False)]


@pytest.mark.parametrize(
    ("component", "variable", "attribute_type", "interval"),
    [
        ({"name": "OCPPCommCtrlr"}, {"name": "HeartbeatInterval"}, "Actual", 75),
        ({"name": "ocppcommctrlr"}, {"name": "HEARTBEATINTERVAL"}, "Actual", 75),  # names matched case-folded
        ({"name": "OCPPCommCtrlr"}, {"name": "HeartbeatInterval"}, "Target", 60),  # not the value in force
        ({"name": "OCPPCommCtrlr", "instance": "2"}, {"name": "HeartbeatInterval"}, "Actual", 60),
        ({"name": "OCPPCommCtrlr", "evse": {"id": 1}}, {"name": "HeartbeatInterval"}, "Actual", 60),
    ],
)
def test_a_set_heartbeat_interval_is_the_chargers_record_only_as_ocppcommctrlrs_actual_value(
    register_charge_point, django_capture_on_commit_callbacks, component, variable, attribute_type, interval
):
    charge_point = register_charge_point("CP-HB", ocpp_version="2.0.1")
    attribute = services.ReportedAttribute(component=component, variable=variable, type=attribute_type, value="75")
    with django_capture_on_commit_callbacks(execute=True):
        services.device_model_attributes_record(
            charge_point=charge_point, attributes=[attribute], learned_from=LearnedFrom.SET_VARIABLES
        )
    assert ChargePoint.objects.get(charge_point_id="CP-HB").heartbeat_interval == interval


@pytest.mark.parametrize("together", [False, True])
def test_a_heartbeat_interval_the_charger_reports_keeping_is_the_one_the_offline_sweep_waits_for(
    register_charge_point, django_capture_on_commit_callbacks, together
):
    """Fails before the change: a charger that reads back ``HeartbeatInterval`` 12 (read-only: it
    keeps its own whatever the BootNotification answer says) was expected every 2 s, and marked
    offline, then online at its next heartbeat, every cycle. Reporting the stored interval clears it."""
    charge_point = register_charge_point("CP-OWN-PACE", heartbeat_interval=2)
    connected_at = timezone.now()
    ChargePoint.objects.filter(pk=charge_point.pk).update(connected=True, last_seen=connected_at)

    def read(value: str) -> None:
        keys = [{"key": "HeartbeatInterval", "readonly": True, "value": value}]
        with django_capture_on_commit_callbacks(execute=True):
            if together:
                answer = services.KeysRead(
                    charge_point=charge_point, keys=keys, unknown_keys=[], complete=True, command=None
                )
                services.configuration_keys_recorded_together(reads=[answer])
            else:
                services.configuration_keys_record(charge_point=charge_point, keys=keys, complete=True)

    read("12")
    assert ChargePoint.objects.get(pk=charge_point.pk).reported_heartbeat_interval == 12
    assert boot_services.mark_offline_stale_charge_points(now=connected_at + timedelta(seconds=10)) == []
    # a reboot (the same firmware: no read after it) leaves it: the charger still keeps its own (review)
    boot_services.charge_point_boot(charge_point_id="CP-OWN-PACE", vendor="V", model="M")
    ChargePoint.objects.filter(pk=charge_point.pk).update(connected=True, last_seen=connected_at)
    assert ChargePoint.objects.get(pk=charge_point.pk).reported_heartbeat_interval == 12
    assert boot_services.mark_offline_stale_charge_points(now=connected_at + timedelta(seconds=10)) == []
    read("2")
    assert ChargePoint.objects.get(pk=charge_point.pk).reported_heartbeat_interval is None
    stale = boot_services.mark_offline_stale_charge_points(now=connected_at + timedelta(seconds=10))
    assert stale == ["CP-OWN-PACE"]


@pytest.mark.parametrize("path", ["plain statement", "orm"])
def test_a_2_0_1_heartbeat_interval_the_charger_reports_keeping_is_the_one_the_offline_sweep_waits_for(
    register_charge_point, django_capture_on_commit_callbacks, monkeypatch, path
):
    """Fails before the change: a station whose report gives ``OCPPCommCtrlr.HeartbeatInterval`` 12
    (it keeps its own) was expected every 2 s, and flapped offline/online every heartbeat cycle. A
    GetVariables answer giving the stored interval clears it."""
    if path == "plain statement" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    if path == "orm":
        monkeypatch.setattr(connection, "vendor", "other")
    charge_point = register_charge_point("CP-OWN-201", heartbeat_interval=2, ocpp_version="2.0.1")
    connected_at = timezone.now()
    ChargePoint.objects.filter(pk=charge_point.pk).update(connected=True, last_seen=connected_at)
    with transaction.atomic():
        services.device_model_report_request_id(charge_point=charge_point)
    item = {**ITEM, "variable_attribute": [{"value": "12", "mutability": "ReadOnly"}]}
    with django_capture_on_commit_callbacks(execute=True):
        services.device_model_report_record(
            charge_point_id="CP-OWN-201", request_id=1, seq_no=0, tbc=False, generated_at=None, report_data=[item]
        )
    assert ChargePoint.objects.get(pk=charge_point.pk).reported_heartbeat_interval == 12
    assert boot_services.mark_offline_stale_charge_points(now=connected_at + timedelta(seconds=10)) == []
    read = services.ReportedAttribute(component=ITEM["component"], variable=ITEM["variable"], value="2")
    with django_capture_on_commit_callbacks(execute=True):
        services.device_model_attributes_record(
            charge_point=charge_point, attributes=[read], learned_from=LearnedFrom.GET_VARIABLES
        )
    assert ChargePoint.objects.get(pk=charge_point.pk).reported_heartbeat_interval is None
    stale = boot_services.mark_offline_stale_charge_points(now=connected_at + timedelta(seconds=10))
    assert stale == ["CP-OWN-201"]


def _rate_units(charge_point: ChargePoint) -> str:
    return ChargePoint.objects.get(pk=charge_point.pk).charging_rate_units


@pytest.mark.parametrize("together", [False, True])
def test_the_rate_units_a_1_6_charger_reports_are_kept_on_the_charger_for_the_site_engine(
    register_charge_point, django_capture_on_commit_callbacks, together
):
    """Fails before the change: the site engine (which may not read this store) sent a DC charger
    reporting ``ChargingScheduleAllowedChargingRateUnit`` Power its profiles in A, which it rejected.
    What a read gives is kept as the charger's ``charging_rate_units``; a read not naming the key
    leaves it; a charger that does not know the key: not known."""
    charge_point = register_charge_point("CP-UNITS")

    def read(keys: list[dict[str, Any]], unknown: tuple[str, ...] = ()) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            if together:
                answer = services.KeysRead(
                    charge_point=charge_point, keys=keys, unknown_keys=list(unknown), complete=False, command=None
                )
                services.configuration_keys_recorded_together(reads=[answer])
            else:
                services.configuration_keys_record(
                    charge_point=charge_point, keys=keys, unknown_keys=list(unknown), complete=False
                )

    assert _rate_units(charge_point) == ""  # not known: A, as before
    read([{"key": "chargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"}])
    assert _rate_units(charge_point) == "W"
    read([{"key": "HeartbeatInterval", "readonly": False, "value": "60"}])
    assert _rate_units(charge_point) == "W"
    read([{"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power, current"}])
    assert _rate_units(charge_point) == "A,W"
    read([], unknown=("ChargingScheduleAllowedChargingRateUnit",))
    assert _rate_units(charge_point) == ""


def test_a_rate_unit_key_a_charger_takes_or_does_not_know_is_kept_on_the_charger(
    register_charge_point, django_capture_on_commit_callbacks
):
    charge_point = register_charge_point("CP-UNITS-SET")
    command = Command.objects.create(charge_point=charge_point, command="change_configuration", request={})
    for status, expected in (("Rejected", ""), ("Accepted", "W"), ("RebootRequired", "W"), ("NotSupported", "")):
        value = "Power" if status != "RebootRequired" else "Current"
        with django_capture_on_commit_callbacks(execute=True):
            services.configuration_key_changed(
                charge_point=charge_point,
                key="ChargingScheduleAllowedChargingRateUnit",
                value=value,
                status=status,
                command=command,
            )
        assert _rate_units(charge_point) == expected, status


RATE_UNIT = {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}}


@pytest.mark.parametrize("path", ["plain statement", "orm"])
def test_the_rate_units_a_2_0_1_station_reports_are_kept_on_the_charger_for_the_site_engine(
    register_charge_point, django_capture_on_commit_callbacks, monkeypatch, path
):
    """As the 1.6 case, for ``SmartChargingCtrlr.RateUnit``: from a report, a GetVariables answer, an
    accepted SetVariables (one answered RebootRequired changes nothing yet); a station answering it
    has no such variable: not known."""
    if path == "plain statement" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    if path == "orm":
        monkeypatch.setattr(connection, "vendor", "other")
    charge_point = register_charge_point("CP-UNITS-201", ocpp_version="2.0.1")
    with transaction.atomic():
        services.device_model_report_request_id(charge_point=charge_point)
    item = {**RATE_UNIT, "variable_attribute": [{"value": "W", "mutability": "ReadOnly"}]}
    with django_capture_on_commit_callbacks(execute=True):
        services.device_model_report_record(
            charge_point_id="CP-UNITS-201", request_id=1, seq_no=0, tbc=False, generated_at=None, report_data=[item]
        )
    assert _rate_units(charge_point) == "W"
    for learned_from, value, pending, expected in (
        (LearnedFrom.GET_VARIABLES, "A,W", None, "A,W"),
        (LearnedFrom.SET_VARIABLES, None, "W", "A,W"),  # RebootRequired: after the reboot
        (LearnedFrom.SET_VARIABLES, "w", None, "W"),
    ):
        attribute = services.ReportedAttribute(**RATE_UNIT, value=value, pending_value=pending)
        with django_capture_on_commit_callbacks(execute=True):
            services.device_model_attributes_record(
                charge_point=charge_point, attributes=[attribute], learned_from=learned_from
            )
        assert _rate_units(charge_point) == expected, learned_from
    with django_capture_on_commit_callbacks(execute=True):
        services.device_model_unknown_forget(
            charge_point=charge_point,
            unknown=[(RATE_UNIT["component"], RATE_UNIT["variable"], "Actual", "UnknownVariable")],
        )
    assert _rate_units(charge_point) == ""


def _variables(*names: str, value: str = "1") -> list[dict[str, Any]]:
    return [
        {"component": {"name": "Made"}, "variable": {"name": name}, "variable_attribute": [{"value": value}]}
        for name in names
    ]


@pytest.mark.parametrize("path", ["sql", "orm"])
def test_a_charger_keeps_at_most_the_maximum_of_variables_and_its_known_ones_are_still_updated(
    register_charge_point, settings, monkeypatch, path
):
    """Each NotifyReport part naming new components made their rows, asked for or not: a station
    sending parts of 600 made-up variables at its 20 frames a second added 12000 rows a second
    without end. Past the maximum, new variables are left out; those stored are still updated."""
    if path == "sql" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    if path == "orm":
        monkeypatch.setattr(connection, "vendor", "other")
    settings.CSMS_MAX_DEVICE_MODEL_VARIABLES = 3
    register_charge_point("CP-MADE-UP", ocpp_version="2.0.1")
    parts = [_variables("A", "B"), _variables("B", "C", "D", "E", value="2"), _variables("A", "F", value="3")]
    for seq_no, report_data in enumerate(parts):
        part = {"request_id": 7, "seq_no": seq_no, "tbc": True, "generated_at": None, "report_data": report_data}
        services.device_model_report_record(charge_point_id="CP-MADE-UP", **part)
    stored = DeviceModelAttribute.objects.filter(variable__charge_point__charge_point_id="CP-MADE-UP")
    assert sorted(stored.values_list("variable__variable_name", "value")) == [("A", "3"), ("B", "2"), ("C", "2")]
    report = DeviceModelReport.objects.get(charge_point__charge_point_id="CP-MADE-UP", request_id=7)
    assert (report.parts_received, report.seq_nos) == (3, [0, 1, 2])


def test_the_sweep_keeps_each_chargers_newest_reports_and_the_report_write_deletes_none(
    register_charge_point, settings
):
    """Probe (h6): a NotifyReport of a requestId never seen makes a report row, asked for or not, and
    nothing deleted them: a station counting made-up requestIds up at its frame rate grew them without
    end. The sweep (every 300 s) keeps each charger's newest ``CSMS_MAX_DEVICE_MODEL_REPORTS``; the
    part's write still deletes nothing (its DELETE was reverted: the reconnect storm)."""
    from django.conf import settings as django_settings

    from configuration import tasks

    settings.CSMS_MAX_DEVICE_MODEL_REPORTS = 3
    spammer, quiet = register_charge_point("CP-SPAM", ocpp_version="2.0.1"), register_charge_point("CP-QUIET")
    for request_id in range(1, 8):
        services.device_model_report_record(
            charge_point_id="CP-SPAM", request_id=request_id, seq_no=0, tbc=False, generated_at=None, report_data=[ITEM]
        )
    services.device_model_report_record(
        charge_point_id="CP-QUIET", request_id=1, seq_no=0, tbc=False, generated_at=None, report_data=[ITEM]
    )
    assert DeviceModelReport.objects.filter(charge_point=spammer).count() == 7  # the write deleted none
    started = timezone.now() - timedelta(hours=1)
    for request_id in range(1, 8):  # started in the order received; two at the same time (the pk tells)
        offset = timedelta(seconds=min(request_id, 6))
        DeviceModelReport.objects.filter(charge_point=spammer, request_id=request_id).update(
            started_at=started + offset
        )

    assert tasks.prune_device_model_reports() == 4
    assert sorted(DeviceModelReport.objects.filter(charge_point=spammer).values_list("request_id", flat=True)) == [
        5,
        6,
        7,
    ]
    assert DeviceModelReport.objects.filter(charge_point=quiet).count() == 1
    assert tasks.prune_device_model_reports() == 0
    beat = django_settings.CELERY_BEAT_SCHEDULE["prune-device-model-reports"]
    assert beat == {
        "task": "configuration.tasks.prune_device_model_reports",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the fault is a PostgreSQL trigger")
def test_a_charger_whose_reports_cannot_be_deleted_does_not_keep_the_others_reports(
    register_charge_point, settings, caplog
):
    """A charger whose older reports could not be deleted (a deadlock with its own NotifyReport, say)
    ended the sweep, every 300 s, and every charger after it kept its reports without end. It is
    logged and passed over; the others are pruned."""
    from configuration import tasks

    settings.CSMS_MAX_DEVICE_MODEL_REPORTS = 1
    for charge_point_id in ("CP-FAILING", "CP-OTHER"):
        register_charge_point(charge_point_id, ocpp_version="2.0.1")
        for request_id in (1, 2):
            services.device_model_report_record(
                charge_point_id=charge_point_id,
                request_id=request_id,
                seq_no=0,
                tbc=False,
                generated_at=None,
                report_data=[ITEM],
            )
    failing = ChargePoint.objects.get(charge_point_id="CP-FAILING")
    table = DeviceModelReport._meta.db_table
    with connection.cursor() as cursor:  # a fault injected into the one charger's delete, in the database
        cursor.execute(
            "CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF OLD.charge_point_id = {failing.pk} THEN RAISE EXCEPTION 'deadlock detected'; END IF;"
            " RETURN OLD; END $$"
        )
        cursor.execute(f"CREATE TRIGGER refuse BEFORE DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse()")

    assert tasks.prune_device_model_reports() == 1
    reports = DeviceModelReport.objects.values_list("charge_point__charge_point_id", flat=True)
    assert sorted(reports) == ["CP-FAILING", "CP-FAILING", "CP-OTHER"]
    assert f"could not prune the device model reports of charger {failing.pk}" in caplog.text


BEFORE_RATE_UNITS_KNOWN = [("configuration", "0003_report_complete_with_every_part")]


def _migrate(targets: list[tuple[str, str]] | None = None) -> Any:
    """Migrate to ``targets`` (None: the latest); the models as they were there (rows written at an
    older schema are written through them: today's models name columns it has not)."""
    executor = MigrationExecutor(connection)
    nodes = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(nodes)
    return MigrationExecutor(connection).loader.project_state(nodes).apps


@pytest.mark.django_db(transaction=True)
def test_the_rate_units_of_chargers_read_before_they_were_kept_are_copied_from_their_configuration(
    register_charge_point,
):
    """A charger whose configuration was read before the upgrade (a boot of the same firmware reads it
    no more) would have been sent A until an operator asked for its configuration again."""
    before = _migrate(BEFORE_RATE_UNITS_KNOWN)
    try:
        dc = register_charge_point("CP-MIG-DC")
        ac = register_charge_point("CP-MIG-AC")
        station = register_charge_point("CP-MIG-201", ocpp_version="2.0.1")
        now = timezone.now()
        for charger, value in ((dc, "Power"), (ac, "Current,Power")):
            before.get_model("configuration", "ConfigurationKey").objects.create(
                charge_point_id=charger.pk,
                key="ChargingScheduleAllowedChargingRateUnit",
                value=value,
                readonly=True,
                learned_from=LearnedFrom.GET_CONFIGURATION,
                learned_at=now,
            )
        variable = before.get_model("configuration", "DeviceModelVariable").objects.create(
            charge_point_id=station.pk,
            component_name="SmartChargingCtrlr",
            variable_name="RateUnit",
            identity=identity_digest(variable_identity(RATE_UNIT["component"], RATE_UNIT["variable"])),
            learned_at=now,
        )
        before.get_model("configuration", "DeviceModelAttribute").objects.create(
            variable=variable, type="Actual", value="W", learned_from=LearnedFrom.NOTIFY_REPORT, learned_at=now
        )
        ChargePoint.objects.update(charging_rate_units="")  # as the release before kept them: not at all
        _migrate()
    finally:
        _migrate()
    units = dict(ChargePoint.objects.values_list("charge_point_id", "charging_rate_units"))
    assert units == {"CP-MIG-DC": "W", "CP-MIG-AC": "A,W", "CP-MIG-201": "W"}


def _booted(charge_point: ChargePoint) -> None:
    """The charger restarts (its BootNotification moves ``last_boot_at``; a read asked after it follows)."""
    ChargePoint.objects.filter(pk=charge_point.pk).update(last_boot_at=timezone.now())


@pytest.mark.parametrize("path", ["postgresql", "other"])
def test_a_1_6_read_before_the_reboot_keeps_a_value_waiting_for_it(register_charge_point, monkeypatch, path):
    """A read between a change answered RebootRequired and the charger's reboot (an operator's
    refresh, a GetConfiguration naming the key) gives the value it still runs with: it cleared the
    pending value, so the boot after it skipped the read (a recent one, nothing waiting) and the
    store kept the old value the charger no longer has. It now waits until a read after the boot,
    or one giving it; a key the charger says it does not know settles it."""
    if path == "postgresql" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    if path != "postgresql":
        monkeypatch.setattr(connection, "vendor", path)
    charge_point = register_charge_point("CP-WAIT", ocpp_version="1.6")
    _booted(charge_point)
    keys = [{"key": "WebSocketPingInterval", "readonly": False, "value": "30"}, {"key": "Gone", "value": "1"}]
    services.configuration_keys_record(charge_point=charge_point, keys=keys, complete=True)
    command = Command.objects.create(charge_point=charge_point, action="ChangeConfiguration", request={})
    for key in ("WebSocketPingInterval", "Gone"):
        services.configuration_key_changed(
            charge_point=charge_point, key=key, value="45", status="RebootRequired", command=command
        )

    def read(*, complete: bool, **reads: Any) -> list[tuple[str, str | None, str | None]]:
        keys = [{"key": key, "readonly": False, "value": value} for key, value in reads.items() if value is not None]
        unknown = [key for key, value in reads.items() if value is None]
        services.configuration_keys_record(
            charge_point=charge_point, keys=keys, unknown_keys=unknown, complete=complete
        )
        return sorted(
            ConfigurationKey.objects.filter(charge_point=charge_point).values_list("key", "value", "pending_value")
        )

    assert read(complete=True, WebSocketPingInterval="30", Gone="1") == [
        ("Gone", "1", "45"),
        ("WebSocketPingInterval", "30", "45"),
    ]
    assert read(complete=False, websocketpinginterval="30", Gone=None) == [
        ("Gone", None, None),  # unknown to the charger: nothing waits
        ("WebSocketPingInterval", "30", "45"),
    ]
    _booted(charge_point)
    assert read(complete=True, WebSocketPingInterval="30", Gone="1") == [
        ("Gone", "1", None),
        ("WebSocketPingInterval", "30", None),  # the reboot came, the charger kept 30
    ]
    services.configuration_key_changed(
        charge_point=charge_point, key="WebSocketPingInterval", value="60", status="RebootRequired", command=command
    )
    assert read(complete=False, WebSocketPingInterval="60") == [
        ("Gone", "1", None),
        ("WebSocketPingInterval", "60", None),
    ]


@pytest.mark.parametrize("path", ["postgresql", "other"])
def test_a_2_0_1_read_before_the_reboot_keeps_a_value_waiting_for_it(register_charge_point, monkeypatch, path):
    """As in 1.6, for a SetVariables answered RebootRequired, then a report part or a GetVariables
    answer before the station's reboot."""
    if path == "postgresql" and connection.vendor != "postgresql":
        pytest.skip("plain statements are PostgreSQL only")
    if path != "postgresql":
        monkeypatch.setattr(connection, "vendor", path)
    charge_point = register_charge_point("CP-WAIT-201", ocpp_version="2.0.1")
    _booted(charge_point)
    named = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NetworkProfileConnectionAttempts"}}

    def reported(value: str) -> list[tuple[str, str | None, str | None]]:
        request_id = DeviceModelReport.objects.filter(charge_point=charge_point).count() + 1
        item = {**named, "variable_attribute": [{"value": value}, {"type": "MaxSet", "value": "9"}]}
        services.device_model_report_record(
            charge_point_id="CP-WAIT-201",
            request_id=request_id,
            seq_no=0,
            tbc=False,
            generated_at=None,
            report_data=[item],
        )
        return _attributes(charge_point)

    def read(value: str) -> list[tuple[str, str | None, str | None]]:
        attribute = services.ReportedAttribute(**named, value=value)
        services.device_model_attributes_record(
            charge_point=charge_point, attributes=[attribute], learned_from=LearnedFrom.GET_VARIABLES
        )
        return _attributes(charge_point)

    def set_after_reboot(value: str) -> None:
        attribute = services.ReportedAttribute(**named, pending_value=value)
        services.device_model_attributes_record(
            charge_point=charge_point, attributes=[attribute], learned_from=LearnedFrom.SET_VARIABLES
        )

    reported("3")
    set_after_reboot("5")
    assert reported("3") == [("Actual", "3", "5"), ("MaxSet", "9", None)]
    assert read("3") == [("Actual", "3", "5"), ("MaxSet", "9", None)]
    _booted(charge_point)
    assert reported("5") == [("Actual", "5", None), ("MaxSet", "9", None)]
    set_after_reboot("7")
    assert read("7") == [("Actual", "7", None), ("MaxSet", "9", None)]  # it gives the value: settled
    set_after_reboot("8")
    _booted(charge_point)
    assert read("7") == [("Actual", "7", None), ("MaxSet", "9", None)]  # after the reboot, it kept 7


def _attributes(charge_point: ChargePoint) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        DeviceModelAttribute.objects.filter(variable__charge_point=charge_point).values_list(
            "type", "value", "pending_value"
        )
    )
