"""Writes about who may charge: id tags, and the local authorization lists chargers hold."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet

from chargepoints.models import ChargePoint
from charging.models import IdTag, LocalAuthList
from charging.selectors import local_list_entries_applied


class IdTagAlreadyExists(Exception):
    def __init__(self, id_tag: str) -> None:
        super().__init__(f"Id tag {id_tag!r} is already registered (id tags ignore case).")
        self.id_tag = id_tag


class IdTagParentRefused(Exception):
    """A ``parent`` that ``id_tag_parent_refusal`` refuses as the rows stand when it is saved."""


def id_tag_save(*, tag: IdTag | None = None, **fields: Any) -> IdTag:
    """Register an id tag (``tag`` None) or change one. Tags equal but for case are one tag:
    the unique index on LOWER(id_tag) decides, so two concurrent registrations cannot both win.
    A change sets ``fields`` on the tag's row as it stands, locked (``_rows_locked``): saved as its
    request read it, a change of its description put back the Blocked status another request
    had just given it. A ``parent`` given is checked again under the locks of both rows
    (``_parent_checked``): raises ``IdTagParentRefused``, nothing saved."""
    tag = tag or IdTag()
    parent = fields.get("parent")
    try:
        with transaction.atomic():
            if "id_tag" in fields:
                id_tag_name_locked(id_tag=str(fields["id_tag"]))
            locked = _rows_locked(tag, parent)
            current = locked.get(tag.pk) if tag.pk is not None else None
            if current is not None:
                for field in IdTag._meta.concrete_fields:
                    setattr(tag, field.attname, getattr(current, field.attname))
            for name, value in fields.items():
                setattr(tag, name, value)
            if parent is not None:
                _parent_checked(tag, parent, locked)
            tag.save()
    except IntegrityError:
        raise IdTagAlreadyExists(tag.id_tag) from None
    return tag


def id_tag_name_locked(*, id_tag: str) -> None:
    """Hold the name ``id_tag`` (any case) until the caller's transaction ends, before its check
    that no tag has it and its save: the admin's form (``IdTagForm``) read no tag of an operator's
    or the API's save not yet committed, and its own INSERT then broke the unique index (a 500, not
    the form's "already registered"). Now the second waits for the first to commit, then finds its
    tag. Taken before any row lock (``id_tag_save``, the form's ``clean``). PostgreSQL: a
    transaction's advisory lock on the name's hash, folded as the unique index folds it."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended('csms:id-tag:' || lower(%s), 0))", [id_tag])


def id_tags_locked_for_start(pks: Iterable[int]) -> None:
    """Lock the rows of the id tags ``pks`` (in primary key order, as every save and delete of id
    tags takes them) until the caller's transaction ends: the tag and its group (parent) whose
    ``max_concurrent_sessions`` a start counts. Two starts of one card, or of two cards of a group
    with a limit, on two chargers, in two batches or processes at once, would each count none of
    the other's uncommitted session and both be Accepted beyond the limit. The second now waits for
    the first to commit, then counts its session (READ COMMITTED: its next statement sees the
    committed row) and is answered ConcurrentTx. One statement, only for tags with a limit or in a
    group with one."""
    list(IdTag.objects.select_for_update().filter(pk__in=sorted(pks)).order_by("pk").values_list("pk", flat=True))


def _rows_locked(tag: IdTag, parent: IdTag | None) -> dict[int, IdTag]:
    """The rows of the tag (a saved one) and of ``parent``, locked by one statement in primary key
    order (as every save and delete of id tags, and a start counting a limit, takes them); none to
    lock (a new tag without a parent): no statement."""
    pks = sorted({row.pk for row in (tag, parent) if row is not None and row.pk is not None})
    if not pks:
        return {}
    return {row.pk: row for row in IdTag.objects.select_for_update().filter(pk__in=pks).order_by("pk")}


def id_tag_parent_locked(tag: IdTag, parent: IdTag) -> None:
    """The tag's and its parent's rows locked (``_rows_locked``) until the caller's transaction
    ends, and ``parent`` checked as they stand (``_parent_checked``): an admin form's check, as
    ``id_tag_save`` makes its own. Raises ``IdTagParentRefused``."""
    _parent_checked(tag, parent, _rows_locked(tag, parent))


def _parent_checked(tag: IdTag, parent: IdTag, locked: dict[int, IdTag]) -> None:
    """The one level of groups checked again as the rows stand, ``locked`` (``_rows_locked``): the
    caller's check read them before (an API request's, a moment ago), and a concurrent change of
    the parent (put in a group itself, deleted) or of the tag (made a group) would leave a card in
    a group of a group, whose status ``selectors.id_tag_info_of`` does not reach. Raises
    ``IdTagParentRefused``."""
    current = locked.get(parent.pk)
    if current is None:
        raise IdTagParentRefused(f"Id tag {parent.id_tag!r} is no longer registered.")
    refusal = id_tag_parent_refusal(tag, current)
    if refusal is not None:
        raise IdTagParentRefused(refusal)


