"""A new instance from ``kernel.model_instances.instance_new`` is the one ``Model(**values)`` builds,
and is built by ``Model.__init__`` itself wherever it could differ."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db.models.signals import post_init, pre_init

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint
from charging.models import Transaction
from kernel.model_instances import instance_new

AT = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
CHARGER = ChargePoint(pk=7, charge_point_id="CP-7")
SESSION = Transaction(pk=11, charge_point=CHARGER, started_at=AT, stopped_at=AT)

CASES: list[tuple[type[Any], dict[str, Any]]] = [
    (  # a new session as a start opens it: a relation by its object, the rest by attname, most left to defaults
        Transaction,
        {
            "charge_point": CHARGER,
            "ocpp_version": "2.0.1",
            "start_key": "TX-1",
            "connector_id": 1,
            "id_tag": "TAG",
            "started_at": AT,
            "meter_start_wh": Decimal("12.5"),
            "seq_nos": [0],
        },
    ),
    (Transaction, {"charge_point_id": 7, "start_key": "by-id"}),  # a relation by its id
    (  # a billing record, its tariff None
        BillingRecord,
        {
            "transaction": SESSION,
            "tariff": None,
            "charge_point_identity": "CP-7",
            "energy_wh": Decimal(1),
            "started_at": AT,
            "stopped_at": AT,
            "line_items": [],
            "total": Decimal("0.00"),
            "needs_review": True,
        },
    ),
    (BillingRecord, {"transaction": SESSION, "tariff": Tariff(pk=3, name="T")}),
]


def _attributes(instance: Any) -> dict[str, Any]:
    return {name: value for name, value in instance.__dict__.items() if name != "_state"}


@pytest.mark.parametrize(("model", "values"), CASES)
def test_an_instance_has_the_attributes_state_and_cached_relations_of_the_orms(model, values):
    built, expected = instance_new(model, **values), model(**values)

    assert type(built) is model
    assert _attributes(built) == _attributes(expected)
    assert list(_attributes(built)) == list(_attributes(expected))
    assert built._state.adding and expected._state.adding
    assert built._state.db == expected._state.db
    assert built._state.fields_cache == expected._state.fields_cache


def test_a_default_made_by_a_call_is_made_again_for_each_instance():
    first, second = instance_new(Transaction, start_key="a"), instance_new(Transaction, start_key="b")

    assert first.anomalies == [] and first.seq_nos == []
    assert first.anomalies is not second.anomalies
    assert first.seq_nos is not second.seq_nos


def test_an_unknown_name_fails_as_the_orm_does():
    with pytest.raises(TypeError, match="unexpected keyword"):
        instance_new(Transaction, start_key="a", no_such_field=1)


@pytest.mark.parametrize("signal", [pre_init, post_init])
def test_a_listener_of_the_models_init_signals_still_hears_every_instance(signal):
    heard: list[dict[str, Any]] = []

    def listen(sender: Any, **kwargs: Any) -> None:
        heard.append(kwargs)

    signal.connect(listen, sender=Transaction)
    try:
        session = instance_new(Transaction, start_key="heard")
    finally:
        signal.disconnect(listen, sender=Transaction)

    assert len(heard) == 1
    if signal is post_init:  # pre_init is sent before there is an instance
        assert heard[0]["instance"] is session
    assert session.start_key == "heard"
