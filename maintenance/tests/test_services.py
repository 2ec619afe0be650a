"""Campaign and log-upload rules without chargers: timeouts, which target a notification is for,
webhook events, refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging.metering import LONG_SESSION
from charging.models import Transaction, TransactionStatus
from commands.models import Command, CommandState
from maintenance.errors import MaintenanceError
from maintenance.links import LinkRefused, upload_token_digest
from maintenance.models import CampaignTarget, LogUpload, TargetState
from maintenance.services import diagnostics, firmware
from webhooks.models import WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def files(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


@pytest.fixture
def campaign():
    for charge_point_id in ("A", "B"):
        ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60, ocpp_version="2.0.1")
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"img", name="fw.bin"))
    return firmware.campaign_create(name="c", firmware=image, concurrency=2, charge_point_ids=["A", "B"])


def _events(event_type):
    return [json.loads(d.body)["data"] for d in WebhookDelivery.objects.filter(event_type=event_type)]


def test_a_charger_silent_past_the_timeout_fails_with_timeout(campaign, settings):
    settings.CSMS_FIRMWARE_STATUS_TIMEOUT = 600
    WebhookSubscription.objects.create(url="https://example.com/h", events=["firmware.status_changed"], secret="s")
    campaign.targets.update(state=TargetState.DOWNLOADING)
    campaign.targets.filter(charge_point__charge_point_id="A").update(
        updated_at=timezone.now() - timedelta(seconds=601)
    )
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    states = dict(campaign.targets.values_list("charge_point__charge_point_id", "state"))
    assert states == {"A": "failed", "B": "downloading"}
    assert campaign.targets.get(charge_point__charge_point_id="A").failure == "Timeout"
    assert [(e["charge_point_id"], e["failure"]) for e in _events("firmware.status_changed")] == [("A", "Timeout")]


def test_a_charger_waiting_for_its_session_to_end_before_installing_does_not_time_out(campaign, settings):
    """h8's probe: a charger that downloaded the image waits for its charging session to end before it
    installs (1.6 4.5 / 5.19 recommends it; 2.0.1 L01 reports InstallScheduled), silent meanwhile: an
    overnight session failed the target ``Timeout`` after an hour, and its ``Installed`` (or its boot
    on the new version) was then ignored, the campaign reporting failed a charger it updated. The
    silence is counted from the end of the charger's last session, not while one runs."""
    settings.CSMS_FIRMWARE_STATUS_TIMEOUT = 600
    long_ago = timezone.now() - timedelta(hours=8)
    campaign.targets.update(state=TargetState.INSTALLING, status="InstallScheduled", updated_at=long_ago)
    charging = ChargePoint.objects.get(charge_point_id="A")
    session = Transaction.objects.create(
        charge_point=charging, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=long_ago
    )
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    states = dict(campaign.targets.values_list("charge_point__charge_point_id", "state"))
    assert states == {"A": "installing", "B": "failed"}  # B, idle, silent for 8 hours
    session.status, session.stopped_at = TransactionStatus.ENDED, timezone.now() - timedelta(seconds=60)
    session.save()
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    assert campaign.targets.get(charge_point=charging).state == TargetState.INSTALLING  # installing now
    Transaction.objects.filter(pk=session.pk).update(stopped_at=timezone.now() - timedelta(seconds=601))
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    target = campaign.targets.get(charge_point=charging)
    assert (target.state, target.failure) == (TargetState.FAILED, "Timeout")


def test_a_session_open_for_longer_than_any_holds_back_no_timeout(campaign, settings):
    """The review's probe: a session whose stop was lost stays open; its charger's target, waiting to
    install, then never timed out. A session open longer than ``LONG_SESSION`` holds it back no longer."""
    settings.CSMS_FIRMWARE_STATUS_TIMEOUT = 600
    long_ago = timezone.now() - LONG_SESSION - timedelta(hours=1)
    campaign.targets.update(state=TargetState.INSTALLING, status="InstallScheduled", updated_at=long_ago)
    charging = ChargePoint.objects.get(charge_point_id="A")
    session = Transaction.objects.create(
        charge_point=charging, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=long_ago
    )
    Transaction.objects.filter(pk=session.pk).update(created_at=long_ago)  # recorded by the CSMS then
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    assert dict(campaign.targets.values_list("charge_point__charge_point_id", "failure")) == {
        "A": "Timeout",
        "B": "Timeout",
    }


