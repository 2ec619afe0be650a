"""The admin: firmware upload, campaign progress and actions, diagnostics download for staff only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState
from chargepoints.services import charge_point_update
from maintenance.admin import CampaignCreateForm
from maintenance.models import Campaign, FirmwareFile, LogUpload, TargetState
from maintenance.services import firmware

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def files(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


def test_a_firmware_file_uploaded_in_the_admin_gets_its_size_and_hash(admin_client):
    upload = SimpleUploadedFile("fw-3.1.bin", b"\x00\x01firmware")
    response = admin_client.post(
        "/admin/maintenance/firmwarefile/add/", {"name": "Wallbox", "version": "3.1", "file": upload}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    image = FirmwareFile.objects.get()
    assert (image.version, image.size) == ("3.1", 10)
    assert image.file.read() == b"\x00\x01firmware"


def test_a_firmware_image_over_its_setting_is_refused_by_the_admin_form_naming_it(admin_client, settings):
    """CSMS_FIRMWARE_MAX_BYTES: a form just over it (within its form's room) comes in whole; the
    image's exact size is checked, as the API's upload does (413 RequestTooLarge)."""
    settings.CSMS_FIRMWARE_MAX_BYTES = 1024
    upload = SimpleUploadedFile("fw-3.1.bin", b"\x00" * 1025)
    response = admin_client.post(
        "/admin/maintenance/firmwarefile/add/", {"name": "Wallbox", "version": "3.1", "file": upload}
    )
    assert response.status_code == 200
    assert "Firmware images are limited to 1024 bytes." in response.content.decode()
    assert not FirmwareFile.objects.exists()


def test_the_campaign_page_shows_progress_and_cancels(admin_client):
    for charge_point_id in ("A", "B", "C"):
        ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"x", name="fw.bin"))
    campaign = firmware.campaign_create(name="rollout", firmware=image, concurrency=1, charge_point_ids=["A", "B", "C"])
    campaign.targets.filter(charge_point__charge_point_id="A").update(state=TargetState.INSTALLED)
    listed = admin_client.get("/admin/maintenance/campaign/").content.decode()
    assert "2 pending, 1 installed" in listed
    detail = admin_client.get(f"/admin/maintenance/campaign/{campaign.pk}/change/").content.decode()
    assert "Installed" in detail and "rollout" in detail
    admin_client.post("/admin/maintenance/campaign/", {"action": "cancel", "_selected_action": [str(campaign.pk)]})
    assert Campaign.objects.get().state == "cancelled"


def _diagnostics_received() -> LogUpload:
    """A diagnostics upload of charger CP, received, its file stored (``zip bytes``)."""
    charge_point = ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60)
    upload = LogUpload.objects.create(
        charge_point=charge_point,
        log_type="Diagnostics",
        token_sha256="0" * 64,
        token_expires_at=timezone.now(),
        file_name="diag.zip",
        received_at=timezone.now(),
    )
    upload.file.save("diag.zip", ContentFile(b"zip bytes"))
    return upload


def test_only_staff_allowed_to_view_uploads_download_them(admin_client, client):
    upload = _diagnostics_received()
    url = f"/admin/maintenance/logupload/{upload.pk}/download/"
    assert b"".join(admin_client.get(url).streaming_content) == b"zip bytes"
    client.force_login(User.objects.create_user("clerk", is_staff=True))
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302  # to the sign-in page


def test_a_campaign_created_in_the_admin_targets_the_model_s_chargers(admin_client):
    ChargePoint.objects.create(charge_point_id="M1", heartbeat_interval=60, model="Wallbox-X")
    ChargePoint.objects.create(charge_point_id="M2", heartbeat_interval=60, model="Other")
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"x", name="fw.bin"))
    form = {"name": "by model", "firmware": str(image.pk), "model": "wallbox-x", "concurrency": "2"}
    assert admin_client.get("/admin/maintenance/campaign/add/").status_code == 200
    response = admin_client.post("/admin/maintenance/campaign/add/", form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    campaign = Campaign.objects.get()
    assert list(campaign.targets.values_list("charge_point__charge_point_id", flat=True)) == ["M1"]
    assert campaign.concurrency == 2

    refused = admin_client.post("/admin/maintenance/campaign/add/", {**form, "model": "Nobody"})
    assert refused.status_code == 200 and "matches no charger" in refused.content.decode()
    assert Campaign.objects.count() == 1


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_campaign_pages_ask_as_many_queries_for_many_campaigns_and_chargers_as_for_one(admin_client):
    ids = [f"FLEET-{number}" for number in range(12)]
    ChargePoint.objects.bulk_create(ChargePoint(charge_point_id=id_, heartbeat_interval=60) for id_ in ids)
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"x", name="fw.bin"))
    one = firmware.campaign_create(name="one", firmware=image, concurrency=1, charge_point_ids=ids[:1])
    pages = ("/admin/maintenance/campaign/", f"/admin/maintenance/campaign/{one.pk}/change/")
    listing, page = [_queries(admin_client, url) for url in pages * 2][2:]  # the second time: caches warm
    for number in range(6):
        many = firmware.campaign_create(name=f"wave {number}", firmware=image, concurrency=1, charge_point_ids=ids)
    many.targets.filter(charge_point__charge_point_id__in=ids[:3]).update(state=TargetState.INSTALLED)

    assert _queries(admin_client, "/admin/maintenance/campaign/") == listing
    assert _queries(admin_client, f"/admin/maintenance/campaign/{many.pk}/change/") == page
    assert "9 pending, 3 installed" in admin_client.get("/admin/maintenance/campaign/").content.decode()


def test_a_deleted_firmware_file_s_or_log_upload_s_stored_file_is_deleted(
    admin_client, tmp_path, django_capture_on_commit_callbacks
):
    """Round 43 left them in the storage for good (a diagnostics file holds id tags and logs): a
    firmware image deleted in the admin, a charger's uploads deleted with the charger."""
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"x", name="fw.bin"))
    charge_point = ChargePoint.objects.create(charge_point_id="CP-DEL", heartbeat_interval=60)
    upload = LogUpload.objects.create(
        charge_point=charge_point, log_type="Diagnostics", token_sha256="1" * 64, token_expires_at=timezone.now()
    )
    upload.file.save("diag.zip", ContentFile(b"log"))
    stored = [tmp_path / image.file.name, tmp_path / upload.file.name]
    assert all(path.exists() for path in stored)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/maintenance/firmwarefile/{image.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        charge_point.delete()
    assert [path.exists() for path in stored] == [False, False]


def test_a_campaign_page_renders_its_first_targets_only(admin_client, monkeypatch):
    """A campaign of 10,000 chargers rendered a row for each; the progress still counts every one."""
    monkeypatch.setattr("maintenance.admin.TARGETS_SHOWN", 3)
    ids = [f"MANY-{number}" for number in range(5)]
    ChargePoint.objects.bulk_create(ChargePoint(charge_point_id=id_, heartbeat_interval=60) for id_ in ids)
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"x", name="fw.bin"))
    campaign = firmware.campaign_create(name="big", firmware=image, concurrency=1, charge_point_ids=ids)
    page = admin_client.get(f"/admin/maintenance/campaign/{campaign.pk}/change/").content.decode()
    assert 'name="targets-TOTAL_FORMS" value="3"' in page
    assert "5 pending" in page


