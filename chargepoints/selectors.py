"""Reads of the fleet."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from ocpp.messages import MessageType

from chargepoints.models import (
    ChargePoint,
    ChargerModelProfile,
    Connector,
    Heartbeat,
    LifecycleState,
    MessageDirection,
    OcppMessage,
    OcppVersion,
    SecurityEvent,
    Strictness,
)
from chargepoints.passwords import charger_password_matches
from kernel import cache_changes
from kernel.plain_sql import columns_of, model_rows


def charge_point_get(*, charge_point_id: str) -> ChargePoint:
    """The charge point, or ``ChargePoint.DoesNotExist``."""
    return ChargePoint.objects.get(charge_point_id=charge_point_id)


def charge_point_may_connect(
    *, charge_point_id: str, password: str | None, require_password: bool = False, may_hash: bool = True
) -> bool:
    """Whether a handshake for this id is allowed: known, not decommissioned, right password.

    With ``require_password`` a charger without a password set is refused too. Without
    ``may_hash``, ``passwords.PasswordNeedsHashing`` is raised when the password would need a hash
    (it was not checked against the stored hash in this process before).
    """
    refusal = charge_point_refusal(
        charge_point_id=charge_point_id, password=password, require_password=require_password, may_hash=may_hash
    )
    return refusal in ("", PASSWORD_AFTER_REBOOT)


def charge_point_refusal(
    *, charge_point_id: str, password: str | None, require_password: bool = False, may_hash: bool = True
) -> str:
    """Why a handshake for this id is refused, for the log ("" when it is allowed): "unknown",
    "decommissioned", "no password presented", "wrong password" or "no password set (required)";
    ``PASSWORD_AFTER_REBOOT`` when it presents the password the charger took for after its reboot
    (admitted: the caller makes it the current one), or the earlier candidate a newer one replaced
    before either was confirmed (``services.charge_point_password_offered``), in place of "wrong password" or of an
    admission without a current password. Without ``may_hash``, ``passwords.PasswordNeedsHashing``
    is raised as in ``charge_point_may_connect``."""
    found = _admission_row(charge_point_id)
    if found is None:
        return "unknown"
    password_hash, lifecycle_state, *candidates = found
    if lifecycle_state == LifecycleState.DECOMMISSIONED:
        return "decommissioned"
    if not password_hash:
        if password is not None and _candidate_matches(charge_point_id, password, candidates, may_hash):
            return PASSWORD_AFTER_REBOOT
        return "no password set (required)" if require_password else ""
    if password is None:
        return "no password presented"
    if _matches(charge_point_id, password, password_hash, may_hash):
        return ""
    if _candidate_matches(charge_point_id, password, candidates, may_hash):
        return PASSWORD_AFTER_REBOOT
    return "wrong password"


# A handshake presenting the password its charger took for after its reboot: admitted, made current.
PASSWORD_AFTER_REBOOT = "password taken for after its reboot"


def _matches(charge_point_id: str, password: str, password_hash: str, may_hash: bool) -> bool:
    return charger_password_matches(
        charge_point_id=charge_point_id, password=password, password_hash=password_hash, may_hash=may_hash
    )


def _candidate_matches(charge_point_id: str, password: str, candidates: list[str], may_hash: bool) -> bool:
    """Whether ``password`` is one of the candidates stored (the newest first; "" for none)."""
    return any(candidate and _matches(charge_point_id, password, candidate, may_hash) for candidate in candidates)


def _admission_row(charge_point_id: str) -> tuple[str, str, str, str] | None:
    """The charger's password hash, lifecycle state and candidate password hashes (for after its
    reboot, and the earlier one it replaced), read at every handshake that needs them: a plain
    statement on PostgreSQL (issue 15)."""
    if connection.vendor != "postgresql":
        return (
            ChargePoint.objects.filter(charge_point_id=charge_point_id)
            .values_list(
                "password_hash", "lifecycle_state", "password_hash_after_reboot", "password_hash_after_reboot_earlier"
            )
            .first()
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT password_hash, lifecycle_state, password_hash_after_reboot, password_hash_after_reboot_earlier"
            f" FROM {ChargePoint._meta.db_table} WHERE charge_point_id = %s",
            [charge_point_id],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


def pending_charge_point_list(*, limit: int) -> QuerySet[ChargePoint, Any]:
    """At most ``limit`` chargers waiting for commissioning (``pending``), as their primary keys
    (``values("pk")``): read through the partial index ``charge_point_pending``, which holds only
    those, so counting them reads no other charger's row (``CSMS_AUTO_REGISTER_MAX_PENDING``)."""
    return ChargePoint.objects.filter(lifecycle_state=LifecycleState.PENDING).values("pk").order_by()[:limit]


