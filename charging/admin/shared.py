"""Labels and links the charging admin pages (and billing's) share."""

from __future__ import annotations

from django.db.models import Value
from django.db.models.functions import Lower
from django.utils.safestring import SafeString

from chargepoints.admin.shared import admin_link
from charging.models import IdTag, Transaction

ID_TAGS_SEARCHED = 1_000


def id_tags_matching(term: str) -> list[str]:
    """``term`` and the registered id tags containing it, any case (at most ``ID_TAGS_SEARCHED``):
    a list of sessions or billing records searched by these through an index on its id tag, not
    by an ILIKE over every row."""
    tags = IdTag.objects.filter(id_tag__icontains=term).order_by("id_tag").values_list("id_tag", flat=True)
    return [term, *tags[:ID_TAGS_SEARCHED]]


def id_tags_folded(term: str) -> list[Lower]:
    """``id_tags_matching(term)`` folded by the database, for a search through an index on
    LOWER(id_tag) (``id_tag_lower``, aliased by the caller): a session's or a record's tag is as
    the charger sent it, in any case (OCPP matches tags ignoring case)."""
    return [Lower(Value(tag)) for tag in id_tags_matching(term)]


def transaction_label(session: Transaction) -> str:
    """How operators name a session: our id, and the id the charger uses when it differs."""
    if session.ocpp_id == str(session.pk):
        return f"#{session.pk}"
    return f"#{session.pk} (OCPP id {session.ocpp_id})"


def transaction_link(session: Transaction | None) -> SafeString | str:
    return admin_link(session, transaction_label(session)) if session is not None else "-"
