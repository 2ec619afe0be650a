"""Diagnostics (1.6 GetDiagnostics) and logs (2.0.1 GetLog), uploaded by the charger over HTTP to
a single-use URL the CSMS hosts. FTP locations are not offered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q, QuerySet, Subquery
from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState
from commands.models import Command, CommandState
from commands.services import (
    DECOMMISSIONED_MESSAGE,
    CommandRefused,
    CommandRequest,
    command_refusal,
    command_send,
)
from kernel.models import ApiKey
from maintenance import events
from maintenance.errors import MaintenanceError
from maintenance.file_names import TAKEN_NAME_ROOM, file_name_cut
from maintenance.links import (
    LinkRefused,
    diagnostics_upload_url,
    upload_token_digest,
    upload_token_new,
)
from maintenance.models import LogUpload, LogUploadState
from webhooks.models import EventType
from webhooks.services import webhook_event_emit

V16_LOG_TYPE = "Diagnostics"
# A reported upload status (1.6 DiagnosticsStatus, and a lenient model's UploadLogStatus in it; 2.0.1
# UploadLogStatusEnumType) -> the log upload's state; Idle and AcceptedCanceled report nothing.
LOG_STATUS_STATE = {
    "Uploading": "uploading",
    "Uploaded": "uploaded",
    "UploadFailed": "failed",
    "UploadFailure": "failed",
    "BadMessage": "failed",
    "NotSupportedOperation": "failed",
    "PermissionDenied": "failed",
}


def _ocpp_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _request_body(upload: LogUpload, location: str, ocpp_version: str, options: dict[str, Any]) -> dict[str, Any]:
    retries = {k: options[k] for k in ("retries", "retry_interval") if options.get(k) is not None}
    oldest, latest = _ocpp_time(options.get("oldest")), _ocpp_time(options.get("latest"))
    if ocpp_version == "1.6":
        window = {k: v for k, v in (("start_time", oldest), ("stop_time", latest)) if v}
        return {"location": location, **window, **retries}
    window = {k: v for k, v in (("oldest_timestamp", oldest), ("latest_timestamp", latest)) if v}
    log = {"remote_location": location, **window}
    return {"log_type": upload.log_type, "request_id": upload.pk, "log": log, **retries}


# 1.6 GetDiagnostics answered without ``fileName``: the charger has no diagnostics, and uploads nothing.
NO_DIAGNOSTICS = "NoDiagnostics"
# 2.0.1 GetLog answered ``AcceptedCanceled`` (N01.FR.12): this upload accepted, the one under way cancelled.
_CANCELED_ANOTHER = "AcceptedCanceled"
# The requests a charger did not take: it refused them, or they never reached it.
_NOT_TAKEN = (CommandState.REJECTED, CommandState.NOT_CONNECTED, CommandState.CALL_ERROR, CommandState.INVALID_RESPONSE)
# The commands asking a charger for its diagnostics or a log, the CSMS's own (an upload's) or an operator's.
_LOG_REQUESTS = ("GetDiagnostics", "GetLog")
# The columns a charger's file name is kept in: its name as given, and the file's path in storage.
_FILE_NAME_LENGTH: int = LogUpload._meta.get_field("file_name").max_length  # type: ignore[assignment]  # a CharField's
_FILE_PATH_LENGTH: int = LogUpload._meta.get_field("file").max_length  # type: ignore[assignment]  # a FileField's


# The longest the retries a charger is told of may keep its upload URL valid past the TTL.
_RETRIES_AT_MOST = timedelta(days=366)


def _upload_validity(retries: int | None, retry_interval: int | None) -> timedelta:
    """How long an upload URL stays valid: ``CSMS_DIAGNOSTICS_UPLOAD_TTL`` s past the charger's last
    retry it was told of (``retries`` every ``retry_interval`` s: 1.6 GetDiagnostics, 2.0.1 GetLog;
    one told no interval retries as it sees fit), the retries counted up to a year."""
    retrying = timedelta(seconds=min((retries or 0) * (retry_interval or 0), _RETRIES_AT_MOST.total_seconds()))
    return timedelta(seconds=settings.CSMS_DIAGNOSTICS_UPLOAD_TTL) + retrying


def log_upload_request(
    *,
    charge_point_id: str,
    log_type: str = "DiagnosticsLog",
    oldest: datetime | None = None,
    latest: datetime | None = None,
    retries: int | None = None,
    retry_interval: int | None = None,
    api_key: ApiKey | None = None,
    user_id: int | None = None,
) -> LogUpload:
    """Ask the charger for its diagnostics (1.6 GetDiagnostics, 6.2.8) or a log (2.0.1 GetLog, N01:
    ``log_type`` DiagnosticsLog or SecurityLog) covering ``oldest``..``latest``, to be uploaded to
    a fresh single-use URL valid ``CSMS_DIAGNOSTICS_UPLOAD_TTL`` s past the last retry it is told of
    (``_upload_validity``).

    The request is recorded as a command; a refused or undelivered one leaves the upload failed.
    Raises MaintenanceError (404 unknown charger, 400 bad body or a ``log_type`` other than
    DiagnosticsLog of a 1.6 charger, 409 ``ChargePointDecommissioned`` for a decommissioned charger
    (it never connects: nothing is sent, as a command to it is answered), 503 ``NotConnected`` for a charger that
    never connected: its OCPP version unknown, nothing is sent, as a command to it is answered).
    """
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).first()
    if charge_point is None:
        raise MaintenanceError(404, "NotFound", f"Charge point {charge_point_id!r} is not registered.")
    if charge_point.lifecycle_state == LifecycleState.DECOMMISSIONED:  # never connects: 409, as a command
        raise MaintenanceError(409, "ChargePointDecommissioned", DECOMMISSIONED_MESSAGE)
    version = charge_point.ocpp_version
    if not version:
        raise MaintenanceError(
            503, "NotConnected", f"{charge_point_id} has never connected: its OCPP version is not known yet."
        )
    if version == "1.6" and log_type != "DiagnosticsLog":  # 1.6 GetDiagnostics names no log type
        raise MaintenanceError(
            400,
            "ValidationError",
            "The request body is invalid.",
            {"log_type": [f"{charge_point_id} speaks OCPP 1.6: it uploads its diagnostics, no {log_type}."]},
        )
    token, digest = upload_token_new()
    upload = LogUpload.objects.create(
        charge_point=charge_point,
        log_type=V16_LOG_TYPE if version == "1.6" else log_type,
        token_sha256=digest,
        token_expires_at=timezone.now() + _upload_validity(retries, retry_interval),
    )
    options = {"oldest": oldest, "latest": latest, "retries": retries, "retry_interval": retry_interval}
    request = CommandRequest(
        charge_point_id=charge_point_id,
        ocpp_version=version,
        command="get_diagnostics" if version == "1.6" else "get_log",
        body=_request_body(upload, diagnostics_upload_url(token=token), version, options),
        api_key=api_key,
        user_id=user_id,
    )
    try:
        command = command_send(request=request)
    except CommandRefused as refused:
        upload.delete()
        refused_status = 409 if refused.code == "ChargePointDecommissioned" else 400  # decommissioned since
        raise MaintenanceError(refused_status, refused.code, str(refused), refused.details) from None
    # The charger may have reported and uploaded already (it acts once it has answered): only what
    # the answer tells is written, and the name it announced only while no file has arrived.
    announced = (command.response or {}).get("file_name") or (command.response or {}).get("filename") or ""
    # A lenient model's answer is passed on as it came: a name of any length, or no text at all.
    announced = file_name_cut(announced, _FILE_NAME_LENGTH) if isinstance(announced, str) else ""
    uploads = LogUpload.objects.filter(pk=upload.pk)
    uploads.update(command=command, updated_at=timezone.now())
    uploads.filter(received_at__isnull=True).update(file_name=announced)
    if command.state != CommandState.ACCEPTED:
        status = command_refusal(command=command) if command.state == CommandState.REJECTED else command.state
        uploads.update(state=LogUploadState.FAILED, status=status)
    elif version == "1.6" and not announced:  # 6.26 GetDiagnostics.conf: no fileName, no diagnostics to upload
        uploads.filter(received_at__isnull=True, status="").update(
            state=LogUploadState.FAILED, status=NO_DIAGNOSTICS, updated_at=timezone.now()
        )
    elif (command.response or {}).get("status") == _CANCELED_ANOTHER:
        _ongoing_uploads(charge_point).exclude(pk=upload.pk).update(
            state=LogUploadState.FAILED, status=_CANCELED_ANOTHER, updated_at=timezone.now()
        )
    upload.refresh_from_db()
    return upload


def _ongoing_uploads(charge_point: ChargePoint) -> QuerySet[LogUpload]:
    """The charger's uploads it accepted and has not finished: requested or uploading, no file yet."""
    return LogUpload.objects.filter(
        charge_point=charge_point,
        received_at__isnull=True,
        state__in=(LogUploadState.REQUESTED, LogUploadState.UPLOADING),
    )


