"""A meter sample row as the tests of the ledger's writes build it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from charging.models import MeterSample, Transaction

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def meter_sample(session: Transaction, source: str, *, signed_value: str = "abc") -> MeterSample:
    """An energy register reading of 12.5 Wh at ``T0`` on connector 1 of ``session``, with signed data
    whose value is ``signed_value``; ``source`` tells the rows of one test apart."""
    return MeterSample(
        charge_point_id=session.charge_point_id,
        transaction=session,
        connector_id=1,
        source=source,
        timestamp=T0,
        measurand="Energy.Active.Import.Register",
        raw_value="12.5",
        value=Decimal("12.5"),
        signed_data={"format": "SignedData", "value": signed_value},
        received_at=T0,
    )
