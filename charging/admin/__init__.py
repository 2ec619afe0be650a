"""Admin pages of charging sessions, one module per area."""

from charging.admin import authorization, charge_points, charging_profiles, connectors, reconciliation, sessions
from charging.admin.shared import transaction_link

__all__ = [
    "authorization",
    "charge_points",
    "charging_profiles",
    "connectors",
    "reconciliation",
    "sessions",
    "transaction_link",
]
