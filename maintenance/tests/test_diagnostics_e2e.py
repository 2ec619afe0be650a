"""Diagnostics (1.6 GetDiagnostics) and logs (2.0.1 GetLog) uploaded over real HTTP to the
single-use URL the CSMS hosts, tracked from the status notifications, downloaded in the admin."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.parse
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call_result as result201

from chargepoints.models import ChargePoint, OcppMessage
from commands.models import Command
from conftest import ahttp, eventually, ocpp_charger, raw_socket
from maintenance import links
from maintenance.models import LogUpload
from maintenance.services import diagnostics
from maintenance.tests.conftest import DiagnosticsCharger16, LogCharger201, http_upload

pytestmark = pytest.mark.django_db(transaction=True)

API_PREFIX = {"1.6": "ocpp16", "2.0.1": "ocpp201"}


async def _count_is(queryset, count: int) -> bool:
    return await queryset.acount() == count


async def _uploaded(pk: int) -> LogUpload | None:
    upload = await LogUpload.objects.aget(pk=pk)
    return upload if upload.received_at and upload.status == "Uploaded" else None


async def test_v16_diagnostics_arrive_at_the_hosted_endpoint_and_download_in_the_admin(shared_files, admin_client):
    await ChargePoint.objects.acreate(charge_point_id="DIAG16", heartbeat_interval=60, ocpp_version="1.6")
    async with ocpp_charger(shared_files, "1.6", "DIAG16", client_class=DiagnosticsCharger16) as charger:
        upload = await sync_to_async(diagnostics.log_upload_request)(charge_point_id="DIAG16", retries=1)
        # requested, or further already: the charger starts uploading as soon as it has answered
        assert upload.state != "failed" and upload.file_name == "diag.zip"
        assert charger.locations[0].startswith(f"{shared_files.http_url}/diagnostics/upload/")
        upload = await eventually(lambda: _uploaded(upload.pk), timeout=15)
        location = charger.locations[0]
    assert charger.upload_statuses == [201]
    assert (upload.state, upload.file_name, upload.size) == ("uploaded", "diag.zip", len(DiagnosticsCharger16.content))
    assert await Command.objects.filter(action="GetDiagnostics", state="accepted").acount() == 1
    notifications = OcppMessage.objects.filter(
        charge_point__charge_point_id="DIAG16", action="DiagnosticsStatusNotification"
    )
    await eventually(lambda: _count_is(notifications, 4), timeout=10)

    listed = await sync_to_async(admin_client.get)("/admin/maintenance/logupload/")
    download_url = f"/admin/maintenance/logupload/{upload.pk}/download/"
    assert download_url in listed.content.decode()
    response = await sync_to_async(admin_client.get)(download_url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == DiagnosticsCharger16.content
    assert 'filename="diag.zip"' in response["Content-Disposition"]

    # The token is spent: a second upload is refused and changes nothing.
    assert await asyncio.to_thread(http_upload, location, b"other bytes") == 403
    assert (await LogUpload.objects.aget(pk=upload.pk)).size == len(DiagnosticsCharger16.content)


async def test_v201_log_is_put_with_its_request_id_and_listed_per_charger(shared_files, api_client):
    await ChargePoint.objects.acreate(charge_point_id="LOG201", heartbeat_interval=60, ocpp_version="2.0.1")
    async with ocpp_charger(shared_files, "2.0.1", "LOG201", client_class=LogCharger201) as charger:
        upload = await sync_to_async(diagnostics.log_upload_request)(charge_point_id="LOG201", log_type="SecurityLog")
        assert charger.requests[0]["log_type"] == "SecurityLog"
        assert charger.requests[0]["request_id"] == upload.pk
        upload = await eventually(lambda: _uploaded(upload.pk), timeout=15)
    assert charger.upload_statuses == [201]
    assert (upload.file_name, upload.size) == ("security.log", len(LogCharger201.content))
    assert await Command.objects.filter(action="GetLog", state="accepted").acount() == 1
    notifications = OcppMessage.objects.filter(charge_point__charge_point_id="LOG201", action="LogStatusNotification")
    await eventually(lambda: _count_is(notifications, 4), timeout=10)  # 2 calls and their answers

    listed = await sync_to_async(api_client.get)("/api/v1/chargepoints/LOG201/diagnostics")
    assert [(u["request_id"], u["state"], u["has_file"]) for u in listed.json()] == [(upload.pk, "uploaded", True)]
    response = await sync_to_async(api_client.get)(f"/api/v1/diagnostics/{upload.pk}/file")
    assert b"".join(response.streaming_content) == LogCharger201.content


async def test_an_upload_with_a_wrong_token_is_refused(shared_files):
    url = f"{shared_files.http_url}/diagnostics/upload/not-a-token"
    assert await asyncio.to_thread(http_upload, url, b"data") == 403
    assert await asyncio.to_thread(http_upload, url, b"data", method="PUT") == 403
    assert not await LogUpload.objects.aexists()


class CancellingLogCharger201(LogCharger201):
    """Answers GetLog ``AcceptedCanceled``: it takes this request and cancels the upload under way."""

    @on("GetLog")
    async def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> Any:
        return result201.GetLog(status="AcceptedCanceled")


async def test_a_get_log_answered_accepted_canceled_fails_the_upload_it_cancelled(shared_files):
    """2.0.1 N01: ``AcceptedCanceled``, the new request accepted and the one under way cancelled (it
    stayed ``uploading`` for ever)."""
    await ChargePoint.objects.acreate(charge_point_id="LOGC", heartbeat_interval=60, ocpp_version="2.0.1")
    async with ocpp_charger(shared_files, "2.0.1", "LOGC", client_class=CancellingLogCharger201):
        first = await sync_to_async(diagnostics.log_upload_request)(charge_point_id="LOGC")
        await LogUpload.objects.filter(pk=first.pk).aupdate(state="uploading", status="Uploading")
        second = await sync_to_async(diagnostics.log_upload_request)(charge_point_id="LOGC")
    first = await LogUpload.objects.aget(pk=first.pk)
    assert (first.state, first.status, second.state) == ("failed", "AcceptedCanceled", "requested")


def _chunked_form(
    url: str, content: bytes, file_name: str, *, method: str = "POST", chunked: bool = True
) -> tuple[int, bytes]:
    """A multipart/form-data POST (or ``method``) sent chunked, without a Content-Length (a log
    streamed as it is read, as libcurl sends a form part of unknown size), or with one."""
    boundary = "charger-log-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        parts_sent = [head, content[:1000], content[1000:], f"\r\n--{boundary}--\r\n".encode()]
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
            connection.request(method, parts.path, body=iter(parts_sent), headers=headers, encode_chunked=True)
        else:  # http.client sends its Content-Length
            connection.request(method, parts.path, body=b"".join(parts_sent), headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


async def test_a_form_upload_sent_chunked_is_stored(shared_files):
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CHUNKED", heartbeat_interval=60)
    token, digest = links.upload_token_new()
    record = await LogUpload.objects.acreate(
        charge_point=charge_point,
        log_type="Diagnostics",
        token_sha256=digest,
        token_expires_at=timezone.now() + timedelta(hours=1),
    )
    content = b"2026-11-30T10:00:00Z boot\n" * 200
    status, _ = await asyncio.to_thread(_chunked_form, links.diagnostics_upload_url(token=token), content, "diag.log")
    assert status == 201
    record = await LogUpload.objects.aget(pk=record.pk)
    assert (record.state, record.file_name, record.size) == ("uploaded", "diag.log", len(content))
    assert await sync_to_async(lambda: record.file.open("rb").read())() == content


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_form_put_is_stored_as_the_same_form_posted(shared_files, chunked):
    """A charger that PUTs its log as a multipart form (``curl -X PUT -F file=@diag.log``) has it
    stored as the form's file, as one that POSTs it, whether it sends its length or not: sent with a
    Content-Length it was a ``400`` "The form carries no file" (Django parses the form of a POST
    alone), the log lost, while the same form sent chunked was stored."""
    token, record = await _token_for(f"PUTFORM{int(chunked)}")
    content = b"2026-11-30T10:00:00Z boot\n" * 200
    url = links.diagnostics_upload_url(token=token)
    status, _ = await asyncio.to_thread(_chunked_form, url, content, "diag.log", method="PUT", chunked=chunked)
    assert status == 201
    record = await LogUpload.objects.aget(pk=record.pk)
    assert (record.state, record.file_name, record.size) == ("uploaded", "diag.log", len(content))
    assert await sync_to_async(lambda: record.file.open("rb").read())() == content


def _put(url: str, content: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """A raw PUT of ``content`` with ``headers``; the status and the JSON answer."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("PUT", parts.path, body=content, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


