"""Signed firmware download links: built on CSMS_PUBLIC_URL, refused when forged or expired."""

from __future__ import annotations

import time

import pytest
from django.core.files.base import ContentFile

from maintenance import links
from maintenance.services import firmware

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    return firmware.firmware_file_create(name="fw", version="1.0", upload=ContentFile(b"\x7fELF image", name="fw.bin"))


def _path(url: str) -> str:
    return url.removeprefix("https://csms.example.com")


def test_the_download_link_is_on_the_public_url_and_serves_the_file(client, image, settings):
    settings.CSMS_PUBLIC_URL = "https://csms.example.com"
    url = links.firmware_download_url(firmware_id=str(image.pk))
    assert url.startswith("https://csms.example.com/firmware/download/")
    response = client.get(_path(url))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x7fELF image"


def test_a_forged_link_is_refused(client, image, settings):
    settings.CSMS_PUBLIC_URL = "https://csms.example.com"
    url = links.firmware_download_url(firmware_id=str(image.pk))
    token = url.rsplit("/", 1)[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/firmware/download/{forged}").status_code == 403
    assert client.get("/firmware/download/nonsense").status_code == 403


def test_an_expired_link_is_refused(client, image, settings, monkeypatch):
    settings.CSMS_PUBLIC_URL = "https://csms.example.com"
    url = links.firmware_download_url(firmware_id=str(image.pk), ttl=60)
    now = time.time()
    monkeypatch.setattr(links.time, "time", lambda: now + 61)
    response = client.get(_path(url))
    assert response.status_code == 403
    assert response.json()["message"] == "The download link has expired."


def test_a_link_signed_with_another_secret_is_refused(client, image, settings):
    settings.CSMS_PUBLIC_URL = "https://csms.example.com"
    settings.SECRET_KEY = "another-installation"
    url = links.firmware_download_url(firmware_id=str(image.pk))
    settings.SECRET_KEY = "this-installation"
    assert client.get(_path(url)).status_code == 403


def test_a_download_resumes_with_the_byte_range_asked(client, settings, tmp_path):
    """A charger's downloader resumes a download cut off with Range (and If-Range, the ETag)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    content = bytes(range(256)) * 1024  # 256 KiB: more than a chunk
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(content, name="fw.bin"))
    path = _path(links.firmware_download_url(firmware_id=str(image.pk)))

    whole = client.get(path)
    assert (whole.status_code, whole["Accept-Ranges"], whole["ETag"]) == (200, "bytes", f'"{image.sha256}"')
    for asked, start, end in [
        ("bytes=100000-", 100000, len(content) - 1),
        ("bytes=10-19", 10, 19),
        ("bytes=-5", len(content) - 5, len(content) - 1),
        ("bytes=70000-999999", 70000, len(content) - 1),
    ]:
        part = client.get(path, headers={"Range": asked, "If-Range": whole["ETag"]})
        assert part.status_code == 206, asked
        assert part["Content-Range"] == f"bytes {start}-{end}/{len(content)}"
        assert b"".join(part.streaming_content) == content[start : end + 1]
        assert part["Content-Length"] == str(end - start + 1)

    beyond = client.get(path, headers={"Range": f"bytes={len(content)}-"})
    assert (beyond.status_code, beyond["Content-Range"]) == (416, f"bytes */{len(content)}")
    for headers in (
        {"Range": "bytes=0-1,5-6"},
        {"Range": "bytes=0-9", "If-Range": '"another image"'},
        {"Range": "lines=1-2"},
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 200 and b"".join(response.streaming_content) == content, headers


@pytest.mark.parametrize("file_name", ["fürmware ü.bin", "固件-2.4.bin"])
def test_a_resumed_download_names_the_file_as_the_whole_one_does(client, settings, tmp_path, file_name):
    """A part (206) carries the file's name in the same Content-Disposition as the whole file (RFC
    6266 ``filename*`` for a name beyond ASCII), not its characters as raw Latin-1 or MIME words."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"\x7fELF image", name=file_name))
    path = _path(links.firmware_download_url(firmware_id=str(image.pk)))
    whole = client.get(path)
    part = client.get(path, headers={"Range": "bytes=0-3"})
    assert (whole.status_code, part.status_code) == (200, 206)
    assert part["Content-Disposition"] == whole["Content-Disposition"]
    assert whole["Content-Disposition"].startswith("attachment; filename*=utf-8''")


def test_a_link_names_its_image_expired_or_not_and_nothing_else_names_one(image, monkeypatch):
    """What an UpdateFirmware sent by hand re-sends (``firmware_updates_superseded``): the CSMS's own
    link to an image, however old; an operator's location or a forged token names none."""
    link = links.firmware_download_url(firmware_id=str(image.pk), ttl=60)
    monkeypatch.setattr(time, "time", lambda: 10**12)  # long expired
    assert links.firmware_linked(location=link) == str(image.pk)
    assert links.firmware_linked(location=link[:-3] + "xyz") is None
    assert links.firmware_linked(location="https://images.example/wallbox-x-2.4.0.bin") is None
    assert links.firmware_linked(location="https://images.example/firmware/download/abc") is None
