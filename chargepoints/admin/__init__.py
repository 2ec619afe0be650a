"""Admin pages of the chargepoints app, one module per area."""

from chargepoints.admin import authorization, fleet, message_log, profiles, reconciliation, sessions
from chargepoints.admin.shared import transaction_link

__all__ = ["authorization", "fleet", "message_log", "profiles", "reconciliation", "sessions", "transaction_link"]