class IdTagIsParent(Exception):
    """A delete of an id tag other tags name as their parent: its Blocked or Expired status holds
    them (a fleet account), which deleting it would lift."""

    def __init__(self, tag: IdTag, children: int) -> None:
        super().__init__(
            f"Id tag {tag.id_tag!r} is the parent of {children} id tag(s): give them another parent"
            " (or none) first; deleting it would lift its status from them."
        )
        self.id_tag = tag.id_tag


def id_tag_delete(*, tag: IdTag) -> None:
    """Delete ``tag``; raises ``IdTagIsParent`` while other tags name it as their parent. Its row
    locked first (``id_tags_locked_for_delete``)."""
    with transaction.atomic():
        id_tags_locked_for_delete(tags=[tag])
        children = id_tags_delete_orphans(tags=[tag]).count()
        if children:
            raise IdTagIsParent(tag, children)
        tag.delete()


def id_tags_locked_for_delete(*, tags: Iterable[IdTag]) -> None:
    """Lock the rows of ``tags`` (in primary key order, as every save and delete of id tags takes
    them) until the caller's transaction ends, before ``id_tags_delete_orphans`` counts their cards:
    a card made the child of one meanwhile (``id_tag_save``, ``id_tag_parent_locked``: they lock its
    parent too) is counted, not left pointing at nothing (its group's status lifted, or the
    delete's commit broken by its reference)."""
    pks = sorted(tag.pk for tag in tags)
    list(IdTag.objects.select_for_update().filter(pk__in=pks).order_by("pk").values_list("pk", flat=True))


def id_tags_delete_orphans(*, tags: Iterable[IdTag]) -> QuerySet[IdTag]:
    """The id tags deleting ``tags`` together would leave without their parent (its Blocked or
    Expired status would no longer hold them: ``IdTagIsParent``); none means they may go."""
    ids = [tag.pk for tag in tags]
    return IdTag.objects.filter(parent_id__in=ids).exclude(pk__in=ids).select_related("parent")


def id_tag_parent_refusal(tag: IdTag | None, parent: IdTag | None) -> str | None:
    """Why ``parent`` cannot be the parent of ``tag`` (``tag`` None: a tag being created), or None
    when it can (always for ``parent`` None). OCPP answers one parent id tag, a group of cards (1.6
    IdTagInfo.parentIdTag, 2.0.1 groupIdToken): a group is not itself in a group, and a tag is not
    its own parent. One level is what ``selectors.id_tag_info_of`` applies, so a group's own status
    always reaches its cards."""
    if parent is None:
        return None
    if tag is not None and tag.pk is not None and parent.pk == tag.pk:
        return "An id tag cannot be its own parent."
    if parent.parent_id is not None:
        return f"{parent.id_tag!r} is in a group itself; a parent id tag (a group) is not in a group."
    if tag is not None and tag.pk is not None and IdTag.objects.filter(parent=tag).exists():
        return "This id tag is the parent of other id tags (a group); a group is not in a group."
    return None


def local_auth_list_record(
    *,
    charge_point: ChargePoint,
    version: int,
    full: bool = False,
    entries: dict[str, str | None] | None = None,
    ocpp_version: str = "",
) -> LocalAuthList:
    """Record a local list update the charger accepted (or the version it reported).

    ``entries`` maps entries (``selectors.local_list_key``: a 1.6 idTag, a 2.0.1 idToken with its
    type) to their status; None removes the entry (a differential update without idTagInfo). A full
    update replaces the list; no entries records only the version, except a reported version of 0
    (the list is empty) or -1 (the charger has none): the entries go too (OCPP 1.6 §5.10, 2.0.1
    D02). Id tags match ignoring case (IdToken is case-insensitive), 2.0.1 ones with their type
    (``selectors.local_list_entries_applied``): an update of ``ll-two`` replaces ``LL-TWO``, one of
    ``1234`` KeyCode leaves ``1234`` ISO14443.

    ``ocpp_version``: the version the charger answered in ("": not known). A list recorded in the
    other version is its old firmware's (a charger moved 1.6 <-> 2.0.1 under the same id): none of
    its entries is held by the new one, which holds only what this update or report tells.
    """
    with transaction.atomic():
        local_list, _ = LocalAuthList.objects.select_for_update().get_or_create(
            charge_point=charge_point, defaults={"version": version, "ocpp_version": ocpp_version}
        )
        moved = bool(ocpp_version and local_list.ocpp_version and local_list.ocpp_version != ocpp_version)
        current = {} if full or version <= 0 or moved else local_list.entries
        local_list.version = version
        local_list.ocpp_version = ocpp_version or local_list.ocpp_version
        local_list.entries = local_list_entries_applied(current, entries or {})
        local_list.save()
    return local_list