async def test_a_part_of_a_file_is_refused_and_the_whole_file_then_stored(shared_files):
    """RFC 9110 §14.5: a PUT with a Content-Range naming a part of the file is a 400. Its first part
    was stored as the whole upload (201, ``uploaded``, 10 bytes of 30) and spent the single-use
    token: the rest was refused 403, the log lost. A range that is the whole file is an upload."""
    token, record = await _token_for("PARTS")
    url = f"{links.diagnostics_upload_url(token=token)}/diag.log"
    content = b"0123456789" * 3
    status, answer = await asyncio.to_thread(_put, url, content[:10], {"Content-Range": "bytes 0-9/30"})
    assert (status, answer.get("error")) == (400, "ValidationError"), answer
    record = await LogUpload.objects.aget(pk=record.pk)
    assert (record.state, record.received_at, record.file.name) == ("requested", None, "")
    status, _ = await asyncio.to_thread(_put, url, content, {"Content-Range": "bytes 0-29/30"})
    assert status == 201
    record = await LogUpload.objects.aget(pk=record.pk)
    assert (record.state, record.size) == ("uploaded", len(content))
    assert await sync_to_async(lambda: record.file.open("rb").read())() == content


@pytest.fixture(scope="module")
def small_uploads_daphne(daphne_factory):
    return daphne_factory(CSMS_DIAGNOSTICS_MAX_BYTES="1024")


