"""Firmware files and campaigns: UpdateFirmware in waves, progress from FirmwareStatusNotification.

A campaign sends to at most ``concurrency`` chargers at a time. ``campaign_advance`` (the Celery
beat task, and after every charger that finishes) fails chargers silent for longer than
``CSMS_FIRMWARE_STATUS_TIMEOUT`` s, then fills the free places from the pending chargers.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState
from charging.metering import LONG_SESSION
from charging.models import Transaction, TransactionStatus
from commands.models import Command, CommandState
from commands.rpc import NOT_SENT_IN_TIME
from commands.services import CommandRefused, CommandRequest, command_refusal, command_send
from kernel.background_sends import broker_sends
from kernel.sweeps import each_passed_over
from kernel.together import each_at_once
from maintenance import events
from maintenance.errors import MaintenanceError
from maintenance.file_names import TAKEN_NAME_ROOM, file_name_cut
from maintenance.links import firmware_download_url, firmware_linked
from maintenance.models import IN_FLIGHT, Campaign, CampaignState, CampaignTarget, FirmwareFile, TargetState
from webhooks.models import EventType
from webhooks.services import webhook_event_emit

logger = logging.getLogger(__name__)

# A reported firmware status (1.6 FirmwareStatus, core and security whitepaper; 2.0.1
# FirmwareStatusEnumType) -> its campaign target's progress; Idle reports nothing.
FIRMWARE_STATUS_PROGRESS = {
    "DownloadScheduled": "downloading",
    "Downloading": "downloading",
    "DownloadPaused": "downloading",
    "Downloaded": "downloaded",
    "SignatureVerified": "downloaded",
    "InstallScheduled": "installing",
    "InstallRebooting": "installing",
    "Installing": "installing",
    "Installed": "installed",
    "DownloadFailed": "failed",
    "InstallationFailed": "failed",
    "InstallVerificationFailed": "failed",
    "InvalidSignature": "failed",
}

FINISHED = (TargetState.INSTALLED, TargetState.FAILED, TargetState.SKIPPED)
# Why an UpdateFirmware that was not accepted failed its charger, by command state.
_UNDELIVERED: dict[str, str] = {
    CommandState.NOT_CONNECTED: "NotConnected",
    CommandState.TIMEOUT: "Timeout",
    CommandState.CALL_ERROR: "CallError",
    CommandState.INVALID_RESPONSE: "InvalidResponse",
    CommandState.REBOOT_REQUIRED: "RebootRequired",
}


def firmware_image_size_check(upload: File) -> None:
    """Raises MaintenanceError (413 ``RequestTooLarge``) for an image over ``CSMS_FIRMWARE_MAX_BYTES``
    bytes. A form far over it never arrives (``kernel.request_bodies``: its bound leaves room for the
    form's own lines); this checks the image's exact size."""
    limit = settings.CSMS_FIRMWARE_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise MaintenanceError(413, "RequestTooLarge", f"Firmware images are limited to {limit} bytes.")


def firmware_image_open(*, firmware: FirmwareFile) -> File:
    """The stored image of ``firmware``, open for reading (binary); the caller closes it.

    Raises MaintenanceError (404 ``NotFound``) when its stored file is no longer there (a volume
    restored without it, a file removed by hand)."""
    try:
        return firmware.file.open("rb")
    except FileNotFoundError:
        raise MaintenanceError(
            404, "NotFound", f"The image of firmware {firmware.pk} ({firmware.file.name}) is no longer stored."
        ) from None


def firmware_file_create(*, name: str, version: str = "", upload: File) -> FirmwareFile:
    """Store an uploaded image; its size (bytes) and SHA-256 are recorded. ``name`` is cut to its
    column (it defaults to the upload's file name, which may be longer); a row that cannot be
    written takes its stored file with it. Raises MaintenanceError (413) for an image over
    ``CSMS_FIRMWARE_MAX_BYTES`` (``firmware_image_size_check``)."""
    firmware_image_size_check(upload)
    digest = hashlib.sha256()
    size = 0
    for chunk in upload.chunks():
        digest.update(chunk)
        size += len(chunk)
    firmware = FirmwareFile(name=name[:_NAME_LENGTH], version=version, size=size, sha256=digest.hexdigest())
    # The stored file's path (firmware/<name>) within its column, whatever the upload's name.
    firmware.file.save(file_name_cut(upload.name or name, _STORED_NAME_ROOM), upload, save=False)
    try:
        firmware.save()
    except Exception:
        firmware.file.delete(save=False)
        raise
    return firmware


_NAME_LENGTH: int = FirmwareFile._meta.get_field("name").max_length  # type: ignore[assignment]  # a CharField's
_PATH_LENGTH: int = FirmwareFile._meta.get_field("file").max_length  # type: ignore[assignment]  # a FileField's
_STORED_NAME_ROOM = _PATH_LENGTH - len("firmware/") - TAKEN_NAME_ROOM  # FirmwareFile.file's upload_to


def campaign_charge_points(
    *,
    charge_point_ids: list[str] | None = None,
    vendor: str = "",
    model: str = "",
    firmware_version: str = "",
    ocpp_version: str = "",
) -> QuerySet[ChargePoint]:
    """The chargers a campaign selects: listed ids, and/or matching vendor, model (case-insensitive),
    current firmware version and OCPP version. Never a decommissioned charger (refused at its
    handshake: its update would wait for ever); a pending one (auto-registered, nobody vetted it)
    only when listed by id: a selection by vendor or model sent strangers the image's link. Raises
    MaintenanceError (400) for an empty selection or unknown or decommissioned ids."""
    if not (charge_point_ids or vendor or model or firmware_version or ocpp_version):
        raise MaintenanceError(
            400,
            "ValidationError",
            "Choose the chargers.",
            {"charge_point_ids": ["Give charge_point_ids, vendor, model, firmware_version or ocpp_version."]},
        )
    chargers = ChargePoint.objects.exclude(lifecycle_state=LifecycleState.DECOMMISSIONED)
    if charge_point_ids:
        chargers = chargers.filter(charge_point_id__in=charge_point_ids)
        unknown = set(charge_point_ids) - set(chargers.values_list("charge_point_id", flat=True))
        if unknown:
            raise MaintenanceError(
                400,
                "ValidationError",
                "Unknown chargers.",
                {"charge_point_ids": [f"Not registered, or decommissioned: {', '.join(sorted(unknown))}."]},
            )
    else:
        chargers = chargers.filter(lifecycle_state=LifecycleState.COMMISSIONED)
    if vendor:
        chargers = chargers.filter(vendor__iexact=vendor)
    if model:
        chargers = chargers.filter(model__iexact=model)
    if firmware_version:
        chargers = chargers.filter(firmware_version=firmware_version)
    if ocpp_version:
        chargers = chargers.filter(ocpp_version=ocpp_version)
    return chargers


# ``campaign_charge_points``'s selectors, in the order an empty selection's 400 names them
_SELECTORS = ("charge_point_ids", "vendor", "model", "firmware_version", "ocpp_version")


@transaction.atomic
def campaign_create(
    *, name: str, firmware: FirmwareFile, concurrency: int, start_at: datetime | None = None, **selection: Any
) -> Campaign:
    """A campaign over the chargers ``campaign_charge_points(**selection)`` selects, from ``start_at``
    (default now) on. Raises MaintenanceError (400) when it selects none, naming the selectors given
    (``{"vendor": "Nobody"}`` named ``charge_point_ids``, which its caller never sent)."""
    chargers = list(campaign_charge_points(**selection))
    if not chargers:
        given = [name for name in _SELECTORS if selection.get(name)]
        problem = "No charger matches the selection (without charge_point_ids: commissioned chargers only)."
        raise MaintenanceError(
            400, "ValidationError", "The selection matches no charger.", {name: [problem] for name in given}
        )
    campaign = Campaign.objects.create(
        name=name,
        firmware=firmware,
        concurrency=concurrency,
        start_at=start_at or timezone.now(),
        selection={key: value for key, value in selection.items() if value},
    )
    CampaignTarget.objects.bulk_create(CampaignTarget(campaign=campaign, charge_point=cp) for cp in chargers)
    return campaign


def campaign_advance(*, campaign_id: str) -> Campaign | None:
    """One step of a campaign; safe to run from any number of workers at once.

    1. In-flight chargers silent for ``CSMS_FIRMWARE_STATUS_TIMEOUT`` s fail with ``Timeout``.
    2. An active, started campaign claims pending chargers up to ``concurrency`` in flight and
       sends each UpdateFirmware (recorded as a command); a refused or undelivered one fails, and
       its place goes to the next pending charger at once.
    3. A campaign with nothing pending or in flight is finished (webhook ``firmware_campaign.finished``).
    Returns the campaign, or None when it does not exist.
    """
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return None
    _targets_time_out(campaign)
    while wave := _wave_claim(campaign):
        if all(_wave_send(wave)):
            break
    return _campaign_finish_if_done(campaign)


def _wave_send(wave: list[CampaignTarget]) -> list[bool]:
    """``_update_firmware_send`` to every target of ``wave`` at once (``kernel.together``): the
    Celery worker, whose beat tasks include the offline sweep, is held about one charger's answer
    (CSMS_OCPP_CALL_TIMEOUT at most), not one per charger of the wave; whether each accepted."""
    return each_at_once(_update_firmware_send, wave, name="firmware-wave")


def campaigns_advance() -> int:
    """``campaign_advance`` for every unfinished campaign; returns how many were looked at. One whose
    step raises is logged and passed over (``kernel.sweeps``): it held back every campaign after it,
    at every tick."""
    ids = list(Campaign.objects.filter(finished_at__isnull=True).values_list("id", flat=True))
    each_passed_over(
        [str(campaign_id) for campaign_id in ids],
        lambda campaign_id: campaign_advance(campaign_id=campaign_id),
        logger=logger,
        failed="the firmware campaigns' sweep could not advance campaign %s",
    )
    return len(ids)


# What a charger that has the image does while a session runs on it: it waits for the session to end
# before installing (OCPP 1.6 4.5 and 5.19 recommend it; 2.0.1 L01 reports InstallScheduled), silent.
_WAITING_TO_INSTALL = (TargetState.DOWNLOADED, TargetState.INSTALLING)


def _targets_time_out(campaign: Campaign) -> None:
    """Fail the targets in flight silent for ``CSMS_FIRMWARE_STATUS_TIMEOUT`` s with ``Timeout``; a
    charger waiting to install (``_WAITING_TO_INSTALL``) is silent from the end of its last session
    on, not while one runs (an overnight session failed it, its ``Installed`` then ignored). A session
    open longer than ``LONG_SESSION`` (its stop lost, never closed) holds it back no longer. One whose
    Timeout raises is logged and passed over (tried again next time): it stopped the campaign's step,
    the later silent chargers never timed out nor its free places filled, at every tick."""
    cutoff = timezone.now() - timedelta(seconds=settings.CSMS_FIRMWARE_STATUS_TIMEOUT)
    running = Q(status=TransactionStatus.ACTIVE, created_at__gte=timezone.now() - LONG_SESSION)  # the CSMS's clock
    charging = Transaction.objects.filter(charge_point_id=OuterRef("charge_point_id")).filter(
        running | Q(stopped_at__gte=cutoff)
    )
    silent = campaign.targets.filter(state__in=IN_FLIGHT, updated_at__lt=cutoff).exclude(
        Q(state__in=_WAITING_TO_INSTALL) & Exists(charging)
    )
    each_passed_over(
        list(silent.select_related("charge_point")),
        _target_time_out,
        logger=logger,
        failed="the firmware campaigns' sweep could not time out campaign target %s",
        named=lambda target: target.pk,
    )


def _target_time_out(target: CampaignTarget) -> None:
    with transaction.atomic():
        claimed = CampaignTarget.objects.filter(pk=target.pk, state=target.state, updated_at=target.updated_at)
        if claimed.update(state=TargetState.FAILED, failure="Timeout", updated_at=timezone.now()):
            target.state, target.failure = TargetState.FAILED, "Timeout"
            _status_changed_emit(target)


def _wave_claim(campaign: Campaign) -> list[CampaignTarget]:
    """Mark the next wave sent, under the campaign's row lock: two workers never overfill it."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.state != CampaignState.ACTIVE or locked.start_at > timezone.now():
            return []
        free = locked.concurrency - locked.targets.filter(state__in=IN_FLIGHT).count()
        wave = list(locked.targets.filter(state=TargetState.PENDING).select_related("charge_point")[: max(free, 0)])
        now = timezone.now()
        CampaignTarget.objects.filter(pk__in=[t.pk for t in wave]).update(
            state=TargetState.SENT, sent_at=now, updated_at=now
        )
    for target in wave:
        target.state, target.sent_at, target.campaign = TargetState.SENT, now, locked
    return wave


def _update_firmware_body(target: CampaignTarget, ocpp_version: str) -> dict[str, Any]:
    location = firmware_download_url(firmware_id=str(target.campaign.firmware_id))
    retrieve = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    if ocpp_version == "1.6":
        return {"location": location, "retrieve_date": retrieve}
    return {"request_id": target.pk, "firmware": {"location": location, "retrieve_date_time": retrieve}}


def _update_firmware_send(target: CampaignTarget) -> bool:
    """Send the target its UpdateFirmware; whether the charger accepted it."""
    charge_point = target.charge_point
    if not charge_point.ocpp_version:
        _target_fail(target, "NotConnected")
        return False
    request = CommandRequest(
        charge_point_id=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command="update_firmware",
        body=_update_firmware_body(target, charge_point.ocpp_version),
    )
    try:
        command = command_send(request=request)
    except CommandRefused as refused:
        _target_fail(target, refused.code)
        return False
    CampaignTarget.objects.filter(pk=target.pk).update(command=command)
    if command.state == CommandState.REJECTED:
        _target_fail(target, command_refusal(command=command))
    elif command.state == CommandState.TIMEOUT and command.error_description != NOT_SENT_IN_TIME:
        # Sent, its answer late or lost: a charger that reported progress meanwhile took it.
        _target_fail(target, _UNDELIVERED.get(command.state, command.state), unless_reported=True)
    elif command.state != CommandState.ACCEPTED:
        _target_fail(target, _UNDELIVERED.get(command.state, command.state))
    return command.state == CommandState.ACCEPTED


def _target_fail(target: CampaignTarget, failure: str, *, unless_reported: bool = False) -> None:
    """Fail the target while it is in flight; ``unless_reported``: only while its charger has
    reported nothing of it (one that did is carrying the update out, followed by its reports and
    its status timer)."""
    in_flight = CampaignTarget.objects.filter(pk=target.pk, state__in=IN_FLIGHT)
    if unless_reported:
        in_flight = in_flight.filter(status="")
    with transaction.atomic():
        if in_flight.update(state=TargetState.FAILED, failure=failure, updated_at=timezone.now()):
            target.state, target.failure = TargetState.FAILED, failure
            _status_changed_emit(target)


def _campaign_finish_if_done(campaign: Campaign) -> Campaign:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.finished_at or campaign.state == CampaignState.PAUSED:
            return campaign
        if campaign.targets.exclude(state__in=FINISHED).exists():
            return campaign
        if campaign.state == CampaignState.ACTIVE:
            campaign.state = CampaignState.COMPLETED
        campaign.finished_at = timezone.now()
        campaign.save(update_fields=["state", "finished_at"])
        webhook_event_emit(
            event_type=EventType.FIRMWARE_CAMPAIGN_FINISHED,
            data=events.firmware_campaign_finished(campaign, progress=campaign_progress(campaign)),
        )
    return campaign


def campaigns_counted(campaigns: QuerySet[Campaign]) -> QuerySet[Campaign]:
    """``campaigns`` with each one's chargers per target state counted in the same query, which
    ``campaign_progress`` then reads: a page of campaigns costs one query, not one per campaign.
    Newest first, as the model orders them (a query that groups leaves ``Meta.ordering`` out), the
    id breaking a tie (a page's rows never move to another page between reads)."""
    counts = {_COUNTED + state: Count("targets", filter=Q(targets__state=state)) for state in TargetState.values}
    return campaigns.annotate(**counts).order_by("-created_at", "-id")


_COUNTED = "targets_counted_"


def campaign_progress(campaign: Campaign) -> dict[str, int]:
    """Chargers per target state, every state present (``{"installed": 19, "failed": 1, ...}``);
    counted by ``campaigns_counted`` already, or here."""
    if hasattr(campaign, _COUNTED + TargetState.PENDING):
        return {state: getattr(campaign, _COUNTED + state) for state in TargetState.values}
    counts = dict.fromkeys(TargetState.values, 0)
    for state in campaign.targets.values_list("state", flat=True):
        counts[state] += 1
    return counts


def _campaign_transition(campaign_id: str, allowed: tuple[str, ...], new_state: str) -> Campaign:
    with transaction.atomic():
        try:
            campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        except (DjangoValidationError, ValueError):
            campaign = None
        if campaign is None:
            raise MaintenanceError(404, "NotFound", f"No campaign {campaign_id}.")
        if campaign.state not in allowed:
            raise MaintenanceError(409, "Conflict", f"The campaign is {campaign.state}; it cannot become {new_state}.")
        campaign.state = new_state
        campaign.save(update_fields=["state"])
        if new_state == CampaignState.CANCELLED:
            campaign.targets.filter(state=TargetState.PENDING).update(
                state=TargetState.SKIPPED, updated_at=timezone.now()
            )
    return campaign


def campaign_pause(*, campaign_id: str) -> Campaign:
    """No new wave until resumed; chargers in flight carry on. Raises MaintenanceError (404, 409)."""
    return _campaign_transition(campaign_id, (CampaignState.ACTIVE,), CampaignState.PAUSED)


def campaign_resume(*, campaign_id: str) -> Campaign:
    """Waves start again at the next advance. Raises MaintenanceError (404, 409)."""
    campaign = _campaign_transition(campaign_id, (CampaignState.PAUSED,), CampaignState.ACTIVE)
    campaign_advance_soon(campaign_id=campaign.pk)
    return campaign


def campaign_cancel(*, campaign_id: str) -> Campaign:
    """No new wave, ever: pending chargers are skipped; those in flight are still tracked.
    Raises MaintenanceError (404, 409)."""
    campaign = _campaign_transition(campaign_id, (CampaignState.ACTIVE, CampaignState.PAUSED), CampaignState.CANCELLED)
    campaign_advance_soon(campaign_id=campaign.pk)
    return campaign


def firmware_status_record(
    *, charge_point_id: str, progress: str, status: str, request_id: int | None = None
) -> CampaignTarget | None:
    """Record a FirmwareStatusNotification (OCPP 1.6 4.5, 2.0.1 L01) against the campaign target
    it reports on: ``request_id`` (2.0.1) names it, else the charger's latest in flight.

    ``progress`` is a TargetState value (the handler maps the version's status); ``status`` is the
    status as sent. A finished charger lets the campaign's next wave start. A charger failed by its
    own report (``DownloadFailed``) that reports progress later has retried: UpdateFirmware is sent
    without ``retries``, which leaves the retries to the charger (1.6 6.55 UpdateFirmware.req, 2.0.1
    UpdateFirmwareRequest); one whose UpdateFirmware went unanswered (``_UNANSWERED``) took it after
    all; one silent past the timeout that reports ``Installed`` (``_SILENT_PAST_TIMEOUT``) was away
    installing it; ``_target_retried`` says whether it is back.
    Returns the target, or None when the notification belongs to no campaign (an UpdateFirmware
    sent by hand) or to a target that stays as it is.
    """
    targets = CampaignTarget.objects.filter(charge_point__charge_point_id=charge_point_id)
    if request_id is not None:
        targets = targets.filter(pk=request_id)
    with transaction.atomic():
        target = (
            targets.filter(Q(state__in=IN_FLIGHT) | _may_still_update(progress))
            .select_for_update(of=("self",))
            .order_by("-sent_at")
            .select_related("charge_point")
            .first()
        )
        if target is None or (target.state == TargetState.FAILED and not _target_retried(target, progress)):
            return None
        target.status = status
        target.state = progress
        target.failure = status if progress == TargetState.FAILED else ""
        target.save(update_fields=["status", "state", "failure", "updated_at"])
        _status_changed_emit(target)
        if progress in FINISHED:
            campaign_advance_soon(campaign_id=target.campaign_id)
    return target


def firmware_booted(*, charge_point_id: str, firmware_version: str) -> int:
    """A BootNotification reporting ``firmware_version``, new for the charger (the handler asks only
    when its vendor, model or firmware version changed): its campaign targets in flight whose image
    has that version are installed. A charger rebooting into the new image may never report
    ``Installed`` (OCPP 1.6 4.5 and 2.0.1 L01 send it after the reboot; a 1.6 charger queues only
    transaction messages while offline): they stayed in flight until ``Timeout`` failed them. So is
    one failed while the charger may still carry it out (``_MAY_STILL_UPDATE``: its download failed
    and retried, its UpdateFirmware unanswered and taken), or silent past the timeout after taking it
    (``_SILENT_PAST_TIMEOUT``), that no later update superseded (``_target_retried``). ``status``
    stays the charger's last FirmwareStatus. Returns how many."""
    if not firmware_version:
        return 0
    targets = CampaignTarget.objects.filter(
        Q(state__in=IN_FLIGHT) | _may_still_update(TargetState.INSTALLED),
        charge_point__charge_point_id=charge_point_id,
        campaign__firmware__version=firmware_version,
    )
    installed = 0
    with transaction.atomic():
        for target in targets.select_for_update(of=("self",)).select_related("charge_point"):
            if target.state == TargetState.FAILED and not _target_retried(target, TargetState.INSTALLED):
                continue
            target.state, target.failure = TargetState.INSTALLED, ""
            target.save(update_fields=["state", "failure", "updated_at"])
            _status_changed_emit(target)
            campaign_advance_soon(campaign_id=target.campaign_id)
            installed += 1
    return installed


# 2.0.1 UpdateFirmware answered ``AcceptedCanceled`` (L01, UpdateFirmwareStatusEnumType): this update
# accepted, the one the charger had under way cancelled.
CANCELED_ANOTHER = "AcceptedCanceled"


def firmware_updates_canceled(*, charge_point: ChargePoint, request_id: object, location: object = None) -> int:
    """The charger took a new UpdateFirmware (``request_id``) and cancelled the one under way: its
    campaign targets in flight other than the new one's fail with ``AcceptedCanceled`` (no status
    would come for them; they would wait for ``Timeout`` holding a place of their campaign's
    concurrency), and their campaigns go on. One sent by hand (its ``location`` given) is the
    target's own only to the CSMS's link of the target's image (``_request_id_own``). Returns how many."""
    targets = CampaignTarget.objects.filter(charge_point=charge_point, state__in=IN_FLIGHT)
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        targets = targets.exclude(_request_id_own(request_id, location))
    return _targets_fail(targets, CANCELED_ANOTHER)


def firmware_request_id_reused(*, charge_point: ChargePoint, request_id: object, location: object) -> int:
    """A 2.0.1 UpdateFirmware sent by hand and accepted under the ``request_id`` of one of the
    charger's campaign targets in flight, to another location than the CSMS's link of its image:
    the reports that name it from now on are that update's (another image's), so the target fails
    with ``Superseded`` and its campaign goes on. Returns how many (0 or 1)."""
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        return 0
    targets = CampaignTarget.objects.filter(charge_point=charge_point, state__in=IN_FLIGHT, pk=request_id)
    return _targets_fail(targets.exclude(_request_id_own(request_id, location)), SUPERSEDED)


def _request_id_own(request_id: int, location: object) -> Q:
    """The target an UpdateFirmware under ``request_id`` is for: the one of that primary key; for one
    sent by hand (its ``location`` not None), only if that is the CSMS's link to the target's image."""
    if location is None:
        return Q(pk=request_id)
    linked = firmware_linked(location=location) if isinstance(location, str) else None
    if linked is None:
        return Q(pk__in=[])
    return Q(pk=request_id, campaign__firmware_id=uuid.UUID(linked))


# A 1.6 charger accepted a later UpdateFirmware than a campaign's under way.
SUPERSEDED = "Superseded"


def firmware_updates_superseded(*, charge_point: ChargePoint, location: str = "", by_hand: bool = False) -> int:
    """A 1.6 charger accepted an UpdateFirmware (an operator's, sent by hand, or another campaign's)
    of ``location``: it works on one update at a time, and its FirmwareStatusNotification names none
    (1.6 4.5), so what it reports from now on is that update's. Its campaign targets in flight sent
    before it (their command linked; the one this answer is for is not yet) fail with
    ``Superseded``, and their campaigns go on: they showed the progress of another image
    (``installed`` for an image not installed), or waited for ``Timeout``. One sent ``by_hand`` to
    the CSMS's link of a target's own image (an operator re-sending what the campaign sent) leaves
    that target in flight: the reports are its image's. Returns how many."""
    targets = CampaignTarget.objects.filter(charge_point=charge_point, state__in=IN_FLIGHT, command__isnull=False)
    linked = firmware_linked(location=location) if by_hand else None
    if linked is not None:
        targets = targets.exclude(campaign__firmware_id=uuid.UUID(linked))
    return _targets_fail(targets, SUPERSEDED)


def firmware_target_resend(*, command: Command) -> CampaignTarget | None:
    """Before an UpdateFirmware sent by hand (``command``, recorded, its CALL not yet left) to the
    CSMS's link of an image: the charger's latest target, if of that image and failed by its own
    download (``DownloadFailed``), is back in flight (``sent``, its command this one), its campaign,
    if finished, reopened until it finishes again (as a charger retrying on its own:
    ``_target_retried``). In 1.6 its reports name no update, and may be handled before its answer:
    done before the frame leaves. In 2.0.1 only one under the target's ``requestId`` (the campaign's
    UpdateFirmware re-sent as it was), whose reports name the target. Returns the target, or None."""
    assert command.charge_point is not None
    if command.api_key_id is None and command.user_id is None:
        return None
    request = command.request
    targets = CampaignTarget.objects.filter(charge_point=command.charge_point, sent_at__isnull=False)
    if command.ocpp_version == "1.6":
        location = request.get("location")
    else:
        location = (request.get("firmware") or {}).get("location")
        request_id = request.get("request_id")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return None
    linked = firmware_linked(location=location) if isinstance(location, str) else None
    if linked is None:
        return None
    with transaction.atomic():
        latest = (
            targets.select_for_update(of=("self",))
            .select_related("charge_point", "campaign")
            .order_by("-sent_at")
            .first()
        )
        if latest is None or latest.campaign.firmware_id != uuid.UUID(linked):
            return None
        if command.ocpp_version != "1.6" and latest.pk != request_id:
            return None  # its reports name another request
        if (latest.state, latest.failure, latest.status) != (TargetState.FAILED, _DOWNLOAD_FAILED, _DOWNLOAD_FAILED):
            return None  # in flight already, or not failed by its own download (``_FAILED_BY_THE_CHARGER``)
        latest.state, latest.failure, latest.command = TargetState.SENT, "", command
        latest.save(update_fields=["state", "failure", "command", "updated_at"])
        _campaign_reopened(latest.campaign_id)
        _status_changed_emit(latest)
    return latest


def firmware_target_resend_undone(*, command: Command) -> int:
    """``command`` (``firmware_target_resend``'s) never reached the charger, or it refused it (a
    CALLERROR, a 2.0.1 refusal): the target it put back in flight, if nothing was reported since, is failed again by
    its own download, and its campaign goes on (finishing again if that was its last). Returns how many."""
    undone = 0
    with transaction.atomic():
        for target in (
            CampaignTarget.objects.filter(command=command, state=TargetState.SENT, status=_DOWNLOAD_FAILED)
            .select_for_update(of=("self",))
            .select_related("charge_point")
        ):
            target.state, target.failure = TargetState.FAILED, _DOWNLOAD_FAILED
            target.save(update_fields=["state", "failure", "updated_at"])
            _status_changed_emit(target)
            campaign_advance_soon(campaign_id=target.campaign_id)
            undone += 1
    return undone


def _targets_fail(targets: QuerySet[CampaignTarget], failure: str) -> int:
    failed = list(targets.select_related("charge_point"))
    for target in failed:
        _target_fail(target, failure)
        campaign_advance_soon(campaign_id=target.campaign_id)
    return len(failed)


# A target the charger's own download failed (its failure is the status it sent, not a refusal, Timeout
# or a failed installation): UpdateFirmware's retries are the download's.
_DOWNLOAD_FAILED = "DownloadFailed"
_FAILED_BY_THE_CHARGER = Q(state=TargetState.FAILED, failure=_DOWNLOAD_FAILED, status=_DOWNLOAD_FAILED)
# A target whose UpdateFirmware reached the charger and was not answered in time (failed ``Timeout``
# by ``_update_firmware_send``, nothing reported since): its answer came late or was lost on the way
# back, and the charger may have taken it (it then downloads and reports as any other). Not one that
# waited behind the charger's other CALLs until its timeout (``NOT_SENT_IN_TIME``: never sent), nor
# one in flight failed by ``_targets_time_out`` (its command accepted).
_UNANSWERED = Q(state=TargetState.FAILED, failure="Timeout", status="", command__state=CommandState.TIMEOUT) & ~Q(
    command__error_description=NOT_SENT_IN_TIME
)
# The failed targets whose charger may still carry their update out: its progress brings them back.
_MAY_STILL_UPDATE = _FAILED_BY_THE_CHARGER | _UNANSWERED
# A target whose charger took its UpdateFirmware (accepted, or its answer lost: ``_UNANSWERED``'s
# command) and then went silent past ``CSMS_FIRMWARE_STATUS_TIMEOUT`` (``_targets_time_out``): away
# while it installed (a slow reboot, the site's network down). Its progress after it leaves it failed,
# but its telling it installed (``Installed``, a boot on the image's version) is the update done.
_SILENT_PAST_TIMEOUT = Q(
    state=TargetState.FAILED, failure="Timeout", command__state__in=(CommandState.ACCEPTED, CommandState.TIMEOUT)
) & ~Q(command__error_description=NOT_SENT_IN_TIME)


def _may_still_update(progress: str) -> Q:
    """The failed targets ``progress`` may bring back (``_target_retried`` then judges): those the
    charger may still update (``_MAY_STILL_UPDATE``); for ``installed``, one silent past the timeout
    too (``_SILENT_PAST_TIMEOUT``)."""
    if progress == TargetState.INSTALLED:
        return _MAY_STILL_UPDATE | _SILENT_PAST_TIMEOUT
    return _MAY_STILL_UPDATE


def _target_retried(target: CampaignTarget, progress: str) -> bool:
    """Whether ``progress`` on ``target`` (locked; failed by the charger's own report, or unanswered:
    ``_MAY_STILL_UPDATE``) brings it
    back in flight: a progress, not another failure, and no later UpdateFirmware (another
    campaign's, or one sent by hand) superseded it. Its campaign, if finished, is reopened until it finishes again
    (``firmware_campaign.finished`` is then sent again, with the final progress)."""
    if progress in (TargetState.FAILED, TargetState.SKIPPED):
        return False
    later = CampaignTarget.objects.filter(charge_point_id=target.charge_point_id, sent_at__gt=target.sent_at)
    by_hand = Command.objects.filter(
        charge_point_id=target.charge_point_id, action="UpdateFirmware", created_at__gte=target.sent_at
    ).exclude(pk__in=[target.command_id] if target.command_id else [])
    if later.exists() or by_hand.exists():  # the progress is another update's (1.6 names none)
        return False
    _campaign_reopened(target.campaign_id)
    return True


def _campaign_reopened(campaign_id: Any) -> None:
    """A finished campaign one of whose failed targets is back in flight: open until it finishes
    again (``firmware_campaign.finished`` is then sent again, with the final progress)."""
    Campaign.objects.filter(pk=campaign_id, finished_at__isnull=False).update(
        finished_at=None,
        state=Case(When(state=CampaignState.COMPLETED, then=Value(CampaignState.ACTIVE)), default=F("state")),
    )


def _status_changed_emit(target: CampaignTarget) -> None:
    webhook_event_emit(
        event_type=EventType.FIRMWARE_STATUS_CHANGED,
        data=events.firmware_status_changed(target),
    )


def campaign_advance_soon(*, campaign_id: Any) -> None:
    """Queue ``campaign_advance`` (the Celery task) for when the current transaction commits, from
    this process's sender thread (``kernel.background_sends``): the committing thread (in the
    gateway, the batch thread answering chargers) never waits on the broker. Beat's tick advances
    the campaign anyway if the broker is down."""
    from maintenance.tasks import advance_firmware_campaign

    def queue() -> None:
        broker_sends.send(
            ("advance_firmware_campaign", str(campaign_id)),
            lambda: advance_firmware_campaign.delay(str(campaign_id)),
            failed=f"campaign {campaign_id}: could not queue the next wave",
        )

    transaction.on_commit(queue)