def connector_list(*, charge_point: ChargePoint) -> QuerySet[Connector]:
    """The charger's connectors of the OCPP version it speaks (``connectors_of_their_version``)."""
    only_evses = charge_point.ocpp_version == OcppVersion.V201
    return Connector.objects.filter(charge_point=charge_point, evse_id__isnull=not only_evses).order_by(
        "evse_id", "connector_id"
    )


def connectors_of_their_version() -> Q:
    """Connectors of the OCPP version their charger speaks now: 2.0.1 names each by its EVSE
    (StatusNotification's ``evseId``), 1.6 none. A charger moved from 1.6 to 2.0.1 (a firmware
    upgrade) keeps its 1.6 rows, as last told before the move (connector 1 ``Charging``, 2
    ``Faulted``): not its connectors any more, nor are a 2.0.1 station's once it speaks 1.6 again."""
    speaks_201 = Q(charge_point__ocpp_version=OcppVersion.V201)
    return (speaks_201 & Q(evse_id__isnull=False)) | (~speaks_201 & Q(evse_id__isnull=True))


# --- The operator dashboard ------------------------------------------------------------------

CONNECTOR_FAULTED = "Faulted"
# 1.6 reports "NoError"; 2.0.1 and a charger that never reported leave it blank.
CONNECTOR_NO_ERROR = ("", "NoError")


@dataclass(frozen=True)
class FleetSummary:
    """The state of the fleet, in the numbers an operator looks at first (the dashboard adds the
    sessions charging now, ``charging.selectors.transaction_active_count``)."""

    online: int
    offline: int
    faulted_connectors: int


def fleet_summary() -> FleetSummary:
    """Counts over the chargers in service (decommissioned ones are retired, not offline), in two queries."""
    in_service = ChargePoint.objects.exclude(lifecycle_state=LifecycleState.DECOMMISSIONED)
    chargers = in_service.aggregate(
        online=Count("pk", filter=Q(connected=True)), offline=Count("pk", filter=Q(connected=False))
    )
    faulted = Connector.objects.filter(
        Q(status=CONNECTOR_FAULTED) | ~Q(error_code__in=CONNECTOR_NO_ERROR),
        connectors_of_their_version(),
        charge_point__in=in_service,
    ).count()
    return FleetSummary(online=chargers["online"], offline=chargers["offline"], faulted_connectors=faulted)


def recently_offline_charge_point_list(*, since: datetime, limit: int = 20) -> QuerySet[ChargePoint]:
    """Chargers in service that went offline at or after ``since``, the latest first."""
    return (
        ChargePoint.objects.exclude(lifecycle_state=LifecycleState.DECOMMISSIONED)
        .filter(connected=False, offline_since__gte=since)
        .order_by("-offline_since")[:limit]
    )


# --- The OCPP message log and meter charts (admin reads) ----------------------------------------

# An answer further than this from its CALL is another exchange reusing the id (counters restart at boot).
OCPP_ANSWER_WINDOW = timedelta(minutes=10)
OCPP_ANSWER_TYPES = (MessageType.CallResult, MessageType.CallError)
_OTHER_DIRECTION: dict[str, str] = {
    MessageDirection.INBOUND: MessageDirection.OUTBOUND,
    MessageDirection.OUTBOUND: MessageDirection.INBOUND,
}


def ocpp_message_pair(*, message: OcppMessage) -> OcppMessage | None:
    """The other half of an exchange: a CALL's CALLRESULT/CALLERROR, or an answer's CALL.

    Same charger, same unique id, the other direction, the nearest in time on the right side
    (a unique id is only unique while its CALL is open).
    """
    if not message.unique_id or message.message_type not in (MessageType.Call, *OCPP_ANSWER_TYPES):
        return None
    others = OcppMessage.objects.select_related("charge_point").filter(
        charge_point_id=message.charge_point_id,
        unique_id=message.unique_id,
        direction=_OTHER_DIRECTION.get(message.direction, ""),
    )
    if message.message_type == MessageType.Call:
        return (
            others.filter(
                message_type__in=OCPP_ANSWER_TYPES,
                created_at__gte=message.created_at,
                created_at__lte=message.created_at + OCPP_ANSWER_WINDOW,
            )
            .order_by("created_at", "id")
            .first()
        )
    return (
        others.filter(
            message_type=MessageType.Call,
            created_at__lte=message.created_at,
            created_at__gte=message.created_at - OCPP_ANSWER_WINDOW,
        )
        .order_by("-created_at", "-id")
        .first()
    )


