"""A GetConfiguration answer stored by the plain statement (PostgreSQL) leaves the rows the ORM path does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from commands.models import Command
from configuration import services
from configuration.models import ConfigurationKey

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only"),
]

LEARNED = datetime(2026, 5, 1, 10, tzinfo=UTC)
FIRST = [
    {"key": "A", "readonly": False, "value": "1"},
    {"key": "B", "readonly": True, "value": "2"},
    {"key": "C", "readonly": False},  # no value given
    {"key": "D", "readonly": False, "value": "4"},
]
# answers after the first: (keys, unknown keys, complete, with a command)
LATER = [
    ([{"key": "A", "readonly": True, "value": "9"}, {"key": "E", "readonly": False, "value": ""}], ["X"], True, True),
    # a partial one naming B and D in another case: the stored keys B and D (h8's probe)
    ([{"key": "b", "readonly": False, "value": "7"}], ["Y", "d"], False, False),
    ([], [], True, False),  # a complete answer of nothing: every key is gone
]


def _key_changing(charge_point) -> None:
    """Key D with a ChangeConfiguration's value pending: a read after it settles or keeps it."""
    ConfigurationKey.objects.create(
        charge_point=charge_point,
        key="D",
        value="old",
        readonly=False,
        pending_value="5",
        learned_from="ChangeConfiguration",
        learned_at=LEARNED,
    )


def _rows(charge_point) -> list[tuple]:
    return list(
        ConfigurationKey.objects.filter(charge_point=charge_point)
        .order_by("id")
        .values_list("key", "value", "readonly", "unknown", "pending_value", "learned_from", "command_id", "learned_at")
    )


@pytest.mark.parametrize("later", range(len(LATER) + 1))
def test_the_plain_statement_stores_what_the_orm_path_does(register_charge_point, monkeypatch, later):
    monkeypatch.setattr(timezone, "now", lambda: LEARNED)
    stored = {}
    for charge_point_id, vendor in (("CP-PLAIN", "postgresql"), ("CP-ORM", "other")):
        charge_point = register_charge_point(charge_point_id)
        command = Command.objects.create(charge_point=charge_point, action="GetConfiguration", request={})
        with monkeypatch.context() as patched:
            if vendor != "postgresql":
                patched.setattr(connection, "vendor", vendor)
            answers = [(FIRST, ["Z"], True, False), *LATER[:later]]
            _key_changing(charge_point)
            counts = [
                services.configuration_keys_record(
                    charge_point=charge_point,
                    keys=keys,
                    unknown_keys=unknown,
                    complete=complete,
                    command=command if with_command else None,
                )
                for keys, unknown, complete, with_command in answers
            ]
        rows = [(*row[:6], row[6] == command.pk, row[7]) for row in _rows(charge_point)]
        stored[vendor] = (counts, rows)
    assert stored["postgresql"] == stored["other"]
    assert stored["postgresql"][1] or later == len(LATER)


def test_the_batch_s_statement_stores_what_each_read_alone_does(register_charge_point, monkeypatch):
    """``configuration_keys_recorded_together`` (a group-commit batch's reads): the rows each read
    stored alone leaves, in order; a charger's second read by a second statement."""
    monkeypatch.setattr(timezone, "now", lambda: LEARNED)
    stored, statements = {}, {}
    for way in ("alone", "together"):
        chargers = [register_charge_point(f"CP-{way}-{n}") for n in range(3)]
        command = Command.objects.create(charge_point=chargers[0], action="GetConfiguration", request={})
        for charge_point in chargers:
            _key_changing(charge_point)
        reads = [
            services.KeysRead(chargers[0], FIRST, ["Z"], True, command),
            services.KeysRead(chargers[1], *LATER[0][:3], command=None),
            services.KeysRead(chargers[2], *LATER[2][:3], command=None),
            services.KeysRead(chargers[0], *LATER[1][:3], command=None),  # its second: after its first
        ]
        with CaptureQueriesContext(connection) as queries:
            if way == "together":
                services.configuration_keys_recorded_together(reads=reads)
            else:
                for read in reads:
                    services.configuration_keys_record(
                        charge_point=read.charge_point,
                        keys=read.keys,
                        unknown_keys=read.unknown_keys,
                        complete=read.complete,
                        command=read.command,
                    )
        statements[way] = len(queries)
        stored[way] = [
            sorted((*row[:6], row[6] == command.pk, row[7]) for row in _rows(charge_point)) for charge_point in chargers
        ]
    assert stored["together"] == stored["alone"]
    assert stored["together"][2] == []  # a complete answer of nothing
    assert statements == {"alone": 4, "together": 2}


@pytest.mark.parametrize("path", ["postgresql", "other"])
def test_a_lenient_chargers_unstorable_keys_are_left_out_and_the_rest_stored(register_charge_point, monkeypatch, path):
    """A lenient charger model's answer with a key over 50 characters lost every key of the answer
    (the column refused the batch; a traceback logged): that key is left out, the others stored, a
    value that is no text kept as its JSON, a readonly that is no boolean as unknown."""
    if path != "postgresql":
        monkeypatch.setattr(services.connection, "vendor", path)
    charge_point = register_charge_point("CP-LENIENT")
    keys = [
        {"key": "K" * 60, "readonly": False, "value": "1"},
        {"key": 7, "readonly": False, "value": "1"},
        {"key": "Nul\x00", "readonly": False, "value": "1"},
        {"key": "ConnectorPhaseRotation", "readonly": False, "value": "0.RST\x00"},
        {"key": "MeterValueSampleInterval", "readonly": "no", "value": 60},
        {"key": "AuthorizeRemoteTxRequests", "readonly": False, "value": "true"},
    ]
    stored = services.configuration_keys_record(
        charge_point=charge_point, keys=keys, unknown_keys=["U" * 51, "Gone"], complete=True
    )
    rows = ConfigurationKey.objects.filter(charge_point=charge_point).order_by("key")
    assert stored == 4
    assert [(row.key, row.value, row.readonly, row.unknown) for row in rows] == [
        ("AuthorizeRemoteTxRequests", "true", False, False),
        ("ConnectorPhaseRotation", "0.RST\ufffd", False, False),
        ("Gone", None, None, True),
        ("MeterValueSampleInterval", "60", None, False),
    ]