@pytest.mark.parametrize(("method", "chunked"), [("POST", False), ("POST", True), ("PUT", False)])
async def test_a_file_in_a_form_is_held_to_the_upload_limit_by_its_own_size(small_uploads_daphne, method, chunked):
    """CSMS_DIAGNOSTICS_MAX_BYTES bounds the file, as README says (413 over it), not the form
    carrying it: a file of exactly the limit was a 413 in a form (its boundary and part headers
    counted), though taken as a raw body; a file one byte over it is still a 413, its token unspent."""
    token, record = await _token_for(f"LIMIT{method}{int(chunked)}")
    url = f"http://127.0.0.1:{small_uploads_daphne.port}/diagnostics/upload/{token}"
    over = b"x" * 1025
    status, answer = await asyncio.to_thread(_chunked_form, url, over, "d.log", method=method, chunked=chunked)
    assert (status, json.loads(answer)["error"]) == (413, "RequestTooLarge")
    assert (await LogUpload.objects.aget(pk=record.pk)).received_at is None
    status, answer = await asyncio.to_thread(_chunked_form, url, over[:1024], "d.log", method=method, chunked=chunked)
    assert status == 201, answer
    record = await LogUpload.objects.aget(pk=record.pk)
    assert (record.state, record.file_name, record.size) == ("uploaded", "d.log", 1024)


class NothingToUpload16(DiagnosticsCharger16):
    """Answers GetDiagnostics without a fileName: it has no diagnostics (1.6 6.26), and uploads nothing."""

    @on("GetDiagnostics")
    async def on_get_diagnostics(self, location: str, **_: Any) -> Any:
        self.locations.append(location)
        return result16.GetDiagnostics()


async def test_v16_diagnostics_answered_without_a_file_name_fail_at_once(shared_files):
    await ChargePoint.objects.acreate(charge_point_id="DIAG0", heartbeat_interval=60, ocpp_version="1.6")
    async with ocpp_charger(shared_files, "1.6", "DIAG0", client_class=NothingToUpload16):
        upload = await sync_to_async(diagnostics.log_upload_request)(charge_point_id="DIAG0")
    assert (upload.state, upload.status, upload.file_name) == ("failed", "NoDiagnostics", "")


LONG_ID = "CS-" + "7" * 45  # 48 characters, OCPP identifierString's longest


async def _token_for(charge_point_id: str) -> tuple[str, LogUpload]:
    charge_point = await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    token, digest = links.upload_token_new()
    record = await LogUpload.objects.acreate(
        charge_point=charge_point,
        log_type="DiagnosticsLog",
        token_sha256=digest,
        token_expires_at=timezone.now() + timedelta(hours=1),
    )
    return token, record


@pytest.mark.parametrize(
    "file_name",
    [
        f"{LONG_ID}_DiagnosticsLog_20261206T171838Z.tar.gz",  # a station's own name for its log
        "E" * 300 + ".zip",  # a name longer than any column
    ],
)
async def test_a_file_named_at_any_length_by_a_charger_of_the_longest_id_is_stored(shared_files, file_name):
    """The name a charger gives its upload is its own (the URL's last segment, or the form's): its
    length and that of the charger's id (at most 48) are no reason to lose the file (it was a 500:
    the file's path over its column, or the name over its own)."""
    token, record = await _token_for(LONG_ID)
    url = f"{links.diagnostics_upload_url(token=token)}/{file_name}"
    assert await asyncio.to_thread(http_upload, url, b"log lines", method="PUT") == 201
    record = await LogUpload.objects.aget(pk=record.pk)
    assert (record.state, record.size) == ("uploaded", len(b"log lines"))
    assert record.file_name == (file_name[:251] + ".zip" if len(file_name) > 255 else file_name)
    assert record.file.name.startswith(f"diagnostics/{LONG_ID}/{record.pk}-")
    assert record.file.name.endswith(".gz" if file_name.endswith(".gz") else ".zip")
    assert await sync_to_async(lambda: record.file.open("rb").read())() == b"log lines"