def ocpp_call_answers(*, messages: Sequence[OcppMessage]) -> dict[int, OcppMessage]:
    """The answer of every CALL among ``messages``, by the CALL's pk, in one query (a changelist page)."""
    calls = [m for m in messages if m.message_type == MessageType.Call and m.unique_id]
    if not calls:
        return {}
    candidates = OcppMessage.objects.filter(
        message_type__in=OCPP_ANSWER_TYPES,
        charge_point_id__in={call.charge_point_id for call in calls},
        unique_id__in={call.unique_id for call in calls},
        created_at__gte=min(call.created_at for call in calls),
        created_at__lte=max(call.created_at for call in calls) + OCPP_ANSWER_WINDOW,
    ).order_by("created_at", "id")
    by_exchange: dict[tuple[int, str, str], list[OcppMessage]] = defaultdict(list)
    for candidate in candidates:
        by_exchange[(candidate.charge_point_id, candidate.unique_id, candidate.direction)].append(candidate)
    answers: dict[int, OcppMessage] = {}
    for call in calls:
        side = by_exchange[(call.charge_point_id, call.unique_id, _OTHER_DIRECTION.get(call.direction, ""))]
        answer = next(
            (a for a in side if call.created_at <= a.created_at <= call.created_at + OCPP_ANSWER_WINDOW), None
        )
        if answer is not None:
            answers[call.pk] = answer
    return answers


# --- One charger's recent activity (its admin page) -------------------------------------------


def charge_point_recent_message_list(*, charge_point: ChargePoint, limit: int = 20) -> QuerySet[OcppMessage]:
    """The charger's latest OCPP frames (the charger/-created_at index), without their payloads."""
    return (
        OcppMessage.objects.filter(charge_point=charge_point)
        .only("id", "direction", "message_type", "action", "unique_id", "created_at")
        .order_by("-created_at", "-id")[:limit]
    )


def charge_point_recent_heartbeat_list(*, charge_point: ChargePoint, limit: int = 20) -> QuerySet[Heartbeat]:
    return Heartbeat.objects.filter(charge_point=charge_point).order_by("-received_at")[:limit]


def charge_point_security_events(*, charge_point: ChargePoint) -> QuerySet[SecurityEvent]:
    """The charger's security events, newest (by the charger's clock) first."""
    return SecurityEvent.objects.filter(charge_point=charge_point).order_by("-timestamp", "-id")


def charge_point_recent_security_events(*, charge_point: ChargePoint, limit: int = 5) -> QuerySet[SecurityEvent]:
    """The charger's latest security events (``charge_point_security_events``)."""
    return charge_point_security_events(charge_point=charge_point)[:limit]


def charge_point_heartbeat_count(*, charge_point: ChargePoint, since: datetime) -> int:
    return Heartbeat.objects.filter(charge_point=charge_point, received_at__gte=since).count()


@dataclass(frozen=True)
class ChargerProfile:
    """How the gateway treats one charger's messages (a ``ChargerModelProfile``, or the default)."""

    lenient: bool = False
    quirks: tuple[str, ...] = ()
    id_tag_suffix: str = ""


STRICT_PROFILE = ChargerProfile()


def charger_profile_for(*, vendor: str, model: str, firmware_version: str = "") -> ChargerProfile:
    """The most specific profile matching a charger model: a named model before the vendor's
    catch-all, then the longest firmware prefix. No match: strict, no quirks. From the profiles a
    listening process keeps (``charger_profile_kept``) when it has them and the names are ASCII."""
    if not vendor:
        return STRICT_PROFILE
    if _comparable_when_kept(vendor, model):
        kept = charger_profile_kept(vendor=vendor, model=model, firmware_version=firmware_version)
        if kept is not None:
            return kept
        if (rows := _profiles.read(_profiles_read)) is not None:  # None: this process does not listen
            return _profile_among_kept(rows, vendor=vendor, model=model, firmware_version=firmware_version)
    candidates: Iterable[ChargerModelProfile]
    if connection.vendor == "postgresql":  # read at every handshake and boot: a plain statement (issue 15)
        candidates = model_rows(
            ChargerModelProfile,
            f"SELECT {columns_of(ChargerModelProfile, 'p')} FROM {ChargerModelProfile._meta.db_table} p"
            f" WHERE {profiles_matching('%s', '%s')}",
            [vendor, model],
        )
    else:
        candidates = ChargerModelProfile.objects.filter(
            Q(model="") | Q(model__iexact=model), vendor__iexact=vendor
        ).only("model", "firmware_version_prefix", "strictness", "quirks", "id_tag_suffix")
    return charger_profile_among(
        [(row.model, row.firmware_version_prefix, row.strictness, row.quirks, row.id_tag_suffix) for row in candidates],
        firmware_version=firmware_version,
    )


PROFILES_TOPIC = "charger_profiles"
# Kept at most this long (s): a profile changed without a model signal (a queryset ``update()``,
# raw SQL) or whose notice is lost applies from the next boot after this at the latest.
PROFILES_KEPT_SECONDS = 10.0
# Every profile, each as ``(UPPER(vendor), UPPER(model), *PROFILE_COLUMNS)``. Read and kept by any
# thread, forgotten on the event loop. A first boot's lookup then reads nothing: all but a few
# chargers share a handful of models, and the profiles change only in the admin.
_profiles: cache_changes.KeptValue[tuple[tuple[Any, ...], ...]] = cache_changes.KeptValue(
    PROFILES_TOPIC, seconds=PROFILES_KEPT_SECONDS
)


