"""The maintenance API answers bad bodies with a JSON 400 naming the field."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from chargepoints.models import ChargePoint
from kernel.api_keys import api_key_create
from maintenance.models import Campaign, FirmwareFile
from maintenance.services import firmware

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def files(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


@pytest.fixture
def image():
    return firmware.firmware_file_create(name="fw", upload=ContentFile(b"img", name="fw.bin"))


def test_a_firmware_upload_without_a_file_names_the_field(api_client):
    reply = api_client.post("/api/v1/firmware", {"version": "1"}, format="multipart")
    assert reply.status_code == 400
    assert "file" in reply.json()["details"]


def test_a_firmware_upload_with_a_misspelt_field_is_a_400_naming_it(api_client):
    """``verison`` was dropped: the image was stored without the version its sender gave."""
    upload = SimpleUploadedFile("fw.bin", b"img")
    reply = api_client.post("/api/v1/firmware", {"file": upload, "verison": "2.4.0"}, format="multipart")
    assert reply.status_code == 400
    assert reply.json()["details"] == {"verison": ["Unknown field."]}
    assert not FirmwareFile.objects.exists()


def test_a_firmware_upload_giving_a_field_twice_is_a_400_naming_it(api_client):
    """Two ``file`` parts (or two ``version``s) in one form stored the last alone, the first dropped
    with a 201, where a name given twice in a JSON body is a 400."""
    first, second = SimpleUploadedFile("a.bin", b"image-a"), SimpleUploadedFile("b.bin", b"image-b")
    twice = api_client.post("/api/v1/firmware", {"file": [first, second], "version": "1"}, format="multipart")
    assert twice.status_code == 400
    assert twice.json()["details"] == {"file": ["Given more than once in the same object."]}
    versions = {"file": SimpleUploadedFile("a.bin", b"img"), "version": ["1.0", "2.0"]}
    reply = api_client.post("/api/v1/firmware", versions, format="multipart")
    assert reply.status_code == 400
    assert reply.json()["details"] == {"version": ["Given more than once in the same object."]}
    assert not FirmwareFile.objects.exists()


def test_a_firmware_file_named_longer_than_its_column_is_stored_with_its_name_cut(api_client, tmp_path):
    """Round 41's probe: a 201-character file name was a 500, its file left on disk without a row."""
    upload = SimpleUploadedFile("f" * 197 + ".bin", b"img")
    reply = api_client.post("/api/v1/firmware", {"file": upload, "version": "1"}, format="multipart")
    assert reply.status_code == 201, reply.json()
    assert reply.json()["name"] == ("f" * 197 + ".bin")[:200]


@pytest.mark.parametrize("file_name", ["a." + "b" * 200, "image." + "x" * 60, "image.tar." + "g" * 90])
def test_a_firmware_file_with_a_long_extension_is_stored(api_client, file_name):
    """A name whose extension alone overflows the stored file's path (100 characters) was a 400
    ``BadRequest`` "The request is malformed." naming nothing (Django's SuspiciousFileOperation):
    the image is stored, under a cut name, and its name is the one given (cut to its column)."""
    upload = SimpleUploadedFile(file_name, b"img")
    reply = api_client.post("/api/v1/firmware", {"file": upload, "version": "1"}, format="multipart")
    assert reply.status_code == 201, reply.json()
    assert reply.json()["name"] == file_name[:200]
    stored = FirmwareFile.objects.get(pk=reply.json()["id"]).file
    assert len(stored.name) <= 100 and stored.open("rb").read() == b"img"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "c", "concurrency": 5}, "firmware_id"),
        ({"name": "c", "firmware_id": "IMAGE"}, "concurrency"),
        ({"name": "c", "firmware_id": "IMAGE", "concurrency": 0, "model": "X"}, "concurrency"),
        ({"name": "c", "firmware_id": "IMAGE", "concurrency": 5}, "charge_point_ids"),
        ({"name": "c", "firmware_id": "IMAGE", "concurrency": 5, "charge_point_ids": ["GHOST"]}, "charge_point_ids"),
        ({"name": "c", "firmware_id": "IMAGE", "concurrency": 5, "model": "Unknown"}, "model"),
    ],
)
def test_a_bad_campaign_body_is_a_400_naming_the_field(api_client, image, body, field):
    ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60, model="M")
    body = {k: (str(image.pk) if v == "IMAGE" else v) for k, v in body.items()}
    reply = api_client.post("/api/v1/campaigns", body, format="json")
    assert reply.status_code == 400, reply.content
    assert reply.json()["error"] == "ValidationError"
    assert field in reply.json()["details"]
    assert not Campaign.objects.exists()