def test_an_upload_whose_stored_file_is_gone_is_a_message_not_a_500(admin_client, api_client):
    """A diagnostics upload whose stored file is no longer there (a volume restored without it, a
    file removed by hand) answered its download link with a 500 (FileNotFoundError), in the admin and
    the API: the admin now says so in the message bar on the upload's page, the API answers 404."""
    upload = _diagnostics_received()
    upload.file.storage.delete(upload.file.name)

    response = admin_client.get(f"/admin/maintenance/logupload/{upload.pk}/download/", follow=True)

    assert response.redirect_chain == [(f"/admin/maintenance/logupload/{upload.pk}/change/", 302)]
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [f"The file of log upload {upload.pk} (diag.zip) is no longer stored."]
    answer = api_client.get(f"/api/v1/diagnostics/{upload.pk}/file")
    assert answer.status_code == 404
    assert answer.json()["message"] == f"The file of log upload {upload.pk} (diag.zip) is no longer stored."


def test_a_campaign_s_delete_page_counts_its_targets_in_a_few_queries(admin_client, django_assert_max_num_queries):
    """The confirmation page listed every target, each naming its charger read on its own (a
    campaign of 5,000 chargers: 5,004 queries, 3.2 s); it counts them."""
    ids = [f"DEL-{number}" for number in range(30)]
    ChargePoint.objects.bulk_create(ChargePoint(charge_point_id=id_, heartbeat_interval=60) for id_ in ids)
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"x", name="fw.bin"))
    campaign = firmware.campaign_create(name="rollout", firmware=image, concurrency=1, charge_point_ids=ids)
    url = f"/admin/maintenance/campaign/{campaign.pk}/delete/"
    with django_assert_max_num_queries(12):
        page = admin_client.get(url)
    assert page.status_code == 200 and "30 campaign targets" in page.content.decode()
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Campaign.objects.exists() and ChargePoint.objects.count() == 30


@pytest.mark.parametrize("selected", ["listed", "by model"])
def test_chargers_gone_after_the_campaign_page_s_check_are_the_page_s_message_not_a_500(
    admin_client, monkeypatch, selected
):
    """The add page checked that its selection matched chargers, they were decommissioned before the
    save, and ``campaign_create`` refused the selection: a 500. It is the page's message, with the
    service's reason, no campaign created."""
    charger = ChargePoint.objects.create(charge_point_id="M1", heartbeat_interval=60, model="Wallbox-X")
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"x", name="fw.bin"))
    form = {"name": "rollout", "firmware": str(image.pk), "concurrency": "2"}
    form |= {"charge_points": [str(charger.pk)]} if selected == "listed" else {"model": "wallbox-x"}
    checked = CampaignCreateForm.clean

    def check_then_decommission(page_form: CampaignCreateForm) -> dict[str, Any]:
        cleaned = checked(page_form)
        charge_point_update(  # another operator, meanwhile
            charge_point=ChargePoint.objects.get(pk=charger.pk), lifecycle_state=LifecycleState.DECOMMISSIONED
        )
        return cleaned

    monkeypatch.setattr(CampaignCreateForm, "clean", check_then_decommission)

    response = admin_client.post("/admin/maintenance/campaign/add/", form, follow=True)

    assert response.status_code == 200
    said = [str(message) for message in response.context["messages"]]
    reason = "Not registered, or decommissioned: M1." if selected == "listed" else "No charger matches the selection"
    assert any(reason in message for message in said), said
    assert not Campaign.objects.exists()
