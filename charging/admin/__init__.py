"""Admin pages of charging sessions, one module per area."""

from charging.admin import authorization, reconciliation, sessions
from charging.admin.shared import transaction_link

__all__ = ["authorization", "reconciliation", "sessions", "transaction_link"]
