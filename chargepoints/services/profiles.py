"""Writes for chargers that break the schema: the audit of the violations the CSMS accepted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoints.models import ChargePoint, SchemaViolation

_VALUE_EXCERPT = 200


@dataclass(frozen=True)
class ReceivedViolation:
    path: str
    validator: str
    value: Any


def schema_violations_record(
    *,
    charge_point_id: str,
    action: str,
    violations: Sequence[ReceivedViolation],
    received_at: datetime,
    frame: str = "",
) -> int:
    """Record the violations of one accepted message (``frame``: as received); a deleted charger's are dropped."""
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).only("pk").first()
    if charge_point is None:
        return 0
    rows = SchemaViolation.objects.bulk_create(
        SchemaViolation(
            charge_point=charge_point,
            action=action,
            path=violation.path[:200],
            validator=violation.validator,
            value=_excerpt(violation.value),
            frame=frame.replace("\x00", "\\u0000"),
            received_at=received_at,
        )
        for violation in violations
    )
    return len(rows)


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\x00", "\\u0000")[:_VALUE_EXCERPT]
