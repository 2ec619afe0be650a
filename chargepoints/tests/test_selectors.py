import pytest
from django.db import connection, transaction

from chargepoints.models import LifecycleState
from chargepoints.selectors import charge_point_may_connect, pending_charge_point_list

pytestmark = pytest.mark.django_db


def test_unknown_and_decommissioned_chargers_may_not_connect(register_charge_point):
    register_charge_point("OLD", lifecycle_state=LifecycleState.DECOMMISSIONED)
    register_charge_point("NEW", lifecycle_state=LifecycleState.PENDING)
    assert charge_point_may_connect(charge_point_id="NOBODY", password=None) is False
    assert charge_point_may_connect(charge_point_id="OLD", password=None) is False
    assert charge_point_may_connect(charge_point_id="NEW", password=None) is True


def test_a_charger_with_a_password_must_present_it(register_charge_point):
    register_charge_point("CP-1", password="correct-horse-battery")
    assert charge_point_may_connect(charge_point_id="CP-1", password=None) is False
    assert charge_point_may_connect(charge_point_id="CP-1", password="wrong-horse-battery") is False
    assert charge_point_may_connect(charge_point_id="CP-1", password="correct-horse-battery") is True


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
def test_counting_the_pending_chargers_reads_only_theirs(register_charge_point):
    """CSMS_AUTO_REGISTER_MAX_PENDING's count, run at every unknown charger's handshake (anyone's),
    read the whole chargers table and sorted it by id; it reads the pending ones' index alone."""
    register_charge_point("CP-1")
    register_charge_point("NEW", lifecycle_state=LifecycleState.PENDING)
    pending = pending_charge_point_list(limit=1000)
    assert pending.count() == 1
    sql, params = pending.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a sequential scan stays only when no index serves
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN SELECT COUNT(*) FROM ({sql}) AS pending", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "charge_point_pending" in plan and "Seq Scan" not in plan and "Sort" not in plan, plan