def log_upload_receive(*, token: str, upload: File, file_name: str = "") -> LogUpload:
    """Store a charger's upload for the request ``token`` was issued for, and spend the token.

    ``file_name``: the name the charger gave (URL or multipart), else the one it announced.
    Raises LinkRefused for an unknown, expired or already used token (nothing is kept).
    """
    digest = upload_token_digest(token)
    record = LogUpload.objects.filter(token_sha256=digest).select_related("charge_point").first()
    if record is None:
        raise LinkRefused("The upload token is not valid.")
    if record.received_at is not None:
        raise LinkRefused("The upload token has already been used.")
    if record.token_expires_at < timezone.now():
        raise LinkRefused("The upload token has expired.")
    name = PurePosixPath(file_name or record.file_name or f"{record.log_type}.log").name or "upload.log"
    name = file_name_cut(name, _FILE_NAME_LENGTH)
    folder = f"diagnostics/{record.charge_point.charge_point_id}/{record.pk}-"
    stored_name = folder + file_name_cut(name, _FILE_PATH_LENGTH - len(folder) - TAKEN_NAME_ROOM)
    stored = default_storage.save(stored_name, upload, max_length=_FILE_PATH_LENGTH)
    now = timezone.now()
    with transaction.atomic():
        spent = LogUpload.objects.filter(pk=record.pk, received_at__isnull=True).update(
            file=stored,
            file_name=name,
            size=upload.size,
            received_at=now,
            state=LogUploadState.UPLOADED,
            updated_at=now,
        )
        if spent:
            record.refresh_from_db()
            webhook_event_emit(event_type=EventType.DIAGNOSTICS_UPLOADED, data=events.diagnostics_uploaded(record))
    if not spent:
        default_storage.delete(stored)
        raise LinkRefused("The upload token has already been used.")
    return record