class LongNameDiagnostics16(DiagnosticsCharger16):
    """Answers GetDiagnostics with a ``fileName`` over the schema's 255 characters, and uploads nothing."""

    @on("GetDiagnostics", skip_schema_validation=True)
    async def on_get_diagnostics(self, location: str, **_: Any) -> Any:
        self.locations.append(location)
        return result16.GetDiagnostics(file_name="D" * 300)


async def test_a_file_name_answered_over_its_length_fails_the_upload_not_the_request(shared_files):
    """A strict charger's GetDiagnostics.conf with a 300-character ``fileName`` (1.6 schema: at most
    255) is an invalid answer: the upload fails as a refusal does, and the request is answered (it
    was a 500: the announced name written to its 255-character column)."""
    await ChargePoint.objects.acreate(charge_point_id="DIAGLONG", heartbeat_interval=60, ocpp_version="1.6")
    async with ocpp_charger(shared_files, "1.6", "DIAGLONG", client_class=LongNameDiagnostics16):
        upload = await sync_to_async(diagnostics.log_upload_request)(charge_point_id="DIAGLONG")
    assert (upload.state, upload.status, upload.file_name) == ("failed", "invalid_response", "D" * 255)


async def _answer_next_call(websocket, answer: dict[str, Any]) -> list[Any]:
    call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
    await websocket.send(json.dumps([3, call[1], answer]))
    return call


async def _notified(websocket, unique_id: str, action: str, payload: dict[str, Any]) -> None:
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    assert json.loads(await asyncio.wait_for(websocket.recv(), 10)) == [3, unique_id, {}]


@pytest.mark.parametrize(
    ("version", "command", "body", "answer", "notification"),
    [
        (
            "1.6",
            "get_diagnostics",
            {"location": "ftp://diagnostics.example/"},
            {"fileName": "other.zip"},
            "DiagnosticsStatusNotification",
        ),
        (
            "2.0.1",
            "get_log",
            {"log_type": "DiagnosticsLog", "log": {"remote_location": "ftp://diagnostics.example/"}},
            {"status": "Accepted", "filename": "other.log"},
            "LogStatusNotification",
        ),
    ],
)
async def test_a_later_request_sent_as_a_command_is_not_reported_on_an_earlier_upload(
    shared_files, api_key, version, command, body, answer, notification
):
    """An operator's own GetDiagnostics / GetLog (``POST /api/v1/ocpp16/{id}/get_diagnostics``, to a
    location of theirs; 2.0.1 with a ``request_id`` an upload of the CSMS's has too) after a failed
    upload of the CSMS's: what the charger reports is about the later request, not the upload (round
    45's probe: the failed upload shown ``uploaded``, status ``Uploaded``, with no file)."""
    await ChargePoint.objects.acreate(charge_point_id="DIAG-OP", heartbeat_interval=60, ocpp_version=version)
    async with raw_socket(shared_files, version, "DIAG-OP") as websocket:
        asked = asyncio.create_task(sync_to_async(diagnostics.log_upload_request)(charge_point_id="DIAG-OP"))
        await _answer_next_call(websocket, answer)
        upload = await asked
        failed = {"status": "UploadFailed" if version == "1.6" else "UploadFailure"}
        if version == "2.0.1":
            failed["requestId"] = upload.pk
            body = {**body, "request_id": upload.pk}
        await _notified(websocket, "n1", notification, failed)
        sent = asyncio.create_task(
            ahttp(
                f"{shared_files.http_url}/api/v1/{API_PREFIX[version]}/DIAG-OP/{command}",
                method="POST",
                api_key=api_key,
                body=body,
            )
        )
        await _answer_next_call(websocket, answer)
        assert (await sent)[0] == 200
        for n, status in enumerate(("Uploading", "Uploaded")):
            report = {"status": status, **({"requestId": upload.pk} if version == "2.0.1" else {})}
            await _notified(websocket, f"n{n + 2}", notification, report)
    upload = await LogUpload.objects.aget(pk=upload.pk)
    assert (upload.state, upload.status, upload.received_at) == ("failed", failed["status"], None)