def test_a_campaign_selecting_no_charger_is_a_400_naming_the_selectors_given(api_client, image):
    """Probe: ``{"vendor": "Nobody"}`` was a 400 naming ``charge_point_ids``, a field its caller never
    sent (a form marked the wrong field, an integration looked for an id it did not give)."""
    ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60, vendor="V", model="M")
    body = {"name": "c", "firmware_id": str(image.pk), "concurrency": 5}
    reply = api_client.post("/api/v1/campaigns", {**body, "vendor": "Nobody"}, format="json")
    assert reply.status_code == 400, reply.content
    assert list(reply.json()["details"]) == ["vendor"]
    both = {**body, "charge_point_ids": ["CP"], "ocpp_version": "2.0.1"}
    reply = api_client.post("/api/v1/campaigns", both, format="json")
    assert reply.status_code == 400, reply.content
    assert list(reply.json()["details"]) == ["charge_point_ids", "ocpp_version"]
    assert not Campaign.objects.exists()


def test_a_campaign_by_model_takes_commissioned_chargers_and_by_id_never_a_decommissioned_one(api_client, image):
    """A selection by vendor or model took auto-registered strangers (pending: nobody vetted them),
    who were sent the image's link, and decommissioned chargers, whose update waited for ever."""
    for charge_point_id, state in [("CP-OK", "commissioned"), ("CP-NEW", "pending"), ("CP-OLD", "decommissioned")]:
        ChargePoint.objects.create(
            charge_point_id=charge_point_id, heartbeat_interval=60, model="M", lifecycle_state=state
        )
    body = {"name": "c", "firmware_id": str(image.pk), "concurrency": 5}
    by_model = api_client.post("/api/v1/campaigns", {**body, "model": "M"}, format="json")
    by_id = api_client.post("/api/v1/campaigns", {**body, "charge_point_ids": ["CP-NEW"]}, format="json")
    retired = api_client.post("/api/v1/campaigns", {**body, "charge_point_ids": ["CP-OLD"]}, format="json")
    assert by_model.status_code == by_id.status_code == 201, (by_model.content, by_id.content)
    targets = [
        sorted(campaign.targets.values_list("charge_point__charge_point_id", flat=True))
        for campaign in Campaign.objects.order_by("created_at")
    ]
    assert targets == [["CP-OK"], ["CP-NEW"]]
    assert retired.status_code == 400 and "CP-OLD" in retired.json()["details"]["charge_point_ids"][0]


def test_campaign_actions_answer_404_and_409(api_client, image):
    assert api_client.post("/api/v1/campaigns/00000000-0000-0000-0000-000000000000/pause").status_code == 404
    assert api_client.get("/api/v1/campaigns/not-a-uuid").status_code == 404
    ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60)
    campaign = firmware.campaign_create(name="c", firmware=image, concurrency=1, charge_point_ids=["CP"])
    assert api_client.post(f"/api/v1/campaigns/{campaign.pk}/cancel").json()["state"] == "cancelled"
    reply = api_client.post(f"/api/v1/campaigns/{campaign.pk}/resume")
    assert (reply.status_code, reply.json()["error"]) == (409, "Conflict")


def test_a_read_only_key_cannot_start_a_campaign_or_request_logs(image):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='ro', scope='read_only')[1]}")
    ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60)
    body = {"name": "c", "firmware_id": str(image.pk), "concurrency": 1, "charge_point_ids": ["CP"]}
    assert client.post("/api/v1/campaigns", body, format="json").status_code == 403
    assert client.post("/api/v1/chargepoints/CP/diagnostics", {}, format="json").status_code == 403
    assert client.get("/api/v1/campaigns").status_code == 200


def test_a_log_request_body_is_checked(api_client):
    ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60, ocpp_version="1.6")
    reply = api_client.post(
        "/api/v1/chargepoints/CP/diagnostics",
        {"oldest": "2026-11-02T00:00:00Z", "latest": "2026-11-01T00:00:00Z"},
        format="json",
    )
    assert reply.status_code == 400 and "latest" in reply.json()["details"]
    assert api_client.post("/api/v1/chargepoints/CP/diagnostics", {"retries": -1}, format="json").status_code == 400


def test_the_uploads_of_a_charger_not_registered_are_a_404_naming_it(api_client):
    """As its connectors and configuration: an unknown charger is no empty list (a misspelt id looked
    like a charger without uploads)."""
    reply = api_client.get("/api/v1/chargepoints/NOPE/diagnostics")
    assert reply.status_code == 404
    assert reply.json() == {
        "error": "NotFound",
        "message": "Charge point 'NOPE' is not registered.",
        "charge_point_id": "NOPE",
    }
    ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60)
    assert api_client.get("/api/v1/chargepoints/CP/diagnostics").json() == []