def charger_profile_kept(*, vendor: str, model: str, firmware_version: str = "") -> ChargerProfile | None:
    """``charger_profile_for`` from the profiles this process keeps, without the database (so on
    the event loop); None when it keeps none (not listening, or they expired) or a name is not
    ASCII (``_comparable_when_kept``: the database compares it)."""
    if not vendor:
        return STRICT_PROFILE
    rows = _profiles.get()
    if rows is None or not _comparable_when_kept(vendor, model):
        return None
    return _profile_among_kept(rows, vendor=vendor, model=model, firmware_version=firmware_version)


def _profile_among_kept(
    rows: tuple[tuple[Any, ...], ...], *, vendor: str, model: str, firmware_version: str
) -> ChargerProfile:
    """``profiles_matching`` in Python (``str.upper`` for SQL's ``UPPER``) over the rows kept."""
    vendor, model = vendor.upper(), model.upper()
    return charger_profile_among(
        (row[2:] for row in rows if row[0] == vendor and (row[1] == "" or row[1] == model)),
        firmware_version=firmware_version,
    )


def _comparable_when_kept(vendor: str, model: str) -> bool:
    """Whether the kept rows decide a match as SQL's ``UPPER`` does: ``str.upper`` agrees with it
    on ASCII only (Python upper-cases "ß" to "SS", PostgreSQL keeps it); other names go to SQL."""
    return vendor.isascii() and model.isascii()


def _upper_when_ascii(name: str) -> str | None:
    """A kept row's name as compared (``UPPER``); None, matching no name, when it is not ASCII."""
    return name.upper() if name.isascii() else None


def _profiles_read() -> tuple[tuple[Any, ...], ...]:
    """Every profile (one statement), its names as compared; kept in ``_profiles`` while this
    process listens to ``kernel.cache_changes``."""
    return tuple(
        (_upper_when_ascii(vendor), _upper_when_ascii(model), model, *rest)
        for vendor, model, *rest in ChargerModelProfile.objects.values_list("vendor", *PROFILE_COLUMNS)
    )


def profiles_changed(**_: Any) -> None:
    """ChargerModelProfile's ``post_save`` / ``post_delete`` receiver, and chargepoints'
    ``post_migrate`` one (a flush empties the table without a signal): every process's kept
    profiles are forgotten (this one's at once, the others' when the change commits)."""
    cache_changes.changed(PROFILES_TOPIC)


def profiles_matching(vendor: str, model: str) -> str:
    """The SQL condition on profiles ``p`` that ``charger_profile_for`` considers: the vendor's,
    naming the model or none (``vendor`` and ``model``: SQL expressions, e.g. ``%s`` or a column)."""
    return f"UPPER(p.vendor) = UPPER({vendor}) AND (p.model = '' OR UPPER(p.model) = UPPER({model}))"


# The profile columns ``charger_profile_among`` takes, in its order.
PROFILE_COLUMNS = ("model", "firmware_version_prefix", "strictness", "quirks", "id_tag_suffix")


def charger_profile_among(candidates: Iterable[Sequence[Any]], *, firmware_version: str) -> ChargerProfile:
    """``charger_profile_for`` over the profiles of the charger's vendor naming its model or none,
    each as the values of ``PROFILE_COLUMNS`` (read by the caller, e.g. in the handshake's presence write)."""
    matching = [row for row in candidates if firmware_version.startswith(row[1])]
    if not matching:
        return STRICT_PROFILE
    _, _, strictness, quirks, id_tag_suffix = max(matching, key=lambda row: (bool(row[0]), len(row[1])))
    return ChargerProfile(
        lenient=strictness == Strictness.LENIENT,
        quirks=tuple(name for name in quirks if isinstance(name, str)),
        id_tag_suffix=id_tag_suffix,
    )


def charge_point_profile(*, charge_point_id: str) -> ChargerProfile:
    """The profile of the model a charger last booted as (strict until it has booted)."""
    charge_point = (
        ChargePoint.objects.filter(charge_point_id=charge_point_id).only("vendor", "model", "firmware_version").first()
    )
    if charge_point is None:
        return STRICT_PROFILE
    return charger_profile_for(
        vendor=charge_point.vendor, model=charge_point.model, firmware_version=charge_point.firmware_version
    )


def charge_point_is_commissioned(*, charge_point_id: str) -> bool:
    return ChargePoint.objects.filter(
        charge_point_id=charge_point_id, lifecycle_state=LifecycleState.COMMISSIONED
    ).exists()