def log_status_record(
    *, charge_point_id: str, state: str, status: str, request_id: int | None = None
) -> LogUpload | None:
    """Record a DiagnosticsStatusNotification (1.6) or LogStatusNotification (2.0.1) against the
    request it reports on: ``request_id`` (2.0.1) names it, else the charger's latest one it may have
    taken (1.6 names none: a request it refused, or that never reached it, is not the one it reports
    on; one whose answer is not recorded yet, or was lost, may be).

    ``state`` is a LogUploadState value (the handler maps the version's status); once the file
    has arrived only ``status`` follows the charger. Returns the upload, or None for none.

    The request reported on is the latest the charger may have taken (of that ``request_id``): an
    upload's, or one an operator sent as a command (``get_diagnostics``, ``get_log``: to a location
    of theirs) after it, which no upload here tracks: None then, whatever an earlier upload's state.
    """
    uploads = LogUpload.objects.filter(charge_point__charge_point_id=charge_point_id)
    requests = Command.objects.filter(charge_point_identity=charge_point_id, action__in=_LOG_REQUESTS).exclude(
        state__in=_NOT_TAKEN
    )
    if request_id is not None:
        uploads = uploads.filter(pk=request_id)
        requests = requests.filter(action="GetLog", request__request_id=request_id)
    else:
        uploads = uploads.exclude(command__state__in=_NOT_TAKEN)
    latest = requests.order_by("-created_at").values("pk")[:1]
    # An upload whose command is not linked yet (its answer not recorded) was asked just before it.
    uploads = uploads.filter(Q(command__isnull=True) | Q(command__in=Subquery(latest)))
    with transaction.atomic():
        upload = uploads.select_for_update(of=("self",)).order_by("-created_at").first()
        if upload is None:
            return None
        upload.status = status
        if upload.received_at is None:
            upload.state = state
        upload.save(update_fields=["status", "state", "updated_at"])
    return upload


# An upload whose URL expired before its file arrived: the charger can no longer upload it.
EXPIRED = "Expired"


def log_uploads_expire(*, now: datetime | None = None) -> int:
    """Fail every upload whose single-use URL expired (``CSMS_DIAGNOSTICS_UPLOAD_TTL``) with no file
    received: requested, uploading, or reported ``Uploaded`` by a charger whose file never arrived.
    Nothing can arrive any more (the upload endpoint refuses an expired token with ``403``), and the
    charger may never say so (a status lost, the charger replaced): without this it stays in progress
    for ever. ``status`` becomes ``Expired``. Returns how many (the beat task ``expire-log-uploads``)."""
    now = now or timezone.now()
    return LogUpload.objects.filter(
        received_at__isnull=True,
        token_expires_at__lt=now,
        state__in=(LogUploadState.REQUESTED, LogUploadState.UPLOADING, LogUploadState.UPLOADED),
    ).update(state=LogUploadState.FAILED, status=EXPIRED, updated_at=now)


def log_upload_file_open(*, upload: LogUpload) -> tuple[File, str]:
    """The stored file of ``upload``, open for reading (binary), and the name to download it as.

    Raises MaintenanceError (404 ``NotFound``) when the charger has not uploaded it yet, or when its
    stored file is no longer there (a volume restored without it, a file removed by hand)."""
    if not upload.file:
        raise MaintenanceError(404, "NotFound", f"Log upload {upload.pk} has no file yet.")
    name = PurePosixPath(upload.file_name).name
    try:
        opened = upload.file.open("rb")
    except FileNotFoundError:
        raise MaintenanceError(
            404, "NotFound", f"The file of log upload {upload.pk} ({name or upload.file.name}) is no longer stored."
        ) from None
    return opened, name