def test_the_campaign_list_asks_as_many_queries_for_many_campaigns_as_for_one(api_client, image):
    ids = [f"LIST-{number}" for number in range(5)]
    ChargePoint.objects.bulk_create(ChargePoint(charge_point_id=id_, heartbeat_interval=60) for id_ in ids)

    def listed() -> tuple[int, list[dict]]:
        with CaptureQueriesContext(connection) as queries:
            reply = api_client.get("/api/v1/campaigns")
        assert reply.status_code == 200
        return len(queries), reply.json()["results"]

    firmware.campaign_create(name="first", firmware=image, concurrency=1, charge_point_ids=ids[:1])
    listed()  # the key's first use is recorded once
    few, _ = listed()
    for number in range(8):
        campaign = firmware.campaign_create(name=f"wave {number}", firmware=image, concurrency=1, charge_point_ids=ids)
    campaign.targets.filter(charge_point__charge_point_id="LIST-0").update(state="installed")
    many, campaigns = listed()
    assert many == few
    latest = next(listed_ for listed_ in campaigns if listed_["id"] == str(campaign.pk))
    assert (latest["progress"]["pending"], latest["progress"]["installed"]) == (4, 1)


def test_logs_asked_of_a_charger_that_never_connected_are_a_503_not_connected_as_a_command(api_client):
    """h8's probe: the diagnostics API answered 409 where ``POST /ocpp16/CP/get_diagnostics`` (the
    commands API) answers 503 ``NotConnected`` for the same charger (README, "Errors"); nothing is
    recorded."""
    ChargePoint.objects.create(charge_point_id="SILENT", heartbeat_interval=60)
    reply = api_client.post("/api/v1/chargepoints/SILENT/diagnostics", {}, format="json")
    assert (reply.status_code, reply.json()["error"]) == (503, "NotConnected")
    assert reply.json()["charge_point_id"] == "SILENT"
    command = api_client.post(
        "/api/v1/ocpp16/SILENT/get_diagnostics", {"location": "https://logs.example/up"}, format="json"
    )
    assert (command.status_code, command.json()["error"]) == (reply.status_code, reply.json()["error"])
    assert api_client.get("/api/v1/chargepoints/SILENT/diagnostics").json() == []


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1", ""])
def test_logs_asked_of_a_decommissioned_charger_are_a_409_as_a_command(api_client, ocpp_version):
    """A decommissioned charger is refused at its handshake: the diagnostics API answered 503
    NotConnected (one never connected) or 400 (one that had), where a command to it is a 409
    ChargePointDecommissioned; nothing is recorded."""
    ChargePoint.objects.create(
        charge_point_id="GONE", heartbeat_interval=60, ocpp_version=ocpp_version, lifecycle_state="decommissioned"
    )
    reply = api_client.post("/api/v1/chargepoints/GONE/diagnostics", {}, format="json")
    assert (reply.status_code, reply.json()["error"]) == (409, "ChargePointDecommissioned")
    assert reply.json()["charge_point_id"] == "GONE"
    command = api_client.post(
        "/api/v1/ocpp16/GONE/get_diagnostics", {"location": "https://logs.example/up"}, format="json"
    )
    assert ocpp_version == "2.0.1" or command.json()["error"] == reply.json()["error"]
    assert api_client.get("/api/v1/chargepoints/GONE/diagnostics").json() == []


def test_a_security_log_asked_of_a_1_6_charger_is_a_400_naming_log_type(api_client):
    """h8's probe: ``{"log_type": "SecurityLog"}`` to a 1.6 charger was sent as GetDiagnostics and
    answered 201 (its ``log_type`` "Diagnostics"): the operator asking for the security log got the
    diagnostics. 1.6 GetDiagnostics has no log type; nothing is sent or recorded."""
    ChargePoint.objects.create(charge_point_id="CP16", heartbeat_interval=60, ocpp_version="1.6")
    reply = api_client.post("/api/v1/chargepoints/CP16/diagnostics", {"log_type": "SecurityLog"}, format="json")
    assert reply.status_code == 400
    assert list(reply.json()["details"]) == ["log_type"]
    assert api_client.get("/api/v1/chargepoints/CP16/diagnostics").json() == []
    assert api_client.post("/api/v1/chargepoints/CP16/diagnostics", {}, format="json").status_code == 201
