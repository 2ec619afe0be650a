"""Labels and links the charging admin pages (and billing's) share."""

from __future__ import annotations

from django.utils.safestring import SafeString

from chargepoints.admin.shared import admin_link
from charging.models import Transaction


def transaction_label(session: Transaction) -> str:
    """How operators name a session: our id, and the id the charger uses when it differs."""
    if session.ocpp_id == str(session.pk):
        return f"#{session.pk}"
    return f"#{session.pk} (OCPP id {session.ocpp_id})"


def transaction_link(session: Transaction | None) -> SafeString | str:
    return admin_link(session, transaction_label(session)) if session is not None else "-"