class SilentDiagnostics16(DiagnosticsCharger16):
    """Takes GetDiagnostics, reports ``Uploading``, and then nothing: its upload never comes (it lost
    its network, it was replaced) and no status says so."""

    async def _upload(self, location: str) -> None:
        await self.call(call16.DiagnosticsStatusNotification(status="Uploading"))


class SilentLog201(LogCharger201):
    """Takes GetLog and never uploads nor reports."""

    async def _upload(self, location: str, request_id: int) -> None:
        return None


@pytest.mark.parametrize(
    ("version", "client_class", "request_state"),
    [("1.6", SilentDiagnostics16, "uploading"), ("2.0.1", SilentLog201, "requested")],
)
async def test_an_upload_whose_url_expired_without_its_file_fails_instead_of_staying_in_progress(
    shared_files, settings, version, client_class, request_state
):
    """The upload URL is single-use and valid CSMS_DIAGNOSTICS_UPLOAD_TTL s: once it expired with no
    file, nothing can arrive. The beat sweep fails such an upload as ``Expired`` (it stayed
    ``requested`` or ``uploading`` for ever); one still valid, and one whose file arrived, stay."""
    charger_id = f"EXP{version.replace('.', '')}"
    await ChargePoint.objects.acreate(charge_point_id=charger_id, heartbeat_interval=60, ocpp_version=version)
    async with ocpp_charger(shared_files, version, charger_id, client_class=client_class):
        silent = await sync_to_async(diagnostics.log_upload_request)(charge_point_id=charger_id)
        silent = await eventually(
            lambda: LogUpload.objects.filter(pk=silent.pk, state=request_state).afirst(), timeout=10
        )
    token, uploaded = await _token_for(f"{charger_id}-DONE")
    assert await asyncio.to_thread(http_upload, links.diagnostics_upload_url(token=token), b"log", method="PUT") == 201
    await LogUpload.objects.filter(pk=uploaded.pk).aupdate(token_expires_at=silent.token_expires_at)
    after_expiry = silent.token_expires_at + timedelta(seconds=1)
    _, still_valid = await _token_for(f"{charger_id}-LATER")
    await LogUpload.objects.filter(pk=still_valid.pk).aupdate(token_expires_at=after_expiry + timedelta(seconds=1))

    assert await sync_to_async(diagnostics.log_uploads_expire)(now=after_expiry) == 1

    silent = await LogUpload.objects.aget(pk=silent.pk)
    assert (silent.state, silent.status, silent.file_name) == (
        "failed",
        "Expired",
        "diag.zip" if version == "1.6" else "security.log",
    )
    assert (await LogUpload.objects.aget(pk=uploaded.pk)).state == "uploaded"
    assert (await LogUpload.objects.aget(pk=still_valid.pk)).state == "requested"
    assert settings.CELERY_BEAT_SCHEDULE["expire-log-uploads"]["task"] == "maintenance.tasks.expire_log_uploads"


@pytest.mark.parametrize("report", [{"status": "UploadFailure"}, {"status": "Uploading", "requestId": 1}])
async def test_a_1_6_log_status_reports_on_no_diagnostics_upload(shared_files, report):
    """A 1.6 LogStatusNotification (security whitepaper) reports on a GetLog, which the CSMS never sends
    to a 1.6 charger; its GetDiagnostics uploads follow DiagnosticsStatusNotification only. A log upload's
    ``UploadFailure`` failed the diagnostics upload under way (state ``failed``, its file still to come)."""
    await ChargePoint.objects.acreate(charge_point_id="DIAG-LOG16", heartbeat_interval=60, ocpp_version="1.6")
    async with raw_socket(shared_files, "1.6", "DIAG-LOG16") as websocket:
        asked = asyncio.create_task(sync_to_async(diagnostics.log_upload_request)(charge_point_id="DIAG-LOG16"))
        await _answer_next_call(websocket, {"fileName": "diag.zip"})
        upload = await asked
        await _notified(
            websocket,
            "l1",
            "LogStatusNotification",
            {**report, "requestId": upload.pk} if "requestId" in report else report,
        )
        await _notified(websocket, "d1", "DiagnosticsStatusNotification", {"status": "Uploading"})
        uploading = await LogUpload.objects.aget(pk=upload.pk)
        await _notified(websocket, "l2", "LogStatusNotification", {"status": "UploadFailure"})
    upload = await LogUpload.objects.aget(pk=upload.pk)
    assert (uploading.state, uploading.status) == ("uploading", "Uploading")
    assert (upload.state, upload.status) == ("uploading", "Uploading")
