"""Chargers that update their firmware and upload diagnostics over real HTTP, and the storage
shared with the daphne process they talk to."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.read()


def http_upload(url: str, content: bytes, *, file_name: str = "diagnostics.zip", method: str = "POST") -> int:
    """A multipart/form-data POST (or, with PUT, the raw body), as chargers send; returns the status."""
    if method == "PUT":
        request = urllib.request.Request(url, data=content, method="PUT")
        request.add_header("Content-Type", "application/octet-stream")
    else:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class _Updating:
    """UpdateFirmware: accept, then download the location and report each step."""

    outcome = "Installed"
    notification: Any

    def _init_updating(self) -> None:
        self.downloaded: bytes | None = None
        self.locations: list[str] = []
        self.reported: list[str] = []
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def _start(self, location: str, request_id: int | None) -> None:
        self.locations.append(location)
        task = asyncio.create_task(self._update(location, request_id))
        self.tasks.add(task)

    async def _report(self, status: str, request_id: int | None) -> None:
        extra = {"request_id": request_id} if request_id is not None else {}
        await self.call(self.notification(status=status, **extra))  # type: ignore[attr-defined]
        self.reported.append(status)

    async def _update(self, location: str, request_id: int | None) -> None:
        await self._report("Downloading", request_id)
        self.downloaded = await asyncio.to_thread(http_get, location)
        await self._report("Downloaded", request_id)
        await self._report("Installing", request_id)
        await self._report(self.outcome, request_id)
        self.done.set()


class FirmwareCharger16(_Updating, V16Client):
    notification = call16.FirmwareStatusNotification

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_updating()

    @on("UpdateFirmware")
    async def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> Any:
        self._start(location, None)
        return result16.UpdateFirmware()


class FailingCharger16(FirmwareCharger16):
    outcome = "InstallationFailed"


class FirmwareCharger201(_Updating, V201Client):
    notification = call201.FirmwareStatusNotification

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_updating()

    @on("UpdateFirmware")
    async def on_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> Any:
        self._start(firmware["location"], request_id)
        return result201.UpdateFirmware(status="Accepted")


class DiagnosticsCharger16(V16Client):
    """GetDiagnostics: announce ``diag.zip``, upload it to the location, report Uploading/Uploaded."""

    content = b"PK\x03\x04 diagnostics of a 1.6 charger \x00\xff"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locations: list[str] = []
        self.upload_statuses: list[int] = []
        self.tasks: set[asyncio.Task[None]] = set()

    @on("GetDiagnostics")
    async def on_get_diagnostics(self, location: str, **_: Any) -> Any:
        self.locations.append(location)
        self.tasks.add(asyncio.create_task(self._upload(location)))
        return result16.GetDiagnostics(file_name="diag.zip")

    async def _upload(self, location: str) -> None:
        await self.call(call16.DiagnosticsStatusNotification(status="Uploading"))
        self.upload_statuses.append(await asyncio.to_thread(http_upload, location, self.content, file_name="diag.zip"))
        await self.call(call16.DiagnosticsStatusNotification(status="Uploaded"))


class LogCharger201(V201Client):
    """GetLog: upload the log by PUT to ``<location>/security.log``, report with the requestId."""

    content = b"2026-11-30T10:00:00Z boot\n" * 50

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[dict[str, Any]] = []
        self.upload_statuses: list[int] = []
        self.tasks: set[asyncio.Task[None]] = set()

    @on("GetLog")
    async def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> Any:
        self.requests.append({"log": log, "log_type": log_type, "request_id": request_id})
        self.tasks.add(asyncio.create_task(self._upload(log["remote_location"], request_id)))
        return result201.GetLog(status="Accepted", filename="security.log")

    async def _upload(self, location: str, request_id: int) -> None:
        await self.call(call201.LogStatusNotification(status="Uploading", request_id=request_id))
        url = f"{location}/security.log"
        self.upload_statuses.append(await asyncio.to_thread(http_upload, url, self.content, method="PUT"))
        await self.call(call201.LogStatusNotification(status="Uploaded", request_id=request_id))


@pytest.fixture
def shared_files(daphne: Any, settings: Any) -> Any:
    """This process stores and reads files where the daphne process does, signs as it does, and
    builds the URLs chargers get on that daphne's address (CSMS_PUBLIC_URL)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(daphne.log_path.parent / "files")},
        },
    }
    settings.CSMS_PUBLIC_URL = daphne.http_url
    settings.SECRET_KEY = "tests-only-secret-key"  # daphne's: the download links are signed with it
    return daphne
