import pytest

from chargepoints.models import LifecycleState
from chargepoints.selectors import charge_point_may_connect

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
