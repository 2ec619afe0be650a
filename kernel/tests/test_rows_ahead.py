"""The shape every kind of rows a group-commit batch makes ahead shares (``kernel.rows_ahead``): its
units' lookups, its rows kept for one pass on this thread, taken once, dropped after their unit."""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import pytest
from django.db import connection

from chargepoints.models import ChargePoint
from kernel.plain_sql import array_text, bound_cursor
from kernel.rows_ahead import FEWEST, RowsAhead, UnitKind, asked_rows

pytestmark = pytest.mark.django_db


class _Ask(NamedTuple):
    charge_point_id: str
    condition: str | None = None


def _boot(charge_point_id: str) -> None:
    raise AssertionError("a unit's function is not called to make its lookup")


def _stop(charge_point_id: str, transaction_id: str) -> None:
    raise AssertionError("a unit's function is not called to make its lookup")


def _chargers_read(charge_point_ids: list[str]) -> dict[str, int]:
    """One statement for every ask: charger id -> its primary key, for the chargers found."""
    with bound_cursor() as cursor:
        cursor.execute(
            f"SELECT charge_point_id, id FROM {ChargePoint._meta.db_table} WHERE charge_point_id = ANY(%s::text[])",
            [array_text(charge_point_ids)],
        )
        return dict(cursor.fetchall())


def test_a_kind_makes_the_lookups_of_its_own_units_only():
    kind: UnitKind[_Ask] = UnitKind(_Ask)
    kind.register(_boot)
    kind.register(_stop, lambda *, charge_point_id, transaction_id: _Ask(charge_point_id, transaction_id))

    assert kind.lookup_of(_boot, {"charge_point_id": "CP-1"}) == _Ask("CP-1")
    assert kind.lookup_of(_stop, {"charge_point_id": "CP-1", "transaction_id": "7"}) == _Ask("CP-1", "7")
    assert kind.lookup_of(print, {"charge_point_id": "CP-1"}) is None
    assert kind.lookup_of(_boot, {"charge_point_id": "CP-1", "vendor": "V"}) is None  # goes its own way
    assert kind.lookup_of(_stop, {"charge_point_id": "CP-1"}) is None


def test_a_registered_lookup_may_refuse_what_it_reads_the_default_only_other_arguments():
    def broken(*, charge_point_id: str) -> _Ask:
        raise ValueError(charge_point_id)  # a bug in a default lookup is not hidden as "its own way"

    kind: UnitKind[_Ask] = UnitKind(broken)
    kind.register(_boot)
    kind.register(_stop, lambda *, charge_point_id, transaction_id: _Ask(charge_point_id, str(int(transaction_id))))

    assert kind.lookup_of(_stop, {"charge_point_id": "CP-1", "transaction_id": "not a number"}) is None
    assert kind.lookup_of(_boot, {"charge_point_id": "CP-1", "vendor": "V"}) is None  # TypeError: refused
    with pytest.raises(ValueError):
        kind.lookup_of(_boot, {"charge_point_id": "CP-1"})


def test_a_kind_without_a_default_lookup_refuses_a_unit_without_one():
    with pytest.raises(TypeError):
        UnitKind().register(_boot)


def test_rows_are_made_ahead_from_the_fewest_asks_on_postgresql():
    assert connection.vendor == "postgresql"
    rows: RowsAhead[str, int] = RowsAhead()
    assert rows.fewest == FEWEST == 2
    assert not rows.enough(["CP-1"])
    assert rows.enough(["CP-1", "CP-2"])
    assert RowsAhead(fewest=1).enough(["CP-1"])
    assert not RowsAhead(fewest=1).enough([])


def test_a_row_read_ahead_is_taken_once_within_its_pass_only():
    charge_point, other = (
        ChargePoint.objects.create(charge_point_id=name, heartbeat_interval=60) for name in ("CP-ONE", "CP-OTHER")
    )
    rows: RowsAhead[str, int] = RowsAhead()
    asks = [charge_point.charge_point_id, other.charge_point_id, "CP-UNKNOWN"]

    with rows.kept() as kept:
        assert rows.enough(asks)
        kept.update(_chargers_read(asks))
        assert rows.left() == {charge_point.charge_point_id: charge_point.pk, other.charge_point_id: other.pk}
        assert rows.taken(charge_point.charge_point_id) == charge_point.pk
        assert rows.taken(charge_point.charge_point_id) is None  # another unit of it reads its own way
        assert rows.taken("CP-UNKNOWN") is None
        assert rows.taken(None) is None
        assert rows.left() == {other.charge_point_id: other.pk}

    assert rows.left() == {}
    assert rows.taken(other.charge_point_id) is None


def test_a_row_made_for_another_ask_is_left_for_the_dropped_guard():
    rows: RowsAhead[str, _Ask] = RowsAhead()
    with rows.kept() as kept:
        kept.update({"CP-1": _Ask("CP-1", "connected"), "CP-2": _Ask("CP-2")})

        assert rows.taken("CP-1", lambda row: row.condition is None) is None
        assert rows.dropped("CP-1") == _Ask("CP-1", "connected")  # written and not taken: the pass again
        assert rows.dropped("CP-1") is None
        assert rows.taken("CP-2", lambda row: row.condition is None) == _Ask("CP-2")
        assert rows.dropped("CP-2") is None  # taken: nothing left
        assert rows.dropped(None) is None


def test_the_pass_ends_when_its_block_raises():
    rows: RowsAhead[str, int] = RowsAhead()
    with pytest.raises(RuntimeError), rows.kept() as kept:
        kept["CP-1"] = 1
        raise RuntimeError("a unit failed")
    assert rows.taken("CP-1") is None
    assert rows.left() == {}


def test_another_thread_sees_none_of_this_threads_rows():
    rows: RowsAhead[str, int] = RowsAhead()
    seen: list[Any] = []
    with rows.kept() as kept:
        kept["CP-1"] = 1
        thread = threading.Thread(target=lambda: seen.extend([rows.left(), rows.taken("CP-1")]))
        thread.start()
        thread.join()
        assert rows.taken("CP-1") == 1
    assert seen == [{}, None]


def test_a_batch_asks_one_row_per_charger_all_asking_the_first_condition():
    asks = [
        _Ask("CP-1", "held"),
        _Ask("CP-2", "held"),
        _Ask("CP-1", "held"),
        _Ask("CP-3", None),
        _Ask("CP-4", "held"),
    ]
    assert asked_rows(asks) == [_Ask("CP-1", "held"), _Ask("CP-2", "held"), _Ask("CP-4", "held")]
    assert asked_rows([]) == []