def test_a_2_0_1_notification_is_recorded_against_the_request_it_names(campaign):
    campaign.targets.update(state=TargetState.SENT, sent_at=timezone.now())
    target_a = campaign.targets.get(charge_point__charge_point_id="A")
    recorded = firmware.firmware_status_record(
        charge_point_id="A", progress="installed", status="Installed", request_id=target_a.pk
    )
    assert recorded == target_a
    assert CampaignTarget.objects.get(pk=target_a.pk).state == TargetState.INSTALLED
    # Another charger's requestId, or a finished target, records nothing.
    target_b = campaign.targets.get(charge_point__charge_point_id="B")
    other = firmware.firmware_status_record(charge_point_id="A", progress="failed", status="X", request_id=target_b.pk)
    assert other is None
    assert firmware.firmware_status_record(charge_point_id="A", progress="failed", status="DownloadFailed") is None


def test_a_notification_outside_any_campaign_is_only_acknowledged():
    ChargePoint.objects.create(charge_point_id="LONE", heartbeat_interval=60)
    assert firmware.firmware_status_record(charge_point_id="LONE", progress="installed", status="Installed") is None


def _report(charge_point_id: str, *statuses: str) -> None:
    progress = {
        "DownloadFailed": "failed",
        "InstallationFailed": "failed",
        "Downloading": "downloading",
        "Installing": "installing",
    }
    for status in statuses:
        firmware.firmware_status_record(
            charge_point_id=charge_point_id, progress=progress.get(status, status.lower()), status=status
        )


def test_a_charger_that_retries_after_its_download_failed_is_back_in_flight_and_its_campaign_reopened(campaign):
    """Probe: UpdateFirmware is sent without retries, so the charger retries as it likes; its
    DownloadFailed failed it for good and the campaign ended completed with 1 failed."""
    WebhookSubscription.objects.create(url="https://example.com/h", events=["firmware_campaign.finished"], secret="s")
    campaign.targets.update(state=TargetState.SENT, sent_at=timezone.now())
    _report("B", "Installed")
    _report("A", "Downloading", "DownloadFailed")
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    assert [e["progress"]["failed"] for e in _events("firmware_campaign.finished")] == [1]
    _report("A", "Downloading", "Downloaded", "Installing")
    campaign.refresh_from_db()
    assert (campaign.state, campaign.finished_at) == ("active", None)
    _report("A", "Installed")
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    target = campaign.targets.get(charge_point__charge_point_id="A")
    assert (target.state, target.status, target.failure) == ("installed", "Installed", "")
    finished = WebhookDelivery.objects.filter(event_type="firmware_campaign.finished").order_by("created_at")
    progress = [json.loads(delivery.body)["data"]["progress"] for delivery in finished]
    assert [(p["installed"], p["failed"]) for p in progress] == [(1, 1), (2, 0)]


def test_a_charger_failed_by_timeout_or_superseded_by_another_campaign_stays_failed(campaign):
    campaign.targets.update(state=TargetState.SENT, sent_at=timezone.now() - timedelta(hours=1))
    campaign.targets.filter(charge_point__charge_point_id="A").update(state=TargetState.FAILED, failure="Timeout")
    _report("B", "DownloadFailed")
    image = firmware.firmware_file_create(name="fw2", upload=ContentFile(b"img2", name="fw2.bin"))
    newer = firmware.campaign_create(name="c2", firmware=image, concurrency=1, charge_point_ids=["B"])
    newer.targets.update(state=TargetState.INSTALLED, status="Installed", sent_at=timezone.now())
    _report("A", "Downloading")
    _report("B", "Downloading")
    states = campaign.targets.values_list("charge_point__charge_point_id", "state", "failure")
    assert sorted(states) == [("A", "failed", "Timeout"), ("B", "failed", "DownloadFailed")]


def test_progress_after_an_update_sent_by_hand_or_a_failed_installation_reopens_nothing(campaign):
    """The reviewer: a manual UpdateFirmware's progress (1.6 names no request) was booked on the
    campaign's failed target, which was then installed with the campaign's firmware; and a failed
    installation counted as a download to retry."""
    campaign.targets.update(state=TargetState.SENT, sent_at=timezone.now() - timedelta(hours=1))
    _report("A", "DownloadFailed")
    _report("B", "InstallationFailed")
    Command.objects.create(
        charge_point=ChargePoint.objects.get(charge_point_id="A"),
        charge_point_identity="A",
        ocpp_version="2.0.1",
        command="update_firmware",
        action="UpdateFirmware",
        state=CommandState.ACCEPTED,
    )
    _report("A", "Downloading", "Installed")
    _report("B", "Installing", "Installed")
    states = campaign.targets.values_list("charge_point__charge_point_id", "state", "failure")
    assert sorted(states) == [("A", "failed", "DownloadFailed"), ("B", "failed", "InstallationFailed")]


def test_campaign_finished_event_carries_the_progress(campaign):
    WebhookSubscription.objects.create(url="https://example.com/h", events=["firmware_campaign.finished"], secret="s")
    campaign.targets.update(state=TargetState.INSTALLED)
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    [event] = _events("firmware_campaign.finished")
    assert (event["state"], event["progress"]["installed"]) == ("completed", 2)
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    assert len(_events("firmware_campaign.finished")) == 1


