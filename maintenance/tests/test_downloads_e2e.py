"""What a charger's HTTP downloader does with a firmware link on the real daphne: HEAD for the size,
then GET, on one keep-alive connection."""

from __future__ import annotations

import asyncio
import http.client
import urllib.parse

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile

from conftest import eventually
from maintenance import links
from maintenance.services import firmware

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = bytes(range(256)) * 400  # 100 KiB


def _head_then_get(url: str, headers: dict[str, str] | None = None) -> tuple[str | None, bytes]:
    """HEAD's Content-Length, then the body of a GET on the same connection (content sent after
    HEAD's headers would stand where the GET's status line is expected)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("HEAD", parts.path, headers=headers or {})
        head = connection.getresponse()
        length = head.getheader("Content-Length")
        head.read()  # nothing: a HEAD answer ends with its headers
        connection.request("GET", parts.path, headers=headers or {})
        get = connection.getresponse()
        assert get.status == 200, get.status
        return length, get.read()
    finally:
        connection.close()


async def test_a_head_of_the_firmware_link_gives_its_size_and_no_content(shared_files, api_key):
    image = await sync_to_async(firmware.firmware_file_create)(
        name="fw", version="2.4.0", upload=ContentFile(IMAGE, name="fw.bin")
    )
    url = links.firmware_download_url(firmware_id=str(image.pk))

    length, body = await asyncio.to_thread(_head_then_get, url)
    assert (length, body) == (str(len(IMAGE)), IMAGE)

    api = f"{shared_files.http_url}/api/v1/firmware/{image.pk}"
    length, body = await asyncio.to_thread(_head_then_get, api, {"Authorization": f"Bearer {api_key}"})
    assert length == str(len(body)) and b'"sha256"' in body


async def test_the_tokens_of_chargers_links_are_not_in_the_log(shared_files):
    """Whoever read daphne's access log (or Django's "Forbidden: <path>" line) could download the
    image or upload in a charger's place: each token is redacted, the rest of the line kept."""
    image = await sync_to_async(firmware.firmware_file_create)(
        name="fw", version="2.4.0", upload=ContentFile(IMAGE, name="fw.bin")
    )
    download = urllib.parse.urlsplit(links.firmware_download_url(firmware_id=str(image.pk))).path
    token = links.upload_token_new()[0]

    def requests() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", shared_files.port, timeout=10)
        try:
            connection.request("GET", download)
            assert connection.getresponse().read() == IMAGE
            connection.request("PUT", f"/diagnostics/upload/{token}/diag.log", body=b"log")
            assert connection.getresponse().status == 403
        finally:
            connection.close()

    await asyncio.to_thread(requests)
    await eventually(lambda: '"PUT /diagnostics/upload/[redacted]/diag.log" 403' in shared_files.log())
    log = shared_files.log()
    assert '"GET /firmware/download/[redacted]" 200' in log
    assert "Forbidden: /diagnostics/upload/[redacted]/diag.log" in log
    assert download.rsplit("/", 1)[1] not in log and token not in log


def _status_and_body(url: str, method: str, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, parts.path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "headers"),
    [("GET", {}), ("GET", {"Range": "bytes=100-199"}), ("HEAD", {}), ("HEAD", {"Range": "bytes=100-"})],
)
async def test_a_firmware_image_whose_stored_file_is_gone_is_a_404_not_a_500(shared_files, method, headers):
    """A volume restored without the image, a file removed by hand: the charger's download (whole,
    or a range of it, resumed) is a 404 ``NotFound`` saying so, not a server error."""
    image = await sync_to_async(firmware.firmware_file_create)(
        name="fw", version="2.4.0", upload=ContentFile(IMAGE, name="fw.bin")
    )
    await sync_to_async(image.file.storage.delete)(image.file.name)
    url = links.firmware_download_url(firmware_id=str(image.pk))

    status, body = await asyncio.to_thread(_status_and_body, url, method, headers)
    assert status == 404
    if method == "GET":
        assert b'"NotFound"' in body and b"no longer stored" in body