def test_a_finished_campaign_cannot_be_paused(campaign):
    campaign.targets.update(state=TargetState.INSTALLED)
    firmware.campaign_advance(campaign_id=str(campaign.pk))
    with pytest.raises(MaintenanceError) as refused:
        firmware.campaign_pause(campaign_id=str(campaign.pk))
    assert (refused.value.http_status, refused.value.code) == (409, "Conflict")


def test_log_requests_for_unknown_or_never_connected_chargers_are_refused():
    with pytest.raises(MaintenanceError) as unknown:
        diagnostics.log_upload_request(charge_point_id="NOPE")
    assert unknown.value.http_status == 404
    ChargePoint.objects.create(charge_point_id="NEW", heartbeat_interval=60)
    with pytest.raises(MaintenanceError) as silent:
        diagnostics.log_upload_request(charge_point_id="NEW")
    assert (silent.value.http_status, silent.value.code) == (503, "NotConnected")


def _log_upload(token: str, **fields):
    charge_point = ChargePoint.objects.get_or_create(charge_point_id="LOGS", heartbeat_interval=60)[0]
    defaults = {"token_expires_at": timezone.now() + timedelta(hours=1), "file_name": "diag.zip"}
    digest = upload_token_digest(token)
    return LogUpload.objects.create(
        charge_point=charge_point, log_type="Diagnostics", token_sha256=digest, **(defaults | fields)
    )


def test_an_upload_spends_its_token_and_announces_itself():
    WebhookSubscription.objects.create(url="https://example.com/h", events=["diagnostics.uploaded"], secret="s")
    record = _log_upload("good-token")
    received = diagnostics.log_upload_receive(token="good-token", upload=ContentFile(b"abc", name="x"))
    assert (received.pk, received.state, received.size, received.file.read()) == (record.pk, "uploaded", 3, b"abc")
    assert [(e["charge_point_id"], e["file_name"]) for e in _events("diagnostics.uploaded")] == [("LOGS", "diag.zip")]
    with pytest.raises(LinkRefused, match="already been used"):
        diagnostics.log_upload_receive(token="good-token", upload=ContentFile(b"again", name="x"))
    assert LogUpload.objects.get().size == 3


def test_an_expired_or_unknown_upload_token_is_refused():
    _log_upload("old-token", token_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(LinkRefused, match="expired"):
        diagnostics.log_upload_receive(token="old-token", upload=ContentFile(b"abc", name="x"))
    with pytest.raises(LinkRefused, match="not valid"):
        diagnostics.log_upload_receive(token="no-such-token", upload=ContentFile(b"abc", name="x"))
    assert not LogUpload.objects.filter(received_at__isnull=False).exists()


def test_a_late_status_does_not_undo_an_arrived_file():
    record = _log_upload("t", state="uploaded", received_at=timezone.now())
    diagnostics.log_status_record(charge_point_id="LOGS", state="failed", status="UploadFailed")
    record.refresh_from_db()
    assert (record.state, record.status) == ("uploaded", "UploadFailed")


def _command(state: str) -> Command:
    return Command.objects.create(
        charge_point_identity="LOGS",
        ocpp_version="1.6",
        command="get_diagnostics",
        action="GetDiagnostics",
        request={},
        state=state,
    )


def test_a_1_6_status_goes_to_the_latest_request_the_charger_accepted_not_one_it_refused():
    accepted = _log_upload("older", command=_command(CommandState.ACCEPTED))
    refused = _log_upload("newer", command=_command(CommandState.REJECTED), state="failed", status="Rejected")
    diagnostics.log_status_record(charge_point_id="LOGS", state="uploading", status="Uploading")
    accepted.refresh_from_db()
    refused.refresh_from_db()
    assert (accepted.state, refused.state, refused.status) == ("uploading", "failed", "Rejected")


def test_a_finished_charger_does_not_wait_for_the_broker(campaign, broker_hung, django_capture_on_commit_callbacks):
    """Probe: a charger's last FirmwareStatusNotification queued its campaign's next wave in the
    committing thread (the gateway's batch thread): with Redis down that waited about 0.6 s
    (kombu's connection retries). It is queued by the process's sender thread; beat's tick
    advances the campaign anyway."""
    campaign.targets.update(state=TargetState.INSTALLING, sent_at=timezone.now())
    for charge_point_id in ("A", "B"):  # on a broker that hangs: each would wait 10 s in this thread
        with django_capture_on_commit_callbacks(execute=True):
            _report(charge_point_id, "Installed")
    assert set(campaign.targets.values_list("state", flat=True)) == {TargetState.INSTALLED}
    assert broker_hung.publishing.wait(10)
    broker_hung.released.set()
    assert {thread for _, thread in broker_hung.published} == {"broker-sends"}


def test_an_upload_url_stays_valid_for_the_retries_the_charger_was_told(settings):
    """h8's probe: GetDiagnostics/GetLog tell the charger to retry a failed upload ``retries`` times
    every ``retry_interval`` s, yet its single-use URL expired ``CSMS_DIAGNOSTICS_UPLOAD_TTL`` s after
    the request: with a TTL of 600 s, retries 3 every 300 s, the attempts at 900 s were refused (403)
    and the upload failed ``Expired``. The URL is valid for the TTL past the last retry."""
    settings.CSMS_DIAGNOSTICS_UPLOAD_TTL = 600
    ChargePoint.objects.create(charge_point_id="RETRY", heartbeat_interval=60, ocpp_version="1.6")
    asked = timezone.now()
    told = diagnostics.log_upload_request(charge_point_id="RETRY", retries=3, retry_interval=300)
    plain = diagnostics.log_upload_request(charge_point_id="RETRY", retries=3)
    huge = diagnostics.log_upload_request(charge_point_id="RETRY", retries=2**31 - 1, retry_interval=2**31 - 1)
    assert told.token_expires_at >= asked + timedelta(seconds=600 + 3 * 300)
    assert plain.token_expires_at < asked + timedelta(seconds=700)  # no interval told: the charger's own
    assert huge.token_expires_at < asked + timedelta(days=400)  # capped (a year), not an overflow


def test_a_target_the_sweep_cannot_time_out_does_not_hold_back_its_campaign_or_the_others(campaign, settings, caplog):
    """A charger whose Timeout could not be recorded (a fault in its event, say) raised out of its
    campaign's step, and out of the beat's sweep: the campaign's later silent chargers were never
    timed out nor its free places filled, and every campaign after it was never advanced, at every
    tick (the same charger failed first again). It is logged and passed over; the rest go on."""
    settings.CSMS_FIRMWARE_STATUS_TIMEOUT = 600
    ChargePoint.objects.create(charge_point_id="C", heartbeat_interval=60, ocpp_version="2.0.1")
    image = firmware.firmware_file_create(name="fw2", upload=ContentFile(b"img2", name="fw2.bin"))
    other = firmware.campaign_create(name="d", firmware=image, concurrency=1, charge_point_ids=["C"])
    silent = timezone.now() - timedelta(seconds=601)
    CampaignTarget.objects.update(state=TargetState.DOWNLOADING, sent_at=silent, updated_at=silent)
    failing = campaign.targets.get(charge_point__charge_point_id="A")
    emit = firmware._status_changed_emit

    def failing_for_one(target):  # a fault injected into the one target's Timeout
        if target.pk == failing.pk:
            raise RuntimeError("its event could not be written")
        emit(target)

    with mock.patch("maintenance.services.firmware._status_changed_emit", side_effect=failing_for_one):
        assert firmware.campaigns_advance() == 2
    states = dict(CampaignTarget.objects.values_list("charge_point__charge_point_id", "state"))
    assert states == {"A": TargetState.DOWNLOADING, "B": TargetState.FAILED, "C": TargetState.FAILED}
    other.refresh_from_db()
    assert other.finished_at is not None  # its only charger failed: finished in the same sweep
    assert f"could not time out campaign target {failing.pk}" in caplog.text


def test_a_campaign_whose_step_raises_does_not_hold_back_the_campaigns_after_it(campaign, caplog):
    """The sweep's own loop: a campaign whose step raised (a fault past its chargers') ended the
    sweep, and every campaign after it was never advanced. It is logged and passed over."""
    ChargePoint.objects.create(charge_point_id="C", heartbeat_interval=60, ocpp_version="2.0.1")
    image = firmware.firmware_file_create(name="fw2", upload=ContentFile(b"img2", name="fw2.bin"))
    other = firmware.campaign_create(name="d", firmware=image, concurrency=1, charge_point_ids=["C"])
    CampaignTarget.objects.update(state=TargetState.INSTALLED)
    finish = firmware._campaign_finish_if_done

    def failing_for_one(c):  # a fault injected into the one campaign's step
        if c.pk == campaign.pk:
            raise RuntimeError("its finish could not be recorded")
        return finish(c)

    with mock.patch("maintenance.services.firmware._campaign_finish_if_done", side_effect=failing_for_one):
        assert firmware.campaigns_advance() == 2
    campaign.refresh_from_db()
    other.refresh_from_db()
    assert (campaign.finished_at, other.finished_at is not None) == (None, True)
    assert f"could not advance campaign {campaign.pk}" in caplog.text
